"""The digit writer pools the simulator writes with and every measurement names: the MNIST 5k
sample and the whole 60k training set, their held-out splits, scikit-learn's writers, synthetic
handwritten 'X', and the reader's train / validation split (`make_split`). Runtime code (the
simulator) uses them; the trainers (`training/`) import them from here.

Everything random takes a `numpy.random.Generator`; the same generator state gives the same output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ocr.digits import CLASSES, frame_glyph

DATA_ENV = "FORMSTATION_DIGITS_DATA"
DATA60_ENV = "FORMSTATION_DIGITS_DATA60"
HELDOUT_PER_CLASS = 100


@dataclass(frozen=True)
class DigitData:
    """Images (n, 28, 28) uint8 ink-high and integer labels (n,) in file order."""

    images: np.ndarray
    labels: np.ndarray


def data_path() -> Path:
    """`$FORMSTATION_DIGITS_DATA`, else `<repo>/../shared/data/mnist_train_5k.npz`."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent
    return repo.parent / "shared" / "data" / "mnist_train_5k.npz"


def load_mnist(path: str | Path | None = None) -> DigitData:
    """Load the MNIST sample (keys `images`, `labels`) from `path` or `data_path()`."""
    with np.load(path or data_path()) as d:
        return DigitData(d["images"].astype(np.uint8), d["labels"].astype(np.int64))


def mnist60_path() -> Path:
    """`$FORMSTATION_DIGITS_DATA60`, else `<repo>/../shared/data/mnist_train_60k.npz`."""
    env = os.environ.get(DATA60_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist_train_60k.npz"


@dataclass(frozen=True)
class Split60:
    """Indices into the 60k MNIST training set: `train` (the reader learns from these), `val`
    (calibration: never trained on), `heldout` (measurement only: the 60k block from
    BLOCK_HELDOUT on, plus the 5k sample's held-out digits, which the simulator's `heldout`
    writers draw from). The 5k sample's digits keep the side they had in the 5k split."""

    data: DigitData
    train: np.ndarray
    val: np.ndarray
    heldout: np.ndarray
    block: np.ndarray  # the BLOCK_HELDOUT indices alone (clean-digit top-1 target)


BLOCK_VAL = (50000, 54000)  # 60k indices used for calibration only
BLOCK_HELDOUT = (54000, 60000)  # 60k indices never trained or calibrated on


def split60(val_per_class_5k: int = 40) -> Split60:
    """The one split of the 60k set (see `Split60`); deterministic, by index block."""
    import hashlib

    big = load_mnist(mnist60_path())
    small = load_mnist()
    where = {hashlib.md5(im.tobytes()).digest(): i for i, im in enumerate(big.images)}
    pos = np.array([where[hashlib.md5(im.tobytes()).digest()] for im in small.images])
    ho5 = heldout_mask(small.labels)
    usable = np.flatnonzero(~ho5)
    val5 = np.zeros(small.labels.shape[0], dtype=bool)
    for c in range(10):
        val5[usable[np.flatnonzero(small.labels[usable] == c)[-val_per_class_5k:]]] = True
    side = np.zeros(big.labels.shape[0], np.int8)  # 0 train, 1 val, 2 held out
    side[BLOCK_VAL[0]:BLOCK_VAL[1]] = 1
    side[BLOCK_HELDOUT[0]:BLOCK_HELDOUT[1]] = 2
    side[pos[val5]] = 1
    side[pos[ho5]] = 2
    return Split60(big, np.flatnonzero(side == 0), np.flatnonzero(side == 1), np.flatnonzero(side == 2),
                   np.arange(*BLOCK_HELDOUT))


def heldout_mask(labels: np.ndarray) -> np.ndarray:
    """Boolean mask, True for the LAST 100 samples of each class in file order. Training never
    uses these; the scan simulator and the benchmarks draw handwriting only from them."""
    labels = np.asarray(labels)
    mask = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        mask[np.flatnonzero(labels == c)[-HELDOUT_PER_CLASS:]] = True
    return mask


# ---------------------------------------------------------------------------------------------
# Synthetic 'X'
# ---------------------------------------------------------------------------------------------


def other_writers() -> DigitData:
    """scikit-learn's bundled `load_digits` (UCI, 43 writers none of MNIST's): 8x8, 0..16,
    upscaled to 32x32 and MNIST-framed to 28x28 (ink high). For measuring how the reader and its
    confidence carry over to handwriting it never saw anything like."""
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = [cv2.resize((im * 16).clip(0, 255).astype(np.float32), (32, 32), interpolation=cv2.INTER_CUBIC)
            for im in d.images]
    return DigitData(np.stack([frame_glyph(np.clip(im, 0, 255)) for im in imgs]).astype(np.uint8),
                     d.target.astype(np.int64))


HERSHEY_FACES = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
                 cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
PRINT_PER_CLASS = 100


def print_writers(seed: int = 0, per_class: int = PRINT_PER_CLASS) -> DigitData:
    """Parents who print their digits like type: OpenCV's built-in Hershey faces (sans, serif and
    script, upright or italic) and the AR PL UKai brush face the form's Chinese handwriting uses,
    each glyph with its own stroke weight, slant, turn and aspect, MNIST-framed to 28x28 (ink
    high). Writers unlike any the reader learned from, in another way than `other_writers`
    (serif 1s and 7s, closed 4s, flat-topped 3s): for measuring only, never for training."""
    from PIL import Image, ImageDraw

    from simulate.ink import _font

    rng = np.random.default_rng([seed, 4117])
    imgs, labels = [], []
    faces = len(HERSHEY_FACES) + 1  # + UKai
    for d in range(10):
        for k in range(per_class):
            face = k % faces
            canvas = np.zeros((160, 160), np.uint8)
            if face < len(HERSHEY_FACES):
                italic = cv2.FONT_ITALIC if rng.random() < 0.5 else 0
                cv2.putText(canvas, str(d), (40, 125), HERSHEY_FACES[face] | italic, 3.5, 255,
                            int(rng.integers(3, 11)), cv2.LINE_AA)
            else:
                im = Image.fromarray(canvas)
                ImageDraw.Draw(im).text((40, 10), str(d), fill=255, font=_font(120))
                canvas = np.asarray(im).copy()
                w = int(rng.integers(0, 4))
                if w:
                    canvas = cv2.dilate(canvas, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (w, w)))
            rot, shear = np.deg2rad(rng.normal(0, 6)), rng.normal(0, 0.12)
            a = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ np.array(
                [[rng.uniform(0.8, 1.2), -shear], [0, 1.0]])
            c = np.array([80.0, 80.0])
            m = np.hstack([a, (c - a @ c)[:, None]]).astype(np.float32)
            canvas = cv2.warpAffine(cv2.GaussianBlur(canvas, (0, 0), 1.2), m, (160, 160), flags=cv2.INTER_LINEAR)
            framed = frame_glyph(canvas)
            if framed is not None:
                imgs.append(framed)
                labels.append(d)
    return DigitData(np.stack(imgs).astype(np.uint8), np.array(labels, np.int64))


def _stroke(rng: np.random.Generator, p0: np.ndarray, p1: np.ndarray, size: float) -> np.ndarray:
    """Points of a curved pen stroke from p0 to p1 (quadratic Bezier with a random bow + wobble)."""
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    ctrl = (p0 + p1) / 2 + normal * rng.normal(0, 0.12) * size + rng.normal(0, 0.03, 2) * size
    t = np.linspace(0, 1, 24)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1
    pts += rng.normal(0, 0.006 * size, pts.shape)
    if rng.random() < 0.25:  # pen hook at the start
        hook = p0 + rng.normal(0, 0.06, 2) * size
        pts = np.vstack([hook, pts])
    return pts


def _x_strokes(rng: np.random.Generator, size: float) -> list[np.ndarray]:
    """Two crossing strokes (plus occasional serifs) on a size x size canvas."""
    aspect = rng.uniform(0.6, 1.15)
    h = size * rng.uniform(0.7, 0.85)
    w = h * aspect
    cx, cy = size / 2, size / 2
    slant = rng.normal(0.0, 0.15)

    def pt(fx: float, fy: float) -> np.ndarray:
        y = cy + fy * h / 2
        x = cx + fx * w / 2 - slant * (y - cy)
        return np.array([x, y]) + rng.normal(0, 0.07 * h, 2)

    a0, a1, b0, b1 = pt(-1, -1), pt(1, 1), pt(1, -1), pt(-1, 1)
    strokes = [_stroke(rng, a0, a1, h), _stroke(rng, b0, b1, h)]
    if rng.random() < 0.2:  # printed-style serifs on the ends
        s = 0.18 * w
        strokes += [np.array([p - [s, 0], p + [s, 0]]) for p in (a0, a1, b0, b1)]
    return strokes


def synth_x(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 28, 28) uint8 ink-high handwritten 'X'/'x' in MNIST framing (20x20 box, centre of mass)."""
    size, shift = 112.0, 4
    out = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        canvas = np.zeros((int(size), int(size)), np.uint8)
        width = int(rng.integers(5, 13))
        for pts in _x_strokes(rng, size):
            fixed = np.round(pts * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [fixed], False, 255, width, cv2.LINE_AA, shift)
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(1.0, 2.5))
        framed = frame_glyph(canvas)
        out[i] = framed if framed is not None else 0
    return out


# ---------------------------------------------------------------------------------------------
# Augmentation: glyph distortion, then rendering into a simulated comb cell
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------- the reader's own writers

VAL_PER_CLASS = 40
X_TRAIN, X_VAL = 400, 40
X_TRAIN_FULL = 5000  # synthesised X beside the 60k digits (about one class's share)
X_LABEL = CLASSES.index("X")


@dataclass(frozen=True)
class Split:
    """Raw (unaugmented) 28x28 training and validation glyphs with integer labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray


def make_split(seed: int, full: bool = True) -> Split:
    """Training and validation glyphs plus synthesised X. `full` (the v2 reader): the 60k MNIST
    training set split by `digitdata.split60` (the held-out blocks never appear); else the 5k
    sample's non-held-out digits (last VAL_PER_CLASS per class -> validation), as the v1 reader."""
    if full:
        s60 = split60(VAL_PER_CLASS)
        data, tr, va = s60.data, s60.train, s60.val
        n_x = X_TRAIN_FULL
    else:
        data = load_mnist()
        usable = np.flatnonzero(~heldout_mask(data.labels))
        val = np.zeros(usable.size, dtype=bool)
        for c in range(10):
            val[np.flatnonzero(data.labels[usable] == c)[-VAL_PER_CLASS:]] = True
        tr, va = usable[~val], usable[val]
        n_x = X_TRAIN
    xs = synth_x(np.random.default_rng([seed, 11]), n_x + X_VAL)
    return Split(
        np.concatenate([data.images[tr], xs[:n_x]]),
        np.concatenate([data.labels[tr], np.full(n_x, X_LABEL)]),
        np.concatenate([data.images[va], xs[n_x:]]),
        np.concatenate([data.labels[va], np.full(X_VAL, X_LABEL)]),
    )
