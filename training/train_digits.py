"""Train the comb-cell character classifier: `python -m training.train_digits [--out PATH] [--seed N]`.

Data: the non-held-out MNIST samples (see `digitdata.heldout_mask`) plus synthesised 'X', each
augmented several times through a simulated comb cell and the runtime `normalize_cell`. The last
`VAL_PER_CLASS` training samples of each class (file order) form a validation block that is never
trained on and is used to fit the softmax temperature. `--page-cells` / `--page-val` add cells
cut by `training.pagecells` from simulated pages of the training / validation writers (see
`scripts/train_digits.sh`, which rebuilds the shipped model). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ocr.digits import MLP_MODEL, DigitClassifier, features
from simulate.digitsets import (  # noqa: F401  (make_split, Split: the trainers' split, here for them)
    VAL_PER_CLASS,
    X_LABEL,
    X_TRAIN,
    X_TRAIN_FULL,
    X_VAL,
    Split,
    make_split,
)
from training.digitdata import augment_many, expected_calibration_error
from training.pagecells import load_page_cells

COPIES, VAL_COPIES = 8, 3
HIDDEN = (256,)

def augment_parallel(images: np.ndarray, seed: int, tag: int, copies: int, workers: int) -> np.ndarray:
    """`augment_many` split over `workers` processes; same result as one process."""
    bounds = np.linspace(0, len(images), workers * 4 + 1).astype(int)
    jobs = [(images[a:b], seed, tag, copies, int(a)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    if workers <= 1:
        return np.concatenate([augment_many(*j) for j in jobs])
    with ProcessPoolExecutor(workers) as pool:
        return np.concatenate(list(pool.map(augment_many, *zip(*jobs, strict=True))))


def batch_features(cells: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """`features` in chunks (bounded memory)."""
    return np.concatenate([features(cells[i : i + chunk]) for i in range(0, len(cells), chunk)])


def fit_mlp(x: np.ndarray, y: np.ndarray, seed: int, epochs: int) -> dict[str, np.ndarray]:
    """Standardise features and fit a ReLU MLP (sklearn, training only); returns npz params."""
    from sklearn.neural_network import MLPClassifier

    mean = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-3
    clf = MLPClassifier(HIDDEN, alpha=0.1, batch_size=128, learning_rate_init=1e-3, max_iter=epochs,
                        shuffle=True, random_state=seed, tol=0.0, n_iter_no_change=epochs + 1)
    clf.fit((x - mean) / scale, y)
    params = {"mean": mean.astype(np.float32), "scale": scale.astype(np.float32)}
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_, strict=True)):
        params[f"W{i}"], params[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
    return params


def nll(logits: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean negative log-likelihood of labels `y` under softmax(logits / t)."""
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising validation NLL (grid over log T, then a finer grid)."""
    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=lambda t: nll(logits, y, t))
    fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
    return float(min(fine, key=lambda t: nll(logits, y, t)))


def report(name: str, probs: np.ndarray, y: np.ndarray) -> None:
    """Print top-1 / top-3 accuracy and ECE."""
    top3 = np.argsort(-probs, axis=1)[:, :3]
    acc1 = float((probs.argmax(axis=1) == y).mean())
    acc3 = float((top3 == y[:, None]).any(axis=1).mean())
    ece = expected_calibration_error(probs, y)
    print(f"{name:<28} n={len(y):<6} top1={acc1:.4f} top3={acc3:.4f} ECE={ece:.4f}")


def with_page_cells(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, page_cells: list[Path],
                    page_val: list[Path], t0: float) -> tuple[np.ndarray, ...]:
    """(x, y, xv, yv, pvx, pvy): the training and validation cells with the `training.pagecells` files'
    cells added, and the validation page cells alone (reported apart); prints the sizes."""
    px, py = load_page_cells(list(page_cells))
    pvx, pvy = load_page_cells(list(page_val))
    x, y = np.concatenate([x, px]), np.concatenate([y, py])
    xv, yv = np.concatenate([xv, pvx]), np.concatenate([yv, pvy])
    print(f"augmented {len(x)} train ({len(px)} page cells) / {len(xv)} val ({len(pvx)} page cells) "
          f"cells in {time.time() - t0:.0f}s")
    return x, y, xv, yv, pvx, pvy


def report_and_save(out: Path, params: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, xv: np.ndarray,
                    yv: np.ndarray, pvx: np.ndarray, pvy: np.ndarray, sample_step: int) -> None:
    """Print the figures of the calibrated model `params` (a training sample, validation before
    and after calibration, validation page cells) and save it to `out`."""
    model = DigitClassifier(params)
    report("train (augmented, sample)", model.predict_proba(x[::sample_step]), y[::sample_step])
    report("validation T=1", DigitClassifier({**params, "temperature": np.float32(1.0)}).predict_proba(xv), yv)
    report("validation calibrated", model.predict_proba(xv), yv)
    if len(pvx):
        report("validation page cells", model.predict_proba(pvx), pvy)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **params)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


def page_cell_args(ap: argparse.ArgumentParser) -> None:
    """The --page-cells / --page-val options both training scripts take."""
    ap.add_argument("--page-cells", type=Path, nargs="*", default=[],
                    help="training.pagecells files (training writers) added to the training cells")
    ap.add_argument("--page-val", type=Path, nargs="*", default=[],
                    help="training.pagecells files (validation writers) added to the validation cells")


def train(out: Path, seed: int, workers: int, epochs: int, page_cells: list[Path] = (),
          page_val: list[Path] = ()) -> None:
    """Build the augmented sets (plus `training.pagecells` page cells), fit, calibrate, save the npz
    model and print figures."""
    t0 = time.time()
    split = make_split(seed)
    tr = augment_parallel(split.train_x, seed, 1, COPIES, workers)
    va = augment_parallel(split.val_x, seed, 2, VAL_COPIES, workers)
    x = np.concatenate([tr, split.train_x])
    y = np.concatenate([np.repeat(split.train_y, COPIES), split.train_y])
    yv = np.repeat(split.val_y, VAL_COPIES)
    x, y, va, yv, pvx, pvy = with_page_cells(x, y, va, yv, page_cells, page_val, t0)
    params = fit_mlp(batch_features(x), y, seed, epochs)
    params["temperature"] = np.float32(1.0)
    model = DigitClassifier(params)
    logits = model.logits(va).astype(np.float64)
    params["temperature"] = np.float32(fit_temperature(logits, yv))
    print(f"trained in {time.time() - t0:.0f}s; temperature {float(params['temperature']):.3f}")
    report_and_save(out, params, x, y, va, yv, pvx, pvy, 10)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=MLP_MODEL)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--epochs", type=int, default=20)
    page_cell_args(ap)
    args = ap.parse_args(argv)
    train(args.out, args.seed, args.workers, args.epochs, args.page_cells, args.page_val)


if __name__ == "__main__":
    main()
