"""Scan output files, written one page at a time (the batch is never held in memory):
multi-page PDF with one embedded JPEG per page, multi-page TIFF (G4 1-bit or JPEG) and a folder of
JPEGs. Byte-identical for identical pages: no timestamps, no random ids.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, TiffImagePlugin

SUFFIX = {"pdf": ".pdf", "tiff_g4": ".tif", "tiff_jpeg": ".tif", "jpeg_dir": ""}


def _pil(img: np.ndarray) -> Image.Image:
    if img.dtype == bool:
        return Image.fromarray(img).convert("1")
    if img.ndim == 3:
        return Image.fromarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return Image.fromarray(img)


def encode_jpeg(img: np.ndarray, quality: int, dpi: int) -> bytes:
    buf = io.BytesIO()
    _pil(img).save(buf, format="JPEG", quality=int(quality), dpi=(dpi, dpi), optimize=False)
    return buf.getvalue()


class PdfWriter:
    """A minimal PDF 1.4 writer: each page is one DCTDecode image filling the page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f = path.open("wb")
        self.f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        self.offsets: dict[int, int] = {}
        self.kids: list[int] = []
        self.next_obj = 3  # 1: catalog, 2: page tree (written at the end)

    def _obj(self, body: bytes, stream: bytes | None = None) -> int:
        n = self.next_obj
        self.next_obj += 1
        self._write_obj(n, body, stream)
        return n

    def _write_obj(self, n: int, body: bytes, stream: bytes | None = None) -> None:
        self.offsets[n] = self.f.tell()
        self.f.write(b"%d 0 obj\n" % n + body)
        if stream is not None:
            self.f.write(b"\nstream\n" + stream + b"\nendstream")
        self.f.write(b"\nendobj\n")

    def add(self, img: np.ndarray, dpi: int, quality: int) -> int:
        h, w = img.shape[:2]
        data = encode_jpeg(img, quality, dpi)
        cs = b"/DeviceRGB" if img.ndim == 3 else b"/DeviceGray"
        im = self._obj(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace %s "
                       b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>" % (w, h, cs, len(data)), data)
        pw, ph = w * 72.0 / dpi, h * 72.0 / dpi
        content = b"q %.4f 0 0 %.4f 0 0 cm /Im0 Do Q" % (pw, ph)
        c = self._obj(b"<< /Length %d >>" % len(content), content)
        page = self._obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.4f %.4f] "
                         b"/Resources << /XObject << /Im0 %d 0 R >> >> /Contents %d 0 R >>" % (pw, ph, im, c))
        self.kids.append(page)
        return len(self.kids) - 1

    def close(self) -> None:
        kids = b" ".join(b"%d 0 R" % k for k in self.kids)
        self._write_obj(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(self.kids)))
        self._write_obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
        xref = self.f.tell()
        n = self.next_obj
        self.f.write(b"xref\n0 %d\n0000000000 65535 f \n" % n)
        for i in range(1, n):
            self.f.write(b"%010d 00000 n \n" % self.offsets[i])
        self.f.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (n, xref))
        self.f.close()


class TiffWriter:
    """Multi-page TIFF appended frame by frame: 'group4' (1-bit pages) or 'jpeg'."""

    def __init__(self, path: Path, compression: str) -> None:
        self.path = path
        self.compression = compression
        self.tf = TiffImagePlugin.AppendingTiffWriter(str(path), True)
        self.n = 0

    def add(self, img: np.ndarray, dpi: int, quality: int) -> int:
        im = _pil(img)
        opts = {"compression": self.compression, "dpi": (dpi, dpi)}
        if self.compression == "jpeg":
            opts["quality"] = int(quality)
        im.save(self.tf, format="TIFF", **opts)
        self.tf.newFrame()
        self.n += 1
        return self.n - 1

    def close(self) -> None:
        self.tf.close()


class JpegDirWriter:
    """A folder with one JPEG per page: page_0001.jpg, page_0002.jpg, ..."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def add(self, img: np.ndarray, dpi: int, quality: int) -> int:
        self.n += 1
        (self.path / f"page_{self.n:04d}.jpg").write_bytes(encode_jpeg(img, quality, dpi))
        return 0

    def page_file(self) -> Path:
        return self.path / f"page_{self.n:04d}.jpg"

    def close(self) -> None:
        pass


def open_writer(fmt: str, path: Path):
    if fmt == "pdf":
        return PdfWriter(path)
    if fmt in ("tiff_g4", "tiff_jpeg"):
        return TiffWriter(path, "group4" if fmt == "tiff_g4" else "jpeg")
    return JpegDirWriter(path)


def mode_for(fmt: str, color: bool) -> str:
    """The pixel mode a format is written in: G4 is 1-bit; the others colour or grey."""
    if fmt == "tiff_g4":
        return "bilevel"
    return "color" if color else "gray"
