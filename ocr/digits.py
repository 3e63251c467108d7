"""Runtime reader for one handwritten comb-box cell (digits 0-9 and the ID check character 'X').

Pipeline: `normalize_cell` turns a grayscale crop of one cell (paper light, ink dark, printed box
lines at its border) into a 28x28 ink-high MNIST-style image, or None when the cell is empty;
`DigitClassifier.predict_proba` maps a batch of such images to calibrated probabilities over
`CLASSES`; `read_cells` does both for a list of crops. Runtime needs numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import ClassVar, Protocol

import cv2
import numpy as np

from ocr.types import CLASSES

MLP_MODEL = Path(__file__).resolve().parent / "models" / "digits.npz"  # feature MLP (training.train_digits)
CNN_MODEL = Path(__file__).resolve().parent / "models" / "digits_cnn.npz"  # small CNN (training.train_cnn)
DEFAULT_MODEL = CNN_MODEL
ONNX_MODEL = Path(__file__).resolve().parent / "models" / "reader_v2.onnx"  # v2 ensemble (training.train_ensemble)

INK_THRESHOLD = 0.3  # darkness (0 paper .. 1 black) above which a pixel surely counts as ink
MIN_INK_THRESHOLD = 0.17  # ink threshold floor for faint ink (adaptive between the two)
LINE_THRESHOLD = 0.1  # darkness above which a pixel may belong to a printed box line
EDGE_BAND = 0.34  # box lines are searched within this fraction of the crop from each edge
MIN_EXTENT = 0.22  # a cell holds a character when its ink spans this fraction of the cell height


@dataclass(frozen=True)
class CellResult:
    """Reading of one cell. Empty cells have probs None, best '' and confidence 0.0."""

    empty: bool
    probs: tuple[float, ...] | None
    best: str
    confidence: float


@dataclass(frozen=True)
class _Lines:
    """Printed box lines found in a crop: a mask of their pixels and the interior rectangle."""

    mask: np.ndarray
    h_mask: np.ndarray
    v_mask: np.ndarray
    top: int
    bottom: int
    left: int
    right: int


# ---------------------------------------------------------------------------------------------
# Cell normalisation
# ---------------------------------------------------------------------------------------------


def darkness(crop: np.ndarray) -> np.ndarray:
    """Float32 darkness map in [0, 1]: 0 at the paper level (robust bright percentile), 1 black."""
    g = crop.astype(np.float32)
    if g.ndim == 3:
        g = cv2.cvtColor(g, cv2.COLOR_BGR2GRAY)
        paper = fast_percentile(g, 80)
    else:
        paper = fast_percentile(g, 80, crop if crop.dtype == np.uint8 else None)
    paper = max(paper, 64.0)
    return np.clip((paper - g) / paper, 0.0, 1.0)


def fast_percentile(a: np.ndarray, q: float, u8: np.ndarray | None = None) -> float:
    """`float(np.percentile(a, q))` (linear interpolation) to the bit, for a non-empty real array
    `a` without NaN: the same two order statistics and the same interpolation in `a`'s dtype, the
    order statistics found by a partial sort, or from a histogram when `u8` holds the same values
    as uint8 (a grey crop: 10x faster; np.percentile took 30 ms of a page's reading)."""
    flat = a.ravel()
    n = flat.size
    if n == 0:
        return float(np.percentile(flat, q))
    at = (n - 1) * (q / 100)  # numpy's virtual index, in the same float64 arithmetic
    lo = math.floor(at)
    if at >= n - 1:
        return float(flat.max())
    if u8 is not None:
        cum = np.cumsum(np.bincount(u8.ravel(), minlength=256))
        a0, a1 = (flat.dtype.type(v) for v in np.searchsorted(cum, (lo, lo + 1), side="right"))
    else:
        a0, a1 = np.partition(flat, (lo, lo + 1))[lo:lo + 2]
    t = at - lo
    diff = a1 - a0  # numpy's _lerp, in a's dtype (t a weak Python float)
    return float(a1 - diff * (1 - t) if t >= 0.5 else a0 + diff * t)


def _line_groups(profile: np.ndarray, need: float) -> list[tuple[int, int]]:
    """Runs of consecutive indices whose profile value reaches `need`, as (first, last)."""
    idx = np.flatnonzero(profile >= need)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    ends = np.r_[idx[breaks], idx[-1]]
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _edge_lines(groups: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """The line groups lying within the edge bands (near index 0 or near `size`)."""
    band = int(round(EDGE_BAND * size))
    return [g for g in groups if g[1] < band or g[0] >= size - band]


def _inner_edges(groups: list[tuple[int, int]], size: int) -> tuple[int, int]:
    """Interior [lo, hi) between the innermost line near the low edge and near the high edge."""
    band = int(round(EDGE_BAND * size))
    lo_lines = [g for g in groups if g[1] < band]
    hi_lines = [g for g in groups if g[0] >= size - band]
    lo = lo_lines[-1][1] + 1 if lo_lines else int(round(0.06 * size))
    hi = hi_lines[0][0] if hi_lines else size - int(round(0.06 * size))
    return lo, max(hi, lo + 1)


def _select(runs: np.ndarray, groups: list[tuple[int, int]], axis: int) -> np.ndarray:
    """Mask of `runs` restricted to the accepted line groups (rows if axis 0, else columns),
    grown by one pixel to take in the antialiased fringe."""
    keep = np.zeros(runs.shape[axis], dtype=bool)
    for g0, g1 in groups:
        keep[g0 : g1 + 1] = True
    sel = runs * (keep[:, None] if axis == 0 else keep[None, :])
    return cv2.dilate(sel.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))) > 0


def _directional_runs(binary: np.ndarray, length: int, horizontal: bool) -> np.ndarray:
    """Pixels of `binary` lying on straight runs at least `length` long (small gaps bridged)."""
    length = max(length, 3)
    gap = (3, 1) if horizontal else (1, 3)
    closed = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, gap))
    shape = (length, 1) if horizontal else (1, length)
    return cv2.morphologyEx(closed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, shape))


def find_box_lines(dark: np.ndarray) -> _Lines:
    """Locate the printed box lines (straight runs across the whole crop near its edges) and the
    cell interior between the innermost lines."""
    h, w = dark.shape
    cand = (dark > LINE_THRESHOLD).astype(np.uint8)
    h_runs = _directional_runs(cand, int(0.4 * w), horizontal=True)
    h_groups = _edge_lines(_line_groups(h_runs.sum(axis=1), 0.9 * w), h)
    top, bottom = _inner_edges(h_groups, h)
    span = max(bottom - top, h // 2)
    v_runs = _directional_runs(cand, int(0.4 * span), horizontal=False)
    v_groups = _edge_lines(_line_groups(v_runs[top:bottom].sum(axis=0), 0.8 * span), w)
    left, right = _inner_edges(v_groups, w)
    h_mask, v_mask = _select(h_runs, h_groups, 0), _select(v_runs, v_groups, 1)
    return _Lines(h_mask | v_mask, h_mask, v_mask, top, bottom, left, right)


def _bridge_lines(ink: np.ndarray, lines: _Lines, per_line: bool = False) -> np.ndarray:
    """Ink with box-line pixels removed, except where a stroke crosses the line (bridged). The
    bridge spans the lines' summed thickness across the crop (one cell: its two lines), or with
    `per_line` the thickest single line (a strip crosses many lines)."""
    out = ink & ~lines.mask
    for mask, axis in ((lines.h_mask, 0), (lines.v_mask, 1)):
        if per_line:
            runs = _line_groups(mask.any(axis=1 - axis).astype(np.int64), 1)
            span = max((g1 - g0 + 1 for g0, g1 in runs), default=0)
        else:
            span = int(mask.sum(axis=axis).max()) if mask.any() else 0
        if span == 0:
            continue
        size = (1, span + 4) if axis == 0 else (span + 4, 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, size)
        closed = cv2.morphologyEx(out.astype(np.uint8), cv2.MORPH_CLOSE, kernel) > 0
        out |= closed & mask
    return out


def _keep_components(ink: np.ndarray, lines: _Lines, dropped: np.ndarray | None = None) -> np.ndarray | None:
    """Mask of the character's components (mostly inside the box, not specks, not a box line's
    remnant), or None if empty. `dropped`: where a drop-out comb's print was taken out (see
    `_dropped_trace`)."""
    cell_h = max(lines.bottom - lines.top, 8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    if n == 2:  # one component (most cells): the same tests on plain numbers
        return _keep_one(ink, stats[1], lines, cell_h, dropped)
    area = stats[1:, cv2.CC_STAT_AREA].astype(np.float64)
    inner = labels[lines.top : lines.bottom, lines.left : lines.right]
    inside = np.bincount(inner.ravel(), minlength=n)[1:] / area
    extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]) / cell_h
    ok = (inside >= 0.5) & (area >= _speck_area(cell_h)) & ~_line_remnants(stats[1:], lines, cell_h)
    if dropped is not None:
        on_print = np.bincount(labels[dropped].ravel(), minlength=n)[1:] / area
        ok &= ~_dropped_trace(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], on_print, cell_h)
    if not ok.any() or extent[ok].max() < MIN_EXTENT:
        return None
    return labels_mask(labels, n, _main_group(stats[1:], ok, cell_h) + 1)


def _keep_one(ink: np.ndarray, stat: np.ndarray, lines: _Lines, cell_h: int,
              dropped: np.ndarray | None = None) -> np.ndarray | None:
    """`_keep_components` for ink that is one component (`stat`: its row of the stats): the
    component when it is mostly inside the box, not a speck, not a line's fringe and tall or wide
    enough, else None."""
    x0, y0, w, h, area = (int(v) for v in stat[:5])  # left, top, width, height, area
    inside = np.count_nonzero(ink[lines.top : lines.bottom, lines.left : lines.right]) / float(area)
    if (inside < 0.5 or area < _speck_area(cell_h) or _remnant(x0, y0, w, h, lines, cell_h)
            or max(w, h) / cell_h < MIN_EXTENT):
        return None
    if dropped is not None and _dropped_trace(w, h, np.count_nonzero(ink & dropped) / float(area), cell_h):
        return None
    return ink != 0


def _dropped_trace(w, h, on_print, cell_h: int):
    """Components that are what is left of a drop-out comb's line once it was dropped (a heavily
    compressed JPEG keeps a faint trace of it: a lone '1' in an empty comb): as thin as a line and
    lying on the print (`on_print`: the share of their pixels there). A pen stroke crossing a line
    goes on beyond it; arrays or one component's plain numbers, as `_remnant`."""
    thin = max(3, int(round(0.06 * cell_h)))
    return (np.minimum(w, h) <= thin) & (on_print >= 0.9)


def _speck_area(cell_h: int) -> float:
    """The smallest ink component (pixels) a cell keeps: smaller ones are specks."""
    return max(3.0, (0.035 * cell_h) ** 2)


def labels_mask(labels: np.ndarray, n: int, ids) -> np.ndarray:
    """Where the label image `labels` (n labels) holds one of `ids`: `np.isin`, by a lookup table."""
    table = np.zeros(n, bool)
    table[ids] = True
    return table[labels]


def _line_remnants(stats: np.ndarray, lines: _Lines, cell_h: int) -> np.ndarray:
    """Components that are the unmasked fringe of a printed box line (blur or JPEG makes a line
    thicker than its detected core): thin, long and hugging one edge of the cell interior."""
    return _remnant(stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP], stats[:, cv2.CC_STAT_WIDTH],
                    stats[:, cv2.CC_STAT_HEIGHT], lines, cell_h)


def _remnant(x0, y0, w, h, lines: _Lines, cell_h: int):
    """`_line_remnants` on the components' boxes: arrays (a bool array out) or one box's plain
    numbers (a bool out, `_keep_one`)."""
    thin = max(3, int(round(0.06 * cell_h)))
    hug = max(2, int(round(0.05 * cell_h)))
    cell_w = max(lines.right - lines.left, 4)
    horizontal = (h <= thin) & (w >= 0.4 * cell_w) & (
        (abs(y0 - lines.top) <= hug) | (abs(y0 + h - lines.bottom) <= hug))
    vertical = (w <= thin) & (h >= 0.4 * cell_h) & (
        (abs(x0 - lines.left) <= hug) | (abs(x0 + w - lines.right) <= hug))
    return horizontal | vertical


def _main_group(stats: np.ndarray, ok: np.ndarray, cell_h: int) -> np.ndarray:
    """Indices of the components forming the character: the biggest plus those that are large
    or lie close to it (stray specks away from the character are dropped)."""
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    x0, y0 = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    x1, y1 = x0 + stats[:, cv2.CC_STAT_WIDTH], y0 + stats[:, cv2.CC_STAT_HEIGHT]
    big = int(np.argmax(np.where(ok, area, -1)))
    gap_x = np.maximum(0, np.maximum(x0 - x1[big], x0[big] - x1))
    gap_y = np.maximum(0, np.maximum(y0 - y1[big], y0[big] - y1))
    near = np.maximum(gap_x, gap_y) <= 0.12 * cell_h
    keep = ok & ((area >= 0.3 * area[big]) | (near & (area >= 0.1 * area[big])))
    return np.flatnonzero(keep)


def frame_glyph(ink: np.ndarray) -> np.ndarray | None:
    """MNIST framing: crop the ink (float/uint8, ink-high) to its bounding box, fit the longer
    side to 20 px keeping the aspect ratio, and centre by centre of mass in a 28x28 uint8 image.
    Returns None when there is no ink."""
    ink = np.asarray(ink, dtype=np.float32)
    x, y, w, h = cv2.boundingRect((ink > 0.05 * max(float(ink.max()), 1e-6)).astype(np.uint8))
    if w == 0:
        return None
    box = ink[y : y + h, x : x + w]
    bh, bw = box.shape
    s = 20.0 / max(bh, bw)
    nh, nw = max(1, int(round(bh * s))), max(1, int(round(bw * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(box, (nw, nh), interpolation=interp)
    total = float(small.sum())
    if total <= 0:
        return None
    cy = float((small.sum(axis=1) * np.arange(nh)).sum() / total)
    cx = float((small.sum(axis=0) * np.arange(nw)).sum() / total)
    m = np.float32([[1, 0, 13.5 - cx], [0, 1, 13.5 - cy]])
    out = cv2.warpAffine(small, m, (28, 28), flags=cv2.INTER_LINEAR, borderValue=0.0)
    peak = max(float(out.max()), 1e-6)
    return np.clip(out * (255.0 / peak), 0, 255).astype(np.uint8)


def normalize_cell(crop: np.ndarray) -> np.ndarray | None:
    """Turn a grayscale uint8 crop of ONE comb cell (light paper, dark ink, printed box lines of
    any grey at its border, some margin) into a 28x28 uint8 ink-high MNIST-style image.

    Box lines and anything mostly outside the box (neighbouring cells) are removed, specks are
    dropped, contrast is normalised. Returns None when the cell holds no character (blank, a few
    noise specks or a dust dot)."""
    if crop is None or crop.size == 0 or min(crop.shape[:2]) < 8:
        return None
    dark = darkness(crop)
    lines = find_box_lines(dark)
    thr = _ink_threshold(dark, lines)
    ink = _bridge_lines(dark > thr, lines)
    return _glyph(dark, _keep_components(ink, lines), lines, thr)


def _ink_threshold(dark: np.ndarray, lines: _Lines) -> float:
    return ink_threshold(dark[~lines.mask] if lines.mask.any() else dark)  # no lines (dropped): no copy


def ink_threshold(free: np.ndarray, percentile: float = 99.5) -> float:
    """Ink threshold adapted to the darkest ink off the printed lines (`free`: the darkness of the
    pixels off them; faint pens, light scans)."""
    peak = fast_percentile(free, percentile) if free.size else 0.0
    return float(np.clip(0.45 * peak, MIN_INK_THRESHOLD, INK_THRESHOLD))


def _glyph(dark: np.ndarray, keep: np.ndarray | None, lines: _Lines, thr: float) -> np.ndarray | None:
    return soft_glyph(dark, keep, thr, lines.mask)


def soft_glyph(dark: np.ndarray, keep: np.ndarray | None, thr: float,
               printed: np.ndarray | None = None) -> np.ndarray | None:
    """The kept character's soft ink (darkness around its mask, `printed` pixels off unless kept),
    MNIST-framed; None when nothing is kept."""
    if keep is None:
        return None
    x, y, w, h = cv2.boundingRect(keep.astype(np.uint8))
    if w > 0:  # only the glyph's box and its 1 px fringe: nothing outside it is ink
        around = np.s_[max(0, y - 1):y + h + 1, max(0, x - 1):x + w + 1]
        dark, keep = dark[around], keep[around]
        printed = printed[around] if printed is not None else None
    fringe = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    if printed is not None:
        fringe &= ~(printed & ~keep)
    soft = np.where(fringe, dark, 0.0)
    scale = max(fast_percentile(dark[keep], 90), thr)
    return frame_glyph(np.clip(soft / scale, 0.0, 1.0))


def normalize_strip(crop: np.ndarray, bounds: list[tuple[int, int]], rows: tuple[int, int],
                    dropped: np.ndarray | None = None, light_lines: bool = False) -> list[np.ndarray | None]:
    """Normalise every cell of one comb strip at once (see `normalize_cell` for one cell).

    `crop` is a grayscale uint8 crop of the whole comb with a margin, `bounds` each cell's expected
    [x0, x1) between its printed side lines and `rows` the comb's expected [y0, y1), in crop pixels.
    Ink is segmented over the whole strip and each stroke belongs to the cell holding most of it:
    a digit that overruns its box is read whole, and the part of a neighbour's digit reaching
    into a cell is not read as part of it. Ink mostly above or below the comb (a digit rewritten
    over a struck-out box) belongs to no cell.

    Drop-out combs (`forms.layout.CombInk`): the lines are still found on `crop`, where they show
    (each box's place), but the ink is cut from the strip with the comb's print taken out, with no
    line mask, so a stroke crossing or running along a box line keeps all its ink: `dropped` is
    the strip in the scan's channel where the drop-out colour is as light as paper (a colour
    scan); `light_lines` (a grey scan) drops the lines found where they are no darker than the
    print itself (`drop_light_lines`). Lines as dark as pen ink (a 1-bit scan that kept them, a
    grey comb) are masked as for grey combs."""
    n_cells = len(bounds)
    if crop is None or crop.size == 0 or min(crop.shape[:2]) < 8 or n_cells == 0:
        return [None] * n_cells
    dropped_dark = darkness(dropped) if dropped is not None and dropped.shape == crop.shape else None
    if dropped_dark is not None and float(dropped_dark.max()) <= MIN_INK_THRESHOLD:
        return [None] * n_cells  # nothing on the strip but the dropped print: no threshold finds ink
    dark = darkness(crop)
    lines, edges = _strip_lines(dark, bounds, rows)
    whole = False  # the comb's print is dropped: a glyph its cell owns is kept whole, across the lines
    cut = lines.mask  # where two glyphs joined across a line are parted (the printed lines)
    printed = None  # where a dropped comb's print was, with its blurred fringe (None: no lines found)
    if dropped is not None or light_lines:
        near = _print_fringe(lines)
        ink = drop_light_lines(dropped_dark if dropped_dark is not None else dark, lines, near)
        if ink is not None:  # the comb's print is gone from `ink`: nothing to mask, ink on a line stays
            cut = lines.mask if lines.mask.any() else _side_lines(dark.shape, edges, lines)
            printed = near
            dark, lines, whole = ink, _no_masks(lines), True
    thr = _ink_threshold(dark, lines)
    raw = dark > thr
    found = _found_bounds(edges)
    owner = _owners(_bridge_lines(raw, lines, per_line=True), raw & ~cut, found, lines)
    top, bottom = lines.top, lines.bottom
    out: list[np.ndarray | None] = []
    for i, ((x0, x1), (left, right)) in enumerate(zip(found, edges, strict=True)):
        half = (x1 - x0) // 2
        sx0, sx1 = max(0, x0 - half), min(dark.shape[1], x1 + half)
        window = slice(sx0, sx1)
        cell_ink = owner[:, window] == i
        if not cell_ink.any():
            out.append(None)
            continue
        inner = (0, sx1 - sx0) if whole else (left - sx0, right - sx0)  # what must hold most of the glyph
        cell_lines = _Lines(lines.mask[:, window], lines.h_mask[:, window], lines.v_mask[:, window],
                            top, bottom, *inner)
        on_print = printed[:, window] if printed is not None else None
        out.append(_glyph(dark[:, window], _keep_components(cell_ink, cell_lines, on_print), cell_lines, thr))
    return out


# a grey scan of a drop-out comb: its lines are light grey (the print's level, measured on the
# page); pixels of a line no darker than that level plus this margin are the print, darker ones a
# pen over it (ink darkens what it covers). Lines whose core (95th percentile of their darkness) is
# darker than LIGHT_LINE_MAX are not dropped but masked: a 1-bit scan that kept them, or a form
# printed with grey combs before its layout switched to drop-out (stored grey pages of 500 forms:
# grey-comb cores median 0.52, 95 % above 0.45; drop-out cores median 0.27, 99 % under 0.37).
LIGHT_LINE_MARGIN = 0.12
LIGHT_LINE_MAX = 0.42


def _print_fringe(lines: _Lines) -> np.ndarray | None:
    """The printed lines found with their blurred fringe (dilated by one pixel), None when none were
    found (a 1-bit scan that lost them)."""
    if not lines.mask.any():
        return None
    return cv2.dilate(lines.mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def drop_light_lines(dark: np.ndarray, lines: _Lines, near: np.ndarray | None) -> np.ndarray | None:
    """`dark` (a strip's darkness: of the grey scan, or of a colour scan's drop-out channel, where
    JPEG's coarser colour leaves a faint trace of the lines) with the light printed lines found
    (`lines`, on the grey scan; `near`: them with their fringe, `_print_fringe`) taken out where no
    pen covers them (none found: the scan lost them, as a 1-bit scan does); None when the lines
    are as dark as ink there (not to be dropped: masked as grey combs are)."""
    if near is None:
        return dark
    on_lines = dark[lines.mask]
    level, core = fast_percentile(on_lines, 70), fast_percentile(on_lines, 95)
    if core > LIGHT_LINE_MAX:
        return None
    return np.where(near & (dark <= level + LIGHT_LINE_MARGIN), 0.0, dark).astype(np.float32)


def _side_lines(shape: tuple[int, ...], edges: list[tuple[int, int]], lines: _Lines) -> np.ndarray:
    """Where the side lines between the boxes are (a scan that lost them): between each box's
    interior and the next one's, over the comb's rows."""
    out = np.zeros(shape[:2], bool)
    for (_, right), (left, _) in zip(edges[:-1], edges[1:], strict=True):
        out[lines.top:lines.bottom, min(right, left - 1):max(left, right + 1)] = True
    return out


def _no_masks(lines: _Lines) -> _Lines:
    """The same comb geometry with no printed pixels to mask (the print was dropped)."""
    none = np.zeros_like(lines.mask)
    return _Lines(none, none, none, lines.top, lines.bottom, lines.left, lines.right)


SHARED_STROKE = 0.3  # a cell holding this share of a connected stroke group holds a glyph of its own


def _cell_counts(labels: np.ndarray, n: int, col_cell: np.ndarray, lines: _Lines) -> np.ndarray:
    """(n, cells + 1) pixel counts of each label inside the comb's rows, per cell column band
    (last column: outside the comb)."""
    band = labels[lines.top : lines.bottom]
    width = int(col_cell.max()) + 1
    flat = (band * width + col_cell[None, :]).ravel()
    return np.bincount(flat, minlength=n * width).reshape(n, width)


def _found_bounds(edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each cell's column band from the side lines found on the page (the middle of each line),
    so a page aligned a little off still gives each box its own ink."""
    mids = [edges[0][0] - 1] + [(r + left) // 2 for (_, r), (left, _) in zip(edges[:-1], edges[1:], strict=True)]
    mids.append(edges[-1][1] + 1)
    return list(zip(mids[:-1], mids[1:], strict=True))


def _owners(bridged: np.ndarray, pieces: np.ndarray, bounds: list[tuple[int, int]], lines: _Lines) -> np.ndarray:
    """Per pixel, the cell owning the ink there (-1: none). A connected group of strokes (box-line
    crossings bridged) goes whole to the cell holding most of it inside the comb's rows, unless
    two cells each hold a good share (two glyphs joined through a line): then each piece between
    the lines goes to its own cell, and a piece that still spans cells is cut at the lines. Ink mostly outside the comb's rows belongs to no cell."""
    n_cells = len(bounds)
    col_cell = np.full(bridged.shape[1], n_cells, np.int64)
    for i, (x0, x1) in enumerate(bounds):
        col_cell[max(0, x0) : max(0, x1)] = i
    owner = np.full(bridged.shape, -1, np.int64)
    split = np.zeros(bridged.shape, bool)
    for ink, whole in ((bridged, True), (pieces, False)):
        n, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
        if n <= 1:
            continue
        counts = _cell_counts(labels, n, col_cell, lines)
        area = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
        area[0] = np.inf
        cells = counts[:, :n_cells]
        best = cells.argmax(axis=1)
        ok = cells[np.arange(n), best] >= 0.5 * area
        if whole:
            inside = cells.sum(axis=1)
            shared = (cells >= SHARED_STROKE * inside[:, None]).sum(axis=1) >= 2
            owner = np.where(ok & ~shared, best, -1)[labels]
            split = ((shared | ~ok) & (inside >= 0.5 * area))[labels]
        else:  # the pieces of the groups split above; a piece still spanning cells is cut at the lines
            by_column = np.broadcast_to(np.where(col_cell < n_cells, col_cell, -1), labels.shape)
            at = labels[split]  # only the split pixels are looked up (a whole strip's lookups took 2 ms)
            owner[split] = np.where(ok[at], best[at], by_column[split])
    return owner


def _strip_lines(dark: np.ndarray, bounds: list[tuple[int, int]],
                 rows: tuple[int, int]) -> tuple[_Lines, list[tuple[int, int]]]:
    """Printed lines of a comb strip (top, bottom and the side lines between cells) near their
    expected places, and each cell's interior [left, right) between its side lines."""
    h, w = dark.shape
    cell_w = max(1, int(np.median([x1 - x0 for x0, x1 in bounds])))
    cell_h = max(1, rows[1] - rows[0])
    comb_w = max(1, min(w, bounds[-1][1]) - max(0, bounds[0][0]))
    cand = (dark > LINE_THRESHOLD).astype(np.uint8)
    h_runs = _directional_runs(cand, int(1.5 * cell_w), horizontal=True)
    near = int(round(0.3 * cell_h))
    h_groups = [g for g in _line_groups(h_runs.sum(axis=1), 0.5 * comb_w)
                if abs(g[0] - rows[0]) <= near or abs(g[1] - rows[1]) <= near]
    top_lines = [g for g in h_groups if abs(g[0] - rows[0]) <= near]
    bottom_lines = [g for g in h_groups if abs(g[1] - rows[1]) <= near and g not in top_lines]
    top = top_lines[-1][1] + 1 if top_lines else rows[0] + 1
    bottom = bottom_lines[0][0] if bottom_lines else rows[1] - 1
    bottom = max(bottom, top + 1)
    span = bottom - top
    v_runs = _directional_runs(cand, int(0.4 * span), horizontal=False)
    v_all = _line_groups(v_runs[top:bottom].sum(axis=0), 0.8 * span)
    tol = 0.35 * cell_w
    v_groups: list[tuple[int, int]] = []
    for x in sorted({b for x0, x1 in bounds for b in (x0, x1)}):
        close = [g for g in v_all if abs((g[0] + g[1]) / 2 - x) <= tol]
        if close:
            v_groups.append(min(close, key=lambda g: abs((g[0] + g[1]) / 2 - x)))
    edges = []
    for x0, x1 in bounds:
        lefts = [g for g in v_groups if abs((g[0] + g[1]) / 2 - x0) <= tol]
        rights = [g for g in v_groups if abs((g[0] + g[1]) / 2 - x1) <= tol]
        left = lefts[0][1] + 1 if lefts else x0 + 1
        right = rights[0][0] if rights else x1 - 1
        edges.append((left, max(right, left + 1)))
    h_mask, v_mask = _select(h_runs, top_lines + bottom_lines, 0), _select(v_runs, v_groups, 1)
    return _Lines(h_mask | v_mask, h_mask, v_mask, top, bottom, edges[0][0], edges[-1][1]), edges


# ---------------------------------------------------------------------------------------------
# Features and classifier
# ---------------------------------------------------------------------------------------------


def _pool(x: np.ndarray, k: int) -> np.ndarray:
    """Sum-pool the last two axes of (n, c, 28, 28) in non-overlapping k x k blocks."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // k, k, w // k, k).sum(axis=(3, 5))


def deskew(cells28: np.ndarray) -> np.ndarray:
    """Remove the slant of each 28x28 ink-high image: shear so that the second-order moment
    mu11 vanishes, about the centre of mass (classic MNIST deskewing). Returns float32 (n,28,28)."""
    x = np.asarray(cells28, dtype=np.float32).reshape(-1, 28, 28)
    yy = np.arange(28, dtype=np.float32)[None, :, None]
    xx = np.arange(28, dtype=np.float32)[None, None, :]
    m = x.sum(axis=(1, 2)) + 1e-6
    cy = (x * yy).sum(axis=(1, 2)) / m
    cx = (x * xx).sum(axis=(1, 2)) / m
    mu11 = (x * (yy - cy[:, None, None]) * (xx - cx[:, None, None])).sum(axis=(1, 2)) / m
    mu02 = (x * (yy - cy[:, None, None]) ** 2).sum(axis=(1, 2)) / m
    skew = np.clip(mu11 / np.maximum(mu02, 1e-2), -1.0, 1.0)
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        a = np.float32([[1, skew[i], -skew[i] * cy[i]], [0, 1, 0]])
        out[i] = cv2.warpAffine(x[i], a, (28, 28), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return out


def features(cells28: np.ndarray) -> np.ndarray:
    """Float32 feature matrix (n, 784 + 392 + 128) for a batch of 28x28 ink-high images, after
    `deskew`: raw pixels, signed gradient-orientation histograms (8 bins) on a 7x7 grid and on a 4x4 grid
    (overlap-free 4 px and 7 px cells), each histogram block L2-normalised."""
    x = deskew(cells28) / 255.0
    n = x.shape[0]
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = p[:, 1:-1, 2:] - p[:, 1:-1, :-2]
    gy = p[:, 2:, 1:-1] - p[:, :-2, 1:-1]
    mag = np.sqrt(gx * gx + gy * gy)
    ang = (np.arctan2(gy, gx) + np.pi) * (8 / (2 * np.pi))
    b0 = np.floor(ang).astype(np.int64) % 8
    frac = ang - np.floor(ang)
    bins = np.arange(8).reshape(1, 8, 1, 1)
    hist = (mag * (1 - frac))[:, None] * (b0[:, None] == bins)
    hist += (mag * frac)[:, None] * (((b0 + 1) % 8)[:, None] == bins)
    parts = [x.reshape(n, -1)]
    for k in (4, 7):
        h = _pool(hist, k)
        h = h / (np.sqrt((h * h).sum(axis=1, keepdims=True)) + 0.1)
        parts.append(h.transpose(0, 2, 3, 1).reshape(n, -1))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class DigitClassifier:
    """Classifier over 28x28 cell images, run in numpy; weights and the calibration temperature
    live in an npz file. Two kinds, told apart by their keys:

    * CNN (`training.train_cnn`): `conv{i}_W` (out, in, 3, 3), `conv{i}_b` (batch norm folded in), each
      conv 3x3 (padding 1) -> 2x2 max pool -> ReLU; then `fc{i}_W` (in, out), `fc{i}_b` with ReLU
      between (fc0 rows in channel-major (c, y, x) flatten order); input is pixels / 255.
    * feature MLP (`training.train_digits`): `mean`, `scale`, `W0`, `b0`, `W1`, `b1`, ... over `features`.
    """

    _cache: ClassVar[dict[str, DigitClassifier]] = {}

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        self.temperature = float(params.get("temperature", np.float32(1.0)))
        self.kind = "cnn" if "conv0_W" in params else "mlp"
        if self.kind == "cnn":
            self._init_cnn(params)
            return
        self.mean = params["mean"].astype(np.float32)
        self.scale = params["scale"].astype(np.float32)
        n_layers = sum(1 for k in params if k.startswith("W"))
        self.weights = [params[f"W{i}"].astype(np.float32) for i in range(n_layers)]
        self.biases = [params[f"b{i}"].astype(np.float32) for i in range(n_layers)]

    def _init_cnn(self, params: dict[str, np.ndarray]) -> None:
        """Re-lay the CNN weights for channels-last im2col: conv kernels as (9*in, out) in
        (ky, kx, in) order, fc0 rows in (y, x, c) order."""
        n_conv = sum(1 for k in params if k.startswith("conv") and k.endswith("_W"))
        n_fc = sum(1 for k in params if k.startswith("fc") and k.endswith("_W"))
        self.convs: list[tuple[np.ndarray, np.ndarray]] = []
        size = 28
        for i in range(n_conv):
            w = params[f"conv{i}_W"].astype(np.float32)
            self.convs.append((np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0])),
                               params[f"conv{i}_b"].astype(np.float32)))
            size //= 2
        self.fcs = [(params[f"fc{i}_W"].astype(np.float32), params[f"fc{i}_b"].astype(np.float32))
                    for i in range(n_fc)]
        w0 = self.fcs[0][0]
        c = self.convs[-1][0].shape[1]
        w0 = w0.reshape(c, size, size, -1).transpose(1, 2, 0, 3).reshape(size * size * c, -1)
        self.fcs[0] = (np.ascontiguousarray(w0), self.fcs[0][1])

    @classmethod
    def load(cls, path: str | Path | None = None) -> DigitClassifier:
        """Load (once per path, then cached) the model file; default `DEFAULT_MODEL`."""
        key = str(Path(path) if path is not None else DEFAULT_MODEL)
        if key not in cls._cache:
            with np.load(key) as data:
                cls._cache[key] = cls({k: data[k] for k in data.files})
        return cls._cache[key]

    @staticmethod
    def _conv_pool_relu(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        """3x3 convolution (padding 1) of channels-last float32 x (n, h, w, c) as one im2col
        matmul, then 2x2 max pool, bias and ReLU (max pool commutes with a per-channel bias);
        returns (n, h // 2, w // 2, out)."""
        n, h, wd, c = x.shape
        p = np.zeros((n, h + 2, wd + 2, c), np.float32)
        p[:, 1:-1, 1:-1] = x
        if c >= 8:  # a kernel row (3 pixels x c channels) is contiguous: one strided copy
            sn, sy, sx, sc = p.strides
            cols = np.lib.stride_tricks.as_strided(p, (n, h, wd, 3, 3 * c), (sn, sy, sx, sy, sc), writeable=False)
        else:  # few channels: nine shifted slices copy faster
            cols = np.empty((n, h, wd, 9, c), np.float32)
            for k in range(9):
                dy, dx = divmod(k, 3)
                cols[:, :, :, k] = p[:, dy : dy + h, dx : dx + wd]
        y = (cols.reshape(n * h * wd, 9 * c) @ w).reshape(n, h, wd, -1)
        y = np.maximum(np.maximum(y[:, 0:-1:2, 0:-1:2], y[:, 0:-1:2, 1::2]),
                       np.maximum(y[:, 1::2, 0:-1:2], y[:, 1::2, 1::2]))
        y += b
        return np.maximum(y, 0.0, out=y)

    def logits(self, cells28: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (n, 11) for a batch of 28x28 ink-high uint8 images."""
        if self.kind == "cnn":
            h = np.asarray(cells28, dtype=np.float32).reshape(-1, 28, 28, 1) * np.float32(1 / 255)
            for w, b in self.convs:
                h = self._conv_pool_relu(h, w, b)
            h = h.reshape(h.shape[0], -1)
            for w, b in self.fcs[:-1]:
                h = np.maximum(h @ w + b, 0.0)
            return h @ self.fcs[-1][0] + self.fcs[-1][1]
        h = (features(cells28) - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        return h @ self.weights[-1] + self.biases[-1]

    def predict_proba(self, cells28: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n, 11) over CLASSES; each row sums to 1."""
        cells28 = np.asarray(cells28)
        if cells28.size == 0:
            return np.zeros((0, len(CLASSES)), dtype=np.float64)
        z = self.logits(cells28).astype(np.float64)
        return _softmax(z / self.temperature)


class AveragedClassifier:
    """The mean of several classifiers' calibrated probabilities.

    The shipped CNN and feature MLP (both trained with page cells, `scripts/train_digits.sh`)
    read cells of simulated pages by held-out writers 97.2 % and 96.1 % right; their mean 97.3 %
    (`bench/digits_accuracy.py --page-cells`). The mean was kept from the first models, where it
    held the CNN's accuracy with the MLP's better calibration on writing unlike the training."""

    def __init__(self, members: list[DigitClassifier]) -> None:
        self.members = members

    def predict_proba(self, cells28: np.ndarray) -> np.ndarray:
        return np.mean([m.predict_proba(cells28) for m in self.members], axis=0)


class OnnxReader:
    """The v2 reader: an ensemble of CNNs (`training.train_ensemble`). Their feature extractors are one
    ONNX graph run by onnxruntime on one thread (a worker per core), created once per process;
    each member's output layer and calibration temperature are numpy arrays (`<model>_heads.npz`,
    or `heads` given: a campaign's adapted heads). Input cells are 28x28 ink-high uint8; the
    reading is the mean of the members' probabilities (members that disagree lower it)."""

    def __init__(self, path: str | Path = ONNX_MODEL, heads: dict[str, np.ndarray] | None = None) -> None:
        import json

        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        if heads is None:
            with np.load(self.path.with_name(self.path.stem + "_heads.npz")) as d:
                heads = {k: d[k] for k in d.files}
        n = sum(1 for k in heads if k.startswith("W"))
        self.heads = [(heads[f"W{k}"].astype(np.float32), heads[f"b{k}"].astype(np.float32),
                       float(heads[f"T{k}"])) for k in range(n)]
        meta = self.path.with_suffix(".json")
        self.figures = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else {}
        self.version = str(self.figures.get("version", self.path.stem))

    def with_heads(self, heads: dict[str, np.ndarray], version: str, figures: dict | None = None) -> OnnxReader:
        """The same feature extractor (its session shared) with other heads: a campaign's adapted
        reader (`ocr.adapt`, `ocr.versions`)."""
        out = object.__new__(OnnxReader)
        out.__dict__.update(self.__dict__)
        n = sum(1 for k in heads if k.startswith("W"))
        out.heads = [(heads[f"W{k}"].astype(np.float32), heads[f"b{k}"].astype(np.float32),
                      float(heads[f"T{k}"])) for k in range(n)]
        out.version, out.figures = version, dict(figures or {})
        return out

    def heads_dict(self) -> dict[str, np.ndarray]:
        """The heads as the heads file holds them."""
        out: dict[str, np.ndarray] = {}
        for k, (w, b, t) in enumerate(self.heads):
            out[f"W{k}"], out[f"b{k}"], out[f"T{k}"] = w, b, np.float32(t)
        return out

    def features(self, cells28: np.ndarray) -> list[np.ndarray]:
        """Each member's last hidden layer, (n, H_k) float32."""
        x = np.asarray(cells28, dtype=np.float32).reshape(-1, 1, 28, 28) * np.float32(1 / 255)
        return self.session.run(None, {"cells": x})

    def member_probs(self, cells28: np.ndarray) -> np.ndarray:
        """(n, members, 11) calibrated probabilities, one row per member."""
        cells28 = np.asarray(cells28)
        if cells28.size == 0:
            return np.zeros((0, len(self.heads), len(CLASSES)))
        z = np.stack([(f @ w + b).astype(np.float64) / t
                      for f, (w, b, t) in zip(self.features(cells28), self.heads, strict=True)], axis=1)
        z -= z.max(axis=2, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=2, keepdims=True)

    def predict_proba(self, cells28: np.ndarray) -> np.ndarray:
        """Probabilities (n, 11) over CLASSES: the members' mean."""
        cells28 = np.asarray(cells28)
        if cells28.size == 0:
            return np.zeros((0, len(CLASSES)), dtype=np.float64)
        return self.member_probs(cells28).mean(axis=1)


Classifier = DigitClassifier | AveragedClassifier | OnnxReader


class CellClassifier(Protocol):
    """The seam the page reader takes its digit reader through (ocr.read.PageReader): a batch of
    28x28 cells -> probabilities (n, len(CLASSES)). A reader with `member_probs` (an ensemble)
    also gives each member's vote."""

    def predict_proba(self, cells28: np.ndarray) -> np.ndarray: ...


@cache
def default_classifier() -> Classifier:
    """The station's reader, loaded once per process: the v2 ensemble (`ONNX_MODEL`) when it is
    shipped, else the v1 readers (CNN and feature MLP) averaged."""
    if ONNX_MODEL.is_file():
        return OnnxReader(ONNX_MODEL)
    return AveragedClassifier([DigitClassifier.load(CNN_MODEL), DigitClassifier.load(MLP_MODEL)])


def read_cells(crops: list[np.ndarray], model: Classifier | None = None) -> list[CellResult]:
    """Normalise and classify each crop (one comb cell each, grayscale uint8). Empty cells give
    CellResult(empty=True, probs=None, best='', confidence=0.0); others carry the calibrated
    probabilities over CLASSES, the most likely character and its probability."""
    return _classify([normalize_cell(c) for c in crops], model)


def _classify(norm: list[np.ndarray | None], model: Classifier | None) -> list[CellResult]:
    model = model or default_classifier()
    filled = [i for i, im in enumerate(norm) if im is not None]
    probs = model.predict_proba(np.stack([norm[i] for i in filled])) if filled else np.zeros((0, 11))
    out = [CellResult(True, None, "", 0.0) for _ in norm]
    for row, i in enumerate(filled):
        p = tuple(float(v) for v in probs[row])
        k = int(np.argmax(probs[row]))
        out[i] = CellResult(False, p, CLASSES[k], p[k])
    return out


def classify_cells(norm: list[np.ndarray | None], model: Classifier | None = None) -> list[CellResult]:
    """Classify cells already normalised (`normalize_strip`, `normalize_cell`; None: empty)."""
    return _classify(norm, model)


def read_strip(crop: np.ndarray, bounds: list[tuple[int, int]], rows: tuple[int, int],
               model: Classifier | None = None) -> list[CellResult]:
    """`normalize_strip` + classification: one CellResult per cell of the comb (see `read_cells`)."""
    return _classify(normalize_strip(crop, bounds, rows), model)
