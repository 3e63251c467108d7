"""Digits a parent rewrote above a comb box: the usual way to correct one digit is to strike the box
out and write the right digit over it, in the space above the comb.

`find_rewrites` looks in a band above a comb for pen ink that is not the printer's (the blank form,
`forms.printing.blank_form`, says where printed lines and labels are), leaves out what hangs down
from the comb above, scanner streaks and the top of a digit overrunning its own box, and gives each
remaining glyph, MNIST-framed, to the box below its middle. `ocr.read` reads it with the digit
models as that box; the reading is a suggestion for the reviewer: a rewrite always sends its field
to review.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms.layout import MM_PER_INCH, Zone
from ocr.digits import INK_THRESHOLD, MIN_INK_THRESHOLD, darkness, frame_glyph

ABOVE_MM = 6.0  # the band above a comb searched for rewritten digits
BELOW_TOP_MM = 0.4  # ... down to just under the comb's top line
PRINTED_GROW_MM = 0.5  # printed ink grown by this much (alignment residual) before it is masked
MIN_HEIGHT_MM = 2.0  # a rewritten digit is at least this tall (dots, dashes and ticks are not)
STREAK_SHARE = 0.85  # a column inked over this share of the band's free rows is a scanner streak
MIN_WIDTH_MM = 0.5  # a hand never draws a digit this narrow: a straight vertical streak or fold
MAX_WIDTH_CELLS = 1.6  # ... and at most this wide, in box widths (a strike or a scribble is wider)
BRIDGE_MM = 1.6  # a printed run up to this tall, with pen above and below it, is crossed by the pen
TOUCH_MM = 1.2  # ink this close above and below the comb's top line may be one stroke through it
THROUGH_MIN_MM = 3.2  # ink on the top line taller than this above it is a rewrite written low
HANG_MM = 1.6  # pen ink this far above a glyph's top means it hangs from above


@dataclass(frozen=True)
class Rewrite:
    cell: int  # the box below the glyph
    glyph: np.ndarray  # 28x28 uint8, ink-high (MNIST framing)
    box: tuple[int, int, int, int]  # page px (x0, y0, x1, y1)


def printed_mask(blank: np.ndarray, dpi: float) -> np.ndarray:
    """Where the printer put ink on the blank form, grown by PRINTED_GROW_MM (bool, page shape)."""
    ink = (darkness(blank) > 0.15).astype(np.uint8)
    r = max(1, round(PRINTED_GROW_MM * dpi / MM_PER_INCH))
    return cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def find_rewrites(page: np.ndarray, z: Zone, printed: np.ndarray, dpi: float) -> list[Rewrite]:
    """Glyphs written above comb `z` on an aligned grey page, at most one per box, left to right."""
    k = dpi / MM_PER_INCH
    cells = [c.to_px(dpi) for c in z.cell_boxes()]
    x0, y0, x1, _ = z.box.to_px(dpi)
    cell_w = (x1 - x0) / max(1, len(cells))
    top, bottom = max(0, round(y0 - ABOVE_MM * k)), round(y0 + BELOW_TOP_MM * k)
    left, right = max(0, round(x0 - 0.5 * cell_w)), min(page.shape[1], round(x1 + 0.5 * cell_w))
    if bottom <= top or right <= left:
        return []
    # paper level from a taller window than the band, so an almost empty band still finds its paper
    win = page[top:min(page.shape[0], bottom + round(3 * k)), left:right]
    dark = darkness(win)[: bottom - top]
    free = dark[~printed[top:bottom, left:right]]
    peak = float(np.percentile(free, 99.8)) if free.size else 0.0
    thr = float(np.clip(0.45 * peak, MIN_INK_THRESHOLD, INK_THRESHOLD))
    ink = _bridge(dark > thr, printed[top:bottom, left:right], round(BRIDGE_MM * k))
    free_rows = (~printed[top:bottom, left:right]).sum(axis=0)
    ink[:, ink.sum(axis=0) >= STREAK_SHARE * np.maximum(free_rows, 1)] = False  # streaks down the scan
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    below = _ink_below_top_line(page, z, printed, dpi, left, right, thr)
    line_zone = y0 - top - TOUCH_MM * k  # band rows below this are next to the comb's top line
    groups: dict[int, list[int]] = {}
    hanging: set[int] = set()
    for i in sorted(range(1, n), key=lambda j: stats[j][1]):  # top down
        cx, cy, w, h, area = stats[i]
        if _hangs(page, printed, labels, hanging, top, left, cy, cx, w, thr, k):
            hanging.add(i)  # the lower end of something above: a tail from the comb above, a streak
            continue
        if area < 0.5 * k * k:  # specks
            continue
        if cy + h >= line_zone and below[cx:cx + w].any() and h < THROUGH_MIN_MM * k:
            continue  # the top of a digit in its box, reaching up through the line
        mid = left + cx + w / 2
        cell = next((j for j, (a, _, b, _) in enumerate(cells) if a <= mid < b), None)
        if cell is not None:
            groups.setdefault(cell, []).append(i)
    out = []
    for cell, ids in sorted(groups.items()):
        mask = np.isin(labels, ids)
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        if h < MIN_HEIGHT_MM * k or w > MAX_WIDTH_CELLS * cell_w or w < MIN_WIDTH_MM * k:
            continue
        soft = np.where(cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0, dark, 0.0)
        scale = max(float(np.percentile(dark[mask], 90)), thr)
        glyph = frame_glyph(np.clip(soft / scale, 0.0, 1.0))
        if glyph is not None:
            box = (left + int(xs.min()), top + int(ys.min()), left + int(xs.max()) + 1, top + int(ys.max()) + 1)
            out.append(Rewrite(cell, glyph, box))
    return out


def _bridge(dark: np.ndarray, printed: np.ndarray, span: int) -> np.ndarray:
    """Pen ink off the printed ink, plus the dark printed pixels a pen stroke crosses: pen within
    `span` px straight above and below (a stroke through a printed line or a label's stroke)."""
    pen = (dark & ~printed).astype(np.uint8)
    if span < 1:
        return pen > 0
    kernel = np.ones((span + 1, 1), np.uint8)
    above = cv2.dilate(pen, kernel, anchor=(0, span)) > 0  # pen in the span rows up to here
    below = cv2.dilate(pen, kernel, anchor=(0, 0)) > 0  # pen in the span rows down from here
    return (pen > 0) | (dark & printed & above & below)


def _hangs(page: np.ndarray, printed: np.ndarray, labels: np.ndarray, hanging: set[int], top: int, left: int,
           cy: int, cx: int, w: int, thr: float, k: float) -> bool:
    """Whether the band component with top row `cy` and columns [cx, cx + w) (band coordinates) has
    pen ink within HANG_MM above it, across a printed line, that is above the band or itself hangs."""
    a, b = cy - round(HANG_MM * k), cy
    c0, c1 = max(0, cx - 1), min(labels.shape[1], cx + w + 1)
    if a < 0:  # the window reaches above the band: look at the page there
        y0 = max(0, top + a)
        pen = (darkness(page[y0:top + round(3 * k), left + c0:left + c1])[: top - y0] > thr) \
            & ~printed[y0:top, left + c0:left + c1]
        if pen.any():
            return True
    window = labels[max(0, a):b, c0:c1]
    return any(int(j) in hanging for j in np.unique(window) if j)


def _ink_below_top_line(page: np.ndarray, z: Zone, printed: np.ndarray, dpi: float, left: int, right: int,
                        thr: float) -> np.ndarray:
    """Per column of the band, whether pen ink goes on just under the comb's top line (a digit in
    its box reaching up through the line)."""
    k = dpi / MM_PER_INCH
    _, y0, _, _ = z.box.to_px(dpi)
    a, b = round(y0), round(y0 + TOUCH_MM * k)
    ink = (darkness(page[a:b, left:right]) > thr) & ~printed[a:b, left:right]
    return ink.any(axis=0)
