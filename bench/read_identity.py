"""Check: a change to the reader changes no reading. Reads stored pages with two copies of the code
(a base, e.g. an export of main, and this one) and compares everything the read stage gives.

    .venv/bin/python bench/read_identity.py BASE_ROOT WORKSPACE [WORKSPACE ...] [--pages 40]

BASE_ROOT is another checkout of the project (e.g. `git archive main | tar -x -C /tmp/base`).
Each copy reads the same stored form pages of each workspace (one `PageReader` per process, as a
worker does) in a subprocess of its own; compared per page: every FieldReading (name, value,
suggestion, source, box, detail exactly; confidence within 1e-9), each comb's cells file
(`.cells.npz` arrays exactly) and the pixels of every crop written (their bytes may differ: a
PNG's compression level). Crops are written in a temporary folder inside the workspace and
removed; what the two runs found is kept only in a temporary folder removed on exit. Exit 1 on
any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF_TOL = 1e-9


def _dump(workspace: Path, n: int, out: Path) -> None:
    """(In the child) read the pages and pickle what was read to `out`."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(Path.cwd()))
    from bench.read_speed import _front_pages
    from forms.layout import load_layout
    from ocr import read

    assert Path(read.__file__).resolve().is_relative_to(Path.cwd().resolve()), read.__file__
    cv2.setNumThreads(1)  # as a worker reads
    reader = read.PageReader(load_layout(), threads=1)
    pages = _front_pages(workspace, n)
    got = {}
    with tempfile.TemporaryDirectory(prefix="read-identity-", dir=workspace) as tmp:
        for i, p in enumerate(pages):
            readings = reader.read(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), Path(tmp), f"p{i}")
            files = {}
            for f in sorted((Path(tmp) / f"p{i}").rglob("*")):
                if f.name.endswith(".cells.npz"):
                    with np.load(f) as d:
                        files[f.name] = {k: d[k] for k in d.files}
                elif f.is_file():
                    im = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
                    files[f.name] = (im.shape, hashlib.sha256(im.tobytes()).hexdigest())
            got[str(p.relative_to(workspace))] = (readings, files)
    out.write_bytes(pickle.dumps(got))


def _run(root: Path, workspace: Path, n: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(root))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(workspace), str(n), str(out)],
                   cwd=root, env=env, check=True)
    return pickle.loads(out.read_bytes())


def _same_reading(a, b) -> str:
    for f in ("name", "value", "suggestion", "source", "box", "detail"):
        if getattr(a, f) != getattr(b, f):
            return f"{a.name}.{f}: {getattr(a, f)!r} != {getattr(b, f)!r}"
    if abs(a.confidence - b.confidence) > CONF_TOL:
        return f"{a.name}.confidence: {a.confidence} != {b.confidence}"
    return ""


def _same_files(a: dict, b: dict) -> list[str]:
    import numpy as np

    out = [f"files: {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
    for name in sorted(set(a) & set(b)):
        x, y = a[name], b[name]
        if isinstance(x, dict):
            if set(x) != set(y) or any(x[k].dtype != y[k].dtype or not np.array_equal(x[k], y[k]) for k in x):
                out.append(f"{name}: cells differ")
        elif x != y:
            out.append(f"{name}: pixels differ")
    return out


def compare(base: dict, new: dict) -> list[str]:
    problems = [f"pages: {sorted(set(base) ^ set(new))}"] if set(base) != set(new) else []
    for page in sorted(set(base) & set(new)):
        (ra, fa), (rb, fb) = base[page], new[page]
        if len(ra) != len(rb):
            problems.append(f"{page}: {len(ra)} readings != {len(rb)}")
            continue
        problems += [f"{page}: {d}" for a, b in zip(ra, rb, strict=True) if (d := _same_reading(a, b))]
        problems += [f"{page}: {d}" for d in _same_files(fa, fb)]
    return problems


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _dump(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("workspaces", type=Path, nargs="+")
    ap.add_argument("--pages", type=int, default=40)
    args = ap.parse_args()
    failed = False
    with tempfile.TemporaryDirectory(prefix="read-identity-") as tmp:
        for ws in args.workspaces:
            base = _run(args.base.resolve(), ws.resolve(), args.pages, Path(tmp) / "base.pkl")
            new = _run(ROOT, ws.resolve(), args.pages, Path(tmp) / "new.pkl")
            problems = compare(base, new)
            n_read = sum(len(r) for r, _ in base.values())
            n_files = sum(len(f) for _, f in base.values())
            print(f"{ws}: {len(base)} pages, {n_read} readings, {n_files} files: "
                  f"{'identical' if not problems else f'{len(problems)} differences'}")
            for p in problems[:20]:
                print("  ", p)
            failed |= bool(problems) or not base
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
