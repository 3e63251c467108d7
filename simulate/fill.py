"""Draw a form's truth onto the clean raster of its printed page, the way a parent fills it.

Every position comes from the layout (`Box.to_px` at the page's dpi); sizes in mm go through
`ink.px_per_mm`. The drawing generator depends only on (seed, form id), so a form scanned twice
carries the same handwriting both times, at whatever dpi.
"""

from __future__ import annotations

import cv2
import numpy as np

from forms.layout import Box, Layout, Zone
from formstation import idnumber
from simulate import glyph_group, ink, photos
from simulate.decide import form_rng
from simulate.truth import FormTruth

STRAY_AREAS = (Box(3, 30, 9, 235), Box(197, 30, 9, 235), Box(151, 52, 6, 38))  # margins, beside printed data


class Pen:
    """Ink colour and stroke width of one writer, at one dpi."""

    def __init__(self, rng: np.random.Generator, color: str, dpi: float) -> None:
        self.dpi, self.k = dpi, ink.px_per_mm(dpi)
        self.color = ink.PENS["blue" if color == "blue" else str(rng.choice(["black", "blue_black"]))]
        self.width_mm = rng.uniform(0.3, 0.6)

    @property
    def width(self) -> float:
        return self.width_mm * self.k


# the order zones are drawn in (the drawing generator is shared: today's layout draws as it did)
DRAW_ORDER = ("text", "digits", "photo", "attachment", "signature", "checkbox")


def draw_form(page: np.ndarray, layout: Layout, t: FormTruth, dpi: float, seed: int,
              writers: str = "heldout", glyph_halves: bool = False) -> None:
    """Fill `page` (BGR uint8 at `dpi`, unaligned = as printed) with the truth's handwriting, digits
    from the `writers` bank (`simulate.WRITERS`; with `glyph_halves`, from the group of its glyphs
    `simulate.glyph_group` gives the form): every field of the form's `layout` the truth has a
    value for, drawn as its kind (and role: whose name a signature is) says."""
    rng = form_rng(seed, 2, t.person.form_id)
    pen = Pen(rng, t.marks.get("pen", "black"), dpi)
    bank = ink.load_bank(seed, writers)
    if glyph_halves:
        bank = bank.group(*glyph_group(t.person.form_id))
    for z in sorted(layout.zones_of(*DRAW_ORDER), key=lambda z: DRAW_ORDER.index(z.kind)):
        value = t.fields.get(z.name)
        if not value or value == "none":
            continue
        if z.kind == "text":
            _text(page, rng, pen, z.box, value, 0.62)
        elif z.kind == "digits":
            _digits(page, rng, pen, bank, z, value, t.marks, dpi)
        elif z.kind == "photo":
            _photo(page, rng, z.box, value, t.marks, dpi)
        elif z.kind == "attachment":
            _id_copy(page, rng, z.box, t, value, dpi)
        elif z.kind == "signature":
            signer = t.marks["guardian_name"] if z.role == "guardian_signature" else t.final_name()
            _signature(page, rng, pen, z.box, signer, t.marks)
        elif z.kind == "checkbox":
            _relation(page, rng, pen, z, value, t.marks, dpi)
    areas = _stray_areas(layout)
    for _ in range(t.marks.get("stray_marks", 0)):
        _stray(page, rng, pen, dpi, areas)


def _overlaps(a: Box, b: Box) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def _stray_areas(layout: Layout) -> tuple[Box, ...]:
    """The stray-mark areas clear of the layout's fields and barcode (a stray mark is not a reading)."""
    taken = [z.box for z in layout.zones] + [layout.barcode_box]
    return tuple(a for a in STRAY_AREAS if not any(_overlaps(a, b) for b in taken)) or STRAY_AREAS[:2]


def _place(page: np.ndarray, alpha: np.ndarray, box: tuple[int, int, int, int], pen: Pen,
           rng: np.random.Generator, fx: float = 0.5, jitter: float = 0.06) -> None:
    """Put `alpha` inside the pixel box (clipped to it), at horizontal fraction fx, with jitter."""
    x0, y0, x1, y1 = box
    h, w = alpha.shape
    x = int(x0 + (x1 - x0 - w) * fx + rng.normal(0, jitter) * (x1 - x0))
    y = int(y0 + (y1 - y0 - h) / 2 + rng.normal(0, jitter) * (y1 - y0))
    x, y = min(max(x, x0), max(x0, x1 - w)), min(max(y, y0), max(y0, y1 - h))
    ink.blend(page, alpha[: y1 - y, : x1 - x], x, y, pen.color)


def _inset(b: Box, mm: float) -> Box:
    return Box(b.x + mm, b.y + mm, b.w - 2 * mm, b.h - 2 * mm)


def _text(page, rng, pen: Pen, box: Box, text: str, frac: float) -> None:
    a = ink.cjk_alpha(rng, text, box.h * frac * pen.k, pen.width)
    _place(page, a, _inset(box, 1.0).to_px(pen.dpi), pen, rng, fx=rng.uniform(0.05, 0.35))


def _digit_box(cell: Box, touching: bool, rng: np.random.Generator) -> tuple[Box, float]:
    """Where the digit goes inside (or across) its cell, and its height as a share of the cell."""
    if touching:
        dx, dy = rng.uniform(-0.35, 0.35) * cell.w, rng.uniform(-0.25, 0.25) * cell.h
        return Box(cell.x + dx, cell.y + dy, cell.w, cell.h), rng.uniform(0.85, 1.15)
    dx, dy = rng.normal(0, 0.07) * cell.w, rng.normal(0, 0.06) * cell.h
    return Box(cell.x + dx, cell.y + dy, cell.w, cell.h), rng.uniform(0.55, 0.8)


def _digits(page, rng, pen: Pen, bank: ink.DigitBank, z: Zone, value: str, marks: dict, dpi: float) -> None:
    touching = set(marks.get("touching", {}).get(z.name, []))
    crossed = marks.get("crossed_out", {}).get(z.name)
    for i, (cell, ch) in enumerate(zip(z.cell_boxes(), value, strict=False)):
        where, frac = _digit_box(cell, i in touching, rng)
        x0, y0, x1, y1 = where.to_px(dpi)
        if crossed and crossed["cell"] == i:
            _draw_digit(page, rng, pen, bank, crossed["wrong"], (x0, y0, x1, y1), frac)
            s = ink.strike_alpha(rng, x1 - x0, y1 - y0, pen.width * 1.1)
            ink.blend(page, s, x0, y0, pen.color)
            above = Box(cell.x + cell.w * 0.1, cell.y - cell.h * 0.62, cell.w * 0.8, cell.h * 0.58)
            _draw_digit(page, rng, pen, bank, ch, above.to_px(dpi), 0.9)
            continue
        _draw_digit(page, rng, pen, bank, ch, (x0, y0, x1, y1), frac)


def _draw_digit(page, rng, pen: Pen, bank: ink.DigitBank, ch: str, px: tuple[int, int, int, int],
                frac: float) -> None:
    x0, y0, x1, y1 = px
    a = ink.digit_alpha(rng, bank.pick(rng, ch), (y1 - y0) * frac, pen.width)
    h, w = a.shape
    x = int((x0 + x1 - w) / 2)
    y = int((y0 + y1 - h) / 2)
    ink.blend(page, a, x, y, pen.color)


def _paste(page: np.ndarray, img: np.ndarray, cx: float, cy: float, angle: float) -> None:
    """Paste an opaque picture (gray or BGR) centred at (cx, cy), turned by `angle` degrees,
    with the thin shadow a pasted paper edge casts in a scan."""
    img = img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    h, w = img.shape[:2]
    pad = 4
    src = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    mask = np.zeros(src.shape[:2], np.float32)
    mask[pad:pad + h, pad:pad + w] = 1.0
    m = cv2.getRotationMatrix2D((src.shape[1] / 2, src.shape[0] / 2), angle, 1.0)
    m[0, 2] += cx - src.shape[1] / 2
    m[1, 2] += cy - src.shape[0] / 2
    size = (page.shape[1], page.shape[0])
    x0, y0 = int(max(0, cx - w)), int(max(0, cy - h))
    x1, y1 = int(min(size[0], cx + w)), int(min(size[1], cy + h))
    m[0, 2] -= x0
    m[1, 2] -= y0
    warped = cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    a = cv2.warpAffine(mask, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    shadow = np.clip(cv2.GaussianBlur(a, (0, 0), 1.2) * 1.6, 0, 1) * 0.35
    region = page[y0:y1, x0:x1].astype(np.float32)
    region *= (1 - np.maximum(shadow - a, 0))[..., None] if page.ndim == 3 else 1 - np.maximum(shadow - a, 0)
    if page.ndim == 2:
        warped = cv2.cvtColor(warped, cv2.COLOR_BGR2GRAY)
        out = region * (1 - a) + warped * a
    else:
        out = region * (1 - a[..., None]) + warped * a[..., None]
    page[y0:y1, x0:x1] = np.clip(out, 0, 255).astype(np.uint8)


def _photo(page, rng, box: Box, style: str, marks: dict, dpi: float) -> None:
    k = ink.px_per_mm(dpi)
    scale = rng.uniform(0.92, 1.04)
    img = photos.portrait(style, int(25 * scale * k), int(35 * scale * k), marks["photo_look"])
    cx, cy = box.center
    _paste(page, img, (cx + rng.normal(0, 0.8)) * k, (cy + rng.normal(0, 0.8)) * k, rng.normal(0, 1.2))


def _id_copy(page, rng, box: Box, t: FormTruth, idn: str, dpi: float) -> None:
    k = ink.px_per_mm(dpi)
    name = t.final_name()
    img = photos.id_copy(rng, k, name, idnumber.gender(idn), idnumber.birth_date(idn), idn)
    cx, cy = box.center
    _paste(page, img, (cx + rng.normal(0, 1.0)) * k, (cy + rng.normal(0, 1.0)) * k, rng.normal(0, 1.5))


def _signature(page, rng, pen: Pen, box: Box, name: str, marks: dict) -> None:
    inner = _inset(box, 1.5)
    if marks.get("signature_style") == "scribble":
        w, h = int(inner.w * rng.uniform(0.45, 0.8) * pen.k), int(inner.h * rng.uniform(0.6, 0.95) * pen.k)
        a = ink.scribble_alpha(rng, w, h, pen.width)
    else:
        a = ink.cjk_alpha(rng, name, min(inner.h * 0.8, 11) * pen.k, pen.width, spacing=rng.uniform(0.85, 1.1))
    _place(page, a, inner.to_px(pen.dpi), pen, rng, fx=rng.uniform(0.1, 0.6))


def _relation(page, rng, pen: Pen, z: Zone, value: str, marks: dict, dpi: float) -> None:
    opt = next(o for o in z.options if o.name == value)
    grow = rng.uniform(0.1, 0.3) * opt.box.w
    b = Box(opt.box.x - grow / 2, opt.box.y - grow * 0.8, opt.box.w + grow, opt.box.h + grow)
    x0, y0, x1, y1 = b.to_px(dpi)
    a = ink.tick_alpha(rng, marks.get("relation_style", "check"), x1 - x0, pen.width)
    ink.blend(page, a, x0, y0, pen.color)


def _stray(page, rng, pen: Pen, dpi: float, areas: tuple[Box, ...] = STRAY_AREAS) -> None:
    area = areas[int(rng.integers(len(areas)))]
    size = rng.uniform(2.5, 5.0)
    b = Box(area.x + rng.uniform(0, area.w - size), area.y + rng.uniform(0, area.h - size), size, size)
    x0, y0, x1, _ = b.to_px(dpi)
    ink.blend(page, ink.stray_alpha(rng, max(4, x1 - x0), pen.width), x0, y0, pen.color)
