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

from forms.layout import Layout, load_layout
from formstation.safefs import private_umask
from ocr.align import ALIGN_DPI, MarkFinder, align, warp
from ocr.identify import PrintedIdReader, barcode_anywhere, barcode_in_region, is_blank
from ocr.pages import AbsurdPage, decode_page
from ocr.types import PageResult, RawPage

PAGE_JPEG_QUALITY = 80
log = logging.getLogger("formstation.worker")


class Engines:
    """Everything a worker needs, built once: layout, mark finder, printed-ID OCR, field readers."""

    def __init__(self, layout: Layout, workspace: Path, read_fields: bool = True, threads: int | None = None) -> None:
        self.layout = layout
        self.workspace = workspace
        self.finder = MarkFinder(layout)
        self.id_reader = PrintedIdReader()
        self.reader = None
        if read_fields:
            from ocr.read import PageReader
            from ocr.versions import Follower

            self.reader = PageReader(layout, threads)
            self.follow = Follower(workspace)  # the workspace's current reader version, per scan file


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


def _unaligned(eng: Engines, raw: RawPage, gray: np.ndarray, t: dict) -> PageResult:
    """No marks: try the barcode on the whole page; otherwise the page is unidentified."""
    t0 = time.perf_counter()
    code, rotation = barcode_anywhere(gray)
    t["barcode_full"] = time.perf_counter() - t0
    img_rel = _save_page(eng, raw, gray)
    if code is None:
        return PageResult(raw.file_sha256, raw.page_index, "unidentified", image_path=img_rel,
                          timings=t, note="no alignment marks and no barcode found")
    return PageResult(raw.file_sha256, raw.page_index, "form", code.form_id, code.page, code.layout_key,
                      rotation, None, "barcode", img_rel, timings=t, note="alignment marks not found")


def process_page(eng: Engines, raw: RawPage) -> PageResult:
    if eng.reader is not None:
        eng.reader.digits = eng.follow.reader_for(raw.file_sha256, eng.reader.digits)
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        gray, color = decode_page(raw)
    except AbsurdPage as e:
        return PageResult(raw.file_sha256, raw.page_index, "unreadable", note=f"page {raw.page_index + 1}: {e}")
    except Exception as e:
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
    code = barcode_in_region(eng.layout, page)
    t["barcode"] = time.perf_counter() - t1
    res = PageResult(raw.file_sha256, raw.page_index, "form", rotation=a.rotation,
                     residual_mm=round(a.residual_mm, 3), timings=t)
    if code is not None:
        res = replace(res, form_id=code.form_id, page_no=code.page, layout_key=code.layout_key,
                      identified_by="barcode")
    else:
        t1 = time.perf_counter()
        text = eng.id_reader.read(eng.layout, page)
        t["printed_id"] = time.perf_counter() - t1
        res = replace(res, kind="unidentified", note=f"printed_id:{text}", layout_key=eng.layout.key)
    return _finish(eng, raw, res, page, color_cropper(a, color))


def color_cropper(a, color: np.ndarray | None):
    """A function warping one layout box out of the colour scan (only the photo needs colour)."""
    if color is None:
        return None

    def crop(box):
        x0, y0, x1, y1 = box.to_px(ALIGN_DPI)
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
        return cv2.warpPerspective(color, shift @ a.matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_AREA,
                                   borderValue=(255, 255, 255))
    return crop


def _finish(eng: Engines, raw: RawPage, res: PageResult, page: np.ndarray, color_crop=None) -> PageResult:
    t1 = time.perf_counter()
    img_rel = _save_page(eng, raw, page)
    res.timings["save"] = time.perf_counter() - t1
    readings = ()
    if eng.reader is not None and res.kind in ("form", "unidentified"):
        t1 = time.perf_counter()
        crop_dir = f"crops/{raw.file_sha256[:16]}/p{raw.page_index:04d}"
        readings = eng.reader.read(page, eng.workspace, crop_dir, color_crop)
        res.timings["read"] = time.perf_counter() - t1
    return replace(res, image_path=img_rel, readings=readings)


__all__ = ["ALIGN_DPI", "Engines", "init_worker", "process_page", "run_page"]
