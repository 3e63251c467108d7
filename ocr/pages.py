"""Scan files -> pages, one at a time (never the whole batch in memory), with limits.

PDF: when a page is one scanned image, its embedded JPEG is passed on as is (no re-rendering);
otherwise the page is rasterised at RENDER_DPI. TIFF (G4, LZW, JPEG; multi-page) and JPEG/PNG
are decoded with Pillow. A TIFF frame is only looked at here (its size); its
pixels are decoded where the page is processed, in the worker (`frame_of`), which keeps the
file open for its next frames: decoding a colour frame cost the reading process about 90 ms and
sending its pixels to a worker copied 11 MB, while that process also stores every page. A page
that cannot be decoded is yielded with `error` set (or, a TIFF frame, comes back unreadable).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ocr.types import RawPage

RENDER_DPI = 300
MAX_PIXELS = 80_000_000  # a 600 dpi A3 page is 70 MP; anything larger is treated as a bomb
MAX_PAGES = 5000
SCAN_SUFFIXES = {".pdf", ".tif", ".tiff", ".jpg", ".jpeg", ".png"}
# the shape of a form page (A4 is 1:1.41; A3, Letter and Legal fit too): anything else is refused before
# any resize (a 2x20000 px PNG of 234 bytes made the blank check allocate gigabytes)
MAX_ASPECT = 2.5
MIN_SIDE_PX = 600  # an A4 page at 72 dpi
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class UnreadableFile(Exception):
    """The file as a whole cannot be opened (the reason is shown to the clerk)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given, folders expanded (sorted) to the scan files inside them."""
    return split_inputs(paths)[0]


def split_inputs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(files to ingest, files skipped): files as given, folders expanded (sorted) to the scan files
    inside them; the other files found in folders are skipped, and listed so the clerk hears of them
    (hidden files and quarantine reason files are not listed)."""
    out, skipped = [], []
    for p in paths:
        if not p.is_dir():
            out.append(p)
            continue
        for q in sorted(q for q in p.rglob("*") if q.is_file()):
            if q.suffix.lower() in SCAN_SUFFIXES:
                out.append(q)
            elif not q.name.startswith(".") and not q.name.endswith(".reason.txt"):
                skipped.append(q)
    return out, skipped


def page_count(path: Path) -> int:
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            import pypdfium2 as pdfium

            doc = pdfium.PdfDocument(str(path))
            n = len(doc)
            doc.close()
            return n
        if suffix in (".tif", ".tiff"):
            with Image.open(path) as im:
                return getattr(im, "n_frames", 1)
    except Exception:
        return 1
    return 1


def cannot_decode(page_index: int, e: Exception) -> str:
    """The reason given for a page whose pixels cannot be decoded (0-based `page_index`)."""
    return f"page {page_index + 1}: cannot be decoded ({type(e).__name__}: {e})"


class AbsurdPage(ValueError):
    """A page whose size cannot be a scanned form page (refused with the reason, file quarantined)."""


def check_shape(width: int, height: int) -> None:
    """Raise AbsurdPage unless width x height px can be a scanned form page."""
    short, long = sorted((int(width), int(height)))
    if short < MIN_SIDE_PX or long > MAX_ASPECT * short:
        raise AbsurdPage(f"{width}x{height} px is not the shape of a form page (expected at least "
                         f"{MIN_SIDE_PX} px a side, at most {MAX_ASPECT:g} times as long as wide)")


def _check_size(im: Image.Image) -> None:
    check_shape(im.width, im.height)
    if im.width * im.height > MAX_PIXELS:
        raise UnreadableFile(f"page of {im.width}x{im.height} px exceeds the {MAX_PIXELS:,} pixel limit")


def _to_array(im: Image.Image) -> np.ndarray:
    """Gray for bilevel/gray pages, BGR for colour pages (photos need colour)."""
    _check_size(im)
    if im.mode in ("1", "L", "I;16", "I", "F", "LA"):
        return np.asarray(im.convert("L"))
    import cv2

    # the same pixels as flipping Pillow's RGB, in 2 instead of about 40 ms for a 200 dpi A4 page
    return cv2.cvtColor(np.asarray(im if im.mode == "RGB" else im.convert("RGB")), cv2.COLOR_RGB2BGR)


def _pdf_pages(path: Path, sha: str) -> Iterator[RawPage]:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        doc = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as e:
        raise UnreadableFile(f"not a readable PDF ({e})") from None
    try:
        if len(doc) > MAX_PAGES:
            raise UnreadableFile(f"{len(doc)} pages exceeds the {MAX_PAGES} page limit")
        for i in range(len(doc)):
            try:
                page = doc[i]
                imgs = list(page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=1))
                if len(imgs) == 1 and imgs[0].get_filters() == ["DCTDecode"]:
                    w, h = imgs[0].get_px_size()
                    check_shape(w, h)
                    if w * h > MAX_PIXELS:
                        raise UnreadableFile(f"page {i + 1}: {w}x{h} px exceeds the pixel limit")
                    yield RawPage(sha, i, data=bytes(imgs[0].get_data(decode_simple=False)))
                else:
                    w_pt, h_pt = page.get_size()
                    if (w_pt * h_pt) * (RENDER_DPI / 72) ** 2 > MAX_PIXELS:
                        raise UnreadableFile(f"page {i + 1}: {w_pt:.0f}x{h_pt:.0f} pt is too large to rasterise")
                    bmp = page.render(scale=RENDER_DPI / 72)
                    arr = bmp.to_numpy()  # BGR(x)
                    yield RawPage(sha, i, image=np.ascontiguousarray(arr[:, :, :3]))
            except UnreadableFile:
                raise
            except AbsurdPage as e:
                yield RawPage(sha, i, error=f"page {i + 1}: {e}")
            except Exception as e:
                yield RawPage(sha, i, error=cannot_decode(i, e))
    finally:
        doc.close()


def _pillow_pages(path: Path, sha: str) -> Iterator[RawPage]:
    """Frames one by one (seek), so a truncated multi-page TIFF yields what precedes the break."""
    try:
        im = Image.open(path)
        im.size  # noqa: B018 - forces the header to be read
    except Image.DecompressionBombError as e:
        raise UnreadableFile(f"image exceeds the pixel limit ({e})") from None
    except Exception as e:
        raise UnreadableFile(f"not a readable image ({type(e).__name__})") from None
    single_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    tiff = path.suffix.lower() in (".tif", ".tiff")
    with im:
        for i in range(MAX_PAGES + 1):
            if i == MAX_PAGES:
                raise UnreadableFile(f"more than {MAX_PAGES} pages")
            try:
                if i:
                    im.seek(i)
                if single_jpeg:
                    check_shape(*im.size)  # before the pixels are decoded
                    # the whole file is decoded to find damage (a truncated JPEG), at 1/8 scale: the
                    # same errors in 7 instead of 24 ms; the worker decodes it at full size
                    im.draft(im.mode, (im.width // 8, im.height // 8))
                    im.load()
                    yield RawPage(sha, i, data=path.read_bytes())
                    return
                if tiff:
                    _check_size(im)  # the frame's header only; its pixels are decoded by decode_page
                    yield RawPage(sha, i, frame_of=str(path.resolve()))
                    continue
                yield RawPage(sha, i, image=_to_array(im))
            except EOFError:
                return
            except UnreadableFile:
                raise
            except AbsurdPage as e:
                yield RawPage(sha, i, error=f"page {i + 1}: {e}")
                if single_jpeg:
                    return
                continue
            except Exception as e:
                yield RawPage(sha, i, error=cannot_decode(i, e))
                return  # nothing readable follows a break in the file


def iter_pages(path: Path, sha: str) -> Iterator[RawPage]:
    """Yield the pages of one scan file in order. Raises UnreadableFile when it cannot be opened."""
    suffix = path.suffix.lower()
    if suffix not in SCAN_SUFFIXES:
        raise UnreadableFile(f"unsupported file type {suffix or '(none)'}; expected PDF, TIFF, JPEG or PNG")
    if path.stat().st_size == 0:
        raise UnreadableFile("empty file (0 bytes)")
    if suffix == ".pdf":
        yield from _pdf_pages(path, sha)
    else:
        yield from _pillow_pages(path, sha)


class _OpenFrames:
    """The multi-page TIFF this process decodes frames of, kept open for its next frames: Pillow
    finds frame i by walking the frames before it once (a fresh open to frame 79 cost 48 ms), so
    a file's frames, taken in order, cost one walk. One file at a time, known by path and content."""

    def __init__(self) -> None:
        self.key: tuple[str, str] | None = None
        self.im: Image.Image | None = None

    def frame(self, page: RawPage) -> np.ndarray:
        key = (page.frame_of, page.file_sha256)
        if key != self.key or self.im is None:
            self.close()
            self.im = Image.open(page.frame_of)
            self.key = key
        try:
            self.im.seek(page.page_index)
            return _to_array(self.im)
        except Exception:
            self.close()  # the next frame starts from a fresh open, not from a half-read state
            raise

    def close(self) -> None:
        if self.im is not None:
            self.im.close()
        self.im, self.key = None, None


_FRAMES = _OpenFrames()


def close_frames() -> None:
    """Close the TIFF this process keeps open for its next frames, if any."""
    _FRAMES.close()


def materialized(page: RawPage) -> RawPage:
    """The page with its pixels (a TIFF frame decoded here), for a worker that may not see the
    scan file (a Dask worker on another machine)."""
    if not page.frame_of or page.error:
        return page
    try:
        return RawPage(page.file_sha256, page.page_index, image=_FRAMES.frame(page))
    except AbsurdPage as e:
        return RawPage(page.file_sha256, page.page_index, error=f"page {page.page_index + 1}: {e}")
    except Exception as e:
        return RawPage(page.file_sha256, page.page_index, error=cannot_decode(page.page_index, e))


def decode_page(page: RawPage) -> tuple[np.ndarray, np.ndarray | None]:
    """(gray, color or None): decodes JPEG bytes and TIFF frames in the worker, not in the
    reading process."""
    import cv2

    if page.frame_of:
        img = _FRAMES.frame(page)
    elif page.image is not None:
        img = page.image
    else:
        img = cv2.imdecode(np.frombuffer(page.data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ValueError("embedded image cannot be decoded")
    check_shape(img.shape[1], img.shape[0])
    if img.size > MAX_PIXELS * (3 if img.ndim == 3 else 1):
        raise ValueError("image exceeds the pixel limit")
    if img.ndim == 2:
        return img, None
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return gray, img
