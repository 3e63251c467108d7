"""Reader versions kept in the workspace: the shipped reader and the campaign's adapted ones.

`<workspace>/readers/<version>/` holds an adapted version: `heads.npz` (each ensemble member's
output layer and temperature over the shipped ONNX features, `ocr.digits.OnnxReader`) and
`figures.json` (what `ocr.adapt` measured, when, on how many forms, promoted or why not, the
shipped model it was fitted on). `<workspace>/readers/CURRENT` names the version the station reads
with (absent: the shipped reader). Every version ever fitted stays, so a supervisor can roll back.

Workers follow CURRENT: `Follower.reader_for` looks at it when a page of a new scan file comes in
(a stat and a small read per file), so a version made current is used from the next file on, with
no restart. A version fitted on another shipped model than the one installed is never used: the
station falls back to the shipped reader and says so in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from ocr.digits import ONNX_MODEL, Classifier, OnnxReader, default_classifier

log = logging.getLogger("formstation.versions")
READERS_DIR = "readers"
CURRENT_FILE = "CURRENT"
HEADS_FILE = "heads.npz"
FIGURES_FILE = "figures.json"


@cache
def shipped_sha() -> str:
    """Short digest of the shipped ONNX feature extractor ('' when none is shipped)."""
    if not ONNX_MODEL.is_file():
        return ""
    return hashlib.sha256(ONNX_MODEL.read_bytes()).hexdigest()[:16]


def shipped_version() -> str:
    """The version name of the reader installed with the program."""
    model = default_classifier()
    return model.version if isinstance(model, OnnxReader) else "v1"


def version_of(model: Classifier) -> str:
    return str(getattr(model, "version", "v1"))


def root(workspace: str | Path) -> Path:
    return Path(workspace) / READERS_DIR


@dataclass(frozen=True)
class Version:
    name: str
    figures: dict
    shipped: bool = False

    @property
    def usable(self) -> bool:
        """Fitted on the shipped model installed here (the shipped version always is)."""
        return self.shipped or (bool(shipped_sha()) and self.figures.get("base_sha") == shipped_sha())


def current_name(workspace: str | Path) -> str:
    """The version CURRENT names, or the shipped one."""
    try:
        name = (root(workspace) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    return name or shipped_version()


def list_versions(workspace: str | Path) -> list[Version]:
    """The shipped version first, then the adapted ones oldest first."""
    out = [Version(shipped_version(), _shipped_figures(), shipped=True)]
    base = root(workspace)
    if base.is_dir():
        found = []
        for d in base.iterdir():
            try:
                figs = json.loads((d / FIGURES_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            found.append(Version(d.name, figs))
        out += sorted(found, key=lambda v: (str(v.figures.get("created_at", "")), v.name))
    return out


def _shipped_figures() -> dict:
    model = default_classifier()
    return dict(getattr(model, "figures", {}) or {})


def next_name(workspace: str | Path) -> str:
    """A new adapted version's name: the shipped version's plus `.c<n>`."""
    n = 1 + sum(1 for v in list_versions(workspace) if not v.shipped)
    while (root(workspace) / f"{shipped_version()}.c{n}").exists():
        n += 1
    return f"{shipped_version()}.c{n}"


def save_version(workspace: str | Path, name: str, heads: dict[str, np.ndarray], figures: dict) -> Path:
    """Write an adapted version's heads and figures (written once, then only its figures change)."""
    d = root(workspace) / name
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / HEADS_FILE, **heads)
    write_figures(workspace, name, figures)
    return d


def write_figures(workspace: str | Path, name: str, figures: dict) -> None:
    d = root(workspace) / name
    _atomic_write(d / FIGURES_FILE, json.dumps({**figures, "base_sha": figures.get("base_sha", shipped_sha())},
                                               indent=1, ensure_ascii=False) + "\n")


def set_current(workspace: str | Path, name: str) -> None:
    """Make `name` the version the station reads with (the shipped one, or an adapted one fitted on
    the shipped model installed here)."""
    known = {v.name: v for v in list_versions(workspace)}
    if name not in known:
        raise KeyError(f"no reader version {name!r} in {root(workspace)}")
    if not known[name].usable:
        raise ValueError(f"reader version {name!r} was fitted on another shipped model than the one installed")
    root(workspace).mkdir(parents=True, exist_ok=True)
    _atomic_write(root(workspace) / CURRENT_FILE, name + "\n")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_heads(workspace: str | Path, name: str) -> dict[str, np.ndarray]:
    with np.load(root(workspace) / name / HEADS_FILE) as d:
        return {k: d[k] for k in d.files}


def load_reader(workspace: str | Path, name: str | None = None) -> Classifier:
    """The reader of version `name` (default: the current one). The shipped reader when `name` is
    the shipped version, unknown, or fitted on another shipped model (logged)."""
    name = name or current_name(workspace)
    shipped = default_classifier()
    if name == shipped_version() or not isinstance(shipped, OnnxReader):
        return shipped
    v = next((v for v in list_versions(workspace) if v.name == name), None)
    if v is None or not v.usable:
        log.warning("reader version %s is %s; reading with the shipped reader %s", name,
                    "unknown" if v is None else "fitted on another shipped model", shipped.version)
        return shipped
    return shipped.with_heads(load_heads(workspace, name), name, v.figures)


class Follower:
    """Keeps a worker's reader at the workspace's current version, looked up once per scan file."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Path(workspace)
        self.file: str | None = None

    def reader_for(self, file_sha256: str, model: Classifier) -> Classifier:
        """`model`, or the current version's reader when a new file starts and CURRENT changed."""
        if file_sha256 == self.file:
            return model
        self.file = file_sha256
        name = current_name(self.workspace)
        if name == version_of(model):
            return model
        log.info("reading with reader version %s from this file on", name)
        return load_reader(self.workspace, name)
