"""Training data for the comb-cell character reader: augmentation that renders glyphs into simulated
comb cells, calibration error, comb cells for tests. The writer pools (the MNIST 5k sample and the
60k training set, their held-out splits, synthetic 'X') are `simulate.digitsets`, re-exported here.

Everything random takes a `numpy.random.Generator`; the same generator state gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms.layout import mm_to_px
from ocr.digits import frame_glyph, normalize_cell
from simulate.digitsets import (  # noqa: F401  (the writer pools live with the simulator; here for the trainers)
    BLOCK_HELDOUT,
    BLOCK_VAL,
    DigitData,
    Split60,
    heldout_mask,
    load_mnist,
    other_writers,
    split60,
    synth_x,
)


@dataclass(frozen=True)
class CellStyle:
    """How one simulated comb cell is printed and scanned."""

    dpi: float
    cell_mm: tuple[float, float]  # (width, height) of the box interior
    line_mm: float
    line_grey: int
    margin_mm: tuple[float, float, float, float]  # left, top, right, bottom outside the lines
    paper: int
    ink: int
    glyph_frac: float  # glyph height / cell height
    offset: tuple[float, float]  # glyph centre offset, fraction of cell size
    blur: float
    noise: float
    specks: int
    jpeg: int  # 0: none, else JPEG quality
    neighbours: bool  # ink of the neighbouring cells visible in the margins


def random_style(rng: np.random.Generator) -> CellStyle:
    """A random, plausible print + scan style (200-300 dpi, 4.5-7 x 6.5-10 mm boxes)."""
    dpi = float(rng.choice([200.0, 300.0])) * rng.uniform(0.93, 1.07)
    touch = rng.random() < 0.2
    off_range = (0.2, 0.15) if touch else (0.1, 0.08)
    return CellStyle(
        dpi=dpi,
        cell_mm=(rng.uniform(4.5, 7.0), rng.uniform(6.5, 10.0)),
        line_mm=rng.uniform(0.12, 0.45),
        line_grey=int(rng.integers(0, 190)),
        margin_mm=tuple(rng.uniform(0.2, 1.8, 4).tolist()),
        paper=int(rng.integers(215, 256)),
        ink=int(rng.integers(0, 130)),
        glyph_frac=rng.uniform(0.45, 0.9),
        offset=(rng.uniform(-1, 1) * off_range[0], rng.uniform(-1, 1) * off_range[1]),
        blur=rng.uniform(0.0, 1.2),
        noise=rng.uniform(0.0, 10.0),
        specks=int(rng.poisson(1.0)) if rng.random() < 0.4 else 0,
        jpeg=int(rng.integers(40, 95)) if rng.random() < 0.4 else 0,
        neighbours=bool(rng.random() < 0.4),
    )


def _paste_glyph(img: np.ndarray, glyph: np.ndarray, style: CellStyle, box: tuple[int, int, int, int]) -> None:
    """Darken `img` (float, paper-valued) with the ink-high glyph scaled into the cell `box`."""
    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(glyph > 20)
    if ys.size == 0:
        return
    g = glyph[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32) / 255.0
    s = style.glyph_frac * (y1 - y0) / g.shape[0]
    s = min(s, 1.05 * (x1 - x0) / g.shape[1])
    gw, gh = max(1, int(round(g.shape[1] * s))), max(1, int(round(g.shape[0] * s)))
    g = cv2.resize(g, (gw, gh), interpolation=cv2.INTER_CUBIC)
    cx = (x0 + x1) / 2 + style.offset[0] * (x1 - x0) - gw / 2
    cy = (y0 + y1) / 2 + style.offset[1] * (y1 - y0) - gh / 2
    m = np.float32([[1, 0, cx], [0, 1, cy]])
    alpha = cv2.warpAffine(np.clip(g, 0, 1), m, (img.shape[1], img.shape[0]))
    img -= alpha * (img - style.ink)


def _scribble(img: np.ndarray, rng: np.random.Generator, x_lo: int, x_hi: int, ink: int) -> None:
    """A few random ink strokes in the column range [x_lo, x_hi) (neighbouring cell's glyph)."""
    if x_hi - x_lo < 2:
        return
    h = img.shape[0]
    pts = np.stack([rng.uniform(x_lo, x_hi, 4), rng.uniform(0.2 * h, 0.8 * h, 4)], axis=1)
    cv2.polylines(img, [pts.astype(np.int32).reshape(-1, 1, 2)], False, float(ink), 2, cv2.LINE_AA)


def render_cell(glyph: np.ndarray, style: CellStyle, rng: np.random.Generator) -> np.ndarray:
    """Grayscale uint8 crop of one comb cell as an aligned scan would give it: the ink-high
    28x28 `glyph` (or an all-zero one for an empty cell) written in the box, box lines, margins."""
    k = mm_to_px(1.0, style.dpi)
    ml, mt, mr, mb = (m * k for m in style.margin_mm)
    lw = max(1, int(round(style.line_mm * k)))
    cw, ch = style.cell_mm[0] * k, style.cell_mm[1] * k
    W, H = int(round(ml + cw + mr + 2 * lw)), int(round(mt + ch + mb + 2 * lw))
    img = np.full((H, W), float(style.paper), np.float32)
    x0, y0 = int(round(ml)), int(round(mt))
    x1, y1 = x0 + lw + int(round(cw)), y0 + lw + int(round(ch))
    if style.neighbours:
        _scribble(img, rng, 0, x0 - 1, style.ink)
        _scribble(img, rng, x1 + lw + 1, W, style.ink)
    grey = float(style.line_grey)
    img[y0 : y0 + lw, :] = grey
    img[y1 : y1 + lw, :] = grey
    img[y0 : y1 + lw, x0 : x0 + lw] = grey
    img[y0 : y1 + lw, x1 : x1 + lw] = grey
    _paste_glyph(img, glyph, style, (x0 + lw, y0 + lw, x1, y1))
    return _scan(img, style, rng)


def _scan(img: np.ndarray, style: CellStyle, rng: np.random.Generator) -> np.ndarray:
    """Scanner effects: blur, dust specks, sensor noise, optional JPEG round trip."""
    if style.blur > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), style.blur)
    for _ in range(style.specks):
        y, x = int(rng.integers(0, img.shape[0])), int(rng.integers(0, img.shape[1]))
        r = int(rng.integers(1, 3))
        cv2.circle(img, (x, y), r, float(rng.integers(0, 120)), -1)
    img = img + rng.normal(0.0, style.noise, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if style.jpeg:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, style.jpeg])
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else out
    return out


def distort(img28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pen and writer variation on an ink-high 28x28 glyph, at 2x resolution (56x56 float):
    stroke width, slant (shear), rotation, anisotropic scale, elastic distortion."""
    g = cv2.resize(img28.astype(np.float32), (56, 56), interpolation=cv2.INTER_LINEAR)
    r = rng.random()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    if r < 0.3:
        g = cv2.dilate(g, kernel, iterations=int(rng.integers(1, 3)))
    elif r < 0.55:
        g = cv2.erode(g, kernel, iterations=1)
    shear, rot = rng.normal(0, 0.18), np.deg2rad(rng.normal(0, 7))
    sx, sy = rng.uniform(0.75, 1.2), rng.uniform(0.85, 1.15)
    a = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]]) @ np.array([[sx, shear], [0, sy]])
    c = np.array([28.0, 28.0])
    m = np.hstack([a, (c - a @ c)[:, None]]).astype(np.float32)
    g = cv2.warpAffine(g, m, (56, 56), flags=cv2.INTER_LINEAR)
    if rng.random() < 0.7:
        g = _elastic(g, rng, alpha=rng.uniform(2.0, 7.0), sigma=rng.uniform(5.0, 8.0))
    return np.clip(g, 0, 255)


def _elastic(g: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Elastic distortion (Simard et al.): smooth random displacement field of max ~alpha px."""
    h, w = g.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, (h, w)).astype(np.float32), (0, 0), sigma)
    norm = alpha / max(float(np.abs(np.stack([dx, dy])).max()), 1e-6)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(g, xx + dx * norm, yy + dy * norm, cv2.INTER_LINEAR, borderValue=0.0)


def augment(img28: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented training image (28x28 uint8 ink-high) from an ink-high 28x28 glyph: the
    glyph is distorted (`distort`), written into a random simulated comb cell (`render_cell`:
    offset in the box, sometimes touching the lines, box lines and their remnants, neighbour ink,
    blur, noise, specks, JPEG) and read back through the runtime `normalize_cell`, so training
    sees exactly what the reader sees. Deterministic for a given generator state."""
    glyph = distort(img28, rng)
    crop = render_cell(glyph.astype(np.uint8), random_style(rng), rng)
    out = normalize_cell(crop)
    if out is None:  # glyph lost (very faint / tiny): fall back to the clean framing
        out = frame_glyph(glyph)
    return out if out is not None else np.zeros((28, 28), np.uint8)


def augment_many(images: np.ndarray, seed: int, tag: int, copies: int, start: int = 0) -> np.ndarray:
    """`copies` augmented versions of each image, (n * copies, 28, 28), image-major order. Each
    (seed, tag, image index, copy) gets its own generator, so any split of the work across
    processes gives the same result; `start` is the index of images[0] in the whole set."""
    out = np.empty((len(images) * copies, 28, 28), np.uint8)
    for i, img in enumerate(images):
        for c in range(copies):
            out[i * copies + c] = augment(img, np.random.default_rng([seed, tag, start + i, c]))
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 prediction: bin by confidence, weighted mean |accuracy - confidence|."""
    conf = probs.max(axis=1)
    hit = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(hit[sel].mean() - conf[sel].mean())
    return float(ece)


# ---------------------------------------------------------------------------------------------
# Evaluation renderer: a printed comb strip, independent of the training style sampler
# ---------------------------------------------------------------------------------------------


def comb_cell(glyphs: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None],
              rng: np.random.Generator, dpi: float, line_grey: int) -> np.ndarray:
    """Crop of the middle cell of a 3-cell comb strip (6 x 9 mm cells, 0.25 mm lines, layout
    size) written with (left, middle, right) glyphs (None = empty), cut with a 1 mm margin as the
    reader cuts cells from an aligned page; ink jitter, sometimes touching a line, sensor noise,
    dust specks on empty cells, sometimes JPEG. For benchmarks and tests, not for training."""
    k = mm_to_px(1.0, dpi)
    cw, ch, lw = 6.0 * k, 9.0 * k, max(1, int(round(0.25 * k)))
    margin = int(round(1.0 * k))
    W, H = int(round(3 * cw + 2 * margin)), int(round(ch + 2 * margin))
    img = np.full((H, W), float(rng.integers(232, 256)), np.float32)
    xs = [int(round(margin + i * cw)) for i in range(4)]
    y0, y1 = margin, int(round(margin + ch))
    for x in xs:
        img[y0 : y1 + lw, x : x + lw] = line_grey
    img[y0 : y0 + lw, xs[0] : xs[3] + lw] = line_grey
    img[y1 : y1 + lw, xs[0] : xs[3] + lw] = line_grey
    ink = int(rng.integers(0, 90))
    for i, g in enumerate(glyphs):
        if g is not None:
            _write(img, g, rng, (xs[i] + lw, y0 + lw, xs[i + 1], y1), ink)
    crop_x0, crop_x1 = int(round(xs[1] - 1.0 * k)), int(round(xs[2] + lw + 1.0 * k))
    crop = img[:, crop_x0:crop_x1]
    style_specks = int(rng.integers(0, 4)) if glyphs[1] is None else int(rng.integers(0, 2))
    jpeg = int(rng.integers(60, 92)) if rng.random() < 0.5 else 0
    style = CellStyle(dpi, (6.0, 9.0), 0.25, line_grey, (1, 1, 1, 1), 255, ink, 0.7, (0.0, 0.0),
                      float(rng.uniform(0.3, 1.0)), float(rng.uniform(2.0, 8.0)), style_specks, jpeg, False)
    return _scan(crop, style, rng)


def _write(img: np.ndarray, glyph: np.ndarray, rng: np.random.Generator,
           box: tuple[int, int, int, int], ink: int) -> None:
    """Write an MNIST-framed glyph into the cell `box` with natural size and position jitter."""
    touch = rng.random() < 0.15
    dx, dy = (0.16, 0.12) if touch else (0.08, 0.07)
    style = CellStyle(300.0, (6.0, 9.0), 0.25, 0, (1, 1, 1, 1), 255, ink,
                      float(rng.uniform(0.55, 0.85)),
                      (float(rng.uniform(-dx, dx)), float(rng.uniform(-dy, dy))), 0.0, 0.0, 0, 0, False)
    _paste_glyph(img, glyph, style, box)
