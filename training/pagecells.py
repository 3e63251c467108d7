"""Page-style cells for training the digit reader: `python -m training.pagecells SIM WORKSPACE --out cells.npz`.

A simulated campaign written by the reader's own training (or validation) writers
(`bench/campaign.py --writers train|val`) gives comb cells as the station really sees them:
written with a ballpoint over printed boxes, overrunning them, beside neighbours, scanned at
200/300 dpi with noise, blur and JPEG, aligned and cut by the runtime. This tool cuts every written
comb cell the station read and labels it with the simulator's truth: the cells the reader kept
beside each comb's crop at ingest (`ocr.labels`, exactly what it classified, a drop-out comb on a
colour scan taken from the channel that drops it), or, for a workspace without them, the cells cut
again from the stored aligned grey page by the runtime `comb_cells`. A cell struck out and
rewritten above is skipped (its box does not hold the truth's digit), and so is a box with a
glyph written above it. Cells of a campaign written by the held-out writers can be cut for
measuring (`bench/digits_accuracy.py --page-cells`); the training scripts refuse them.

Output npz: `x` (n, 28, 28) uint8 cells, `y` (n,) class indices over `ocr.digits.CLASSES`, `touching`
(n,) bool (the simulator drew the digit over its box lines), `writers` (the simulation's pool).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from forms.layout import load_layout
from formstation.store import Store
from ocr import labels
from ocr.digits import CLASSES
from ocr.read import comb_cells

COMB_FIELDS = ("corrected_id", "phone", "guardian_id", "guardian_phone")


def _writers(sim: Path) -> str:
    meta = sim / "simulation.json"
    if not meta.is_file():
        raise SystemExit(f"{meta}: missing (simulate with `formstation simulate --writers train|val`)")
    return str(json.loads(meta.read_text(encoding="utf-8")).get("writers", "heldout"))


def cut_cells(sim: Path, workspace: Path) -> dict[str, np.ndarray]:
    """Labelled page cells of every identified form page of `workspace` (see module doc)."""
    writers = _writers(sim)
    truth = {r["form_id"]: r for r in map(json.loads, (sim / "truth.jsonl").open(encoding="utf-8"))}
    layout = load_layout()
    zones = [layout.zone(n) for n in COMB_FIELDS]
    store = Store.open(workspace)
    with store.engine.connect() as con:
        pages = con.exec_driver_sql(
            "SELECT form_id, image_path FROM pages WHERE kind = 'form' AND form_id IS NOT NULL "
            "ORDER BY page_id").fetchall()
        crops = {(f, n): c for f, n, c in con.exec_driver_sql(
            "SELECT form_id, name, crop_path FROM fields WHERE source = 'read' AND crop_path IS NOT NULL")}
    xs, ys, touch = [], [], []
    seen: set[str] = set()
    for form_id, rel in pages:
        t = truth.get(form_id)
        if t is None or form_id in seen or not rel:
            continue
        seen.add(form_id)
        page = None
        for z in zones:
            value = t["fields"].get(z.name) or ""
            crossed = (t["marks"].get("crossed_out") or {}).get(z.name) or {}
            touching = set((t["marks"].get("touching") or {}).get(z.name) or ())
            cells = _stored_cells(workspace, crops.get((form_id, z.name)))
            if cells is None:
                if page is None:
                    page = cv2.imread(str(workspace / rel), cv2.IMREAD_GRAYSCALE)
                    if page is None:
                        break
                cells = comb_cells(page, z, layout.comb_ink)
            for i, ch in enumerate(value[: len(cells)]):
                if cells[i] is None or crossed.get("cell") == i or ch not in CLASSES:
                    continue
                xs.append(cells[i])
                ys.append(CLASSES.index(ch))
                touch.append(i in touching)
    if not xs:
        raise SystemExit(f"{workspace}: no written comb cells found")
    return {"x": np.stack(xs), "y": np.array(ys, np.int64), "touching": np.array(touch, bool),
            "writers": np.array(writers)}


def _stored_cells(workspace: Path, crop: str | None) -> list[np.ndarray | None] | None:
    """The cells the reader kept for a comb's crop (None for a box it found empty or that has a
    glyph above it; None in all when there is no readable file)."""
    got = labels.load_cells(workspace / labels.cells_rel(crop)) if crop else None
    if got is None:
        return None
    cells, kinds = got
    return [cells[i] if k == labels.OWN else None for i, k in enumerate(kinds)]


def load_page_cells(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Cells and labels of `training.pagecells` files, concatenated. Cells of the held-out writers
    (kept for measuring) are refused."""
    xs, ys = [np.zeros((0, 28, 28), np.uint8)], [np.zeros(0, np.int64)]
    for p in paths:
        with np.load(p) as d:
            if str(d["writers"]) in ("heldout", "calib", "other", "print"):
                raise SystemExit(f"{p}: cells of the {d['writers']} writers are for measuring and calibrating, "
                                 "never for training")
            xs.append(d["x"])
            ys.append(d["y"].astype(np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sim", type=Path, help="the simulation folder (truth.jsonl, simulation.json)")
    ap.add_argument("workspace", type=Path, help="the station workspace the scans were ingested into")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    data = cut_cells(args.sim, args.workspace)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    counts = np.bincount(data["y"], minlength=len(CLASSES))
    print(f"{len(data['y'])} cells of {data['writers']} writers ({int(data['touching'].sum())} touching) -> {args.out}; per class "
          + " ".join(f"{c}:{n}" for c, n in zip(CLASSES, counts, strict=True)), file=sys.stderr)


if __name__ == "__main__":
    main()
