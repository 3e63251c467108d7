"""Handwriting styles MNIST's writers rarely used, added to its own glyphs for training:
`python -m training.styles --out cells.npz`.

MNIST's digits were written by American census staff and students: their 1 is a bare stroke and
their 7 has no bar. Parents elsewhere print a 1 with a flag at the top and often a foot, and many
cross their 7. The reader learned from MNIST alone reads such a 1 as a 7 (on digits printed like
type, `simulate.digitsets.print_writers`, page cells of 1 are 83 % right, nearly every error a 7).
This tool takes the training writers' 1s and 7s (`simulate.digitsets.make_split`: never the
held-out or calibration digits), draws the missing strokes on them in the glyph's own stroke
width (`styled`), and writes them through the training augmentation (`digitdata.augment`: a
simulated comb cell read back by the runtime) as a page-cells file `training.train_ensemble
--page-cells` takes (`writers` "train-styles").
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from ocr.digits import CLASSES, frame_glyph

SIZE = 112  # the glyph is redrawn at 4x MNIST's 28 px


def _stroke_width(b: np.ndarray) -> float:
    """Median stroke width of a binary glyph (twice the distance to the background on its ridge)."""
    dist = cv2.distanceTransform(b.astype(np.uint8), cv2.DIST_L2, 3)
    ridge = dist[(dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & (dist > 0)]
    return float(2 * np.median(ridge)) if ridge.size else 6.0


def _line(canvas: np.ndarray, p0, p1, width: float) -> None:
    pts = np.round(np.array([p0, p1]) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(canvas, [pts], False, 255.0, max(1, int(round(width))), cv2.LINE_AA, 4)


def styled(glyph28: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray | None:
    """A 1 with a flag at its top (and, one time in two, a foot), or a 7 with a bar across its
    stem, drawn on the glyph in its own stroke width; None for other digits or a glyph without ink."""
    if label not in (1, 7):
        return None
    g = cv2.resize(glyph28.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    b = g > 0.4 * max(float(g.max()), 1e-6)
    ys, xs = np.nonzero(b)
    if ys.size == 0:
        return None
    width = _stroke_width(b)
    top, bottom = int(ys.min()), int(ys.max())
    height = bottom - top + 1
    row_x = lambda y: float(xs[np.abs(ys - y) <= 2].mean())  # noqa: E731  the stroke's centre at row y
    canvas = np.zeros((SIZE, SIZE), np.float32)
    if label == 1:
        tx = row_x(top + 1)
        length = height * rng.uniform(0.15, 0.33)
        angle = np.deg2rad(rng.uniform(30, 70))  # below the horizontal, toward the left
        _line(canvas, (tx, top + width / 3), (tx - length * np.cos(angle), top + length * np.sin(angle)), width)
        if rng.random() < 0.5:
            bx, half = row_x(bottom - 1), height * rng.uniform(0.15, 0.3)
            _line(canvas, (bx - half, bottom - width / 3), (bx + half, bottom - width / 3), width)
    else:
        y = top + height * rng.uniform(0.45, 0.65)
        cx, half = row_x(y), height * rng.uniform(0.15, 0.28)
        _line(canvas, (cx - half, y), (cx + half, y + rng.normal(0, 0.03) * height), width)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 1.0)
    return frame_glyph(np.maximum(g, canvas * (float(g.max()) / 255.0)))


def build(seed: int, per_class: int, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_class` styled 1s and 7s of the training writers, `copies` augmented cells each."""
    from simulate.digitsets import make_split
    from training.digitdata import augment

    split = make_split(0)
    rng = np.random.default_rng([seed, 1717])
    xs, ys = [], []
    for label in (1, 7):
        idx = np.flatnonzero(split.train_y == label)
        for i in rng.choice(idx, min(per_class, len(idx)), replace=False):
            g = styled(split.train_x[i], label, rng)
            if g is None:
                continue
            for c in range(copies):
                xs.append(augment(g, np.random.default_rng([seed, 1718, int(i), c])))
                ys.append(CLASSES.index(str(label)))
    return np.stack(xs).astype(np.uint8), np.array(ys, np.int64)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=3000, help="styled glyphs of 1 and of 7")
    ap.add_argument("--copies", type=int, default=1, help="augmented cells per styled glyph")
    args = ap.parse_args(argv)
    x, y = build(args.seed, args.per_class, args.copies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, x=x, y=y, touching=np.zeros(len(y), bool), writers="train-styles")
    print(f"{len(y)} styled cells -> {args.out}")


if __name__ == "__main__":
    main()
