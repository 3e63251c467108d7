"""Render pre-filled application forms to PDF with reportlab. Pure: records in, one PDF file out.

Everything is placed from the `Layout` (millimetres); the only mm -> pt conversion is `_pt`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from forms.barcode import PageCode
from forms.layout import PRINTED_ROLES, Box, CombInk, Layout, Zone

FONT = "FSZenHei"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/ukai.ttc",
)
COMB_GREY = 0.45  # comb and box lines: mid grey, so ink stands out after binarisation
LABEL_LEFT_MAX_H = 12  # zones up to this height get their label on the left, taller ones above


@dataclass(frozen=True)
class PrintRecord:
    """One student's pre-filled data, as printed on the form."""

    form_id: str
    school: str
    class_name: str
    name: str
    gender: str
    id_number: str
    student_no: str
    bank: str
    photo_path: str | None = None

    def value(self, role: str) -> str:
        """What a printed field of this role shows (forms.layout.PRINTED_ROLES: its roster column)."""
        col = PRINTED_ROLES.get(role, "")
        return str(getattr(self, col, "") or "") if col else ""


class FontMissing(RuntimeError):
    pass


def register_font() -> str:
    if FONT in pdfmetrics.getRegisteredFontNames():
        return FONT
    for path in FONT_CANDIDATES:
        if Path(path).is_file():
            pdfmetrics.registerFont(TTFont(FONT, path, subfontIndex=0))
            return FONT
    raise FontMissing("no TrueType CJK font found; install fonts-wqy-zenhei (see README)")


class _Page:
    """Drawing helpers bound to one canvas page, all in layout millimetres."""

    def __init__(self, c: Canvas, layout: Layout) -> None:
        self.c, self.h = c, layout.height_mm

    def _pt(self, box: Box) -> tuple[float, float, float, float]:
        """mm box from the top-left -> reportlab points from the bottom-left (x, y, w, h)."""
        return box.x * mm, (self.h - box.y - box.h) * mm, box.w * mm, box.h * mm

    def rect(self, box: Box, grey: float = 0.0, width: float = 0.6, fill: bool = False,
             rgb: tuple[int, ...] = ()) -> None:
        """A rectangle in `grey` (0 black .. 1 white), or in colour `rgb` (0..255) when given."""
        if rgb:
            self.c.setStrokeColorRGB(*(v / 255 for v in rgb))
            self.c.setFillColorRGB(*(v / 255 for v in rgb))
        else:
            self.c.setStrokeGray(grey)
            self.c.setFillGray(grey)
        self.c.setLineWidth(width)
        self.c.rect(*self._pt(box), stroke=1, fill=int(fill))

    def text(self, x_mm: float, y_mm: float, s: str, size: float = 9, grey: float = 0.0,
             anchor: str = "left") -> None:
        """Draw `s` with its baseline at y_mm."""
        self.c.setFillGray(grey)
        self.c.setFont(FONT, size)
        x, y = x_mm * mm, (self.h - y_mm) * mm
        {"left": self.c.drawString, "right": self.c.drawRightString,
         "center": self.c.drawCentredString}[anchor](x, y, s)

    def fit_text(self, box: Box, s: str, size: float = 10) -> None:
        """Value text inside a box, shrunk to fit its width, vertically centred."""
        while size > 5 and pdfmetrics.stringWidth(s, FONT, size) > (box.w - 2) * mm:
            size -= 0.5
        self.text(box.x + 1.2, box.y + box.h / 2 + size * 0.35 / 2.83, s, size)


def _draw_marks(p: _Page, layout: Layout) -> None:
    """ArUco markers as vector squares: 4x4 bits plus a one-module black border."""
    m = layout.marks
    dic = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, m.dictionary))
    for marker_id, (x, y) in m.positions.items():
        bits = cv2.aruco.generateImageMarker(dic, marker_id, 6)  # 6x6 px, one px per module
        s = m.size_mm / 6
        for r in range(6):
            for col in range(6):
                if bits[r, col] < 128:
                    p.rect(Box(x + col * s, y + r * s, s, s), grey=0.0, width=0.0, fill=True)


def _draw_barcode(p: _Page, layout: Layout, code: PageCode) -> None:
    box = layout.barcode_box
    w = QrCodeWidget(code.encode(), barLevel="M", barBorder=2)
    x0, y0, x1, y1 = w.getBounds()
    d = Drawing(box.w * mm, box.h * mm, transform=[box.w * mm / (x1 - x0), 0, 0, box.h * mm / (y1 - y0), 0, 0])
    d.add(w)
    x, y, _, _ = p._pt(box)
    renderPDF.draw(d, p.c, x, y)
    p.text(box.x - 1.5, box.y + box.h - 1.5, f"表单编号 {code.form_id}", 7.5, anchor="right")


def _label(p: _Page, z: Zone) -> None:
    if z.box.h <= LABEL_LEFT_MAX_H:
        p.text(z.box.x - 3, z.box.y + z.box.h / 2 + 1.2, z.label, 8.5, anchor="right")
    else:
        p.text(z.box.x, z.box.y - 1.2, z.label, 7.5, grey=0.25)


def _draw_handwritten(p: _Page, z: Zone, comb: CombInk) -> None:
    _label(p, z)
    if z.kind == "digits":  # the layout's comb ink: grey, or a drop-out colour (its band kept clear by the schema)
        for cell in z.cell_boxes():
            p.rect(cell, grey=COMB_GREY, width=0.7, rgb=comb.rgb if comb.dropout else ())
    elif z.kind == "checkbox":
        for opt in z.options:
            p.rect(opt.box, grey=0.0, width=0.7)
            p.text(opt.box.x + opt.box.w + 1.2, opt.box.y + opt.box.h - 0.8, opt.label, 8.5)
    else:
        p.rect(z.box, grey=COMB_GREY, width=0.7)


def _draw_printed(p: _Page, z: Zone, rec: PrintRecord) -> None:
    if z.role == "printed_photo":
        if rec.photo_path and Path(rec.photo_path).is_file():
            x, y, w, h = p._pt(z.box)
            p.c.drawImage(rec.photo_path, x, y, w, h, preserveAspectRatio=True, anchor="c")
        else:
            p.rect(z.box, grey=0.7, width=0.4)
            p.text(z.box.x + z.box.w / 2, z.box.y + z.box.h / 2, "无预留照片", 7, grey=0.5, anchor="center")
        return
    _label(p, z)
    p.rect(z.box, grey=0.6, width=0.4)
    p.fit_text(z.box, rec.value(z.role))


def draw_form(c: Canvas, layout: Layout, rec: PrintRecord) -> None:
    """One form page: marks, barcode, title, sections, printed data, empty handwriting zones, guide."""
    p = _Page(c, layout)
    _draw_marks(p, layout)
    _draw_barcode(p, layout, PageCode(rec.form_id, layout.key, 1))
    p.text(layout.width_mm / 2, 30, layout.title, 18, anchor="center")
    p.text(layout.width_mm / 2, 37, layout.subtitle, 10, anchor="center")
    head = f"{rec.school}  {rec.class_name}"
    title_left = layout.width_mm / 2 - pdfmetrics.stringWidth(layout.title, FONT, 18) / mm / 2
    clear = 24 + pdfmetrics.stringWidth(head, FONT, 8.5) / mm + 2 < title_left  # else below the subtitle
    p.text(24, 26 if clear else 42, head, 8.5, grey=0.2)
    for s in layout.sections:
        p.rect(s.box, grey=0.0, width=0.8)
        p.text(s.box.x + 2, s.box.y + 4.2, s.title, 9.5)
    for z in layout.zones:
        (_draw_printed(p, z, rec) if z.kind == "printed" else _draw_handwritten(p, z, layout.comb_ink))
    gb = layout.guide_box
    for i, line in enumerate(layout.guide_lines):
        p.text(gb.x, gb.y + 3 + i * 3.8, line, 7.2, grey=0.15)
    c.showPage()


def render_pdf(layout: Layout, records: Iterable[PrintRecord], out: Path, title: str = "") -> int:
    """Write all `records` as one PDF (one A4 page each); returns the page count. Deterministic."""
    register_font()
    c = Canvas(str(out), pagesize=(layout.width_mm * mm, layout.height_mm * mm), invariant=1)
    c.setTitle(title or layout.title)
    c.setAuthor("Form Station")
    n = 0
    for rec in records:
        draw_form(c, layout, rec)
        n += 1
    c.save()
    return n


def blank_form(layout: Layout, dpi: float, color: bool = False) -> np.ndarray:
    """The form as printed with no student's data, rasterised to a grey uint8 image at `dpi` (BGR
    with `color`): what is printer's ink on every page of this layout (lines, labels, titles), for
    telling it apart from a parent's pen."""
    import pypdfium2 as pdfium

    register_font()
    buf = io.BytesIO()
    c = Canvas(buf, pagesize=(layout.width_mm * mm, layout.height_mm * mm), invariant=1)
    draw_form(c, layout, PrintRecord("F0000000", "", "", "", "", "", "", ""))
    c.save()
    doc = pdfium.PdfDocument(buf.getvalue())
    try:
        img = doc[0].render(scale=dpi / 72, grayscale=not color).to_numpy()
    finally:
        doc.close()
    if color:
        return img if img.ndim == 3 else cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
