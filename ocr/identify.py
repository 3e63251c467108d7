"""Which form is this page? Blank-back detection, the barcode, and a printed-ID fallback.

Pure functions over gray images, plus small engine wrappers created once per process.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import zxingcpp

from forms.barcode import PageCode, decode
from forms.layout import Box, Layout
from ocr.align import ALIGN_DPI, SPECKLED_BLUR_SIGMA

BLANK_INK_RATIO = 0.004  # share of dark pixels below which a page is a blank back
BARCODE_MARGIN_MM = 4


def ink_ratio(gray: np.ndarray) -> float:
    """Share of clearly dark pixels on a page, measured at ~50 dpi, ignoring a 4 % border."""
    h, w = gray.shape[:2]
    scale = 400 / max(1, w)
    small = cv2.resize(gray, (400, max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    bh, bw = int(small.shape[0] * 0.04), int(small.shape[1] * 0.04)
    core = small[bh:-bh or None, bw:-bw or None]
    paper = float(np.percentile(core, 90))
    return float((core < paper - 70).mean())


def is_blank(gray: np.ndarray) -> bool:
    return ink_ratio(gray) < BLANK_INK_RATIO


def _ours(results) -> PageCode | None:
    for r in results:
        code = decode(r.text)
        if code is not None:
            return code
    return None


# A QR printed with faded toner and scanned 1-bit is speckled: its dark modules are scattered dots
# the decoder does not see as modules. Where the crop reads as it is nothing, it is read again
# blurred (the dots merge into grey modules), then with its dark pixels grown by one. On the harsh
# profile's 1,000 forms, 5 aligned form pages waited unidentified for a clerk with their QR code
# speckled so; the blur (as for a speckled mark, `ocr.align`) reads 4 of them, the growing all 5
# (`tests/test_print_roundtrip.py`).


def _speckle_mended(crop: np.ndarray):
    yield cv2.GaussianBlur(crop, (0, 0), SPECKLED_BLUR_SIGMA)
    yield cv2.erode(crop, np.ones((3, 3), np.uint8))


def barcode_in_region(layout: Layout, aligned: np.ndarray) -> PageCode | None:
    """Decode the QR where the layout puts it on the aligned page (sub-millisecond); a speckled one
    (faded toner, 1-bit scan) again blurred, then thickened (`_speckle_mended`)."""
    b = layout.barcode_box
    m = BARCODE_MARGIN_MM
    x0, y0, x1, y1 = Box(b.x - m, b.y - m, b.w + 2 * m, b.h + 2 * m).to_px(ALIGN_DPI)
    crop = aligned[max(0, y0):y1, max(0, x0):x1]
    code = _ours(zxingcpp.read_barcodes(crop, formats=zxingcpp.BarcodeFormat.QRCode))
    for mended in _speckle_mended(crop) if code is None and crop.size else ():
        code = _ours(zxingcpp.read_barcodes(mended, formats=zxingcpp.BarcodeFormat.QRCode))
        if code is not None:
            break
    return code


def barcode_anywhere(gray: np.ndarray) -> tuple[PageCode | None, int]:
    """Full-page decode (slow path, for pages whose marks were not found). Returns (code, rotation)."""
    results = zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=True)
    for r in results:
        code = decode(r.text)
        if code is not None:
            return code, int(r.orientation) % 360
    return None, 0


_ID_CHARS = re.compile(r"[0-9Xx]")


class PrintedIdReader:
    """Tesseract on the printed ID-number zone; used only when the barcode cannot be read."""

    def __init__(self) -> None:
        import pytesseract

        self._tess = pytesseract
        self.config = "--psm 7 -c tessedit_char_whitelist=0123456789X"

    def read(self, layout: Layout, aligned: np.ndarray) -> str:
        z = layout.by_role("printed_id")
        if z is None:  # a layout that prints no ID: only its barcode identifies a page
            return ""
        x0, y0, x1, y1 = z.box.to_px(ALIGN_DPI)
        crop = aligned[y0 + 3:y1 - 3, x0 + 3:x1 - 3]
        crop = cv2.resize(crop, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
        try:
            text = self._tess.image_to_string(crop, lang="eng", config=self.config)
        except Exception:  # tesseract missing or failing: identification just falls through
            return ""
        return "".join(_ID_CHARS.findall(text)).upper()


def match_id(text: str, roster_ids: dict[str, str], max_distance: int = 2) -> str | None:
    """The form id whose printed ID is within `max_distance` substitutions of `text`, if unique."""
    if len(text) != 18:
        return None
    if text in roster_ids:
        return roster_ids[text]
    best = [(sum(a != b for a, b in zip(text, k, strict=True)), fid) for k, fid in roster_ids.items()]
    close = sorted(d for d in best if d[0] <= max_distance)
    if len(close) == 1 or (len(close) > 1 and close[0][0] < close[1][0]):
        return close[0][1]
    return None
