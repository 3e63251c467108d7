"""Per-page work done in a worker process: decode, blank check, align, identify, read, save images.

Engines are created once per process (`init_worker`) and reused for every page. A page's
problems become data in its PageResult; so does a fault of the station's own on one page (the
file is quarantined with the error as its reason, the batch goes on).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from forms.layout import Layout, LayoutError, known_layouts, load_layout
from formstation.safefs import private_umask
from ocr.align import ALIGN_DPI, MarkFinder, align, warp, warp_to
from ocr.identify import PrintedIdReader, barcode_anywhere, barcode_in_region, is_blank
from ocr.pages import AbsurdPage, cannot_decode, decode_page
from ocr.types import PageResult, RawPage

PAGE_JPEG_QUALITY = 80
# a page whose own layout's marks fit it worse than this is no page of that layout (a form
# printed with another geometry under its key, or a page of a foreign form): never read
LAYOUT_MISMATCH_MM = 3.0
log = logging.getLogger("formstation.worker")


class LayoutEngines:
    """What reading pages of one layout needs: its mark finder and its field reader."""

    def __init__(self, layout: Layout, read_fields: bool, threads: int | None, base=None) -> None:
        self.layout = layout
        self.finder = MarkFinder(layout)
        self.reader = None
        if read_fields:
            from ocr.read import PageReader

            # the digit reader, text OCR and face finder are the process's: one of each, whatever the layouts
            self.reader = PageReader(layout, threads, base.digits if base else None)
            if base is not None:
                self.reader.ocr, self.reader.faces = base.ocr, base.faces


class Engines:
    """Everything a worker needs, built once: the layout a page is first aligned with (`layout`),
    printed-ID OCR, and per layout named by a barcode its mark finder and field reader (made on
    the first page of that layout, then kept: one reader per layout per worker)."""

    def __init__(self, layout: Layout, workspace: Path, read_fields: bool = True, threads: int | None = None) -> None:
        self.layout = layout
        self.workspace = workspace
        self.read_fields, self.threads = read_fields, threads
        self.id_reader = PrintedIdReader()
        self._by_key: dict[str, LayoutEngines | None] = {}
        self.follow = None
        if read_fields:
            from ocr.versions import Follower

            self.follow = Follower(workspace)  # the workspace's current reader version, per scan file
        first = self.of(layout.key, layout)
        assert first is not None
        self.finder, self.reader = first.finder, first.reader
        # every known layout's barcode place: a page is aligned with `layout` first, its code
        # may sit where another layout puts it
        self.barcode_layouts = [layout, *(x for x in (self._load(k) for k in known_layouts()) if x is not None
                                          and x.barcode_box != layout.barcode_box)]

    @staticmethod
    def _load(key: str) -> Layout | None:
        try:
            return load_layout(key)
        except LayoutError:
            return None

    def set_digits(self, digits) -> None:
        """Every layout's field reader reads digits with `digits` (a new current reader version)."""
        self.reader.digits = digits
        for e in self._by_key.values():
            if e is not None and e.reader is not None:
                e.reader.digits = digits

    def of(self, key: str, layout: Layout | None = None) -> LayoutEngines | None:
        """The engines of the layout with this key; None when this station has no such layout."""
        if key not in self._by_key:
            lay = layout or self._load(key)
            base = getattr(self, "reader", None)
            self._by_key[key] = None if lay is None else LayoutEngines(lay, self.read_fields, self.threads, base)
        return self._by_key[key]


_ENGINES: Engines | None = None


def exit_with_parent(parent: int, poll_s: float = 0.5) -> None:
    """End this worker process as soon as the process `parent` that started it is gone (a `kill -9`
    of `formstation ingest` must not leave workers behind, reading children's forms for nobody).
    The pid comes from the parent: it may be gone before this worker has finished starting."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def init_worker(layout_key: str, workspace: str, read_fields: bool = True, parent: int | None = None) -> None:
    """Build the engines of this process; `parent`: the pid of the pool's process, to exit with it."""
    global _ENGINES
    private_umask()  # page images and crops are children's data (a Dask worker starts on its own)
    if parent is not None:
        exit_with_parent(parent)
    # one thread per worker process: the pool (or the Dask cluster) supplies the parallelism, and
    # BLAS or ONNX Runtime threads in every worker would fight over the same cores
    cv2.setNumThreads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    _ENGINES = Engines(load_layout(layout_key), Path(workspace), read_fields, threads=1)


def run_page(raw: RawPage) -> PageResult:
    """Entry point in a worker process (engines from init_worker)."""
    assert _ENGINES is not None, "init_worker was not called"
    return process_page(_ENGINES, raw)


def run_page_lazy(raw: RawPage, layout_key: str, workspace: str, read_fields: bool = True) -> PageResult:
    """Entry point on a Dask worker: engines are built on first use in that process, then reused."""
    e = _ENGINES
    if e is None or e.layout.key != layout_key or str(e.workspace) != workspace or (e.reader is None) == read_fields:
        init_worker(layout_key, workspace, read_fields)  # Dask manages its workers' lives
    return run_page(raw)


def _rel(eng: Engines, raw: RawPage, suffix: str) -> tuple[str, Path]:
    rel = f"pages/{raw.file_sha256[:16]}/p{raw.page_index:04d}{suffix}"
    path = eng.workspace / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    return rel, path


def _save_page(eng: Engines, raw: RawPage, img: np.ndarray, max_side: int = 2400) -> str:
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        k = max_side / max(h, w)
        img = cv2.resize(img, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
    rel, path = _rel(eng, raw, ".jpg")
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, PAGE_JPEG_QUALITY])
    return rel


# A page scanned 1-bit keeps only what its scanner's threshold called black: faded toner's marks and
# barcode can come out as a scatter of dots or not at all (harsh campaign, 1,000 forms: 12 of the 36
# pages waiting for a clerk were faded forms scanned so), where a grey scan of the same sheet keeps them. Such a page waits with the
# reason SCANNED_BLACK_AND_WHITE, which asks the clerk for a grey scan.
def scanned_black_and_white(gray: np.ndarray) -> bool:
    """Whether a decoded page holds only black and white (a 1-bit scan), on a sample of its pixels."""
    sample = gray[::7, ::7]
    return bool(np.isin(sample, (0, 255)).all())


def _unaligned(eng: Engines, raw: RawPage, gray: np.ndarray, t: dict) -> PageResult:
    """No marks: try the barcode on the whole page; otherwise the page is unidentified."""
    t0 = time.perf_counter()
    code, rotation = barcode_anywhere(gray)
    t["barcode_full"] = time.perf_counter() - t0
    img_rel = _save_page(eng, raw, gray)
    if code is None:
        note = "no alignment marks and no barcode found"
        if scanned_black_and_white(gray):
            note = f"reason:SCANNED_BLACK_AND_WHITE: {note} on a black-and-white scan"
        return PageResult(raw.file_sha256, raw.page_index, "unidentified", image_path=img_rel,
                          timings=t, note=note)
    return PageResult(raw.file_sha256, raw.page_index, "form", code.form_id, code.page, code.layout_key,
                      rotation, None, "barcode", img_rel, timings=t, note="alignment marks not found")


def process_page(eng: Engines, raw: RawPage) -> PageResult:
    if eng.reader is not None:
        digits = eng.follow.reader_for(raw.file_sha256, eng.reader.digits)
        if digits is not eng.reader.digits:
            eng.set_digits(digits)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        gray, color = decode_page(raw)
    except AbsurdPage as e:
        return PageResult(raw.file_sha256, raw.page_index, "unreadable", note=f"page {raw.page_index + 1}: {e}")
    except Exception as e:
        if raw.frame_of:  # worded as a frame the reading process could not decode was (ocr.pages)
            return PageResult(raw.file_sha256, raw.page_index, "unreadable", note=cannot_decode(raw.page_index, e))
        return PageResult(raw.file_sha256, raw.page_index, "unreadable", note=f"cannot decode page: {e}")
    t["decode"] = time.perf_counter() - t0
    try:
        return _process(eng, raw, gray, color, t, t0)
    except Exception as e:  # a fault of the station's, not of the scan: keep the file, go on
        log.exception("page %d of %s failed", raw.page_index + 1, raw.file_sha256[:16])
        return PageResult(raw.file_sha256, raw.page_index, "failed",
                          note=f"page {raw.page_index + 1}: the station failed on this page ({type(e).__name__}: "
                               f"{e}); the file is kept in quarantine: please report it, then ingest it again")


def _process(eng: Engines, raw: RawPage, gray: np.ndarray, color: np.ndarray | None, t: dict,
             t0: float) -> PageResult:
    if is_blank(gray):
        t["blank"] = time.perf_counter() - t0 - t["decode"]
        return PageResult(raw.file_sha256, raw.page_index, "blank", timings=t)
    t1 = time.perf_counter()
    a = align(eng.layout, eng.finder, gray)
    t["marks"] = time.perf_counter() - t1
    if a is None:
        return _unaligned(eng, raw, gray, t)
    t1 = time.perf_counter()
    page = warp(eng.layout, gray, a)
    t["warp"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    code = next((c for c in (barcode_in_region(x, page) for x in eng.barcode_layouts) if c is not None), None)
    if code is None:  # a layout whose marks sit elsewhere: the whole page, then its own marks
        code = barcode_anywhere(gray)[0]
    t["barcode"] = time.perf_counter() - t1
    own = eng.of(code.layout_key) if code is not None else eng.of(eng.layout.key)
    if code is not None and own is None:
        return _not_read(eng, raw, page, a, t, code, "LAYOUT_UNKNOWN",
                         f"the barcode names layout {code.layout_key!r}, which this station does not have")
    if own.layout.key != eng.layout.key:
        a = align(own.layout, own.finder, gray)
        if a is None:
            return _not_read(eng, raw, page, None, t, code, "LAYOUT_MISMATCH",
                             f"the marks of layout {own.layout.key} are not found on the page")
        page = warp(own.layout, gray, a)
    if a.residual_mm > LAYOUT_MISMATCH_MM:
        return _not_read(eng, raw, page, a, t, code, "LAYOUT_MISMATCH",
                         f"the marks fit layout {own.layout.key} only within {a.residual_mm:.1f} mm")
    res = PageResult(raw.file_sha256, raw.page_index, "form", rotation=a.rotation,
                     residual_mm=round(a.residual_mm, 3), timings=t, layout_key=own.layout.key)
    if code is not None:
        res = replace(res, form_id=code.form_id, page_no=code.page, identified_by="barcode")
    else:
        t1 = time.perf_counter()
        text = eng.id_reader.read(own.layout, page)
        t["printed_id"] = time.perf_counter() - t1
        res = replace(res, kind="unidentified", note=f"printed_id:{text}")
    return _finish(eng, own, raw, res, page, color_cropper(a, color), a.scan_dpi)


def _not_read(eng: Engines, raw: RawPage, page: np.ndarray, a, t: dict, code, reason: str,
              why: str) -> PageResult:
    """A page never read with another layout's geometry: unidentified, its reason code kept
    (`reason:<CODE>: why`), the form id its barcode names kept for the reviewer who matches it."""
    img_rel = _save_page(eng, raw, page)
    return PageResult(raw.file_sha256, raw.page_index, "unidentified", rotation=a.rotation if a else None,
                      residual_mm=round(a.residual_mm, 3) if a else None, image_path=img_rel, timings=t,
                      layout_key=code.layout_key if code else None,
                      note=f"reason:{reason}: {why} (form {code.form_id if code else '?'})")


def color_cropper(a, color: np.ndarray | None):
    """A function warping one layout box out of the colour scan (only the photo needs colour)."""
    if color is None:
        return None

    def crop(box):
        x0, y0, x1, y1 = box.to_px(ALIGN_DPI)
        return warp_to(color, a, (x1 - x0, y1 - y0), (x0, y0), (255, 255, 255))
    return crop


def _finish(eng: Engines, own: LayoutEngines, raw: RawPage, res: PageResult, page: np.ndarray,
            color_crop=None, scan_dpi: float | None = None) -> PageResult:
    t1 = time.perf_counter()
    img_rel = _save_page(eng, raw, page)
    res.timings["save"] = time.perf_counter() - t1
    readings = ()
    if own.reader is not None and res.kind in ("form", "unidentified"):
        t1 = time.perf_counter()
        crop_dir = f"crops/{raw.file_sha256[:16]}/p{raw.page_index:04d}"
        readings = own.reader.read(page, eng.workspace, crop_dir, color_crop, scan_dpi=scan_dpi)
        res.timings["read"] = time.perf_counter() - t1
    return replace(res, image_path=img_rel, readings=readings)


__all__ = ["ALIGN_DPI", "Engines", "init_worker", "process_page", "run_page"]
