"""Digits a parent rewrote above a comb box: the usual way to correct one digit is to strike the box
out and write the right digit over it, in the space above the comb.

`find_rewrites` looks in a band above a comb for pen ink that is not the printer's (the blank form,
`forms.printing.blank_form`, says where printed lines and labels are; it is registered on the
page's own lines and text around the comb first (row and column profiles), so a page aligned a little off does not turn
printed text into "handwriting"), leaves out what hangs down from the comb above, scanner streaks
and the top of a digit overrunning its own box, and gives each remaining glyph, MNIST-framed, to
the box below its middle. `ocr.read` reads it with the digit models as that box; the reading is a
suggestion for the reviewer: a rewrite always sends its field to review.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from forms.layout import Zone, mm_to_px
from ocr.digits import darkness, ink_threshold, labels_mask, soft_glyph

ABOVE_MM = 6.0  # the band above a comb searched for rewritten digits
BELOW_TOP_MM = 0.4  # ... down to just under the comb's top line
PRINTED_GROW_MM = 0.25  # printed ink grown by this much (what registration and blur leave) before it is masked
MAX_SHIFT_MM = 2.0  # the blank form is registered on the page around each comb up to this far
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


@dataclass(frozen=True)
class Printed:
    """The blank form at the aligned page's resolution: its darkness and its ink (bool)."""

    dark: np.ndarray
    ink: np.ndarray


def printed_ink(blank: np.ndarray, dpi: float) -> Printed:
    """What the printer put on every page of the layout, from `forms.printing.blank_form`."""
    dark = darkness(blank)
    return Printed(dark, dark > 0.15)


def find_rewrites(page: np.ndarray, z: Zone, printed: Printed, dpi: float) -> list[Rewrite]:
    """Glyphs written above comb `z` on an aligned grey page, at most one per box, left to right."""
    k = mm_to_px(1.0, dpi)
    cells = [c.to_px(dpi) for c in z.cell_boxes()]
    x0, y0, x1, _ = z.box.to_px(dpi)
    cell_w = (x1 - x0) / max(1, len(cells))
    # the local frame: from HANG_MM over the band down into the comb; the band inside it
    ay0, ay1 = max(0, round(y0 - (ABOVE_MM + HANG_MM) * k)), min(page.shape[0], round(y0 + 3 * k))
    left, right = max(0, round(x0 - 0.5 * cell_w)), min(page.shape[1], round(x1 + 0.5 * cell_w))
    if right <= left or ay1 <= y0 + 2 * k:
        return []
    dark = darkness(page[ay0:ay1, left:right])
    band_rows = slice(max(0, round(y0 - ABOVE_MM * k) - ay0), round(y0 - 0.5 * k) - ay0)  # as laid out
    ink_printed, dx, dy = _registered(printed, dark, ay0, left, round(MAX_SHIFT_MM * k), band_rows)
    line = y0 + dy - ay0  # the comb's top line as printed on this page, in frame rows
    top, bottom = max(0, round(line - ABOVE_MM * k)), round(line + BELOW_TOP_MM * k)
    cells = [(a + dx, b + dx) for a, _, b, _ in cells]
    r = max(1, round(PRINTED_GROW_MM * k))
    mask = cv2.dilate(ink_printed.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2)) > 0
    thr = ink_threshold(dark[top:bottom][~mask[top:bottom]], 99.8)
    pen = (dark > thr) & ~mask
    # strokes crossing printed ink are bridged within the band (not across the comb's top line, which
    # would join a rewrite to the digit below it)
    ink = _bridge(dark[top:bottom] > thr, mask[top:bottom], round(BRIDGE_MM * k))
    free_rows = (~mask[top:bottom]).sum(axis=0)
    ink[:, ink.sum(axis=0) >= STREAK_SHARE * np.maximum(free_rows, 1)] = False  # streaks down the scan
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    below = pen[line:line + round(TOUCH_MM * k)].any(axis=0)  # pen just under the top line, per column
    near_line = line - top - TOUCH_MM * k  # band rows from here down are next to the top line
    hang = round(HANG_MM * k)
    groups: dict[int, list[int]] = {}
    hanging: set[int] = set()
    for i in sorted(range(1, n), key=lambda j: stats[j][1]):  # top down
        cx, cy, w, h, area = stats[i]
        c0, c1 = max(0, cx - 1), cx + w + 1
        above_band = pen[max(0, top + cy - hang):top, c0:c1].any() if cy < hang else False
        if above_band or any(int(j) in hanging for j in np.unique(labels[max(0, cy - hang):cy, c0:c1]) if j):
            hanging.add(i)  # the lower end of something above: a tail from the comb above, a streak
            continue
        if area < 0.5 * k * k:  # specks
            continue
        if cy + h >= near_line and below[cx:cx + w].any() and h < THROUGH_MIN_MM * k:
            continue  # the top of a digit in its box, reaching up through the line
        mid = left + cx + w / 2
        cell = next((j for j, (a, b) in enumerate(cells) if a <= mid < b), None)
        if cell is not None:
            groups.setdefault(cell, []).append(i)
    out = []
    band_dark = dark[top:bottom]
    for cell, ids in sorted(groups.items()):
        glyph_mask = labels_mask(labels, n, ids)
        ys, xs = np.nonzero(glyph_mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        if h < MIN_HEIGHT_MM * k or w > MAX_WIDTH_CELLS * cell_w or w < MIN_WIDTH_MM * k:
            continue
        glyph = soft_glyph(band_dark, glyph_mask, thr)
        if glyph is not None:
            y = ay0 + top
            out.append(Rewrite(cell, glyph, (left + int(xs.min()), y + int(ys.min()),
                                             left + int(xs.max()) + 1, y + int(ys.max()) + 1)))
    return out


def _registered(printed: Printed, dark: np.ndarray, y0: int, x0: int, max_shift: int,
                band: slice) -> tuple[np.ndarray, int, int]:
    """(ink, dx, dy): the blank form's ink over the frame (page rows y0.., columns x0.., the shape
    of `dark`), moved by the offset (dx, dy) px that best lays the blank's print on the page's:
    rows from the long printed lines across the frame, columns from the printed text in `band`
    (rows of the frame; where there is none, nothing there needs it). Profiles, not images: the
    parents' ink is small beside a line across the form."""
    h, w = dark.shape
    ref = printed.dark[y0:y0 + h, x0:x0 + w]
    dx = dy = 0
    if ref.shape == dark.shape and h > 2 * max_shift + 8:
        dy = _profile_shift(ref.sum(axis=1), dark.sum(axis=1), max_shift)
        text = ref[band]
        if float(text.sum()) > 2.0 * h and w > 2 * max_shift + 8:
            rows = slice(band.start + dy, band.stop + dy) if band.start + dy >= 0 else band
            dx = _profile_shift(text.sum(axis=0), dark[rows].sum(axis=0), max_shift)
    # the ink the page shows at (y, x) is the blank's at (y - dy, x - dx)
    big = np.zeros((h + 2 * max_shift, w + 2 * max_shift), bool)
    ys, xs = max(0, y0 - max_shift), max(0, x0 - max_shift)
    src = printed.ink[ys:y0 + h + max_shift, xs:x0 + w + max_shift]
    big[ys - (y0 - max_shift):ys - (y0 - max_shift) + src.shape[0],
        xs - (x0 - max_shift):xs - (x0 - max_shift) + src.shape[1]] = src
    return big[max_shift - dy:max_shift - dy + h, max_shift - dx:max_shift - dx + w], dx, dy


def _profile_shift(ref: np.ndarray, page: np.ndarray, max_shift: int) -> int:
    """The shift d (|d| <= max_shift) with page[i + d] best matching ref[i] (mean-removed
    correlation), or 0 unless that match is clear (correlation >= 0.5)."""
    n = len(ref) - 2 * max_shift
    a = ref[max_shift:max_shift + n] - ref[max_shift:max_shift + n].mean()
    b = np.lib.stride_tricks.sliding_window_view(page, n)[:2 * max_shift + 1]  # row j: shift j - max_shift
    b = b - b.mean(axis=1, keepdims=True)
    corr = (b @ a) / np.maximum(np.sqrt((b * b).sum(axis=1) * float((a * a).sum())), 1e-9)
    j = int(np.argmax(corr))
    return j - max_shift if corr[j] >= 0.5 else 0


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
