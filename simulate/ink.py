"""Pen ink: handwritten digits, 'X', CJK handwriting, signatures, ticks, strike-outs, stray marks.

Pure functions on numpy images. Every glyph is returned as an ink alpha map (float32, 0..1,
ink-high) that `blend` lays onto a page; all randomness comes from a passed numpy Generator.
Digits come only from the held-out part of the MNIST sample (`training.digitdata.heldout_mask`): the
digit classifier never trained on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage.morphology import skeletonize

from forms.layout import Box
from ocr.digits import labels_mask
from simulate import WRITERS

UKAI = "/usr/share/fonts/truetype/arphic/ukai.ttc"
SHIFT = 4  # cv2 sub-pixel bits for anti-aliased strokes
# a glyph's ink wider than this many half-strokes (median, on its skeleton) over at least BLOB_AREA
# times the area of that width's disk is a filled area, kept by `restroke` (a crossing of two
# strokes is at most 2.83 half-strokes wide; one where MNIST's strokes were thick is about one disk)
BLOB_WIDTH = 3.2
BLOB_AREA = 1.6
PENS = {"black": (35, 30, 30), "blue": (120, 45, 25), "blue_black": (70, 40, 35)}  # BGR


def px_per_mm(dpi: float) -> float:
    """Pixels per millimetre, taken from the layout's one mm -> px transform (`Box.to_px`)."""
    return Box(0, 0, 1000, 1000).to_px(dpi)[2] / 1000.0


# ---------------------------------------------------------------- glyph banks


@dataclass(frozen=True)
class DigitBank:
    """Held-out MNIST digits by class plus synthetic 'X' (all 28x28 uint8, ink-high)."""

    by_char: dict[str, np.ndarray]

    def pick(self, rng: np.random.Generator, ch: str) -> np.ndarray:
        imgs = self.by_char[ch]
        return imgs[int(rng.integers(len(imgs)))]

    def group(self, start: int, step: int) -> DigitBank:
        """Of each character, the glyphs from index `start` on, every `step`-th: forms writing with
        disjoint groups share no digit image (`simulate.glyph_group`)."""
        return DigitBank({ch: imgs[start::step] for ch, imgs in self.by_char.items()})


@lru_cache(maxsize=4)
def load_bank(seed: int, writers: str = "heldout") -> DigitBank:
    """Digits of one writer pool by class, and seed-made X's."""
    from simulate.digitsets import heldout_mask, load_mnist, synth_x

    if writers not in WRITERS:
        raise ValueError(f"writers: expected one of {', '.join(WRITERS)}, got {writers!r}")
    if writers == "heldout":
        data = load_mnist()
        keep = heldout_mask(data.labels)
        by_char = {str(d): data.images[keep & (data.labels == d)] for d in range(10)}
        by_char["X"] = synth_x(np.random.default_rng([seed, 77]), 100)
        return DigitBank(by_char)
    if writers == "calib":
        from simulate.digitsets import split60

        s60 = split60()
        x, y = s60.data.images[s60.block], s60.data.labels[s60.block]
        by_char = {str(d): x[y == d] for d in range(10)}
        by_char["X"] = synth_x(np.random.default_rng([seed, 78]), 200)
        return DigitBank(by_char)
    if writers in ("other", "print"):  # writers the reader has never seen the like of
        from simulate.digitsets import other_writers, print_writers

        d = other_writers() if writers == "other" else print_writers()
        by_char = {str(i): d.images[d.labels == i] for i in range(10)}
        by_char["X"] = synth_x(np.random.default_rng([seed, 77]), 100)
        return DigitBank(by_char)
    from simulate.digitsets import make_split

    split = make_split(0)
    x, y = (split.train_x, split.train_y) if writers == "train" else (split.val_x, split.val_y)
    return DigitBank({c: x[y == i] for i, c in enumerate("0123456789X")})


# ---------------------------------------------------------------- blending and strokes


def blend(canvas: np.ndarray, alpha: np.ndarray, x0: int, y0: int, color: tuple[int, int, int]) -> None:
    """Lay ink `alpha` (h, w; 0..1) on `canvas` (gray or BGR uint8) with its top-left at (x0, y0).
    Subtractive like real ink: dark lines under the ink stay dark."""
    h, w = alpha.shape
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(canvas.shape[1], x0 + w), min(canvas.shape[0], y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    a = alpha[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    region = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    if canvas.ndim == 3:
        tint = np.asarray(color, np.float32) / 255.0
        region *= 1.0 - a[..., None] * (1.0 - tint)
    else:
        region *= 1.0 - a * (1.0 - float(np.mean(color)) / 255.0)
    canvas[cy0:cy1, cx0:cx1] = np.clip(region, 0, 255).astype(np.uint8)


def draw_strokes(shape: tuple[int, int], strokes: list[np.ndarray], width: float) -> np.ndarray:
    """Anti-aliased pen strokes (lists of (x, y) points) -> alpha map of `shape`."""
    canvas = np.zeros(shape, np.uint8)
    w = max(1, int(round(width)))
    for pts in strokes:
        fixed = np.round(np.asarray(pts) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [fixed], False, 255, w, cv2.LINE_AA, SHIFT)
    return canvas.astype(np.float32) / 255.0


def _bezier(rng: np.random.Generator, p0, p1, bow: float, n: int = 20) -> np.ndarray:
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    normal = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)
    ctrl = (p0 + p1) / 2 + normal * rng.normal(0, bow) * np.linalg.norm(d)
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


# ---------------------------------------------------------------- digits


def restroke(g: np.ndarray, width_px: float, darkness: float) -> np.ndarray:
    """Redraw a glyph (ink-high, at 2x the target size) with a uniform pen: skeleton, then a
    round nib of `width_px` (target scale), then down to the target size -> alpha 0..1.

    Where the glyph's ink is a filled area, far wider than its strokes and than the nib (a 6, 8
    or 2 written with a loop so small that the pen filled it), the skeleton would keep only a
    thin line through it and the page would show another digit than the truth's ("(" for a 6);
    such areas keep their ink as it is (`BLOB_WIDTH`, `BLOB_AREA`)."""
    b = (g > 0.4 * max(float(g.max()), 1e-6)).astype(np.uint8)
    sk = skeletonize(b > 0).astype(np.uint8) * 255
    d = max(2, int(round(2 * width_px)))
    ink = cv2.dilate(sk, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (d, d)))
    on = cv2.distanceTransform(b, cv2.DIST_L2, 3)[sk > 0]
    if on.size:
        k = int(round(max(BLOB_WIDTH * float(np.median(on)), d))) | 1
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        blob = cv2.morphologyEx(b, cv2.MORPH_OPEN, disk)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(blob, connectivity=8)
        big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= BLOB_AREA * int(disk.sum()))
        big = big[big > 0]
        if big.size:
            ink = np.maximum(ink, labels_mask(labels, n, big).astype(np.uint8) * np.uint8(255))
    ink = cv2.GaussianBlur(ink, (0, 0), 0.9)
    h, w = g.shape
    out = cv2.resize(ink, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    return out.astype(np.float32) / 255.0 * darkness


def wobble(g: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Smooth random displacement (a hand is not a font): at most ~amp px."""
    h, w = g.shape
    coarse = rng.uniform(-1, 1, (2, 4, 4)).astype(np.float32) * amp
    dx = cv2.resize(coarse[0], (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(coarse[1], (w, h), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(g, xx + dx, yy + dy, cv2.INTER_LINEAR, borderValue=0.0)


def digit_alpha(rng: np.random.Generator, glyph28: np.ndarray, height_px: float, width_px: float) -> np.ndarray:
    """One handwritten digit `height_px` tall redrawn with a pen of `width_px`, with slant,
    rotation and aspect jitter."""
    g = cv2.resize(glyph28.astype(np.float32), (112, 112), interpolation=cv2.INTER_CUBIC)
    shear, rot = rng.normal(0.12, 0.15), np.deg2rad(rng.normal(0, 5))
    a = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ np.array(
        [[rng.uniform(0.85, 1.15), -shear], [0, 1.0]])
    c = np.array([56.0, 56.0])
    m = np.hstack([a, (c - a @ c)[:, None]]).astype(np.float32)
    g = cv2.warpAffine(g, m, (112, 112), flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(g > 40)
    if ys.size == 0:
        return np.zeros((1, 1), np.float32)
    g = g[max(0, ys.min() - 4):ys.max() + 5, max(0, xs.min() - 4):xs.max() + 5]
    s = 2 * height_px / g.shape[0]
    g = cv2.resize(g, (max(2, round(g.shape[1] * s)), max(2, round(g.shape[0] * s))), interpolation=cv2.INTER_CUBIC)
    return restroke(g, width_px, rng.uniform(0.85, 1.0))


# ---------------------------------------------------------------- CJK handwriting


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(UKAI, size)


def cjk_alpha(rng: np.random.Generator, text: str, height_px: float, width_px: float,
              spacing: float = 1.0) -> np.ndarray:
    """A line of CJK handwriting: AR PL UKai glyphs redrawn with a uniform pen, each with its own
    size, rotation, slant, wobble, baseline and spacing."""
    size = max(8, int(round(2 * height_px)))  # work at 2x, `restroke` halves
    pad = size // 3
    line = np.zeros((size * 2 + 2 * pad, int(size * (len(text) * 1.3 * spacing + 1.5))), np.float32)
    x = float(pad)
    for ch in text:
        gs = max(8, int(round(size * rng.uniform(0.85, 1.12))))
        im = Image.new("L", (gs * 2, gs * 2), 0)
        ImageDraw.Draw(im).text((gs // 2, gs // 2), ch, fill=255, font=_font(gs))
        m = cv2.getRotationMatrix2D((gs, gs), rng.normal(0, 5), 1.0)
        m[0, 1] -= rng.normal(0.08, 0.06)  # slant to the right
        a = wobble(cv2.warpAffine(np.asarray(im, np.float32), m, (gs * 2, gs * 2)), rng, gs * 0.05)
        y = pad + int(rng.normal(0, size * 0.05)) - gs // 2
        xi = int(x) - gs // 2
        ys, xs = slice(max(0, y), y + 2 * gs), slice(max(0, xi), xi + 2 * gs)
        part = a[max(0, -y):, max(0, -xi):][: line[ys, xs].shape[0], : line[ys, xs].shape[1]]
        line[ys, xs] = np.maximum(line[ys, xs], part)
        x += gs * spacing * rng.uniform(0.95, 1.2)
    return crop_alpha(restroke(line, width_px, rng.uniform(0.85, 1.0)))


def crop_alpha(a: np.ndarray, thr: float = 0.05) -> np.ndarray:
    ys, xs = np.nonzero(a > thr)
    if ys.size == 0:
        return np.zeros((1, 1), np.float32)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


# ---------------------------------------------------------------- signatures, ticks, marks


def scribble_alpha(rng: np.random.Generator, w: int, h: int, stroke: float) -> np.ndarray:
    """A cursive-looking signature: a rightward run of loops with varying height, plus a flourish."""
    n = int(rng.integers(5, 10))
    t = np.linspace(0, 1, n * 24)
    xs = 0.06 * w + t * 0.85 * w + np.sin(t * n * 2 * np.pi) * w * rng.uniform(0.01, 0.03)
    amp = h * rng.uniform(0.15, 0.32) * (1 + 0.4 * np.sin(t * rng.uniform(2, 6) + rng.uniform(0, 6)))
    ys = h * 0.5 + np.cos(t * n * 2 * np.pi) * amp + (t - 0.5) * h * rng.normal(0, 0.15)
    pts = np.stack([xs, ys], 1) + rng.normal(0, stroke * 0.15, (t.size, 2))
    cut = int(rng.integers(t.size // 3, 2 * t.size // 3))
    strokes = [pts[:cut], pts[cut + 6:]]
    if rng.random() < 0.6:  # underline / flourish
        y = h * rng.uniform(0.75, 0.9)
        strokes.append(_bezier(rng, (w * 0.1, y), (w * rng.uniform(0.7, 0.95), y - h * 0.1), 0.08))
    return draw_strokes((h, w), strokes, stroke) * rng.uniform(0.85, 1.0)


def tick_alpha(rng: np.random.Generator, style: str, size: int, stroke: float) -> np.ndarray:
    """A relationship mark in a `size`-px canvas: 'check', 'cross' or 'fill' (a scribbled-in box)."""
    s = float(size)
    j = lambda: rng.normal(0, 0.04 * s)  # noqa: E731
    if style == "check":
        a, b = (0.15 * s + j(), 0.5 * s + j()), (0.4 * s + j(), 0.8 * s + j())
        c = (0.95 * s + j(), 0.05 * s + j())
        strokes = [_bezier(rng, a, b, 0.05), _bezier(rng, b, c, 0.06)]
    elif style == "cross":
        strokes = [_bezier(rng, (0.2 * s + j(), 0.2 * s + j()), (0.8 * s + j(), 0.8 * s + j()), 0.05),
                   _bezier(rng, (0.8 * s + j(), 0.2 * s + j()), (0.2 * s + j(), 0.8 * s + j()), 0.05)]
    else:
        rows = np.linspace(0.22 * s, 0.78 * s, 7)
        zig = [(0.2 * s + (i % 2) * 0.6 * s + j(), y) for i, y in enumerate(rows)]
        strokes = [np.array(zig)]
        stroke *= 2.2
    return draw_strokes((size, size), strokes, stroke) * rng.uniform(0.85, 1.0)


def strike_alpha(rng: np.random.Generator, w: int, h: int, stroke: float) -> np.ndarray:
    """Crossing out: two or three hard diagonal strokes or a zigzag over a w x h cell."""
    if rng.random() < 0.5:
        strokes = [_bezier(rng, (0.05 * w, (0.2 + 0.3 * i) * h), (0.95 * w, (0.4 + 0.3 * i) * h), 0.05)
                   for i in range(int(rng.integers(2, 4)))]
    else:
        ys = np.linspace(0.15 * h, 0.85 * h, 6)
        strokes = [np.array([(0.1 * w + (i % 2) * 0.8 * w, y) for i, y in enumerate(ys)])]
    return draw_strokes((h, w), strokes, stroke)


def stray_alpha(rng: np.random.Generator, size: int, stroke: float) -> np.ndarray:
    """A stray mark: a dot, a short dash, a little tick or a doodle loop."""
    s = float(size)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        pts = [np.array([(s / 2, s / 2), (s / 2 + 1, s / 2 + 1)])]
        stroke *= 2.5
    elif kind == 1:
        pts = [_bezier(rng, (0.1 * s, 0.5 * s), (0.9 * s, 0.45 * s), 0.1)]
    elif kind == 2:
        return tick_alpha(rng, "check", size, stroke)
    else:
        t = np.linspace(0, 2 * np.pi * rng.uniform(1, 2.5), 60)
        r = s * 0.35 * (1 - t / t.max() * 0.5)
        pts = [np.stack([s / 2 + r * np.cos(t), s / 2 + r * np.sin(t)], 1)]
    return draw_strokes((size, size), pts, stroke)
