"""Core recognition types: immutable, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# the characters a comb box may hold, in the order every digit reader's probabilities use
CLASSES = "0123456789X"
# a derived reading of the whole page: "doubtful/inked" comb boxes (ocr.read.writing_doubt, ocr.rules)
WRITING_DOUBT = "writing_doubt"
# a derived reading of the whole page: the resolution it was scanned at, from its marks' size
# (ocr.worker, ocr.rules: SCAN_RESOLUTION_LOW)
SCAN_DPI = "scan_dpi"


@dataclass(frozen=True)
class FieldReading:
    """One field's value as read from the page. `box` is the aligned-page px crop (x0, y0, x1, y1)."""

    name: str
    value: str
    confidence: float  # 0..1: the chance the value is right, as calibrated by the reader
    box: tuple[int, int, int, int]
    source: str = "read"
    suggestion: str = ""  # the reader's best guess when `value` is left uncertain
    detail: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class RawPage:
    """One page as it came out of a scan file: encoded bytes, a decoded image, or (a frame of a
    TIFF) the file it is frame `page_index` of, decoded where the page is processed."""

    file_sha256: str
    page_index: int  # 0-based position in the file
    data: bytes | None = None
    image: np.ndarray | None = field(default=None, compare=False, hash=False)
    error: str = ""  # set when this page could not be decoded (the file is then quarantined)
    frame_of: str = ""  # the TIFF file this page is a frame of (neither data nor image then)


@dataclass(frozen=True)
class PageResult:
    """What ingest learned about one page (the aligned image goes to disk, not into this record)."""

    file_sha256: str
    page_index: int
    kind: str  # form | blank | unidentified | not_in_roster | unreadable (damaged) | failed (station fault)
    form_id: str | None = None
    page_no: int | None = None
    layout_key: str | None = None
    rotation: int | None = None
    residual_mm: float | None = None
    identified_by: str | None = None  # barcode | printed_text
    image_path: str | None = None
    readings: tuple[FieldReading, ...] = ()
    timings: dict = field(default_factory=dict, compare=False, hash=False)
    note: str = ""
