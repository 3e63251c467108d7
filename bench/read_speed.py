"""Bench: the reading stage's CPU time per page, split by what it spends it on.

    .venv/bin/python bench/read_speed.py WORKSPACE [--pages 40]

WORKSPACE is a station workspace that has ingested pages (e.g. `bench/campaign.py`'s
`bench-out/campaign/run-ws`): its stored aligned front pages are read again by one `PageReader`
made once (as a worker does), on one thread. Figures are CPU time of this process
(`time.process_time`), so a machine shared with other jobs inflates them less than wall time;
they are still higher than on an idle machine. One OpenCV and BLAS thread, as in a worker
(more would count their spinning). Parts: comb cells cut and normalised, the digit
reader (onnxruntime), the constraint decoder (ID check digit beam, phones), and the rest (crops
written, checkboxes, signatures, photo, printed text and ID-copy OCR).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from forms.layout import DEFAULT_LAYOUT, load_layout  # noqa: E402
from ocr import read  # noqa: E402

SPENT: dict[str, float] = defaultdict(float)


def _timed(name: str, fn):
    def wrapper(*a, **kw):
        t = time.process_time()
        try:
            return fn(*a, **kw)
        finally:
            SPENT[name] += time.process_time() - t
    return wrapper


def _front_pages(ws: Path, n: int) -> list[Path]:
    """The stored images of identified form pages of the default layout (the one read here)."""
    db = ws / "station.db"
    if not db.is_file():
        raise SystemExit(f"{ws}: no station.db (give a workspace that has ingested a batch)")
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT image_path FROM pages WHERE kind = 'form' AND image_path IS NOT NULL "
                           "AND (layout_key IS NULL OR layout_key = ?) ORDER BY page_id LIMIT ?",
                           (DEFAULT_LAYOUT, n)).fetchall()
    return [ws / r[0] for r in rows if (ws / r[0]).is_file()]


def _read_all(reader, pages: list[Path], out: Path) -> list[float]:
    """CPU seconds of each page's reading after three warm-up pages (models and caches loaded)."""
    reader.ocr.line(cv2.imread(str(pages[0]), cv2.IMREAD_GRAYSCALE)[:200, :600])  # engines loaded
    for p in pages[:3]:
        reader.read(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), out, "warm")
    SPENT.clear()
    per_page = []
    for i, p in enumerate(pages[3:]):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        t = time.process_time()
        reader.read(img, out, f"p{i}")
        per_page.append(time.process_time() - t)
    return per_page


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--pages", type=int, default=40)
    args = ap.parse_args()
    pages = _front_pages(args.workspace, args.pages + 3)
    if len(pages) < 4:
        raise SystemExit(f"{args.workspace}: fewer than 4 stored pages to read")
    cv2.setNumThreads(1)  # as a worker reads (ocr.worker.init_worker): one thread, the pool is the parallelism
    threadpool_limits(1)
    read.normalize_strip = _timed("comb cells cut and normalised", read.normalize_strip)
    read.classify_cells = _timed("digit reader", read.classify_cells)
    read.decode.decode_comb = _timed("constraint decoder", read.decode.decode_comb)
    reader = read.PageReader(load_layout(), threads=1)
    # the crops the reader writes are children's data: inside the workspace, removed afterwards
    with tempfile.TemporaryDirectory(prefix="read-speed-", dir=args.workspace) as tmp:
        per_page = _read_all(reader, pages, Path(tmp))
    n = len(per_page)
    total = sum(per_page)
    print(f"pages read: {n} from {args.workspace}")
    print(f"read CPU ms per page: mean {total / n * 1000:.1f}, median {statistics.median(per_page) * 1000:.1f}, "
          f"max {max(per_page) * 1000:.1f}")
    for name, s in SPENT.items():
        print(f"  {name}: {s / n * 1000:.1f} ms/page")
    print(f"  the rest (crops, checkboxes, signatures, photo, OCR): {(total - sum(SPENT.values())) / n * 1000:.1f} ms/page")


if __name__ == "__main__":
    main()
