"""`formstation export`: the store -> card data, rejections, chase lists, photos, manifest.

queries (output.records) -> immutable rows (output.tables) -> files (output.writers).
The export is built in a temporary folder beside DIR and renamed into place only when complete,
replacing a previous export there (never any other folder). The same store gives the same bytes,
apart from the manifest's `generated_at`. With a passphrase, each school goes into one AES-256
zip written directly from memory (the files in an inner zip, so that even the entry names are
encrypted): no plaintext file is created.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from formstation.errors import ExitCode, StationError
from formstation.printjob import safe_name
from formstation.store import Store, now
from output import tables as t
from output.photos import PhotoError, card_jpeg
from output.records import STATUSES, ExportForm, load_forms
from output.writers import (
    INNER_ARCHIVE,
    AesZipSink,
    DirSink,
    FileEntry,
    Sink,
    csv_bytes,
    json_line,
    xlsx_bytes,
)

log = logging.getLogger("formstation.export")

FORMAT = "formstation-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MIN_PASSPHRASE = 12  # characters
CARD_WIDTHS = (11, 24, 14, 10, 5, 21, 10, 21, 13, 20, 16, 21, 14, 9, 60, 8)
REJECTION_WIDTHS = (11, 24, 14, 10, 21, 26, 50, 40)


@dataclass(frozen=True)
class BundleReport:
    counts: dict[str, int]
    photos: int
    warnings: tuple[str, ...]
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class ExportResult:
    out: Path
    counts: dict[str, int]
    photos: int
    warnings: tuple[str, ...]
    files: tuple[FileEntry, ...]   # the files in DIR (the zips when encrypted)
    encrypted: bool


def read_passphrase(path: Path) -> bytes:
    """The passphrase from a file, trailing newline removed; missing or empty is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StationError(f"{path}: passphrase file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StationError(f"{path}: cannot read the passphrase file ({type(e).__name__})") from None
    pw = text.rstrip("\r\n")
    if not pw.strip():
        raise StationError(f"{path}: the passphrase file is empty")
    return check_passphrase(pw.encode("utf-8"), str(path))


def check_passphrase(pw: bytes, where: str = "the passphrase") -> bytes:
    """The passphrase, when long enough to protect children's data; a StationError otherwise."""
    n = len(pw.decode("utf-8", "replace"))
    if n < MIN_PASSPHRASE:
        raise StationError(f"{where}: the passphrase has {n} characters; at least {MIN_PASSPHRASE} are needed")
    return pw


def export(store: Store, out: Path, school: str | None = None, passphrase: bytes | None = None) -> ExportResult:
    if passphrase is not None:
        check_passphrase(passphrase)
    forms = load_forms(store, school)
    if not forms:
        where = f"school {school!r}" if school else "the store"
        raise StationError(f"no forms for {where}; import and print a roster first", ExitCode.NOTHING_TO_DO)
    generated_at = now()
    with staging(Path(out)) as tmp:
        if passphrase is None:
            sink = DirSink(tmp)
            rep = write_bundle(sink, forms, store.workspace, generated_at, school)
            files, warnings, photos = rep.files, rep.warnings, rep.photos
        else:
            files, warnings, photos = _write_encrypted(tmp, forms, store.workspace, generated_at, passphrase)
    counts = status_counts(forms)
    log.info("export %s: %s", Path(out), ", ".join(f"{k} {v}" for k, v in counts.items()))
    return ExportResult(Path(out), counts, photos, warnings, files, passphrase is not None)


def status_counts(forms: Sequence[ExportForm]) -> dict[str, int]:
    c = Counter(f.status for f in forms)
    return {s: c.get(s, 0) for s in STATUSES} | {"total": len(forms)}


# ------------------------------------------------------------------ one bundle (a folder or a zip)

def write_bundle(sink: Sink, forms: Sequence[ExportForm], workspace: Path, generated_at: str,
                 school: str | None) -> BundleReport:
    accepted = t.by_status(forms, "accepted")
    photo_rel, warnings = _write_photos(sink, accepted, workspace)
    card = t.card_rows(accepted, photo_rel)
    _put_table(sink, "card_data", "制卡数据", t.CARD_HEADER, card, CARD_WIDTHS)
    rej = t.rejection_rows(t.by_status(forms, "rejected"))
    _put_table(sink, "rejections", "退回原因", t.REJECTION_HEADER, rej, REJECTION_WIDTHS)
    rare = t.rare_rows(accepted)
    sink.put("rare_characters.csv", csv_bytes(t.RARE_HEADER, rare), rows=len(rare))
    pending = t.pending_rows(t.by_status(forms, "review", "rescan"))
    sink.put("pending.csv", csv_bytes(t.PENDING_HEADER, pending), rows=len(pending))
    missing = t.not_returned_rows(t.by_status(forms, "printed"))
    sink.put("not_returned.csv", csv_bytes(t.NOT_RETURNED_HEADER, missing), rows=len(missing))
    for path, rows in t.class_sheets(accepted, photo_rel).items():
        sink.put(path, xlsx_bytes("名单", t.CLASS_SHEET_HEADER, rows, (21, 12, 21, 12)), rows=len(rows))
    jsonl = "".join(json_line(t.form_record(f, photo_rel)) + "\n" for f in forms)
    sink.put("forms.jsonl", jsonl.encode("utf-8"), rows=len(forms))
    counts = status_counts(forms)
    files = tuple(sorted(sink.index.entries, key=lambda e: e.path))
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "generated_at": generated_at, "school": school,
        "counts": counts, "photos": len(photo_rel), "warnings": list(warnings),
        "files": [e.as_json() for e in files],
    }
    sink.put(MANIFEST, (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode())
    return BundleReport(counts, len(photo_rel), warnings, files)


def _put_table(sink: Sink, stem: str, sheet: str, header, rows, widths) -> None:
    sink.put(f"{stem}.csv", csv_bytes(header, rows), rows=len(rows))
    sink.put(f"{stem}.xlsx", xlsx_bytes(sheet, header, rows, widths), rows=len(rows))


def _write_photos(sink: Sink, accepted: Sequence[ExportForm], workspace: Path) -> tuple[dict[str, str], tuple[str, ...]]:
    """Convert and store each planned photo; a bad source is a warning and leaves 照片文件 empty."""
    photo_rel, warnings = {}, []
    for p in t.plan_photos(accepted, workspace):
        try:
            data = card_jpeg(p.source)
        except PhotoError as e:
            warnings.append(f"{p.form_id}: {p.kind} photo: {e}; 照片文件 left empty")
            log.warning("form %s: %s photo: %s", p.form_id, p.kind, e)
            continue
        sink.put(p.rel, data)
        photo_rel[p.form_id] = p.rel
    return photo_rel, tuple(warnings)


def _write_encrypted(tmp: Path, forms: Sequence[ExportForm], workspace: Path, generated_at: str,
                     passphrase: bytes) -> tuple[tuple[FileEntry, ...], tuple[str, ...], int]:
    """One AES zip per school, and a plain manifest of the zips (names, sizes, hashes, counts)."""
    zips, warnings, used, photos = [], [], set(), 0
    for school, group in groupby(forms, key=lambda f: f.school):
        group = tuple(group)
        name = f"{safe_name(school)}.zip"
        if name.casefold() in used:
            name = f"{safe_name(school)}-{group[0].form_id}.zip"
        used.add(name.casefold())
        with AesZipSink(tmp / name, passphrase) as sink:
            rep = write_bundle(sink, group, workspace, generated_at, school)
        warnings += rep.warnings
        photos += rep.photos
        zips.append((name, rep.counts))
    files = tuple(FileEntry.of(name, (tmp / name).read_bytes()) for name, _c in zips)
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "generated_at": generated_at,
        "encryption": f"AES-256 (WinZip AE-2), one zip per school holding one entry, {INNER_ARCHIVE}: "
                      "the export's files (entry names are not encrypted, so they are inside)",
        "counts": status_counts(forms),
        "zips": [e.as_json() | {"counts": c} for e, (_n, c) in zip(files, zips, strict=True)],
    }
    text = json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    (tmp / MANIFEST).write_text(text, encoding="utf-8")
    return files, tuple(warnings), photos


# ------------------------------------------------------------------ atomic replacement of DIR

def _is_previous_export(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise StationError(f"{out}: exists and is not a folder")
    if any(out.iterdir()) and not _is_previous_export(out):
        raise StationError(f"{out}: folder is not empty and holds no previous export; "
                           "choose a new or empty folder (an export replaces the whole folder)")


def remove_leftovers(out: Path) -> list[Path]:
    """Remove what an export to `out` killed midway left beside it (`.<name>.part-<pid>-*`,
    `.<name>.old-<pid>`: partial plain data of children), unless its process still runs."""
    gone = []
    for p in out.parent.glob(f".{glob.escape(out.name)}.*-*"):
        kind, _, rest = p.name[len(out.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind not in ("part", "old") or not p.is_dir() or (pid.isdigit() and _running(int(pid))):
            continue
        shutil.rmtree(p, ignore_errors=True)
        log.warning("removed %s, left by an export that was killed", p.name)
        gone.append(p)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A private temporary folder beside `out`, renamed to `out` when the block completes.

    A previous export in `out` is replaced as a whole (never merged: no duplicates, no stale
    files). On any failure the temporary folder is removed and `out` is left untouched.
    """
    out = out.absolute()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.part-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
