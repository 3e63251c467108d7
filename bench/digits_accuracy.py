"""Accuracy, calibration, empty-cell detection and latency of the comb-cell character reader.

    python bench/digits_accuracy.py [--model station|cnn|mlp|PATH] [--seed N] [--page-cells NPZ]

The default model is the one the station reads with (`default_classifier`: CNN and feature MLP
averaged); `cnn` / `mlp` measure one member, an .onnx path another v2 reader. Sets: (a) the MNIST held-out block as is, (b)
scikit-learn's bundled `load_digits` (other writers, 8x8 upscaled and MNIST-framed), (c) the
held-out digits written into printed comb strips at 300 and 200 dpi with grey or black lines and
read through `normalize_cell`, (d) empty vs filled cells, (e) synthesised 'X' (a seed training
never uses), (f) milliseconds per cell, (g) with --page-cells, cells cut from a simulated
campaign's aligned pages by `training.pagecells` (held-out writers: `bench/campaign.py` then
`python -m training.pagecells SIM WS --out F`), (h) the held-out digits written alone with the
simulator's ballpoint (what the pen costs without boxes or neighbours). (b) also reads the digits
printed like type (`simulate.digitsets.print_writers`), writers unlike the training of another kind.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from forms.layout import mm_to_px  # noqa: E402
from ocr.digits import (  # noqa: E402
    CLASSES,
    CNN_MODEL,
    MLP_MODEL,
    DigitClassifier,
    OnnxReader,
    default_classifier,
    normalize_cell,
    read_cells,
)
from simulate.digitsets import print_writers  # noqa: E402
from simulate.ink import digit_alpha  # noqa: E402
from training.digitdata import (  # noqa: E402
    comb_cell,
    expected_calibration_error,
    heldout_mask,
    load_mnist,
    other_writers,
    split60,
    synth_x,
)

X_LABEL = CLASSES.index("X")
STYLES = ((300.0, 0), (300.0, 150), (200.0, 0), (200.0, 150))  # (dpi, line grey)


def figures(name: str, probs: np.ndarray, y: np.ndarray, lost: int = 0) -> None:
    """Print top-1/top-3 accuracy and ECE; `lost` cells (wrongly read as empty) count as misses."""
    n = len(y) + lost
    top3 = np.argsort(-probs, axis=1)[:, :3]
    acc1 = (probs.argmax(axis=1) == y).sum() / n
    acc3 = (top3 == y[:, None]).any(axis=1).sum() / n
    ece = expected_calibration_error(probs, y) if len(y) else float("nan")
    print(f"{name:<34} n={n:<5} top1={acc1:.4f} top3={acc3:.4f} ECE={ece:.4f} lost={lost}")


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """load_digits (8x8, 0..16) upscaled to 32x32 and MNIST-framed to 28x28 (training.digitdata.other_writers)."""
    d = other_writers()
    return d.images, d.labels


def cell_set(glyphs: np.ndarray, rng: np.random.Generator, pool: np.ndarray) -> dict[tuple, list]:
    """Comb-cell crops of each glyph per style; neighbours are random glyphs from `pool`."""
    out: dict[tuple, list] = {}
    for style in STYLES:
        crops = []
        for g in glyphs:
            left, right = (pool[int(rng.integers(len(pool)))] if rng.random() < 0.8 else None for _ in range(2))
            crops.append(comb_cell((left, g, right), rng, style[0], style[1]))
        out[style] = crops
    return out


def pen_cells(glyphs: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Each glyph written alone with a ballpoint, as the simulator's writers write (`simulate.ink.
    digit_alpha`: redrawn with an even 0.3-0.6 mm nib, slant and aspect jitter), 6.3 mm tall on a
    300 dpi page, cut with a blank margin: what the pen alone costs, without boxes or neighbours."""
    out = []
    for g in glyphs:
        a = digit_alpha(rng, g, mm_to_px(6.3, 300.0), mm_to_px(rng.uniform(0.3, 0.6), 300.0))
        page = np.full((a.shape[0] + 30, a.shape[1] + 30), 245.0, np.float32)
        page[15:15 + a.shape[0], 15:15 + a.shape[1]] -= a * 215.0
        out.append(page.clip(0, 255).astype(np.uint8))
    return out


def pen_figures(model: DigitClassifier, glyphs: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                copies: int = 3) -> None:
    """(h): each held-out glyph written `copies` times with the ballpoint, then where the misreads
    lie: a writer pool of 100 images per class loses its cells on a few images that look like
    another digit (a long-flagged 1, a looped 2), drawn again and again by a campaign."""
    reps = np.repeat(np.arange(len(glyphs)), copies)
    norm = [normalize_cell(c) for c in pen_cells(glyphs[reps], rng)]
    ok = np.array([n is not None for n in norm])
    p = model.predict_proba(np.stack([n for n in norm if n is not None]))
    figures(f"(h) held-out, ballpoint, alone ({copies} each)", p, y[reps][ok], int((~ok).sum()))
    missed = np.bincount(reps[ok][p.argmax(axis=1) != y[reps][ok]], minlength=len(glyphs))
    missed += np.bincount(reps[~ok], minlength=len(glyphs))
    worst = np.sort(missed)[::-1]
    total = max(int(missed.sum()), 1)
    print(f"{'    where the misreads lie':<34} never misread: {np.mean(missed == 0):.1%} of {len(glyphs)} images; "
          + ", ".join(f"the {k} worst hold {worst[:k].sum() / total:.0%}" for k in (5, 10, 20)))


def read_path(model: DigitClassifier, crops: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """normalize_cell + predict_proba; returns probs and labels of cells read as filled, and the
    number read as empty."""
    norm = [normalize_cell(c) for c in crops]
    ok = np.array([n is not None for n in norm])
    probs = model.predict_proba(np.stack([n for n in norm if n is not None]))
    return probs, y[ok], int((~ok).sum())


def empty_detection(rng: np.random.Generator, pool: np.ndarray, filled: list[np.ndarray]) -> None:
    """Precision / recall of 'empty' on blank cells (noise, specks, neighbours) vs filled ones."""
    blanks = []
    for style in STYLES:
        for _ in range(150):
            nb = tuple(pool[int(rng.integers(len(pool)))] for _ in range(2))
            blanks.append(comb_cell((nb[0], None, nb[1]), rng, style[0], style[1]))
    said_empty_blank = sum(normalize_cell(c) is None for c in blanks)
    said_empty_filled = sum(normalize_cell(c) is None for c in filled)
    precision = said_empty_blank / max(said_empty_blank + said_empty_filled, 1)
    recall = said_empty_blank / len(blanks)
    print(f"{'empty detection':<34} blanks={len(blanks)} filled={len(filled)} "
          f"precision={precision:.4f} recall={recall:.4f} false-empty={said_empty_filled}")


def timing(model: DigitClassifier, crops: list[np.ndarray]) -> None:
    """Milliseconds per cell for a 58-cell page: full read_cells and the classifier alone."""
    page = crops[:58]
    read_cells(page, model)
    t = time.perf_counter()
    for _ in range(5):
        read_cells(page, model)
    full = (time.perf_counter() - t) / (5 * len(page)) * 1e3
    norm = np.stack([n for n in (normalize_cell(c) for c in page) if n is not None])
    t = time.perf_counter()
    for _ in range(20):
        model.predict_proba(norm)
    clf = (time.perf_counter() - t) / (20 * len(norm)) * 1e3
    print(f"{'latency':<34} read_cells={full:.3f} ms/cell  predict_proba={clf:.3f} ms/cell (58-cell batch)")


def main(argv: list[str] | None = None) -> None:
    """Run every figure and print it."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="station", help="station (default: the v2 ensemble), cnn, mlp (the v1 "
                    "members) or an npz path")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--page-cells", type=Path, nargs="*", default=[], help="training.pagecells files to read too")
    args = ap.parse_args(argv)
    named = {"cnn": CNN_MODEL, "mlp": MLP_MODEL}
    if args.model == "station":
        model = default_classifier()
    elif args.model.endswith(".onnx"):
        model = OnnxReader(args.model)
    else:
        model = DigitClassifier.load(named.get(args.model, args.model))
    rng = np.random.default_rng(args.seed)
    data = load_mnist()
    ho = heldout_mask(data.labels)
    hx, hy = data.images[ho], data.labels[ho]
    print(f"model {args.model}" + (f", temperature {model.temperature:.3f}" if hasattr(model, "temperature") else ""))
    figures("(a) MNIST held-out (clean)", model.predict_proba(hx), hy)
    s60 = split60()
    bx, by = s60.data.images[s60.block], s60.data.labels[s60.block]
    figures("(a) MNIST 60k held-out block (clean)", model.predict_proba(bx), by)
    sx, sy = sklearn_digits()
    figures("(b) sklearn load_digits", model.predict_proba(sx), sy)
    pw = print_writers()
    figures("(b) digits printed like type (clean)", model.predict_proba(pw.images), pw.labels)
    pen_figures(model, hx, hy, np.random.default_rng([args.seed, 5]))
    cells = cell_set(hx, rng, hx)
    all_p, all_y, all_lost = [], [], 0
    for style, crops in cells.items():
        p, y, lost = read_path(model, crops, hy)
        figures(f"(c) comb cell {style[0]:.0f}dpi line={style[1]}", p, y, lost)
        all_p.append(p), all_y.append(y)
        all_lost += lost
    figures("(c) comb cell, all styles", np.concatenate(all_p), np.concatenate(all_y), all_lost)
    empty_detection(rng, hx, [c for crops in cells.values() for c in crops])
    xs = synth_x(np.random.default_rng([args.seed, 77]), 400)
    figures("(e) synthetic X (clean)", model.predict_proba(xs), np.full(len(xs), X_LABEL))
    xcells = cell_set(xs[:100], rng, hx)
    xp = [read_path(model, crops, np.full(100, X_LABEL)) for crops in xcells.values()]
    figures("(e) synthetic X in comb cells", np.concatenate([p[0] for p in xp]),
            np.concatenate([p[1] for p in xp]), sum(p[2] for p in xp))
    timing(model, cells[STYLES[0]])
    for path in args.page_cells:
        with np.load(path) as d:
            x, y, touching, writers = d["x"], d["y"], d["touching"], str(d["writers"])
        p = model.predict_proba(x)
        figures(f"(g) page cells, {writers} writers", p, y)
        if touching.any():
            figures("(g) page cells over box lines", p[touching], y[touching])
        risk_of_cells(p, y)


def risk_of_cells(p: np.ndarray, y: np.ndarray) -> None:
    """Cell-level selective prediction: the share of cells read at least t sure and the share of
    those read wrong."""
    conf, hit = p.max(axis=1), p.argmax(axis=1) == y
    for t in (0.9, 0.99, 0.999, 0.9999):
        sel = conf >= t
        print(f"{'    cells read >= ' + str(t):<34} coverage={sel.mean():.4f} wrong={(~hit[sel]).mean():.5f}")
    # how right the surest cells are: a phone (11 boxes, no check digit) accepted at 0.986 needs its
    # boxes at about 0.9987 on average, and is wrong about as often as the sum of its boxes' misses
    for lo, hi in ((0.995, 0.998), (0.998, 0.999), (0.999, 0.9995), (0.9995, 1.01)):
        sel = (conf >= lo) & (conf < hi)
        if sel.any():
            print(f"{'    cells read in [' + str(lo) + ', ' + str(min(hi, 1.0)) + ')':<34} share={sel.mean():.4f} "
                  f"mean confidence={conf[sel].mean():.5f} right={hit[sel].mean():.5f} ({int((~hit[sel]).sum())} wrong)")


if __name__ == "__main__":
    main()
