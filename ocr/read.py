"""Read every handwritten zone of an aligned page: one reader per zone kind, each with a confidence.

Values written to the store (field name -> value):
- digits: the decoded string ('' when empty); text (corrected_name): the OCR reading ('' when empty)
- checkbox: the ticked option's name or ''; signature, attachment: 'present' | 'absent'
- photo: 'pasted' | 'absent', plus derived fields photo_face (yes|no), photo_background
  (light|dark), photo_color (color|grayscale|unknown), photo_scan (color|gray: how the page was
  scanned); id_copy_number: the ID printed on the pasted copy.
Crops of each zone are saved under the workspace for the review station.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from forms.layout import Box, CombInk, Layout, Zone, mm_to_px
from forms.printing import FontMissing, blank_form
from formstation import idnumber
from ocr import decode, labels, presence
from ocr.align import ALIGN_DPI
from ocr.digits import CellClassifier, classify_cells, default_classifier, normalize_strip
from ocr.rewrite import Printed, find_rewrites, printed_ink
from ocr.types import SCAN_DPI, WRITING_DOUBT, FieldReading
from ocr.versions import version_of

STRIP_MARGIN_MM = 3.0  # around a comb: room for digits that overrun their boxes
REVIEW_MARGIN_MM = 1.5
REVIEW_ABOVE_COMB_MM = 5.5
# A digit rewritten above a struck-out box is read and decoded like the others, but its field goes
# to a reviewer with the reading as the suggestion: the station never accepts a correction alone.
REWRITE_CONFIDENCE = 0.5
# ... and stands for its box only when the box's own reading is doubtful (a struck-out box always
# is, on the campaign); over a box read surely it may be a note ("同上") or a correction left
# unstruck: the box keeps its reading and a reviewer looks.
STRUCK_BELOW = 0.99
# a framed box counts as doubtful writing (UNUSUAL_HANDWRITING, calibrated with this) when read under
# this, or changed by the decoder; the frames themselves start higher (decode.CELL_SURE)
DOUBT_COUNTED_BELOW = 0.99
# the pasted ID copy: text lines are looked for on it scaled to this many px on its long side (on
# the campaign's 96 copies: every number read at 320, 480 or 736; finding lines 23 / 52 / 147 ms),
# and only lines this many times as long as high are read (the number's: 10-11)
COPY_DET_SIDE = 480
LONG_LINE = 5.0
# zone crops are PNG with the 'up' row filter: the same pixels as OpenCV's default, 15 % smaller and
# written faster (11 crops of a page: 23 -> 19.5 ms; OpenCV's compression level 1 is slower here)
PNG_CROP = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
ColorCrop = Callable[[Box], np.ndarray | None]
log = logging.getLogger("formstation.read")
_ID_RUN = re.compile(r"\d{17,}[\dXx]")


class OcrEngine:
    """RapidOCR (PP-OCR models shipped in the wheel), created on first use, once per process."""

    def __init__(self, threads: int | None = None) -> None:
        self._engine = None
        self.threads = threads

    def _get(self):
        if self._engine is None:
            import logging

            from rapidocr import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            params = {"Det.limit_type": "max", "Det.limit_side_len": COPY_DET_SIDE}
            if self.threads:
                params["EngineConfig.onnxruntime.intra_op_num_threads"] = self.threads
            self._engine = RapidOCR(params=params)
        return self._engine

    def line(self, gray: np.ndarray) -> tuple[str, float]:
        """Recognise one text line (no detection)."""
        r = self._get()(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), use_det=False, use_cls=False, use_rec=True)
        return (r.txts[0], float(r.scores[0])) if r.txts else ("", 0.0)

    def long_lines(self, gray: np.ndarray, enough: Callable[[list[str]], bool] | None = None) -> list[str]:
        """The text of the long lines on a pasted copy (its ID number is one), top to bottom: lines
        are found on the copy scaled to COPY_DET_SIDE, and only those at least LONG_LINE times as
        long as high are read, each at full size. They are read from the bottom up (an ID card's
        number is its last line) and reading stops once `enough` says the lines read so far (top to
        bottom) hold what is looked for. (The steps are named on every call: RapidOCR keeps the
        last call's.)"""
        det = self._get()(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), use_det=True, use_cls=False, use_rec=False)
        quads = [np.asarray(q, np.float32) for q in (det.boxes if det.boxes is not None else [])]
        out: list[str] = []
        for q in sorted(quads, key=lambda q: float(q[:, 1].mean()), reverse=True):
            w, h = float(np.linalg.norm(q[1] - q[0])), float(np.linalg.norm(q[3] - q[0]))
            if h < 4 or w < LONG_LINE * h:
                continue
            c = q.mean(axis=0)  # a margin around the line, as the recogniser was trained with
            q = c + (q - c) * np.array([1 + 0.3 * h / w, 1.3], np.float32)
            size = (int(w + 0.3 * h), int(1.3 * h))
            m = cv2.getPerspectiveTransform(q, np.float32([[0, 0], [size[0], 0], [size[0], size[1]], [0, size[1]]]))
            out.insert(0, self.line(cv2.warpPerspective(gray, m, size, flags=cv2.INTER_CUBIC, borderValue=255))[0])
            if enough is not None and enough(out):
                break
        return out


class PageReader:
    """Reads all handwriting zones of one layout. Create once per process."""

    def __init__(self, layout: Layout, threads: int | None = None, digits: CellClassifier | None = None) -> None:
        self.layout = layout
        self.digits = digits if digits is not None else default_classifier()
        self.ocr = OcrEngine(threads)
        self.faces = presence.FaceFinder()
        self._cells: dict[str, list[np.ndarray | None]] = {}  # this page's comb cell probabilities
        self._printed_ink: Printed | bool | None = None  # False: cannot be drawn here
        self._reuse = False  # a re-read: the comb cells kept at ingest are read again (_kept_cells)
        self._paper_grey: float | None = None  # this page's paper grey level (`_paper`)

    def read(self, page: np.ndarray, workspace: Path, crop_dir: str, color_crop: ColorCrop | None = None,
             combs_only: bool = False, scan_dpi: float | None = None) -> tuple[FieldReading, ...]:
        """Every handwritten zone's readings (with `combs_only`, the comb fields' and the page's
        writing doubt only, no crop written: a re-read with a new reader version, ocr.reread; the
        comb cells are then the ones kept at ingest, see `_kept_cells`). Each reading names the
        reader version in detail["reader"]. `scan_dpi` (the resolution the page's marks show) is
        kept as a reading of its own ('scan_dpi', ocr.rules: SCAN_RESOLUTION_LOW)."""
        self._cells = {}
        self._paper_grey = None
        self._reuse = combs_only
        out: list[FieldReading] = []
        for z in self.layout.zones:
            if z.kind == "printed" or (combs_only and z.kind != "digits"):
                continue
            crop, box = _crop(page, z.box)
            rel = f"{crop_dir}/{z.name}.png"
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            if not combs_only:
                cv2.imwrite(str(workspace / rel), _crop(page, _review_box(z))[0], PNG_CROP)
            readings = getattr(self, f"_read_{z.kind}")(z, page, crop, box, color_crop, workspace, crop_dir)
            out.extend(_with_crop(r, rel) for r in readings)
        readings = _paired_phones(out, self._cells, self.layout)
        version = version_of(self.digits)
        page_wide = [writing_doubt(readings, self._cells)]
        if scan_dpi:
            page_wide.append(FieldReading(SCAN_DPI, str(round(scan_dpi)), 1.0, (0, 0, 0, 0)))
        return tuple(_with_version(r, version) for r in (*readings, *page_wide))

    # ---- one method per zone kind; each returns the zone's readings
    def _read_digits(self, z: Zone, page, crop, box, color_crop, workspace: Path, crop_dir: str):
        cells_path = workspace / labels.cells_rel(f"{crop_dir}/{z.name}.png")
        cut = partial(comb_cells, page, z, self.layout.comb_ink, color_crop)
        norm = _kept_cells(z, cells_path, cut) if self._reuse else cut()
        results = classify_cells(norm, self.digits)
        probs = [None if r.empty else np.asarray(r.probs) for r in results]
        struck = {}  # box -> (what the box itself reads, the rewrite's page px box)
        noted = {}  # box read surely, with a glyph above it -> (the glyph's reading, its page px box)
        printed = self._printed()
        rewrites = find_rewrites(page, z, printed, ALIGN_DPI) if printed is not None else []
        if rewrites:
            above = self.digits.predict_proba(np.stack([r.glyph for r in rewrites]))
            for r, p in zip(rewrites, above, strict=True):
                own = probs[r.cell]
                if own is not None and float(np.max(own)) >= STRUCK_BELOW:
                    noted[r.cell] = (decode.CLASSES[int(np.argmax(p))], r.box)  # a note, or a correction unstruck
                    continue
                struck[r.cell] = (decode.CLASSES[int(np.argmax(own))] if own is not None else "", r.box)
                probs[r.cell] = p  # the parent's correction stands for the box
        self._cells[z.name] = probs
        labels.save_cells(cells_path, norm,
                          {i: rewrites[k].glyph for k, i in _struck_rewrites(rewrites, struck)}, set(noted))
        d = decode.decode_comb(probs, z.constraint, z.alphabet)
        conf = min(d.confidence, REWRITE_CONFIDENCE) if struck or noted else d.confidence
        detail = {"valid": d.valid, "doubt": doubt_marks(z, d.value, probs, struck, noted)}
        if decode.is_checked(z.constraint) and check_decided(d.value, probs):
            conf = min(conf, DOUBTED_ID_CONFIDENCE)
        if struck or noted:
            detail["rewritten"] = sorted({*struck, *noted})
        return [FieldReading(z.name, d.value, round(conf, 4), box, suggestion=d.raw, detail=detail)]

    def _paper(self, page: np.ndarray) -> float:
        """This page's paper grey level (`presence.paper_level`), measured once per page."""
        if self._paper_grey is None:
            self._paper_grey = presence.paper_level(page)
        return self._paper_grey

    def _printed(self) -> Printed | None:
        """The blank form's ink at the aligned page's resolution (made once per reader); None when
        this machine cannot draw the form (no CJK font): rewrites are then not looked for."""
        if self._printed_ink is None:
            try:
                self._printed_ink = printed_ink(blank_form(self.layout, ALIGN_DPI), ALIGN_DPI)
            except FontMissing as e:
                log.warning("digits rewritten above struck-out boxes are not read: %s", e)
                self._printed_ink = False
        return self._printed_ink or None

    def _read_checkbox(self, z: Zone, page, crop, box, *_):
        ratios = {o.name: presence.box_ink(_crop(page, o.box)[0]) for o in z.options}
        value, conf = presence.pick_option(ratios)
        return [FieldReading(z.name, value, conf, box, detail={"ink": ratios})]

    def _read_signature(self, z: Zone, page, crop, box, *_):
        present, conf = presence.signature(crop)
        return [FieldReading(z.name, "present" if present else "absent", conf, box)]

    def _read_text(self, z: Zone, page, crop, box, *_):
        present, conf = presence.signature(crop)  # any ink in the correction box is a correction
        if not present:
            return [FieldReading(z.name, "", conf, box)]
        text, score = self.ocr.line(presence.inner(crop))
        return [FieldReading(z.name, text, round(min(conf, score) * 0.5, 4), box, suggestion=text)]

    def _read_attachment(self, z: Zone, page, crop, box, *_):
        present, conf = presence.attachment(crop, self._paper(page))
        out = [FieldReading(z.name, "present" if present else "absent", conf, box)]
        if present:
            text = "".join(self.ocr.long_lines(crop, _holds_valid_id)).replace(" ", "")
            number = copy_id_number(text)
            out.append(FieldReading(f"{z.name}_number", number, 0.9 if number else 0.0, box, suggestion=text[:60]))
        return out

    def _read_photo(self, z: Zone, page, crop, box, color_crop, workspace: Path, crop_dir: str):
        color = color_crop(z.box) if color_crop else None
        scanned_in_color = color is not None
        if color is None:
            color = cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR)
        found = presence.photo(color, self._paper(page))
        if found is None:
            return [FieldReading(z.name, "absent", 0.97, box)]
        card_rel = f"{crop_dir}/card_photo.jpg"
        cv2.imwrite(str(workspace / card_rel), found.card, [cv2.IMWRITE_JPEG_QUALITY, 92])
        face = self.faces.has_face(found.card)
        return [
            FieldReading(z.name, "pasted", found.confidence, box, detail={"card": card_rel}),
            FieldReading(f"{z.name}_face", "yes" if face else "no", 0.9, box),
            FieldReading(f"{z.name}_background", "light" if found.light_background else "dark",
                         found.background_confidence, box),
            # a grey or 1-bit scan cannot show whether the photo is a colour photo, and its card photo
            # would be grey: photo_scan 'gray' holds the form until the page is scanned in colour
            FieldReading(f"{z.name}_color", ("color" if found.is_color else "grayscale") if scanned_in_color else "unknown",
                         found.color_confidence if scanned_in_color else 0.0, box),
            FieldReading(f"{z.name}_scan", "color" if scanned_in_color else "gray", 1.0, box),
        ]


# An ID number goes to a reviewer whatever the field's confidence says when its one check character
# cannot vouch for it (`check_decided`):
# - the check-digit search decided a box against what the reader saw there (the decoded character
#   under OVERRULED_BELOW of the members' mean): the parent most likely wrote an invalid number, and
#   the search turned it into another valid one;
# - two or more boxes are read under DOUBTFUL_BOX: a check character settles one doubtful box, not
#   two (a second misread makes the search "repair" the first into another valid number: on 500
#   forms of the calib writers, seed 31, "45..." read "41..." with the 1 at 0.67 became "61..." at
#   0.9986).
# One torn box (its decoded character between OVERRULED_BELOW and DOUBTFUL_BOX) is left to the
# field's confidence: with every other box sure, the check character decides it. The rule before
# (any decoded character under 0.5) also capped those; guardian IDs accepted at 0.99 (all-own
# boxes, reader v2.2, simulator pen of stop 24): calib 1,000 79.7 -> 83.5 %, heldout 1,000 68.9 ->
# 74.1 %, training writers 1,000 77.5 -> 80.3 %, calib 500 77.8 -> 83.1 %, and no wrong ID more
# (the one wrong at 0.99 there, two boxes misread into a valid number with one box at 0.61, passes
# both rules). On phones (no check digit) nothing moves a box, and the members' disagreement
# removed nothing wrong, so phones keep the members' mean.
DOUBTED_ID_CONFIDENCE = 0.5
OVERRULED_BELOW = 0.1
DOUBTFUL_BOX = 0.8


def check_decided(value: str, probs: list) -> bool:
    """Whether an ID number read `value` from its boxes' mean probabilities `probs` rests on its check
    character more than one check character can carry: a box decoded against the reader's reading
    (under OVERRULED_BELOW), or two boxes read under DOUBTFUL_BOX (see DOUBTED_ID_CONFIDENCE)."""
    if len(value) != len(probs):
        return False
    read = [float(p[decode.CLASSES.index(c)]) for c, p in zip(value, probs, strict=True)
            if p is not None and c in decode.CLASSES]
    return any(x < OVERRULED_BELOW for x in read) or sum(x < DOUBTFUL_BOX for x in read) >= 2


def copy_id_number(text: str) -> str:
    """The ID number in the text read off a pasted copy: 18 characters of a run of digits (a
    neighbouring character read as a digit can lengthen the run), preferring 18 that are a valid
    number, then 18 with a real birth date (a copy may show a number whose check digit is wrong),
    then the first 18."""
    def rank(cand: str) -> int:
        if idnumber.is_valid(cand):
            return 2
        return int((idnumber.problem(cand) or "").startswith("check character"))

    cands = [run[i:i + 18] for run in (m.group(0).upper() for m in _ID_RUN.finditer(text))
             for i in range(len(run) - 17)]
    return max(cands, key=rank) if cands else ""


def _holds_valid_id(lines: list[str]) -> bool:
    """Whether these lines of a copy hold a valid ID number (the lines above it need not be read:
    copy_id_number prefers a valid number, and a copy shows one)."""
    return idnumber.is_valid(copy_id_number("".join(lines).replace(" ", "")))


def writing_doubt(readings: list[FieldReading], cells: dict[str, list[np.ndarray | None]]) -> FieldReading:
    """How unlike the writers the reader was measured on this page's writing is: of the inked comb
    boxes, how many the reader doubts (its doubt marks, boxes struck out and notes above left out),
    as "doubtful/inked". Confidence 1: a count, not a guess."""
    inked = sum(p is not None for probs in cells.values() for p in probs)
    doubtful = sum(1 for r in readings if r.name in cells for d in r.detail.get("doubt", ())
                   if d.get("read") and "struck" not in d and "above" not in d
                   and (d.get("p", 0.0) < DOUBT_COUNTED_BELOW or "raw" in d))
    return FieldReading(WRITING_DOUBT, f"{doubtful}/{inked}", 1.0, (0, 0, 0, 0))


def _pairs(layout: Layout) -> list[tuple[str, str]]:
    """The comb fields a family may write one number in twice (the layout's `pair_with`), each pair once."""
    return sorted({tuple(sorted((z.name, z.pair_with))) for z in layout.zones if z.pair_with})


def _paired_phones(readings: list[FieldReading], cells: dict[str, list[np.ndarray | None]],
                   layout: Layout) -> list[FieldReading]:
    """Where two fields the layout pairs (e.g. the applicant's and the guardian's phone) read as one
    number, read it from both renderings; the joint reading replaces both when it is surer."""
    for pair in _pairs(layout):
        readings = _paired(readings, cells, layout, pair)
    return readings


def _paired(readings: list[FieldReading], cells: dict[str, list[np.ndarray | None]], layout: Layout,
            pair: tuple[str, str]) -> list[FieldReading]:
    if not all(n in cells for n in pair) or layout.zone(pair[0]).constraint != "mobile_cn":
        return readings
    joint = decode.decode_phone_pair(*(cells[n] for n in pair))
    if joint is None:
        return _one_box_apart(readings, cells, layout, pair)
    out = []
    for r in readings:
        if r.name in pair and joint.confidence > r.confidence and not r.detail.get("rewritten"):
            detail = dict(r.detail, paired=True, doubt=doubt_marks(layout.zone(r.name), joint.value, cells[r.name]))
            r = FieldReading(r.name, joint.value, round(joint.confidence, 4), r.box, r.source, r.suggestion, detail)
        out.append(r)
    return out


def doubt_marks(z: Zone, value: str, probs: list[np.ndarray | None],
                struck: dict[int, tuple[str, tuple[int, int, int, int]]] | None = None,
                noted: dict[int, tuple[str, tuple[int, int, int, int]]] | None = None,
                other: dict[int, str] | None = None) -> list[dict]:
    """`decode.cell_doubts` of a comb field, each with "box": the box's place in the reviewer's crop
    (`_review_box`) as fractions [x0, y0, x1, y1] of its width and height. A box struck out and
    rewritten above (`struck`: box -> (what the box itself reads, the rewrite's page px box)) is
    always listed, "struck" holding the box's own reading; so is a surely read box with a glyph
    above it (`noted`: box -> (the glyph's reading, its px box)), "above" holding that reading.
    Their frames reach up over what is written above. A box the number's other rendering reads
    otherwise (`other`: box -> that reading) is listed with it as "other"."""
    struck, noted = struck or {}, noted or {}
    r = _review_box(z)
    k = 1.0 / mm_to_px(1.0, ALIGN_DPI)  # mm per px
    cells = z.cell_boxes()
    allowed = decode.allowed_at(z.constraint, z.alphabet)
    listed = {d["i"]: d for d in decode.cell_doubts(value, probs, allowed)}
    for key, marks in (("struck", struck), ("above", noted)):
        for i, (read, _) in marks.items():
            ch = value[i] if len(value) == len(probs) else ""
            listed[i] = {**decode.cell_doubt(i, ch, probs[i], allowed(i)), key: read}
    for i, read in (other or {}).items():
        ch = value[i] if len(value) == len(probs) else ""
        listed[i] = {**decode.cell_doubt(i, ch, probs[i], allowed(i)), **listed.get(i, {}), "other": read}
    reach = {**struck, **noted}
    out = []
    for i in sorted(listed):
        c = cells[i]
        x0, y0, x1, y1 = c.x, c.y, c.x + c.w, c.y + c.h
        if i in reach:
            px = reach[i][1]
            x0, y0, x1 = min(x0, px[0] * k), min(y0, px[1] * k), max(x1, px[2] * k)
        frac = [(x0 - r.x) / r.w, (y0 - r.y) / r.h, (x1 - r.x) / r.w, (y1 - r.y) / r.h]
        out.append(dict(listed[i], box=[round(min(1.0, max(0.0, f)), 4) for f in frac]))
    return out


# Two numbers a layout pairs that read one box apart are one number with that box misread in one of
# them far more often than a family's two numbers differing in one digit: neither is trusted alone.
ONE_BOX_APART_CONFIDENCE = 0.5


def _one_box_apart(readings: list[FieldReading], cells: dict[str, list[np.ndarray | None]], layout: Layout,
                   pair: tuple[str, str]) -> list[FieldReading]:
    """Both fields of `pair` to a reviewer (confidence capped at ONE_BOX_APART_CONFIDENCE) when they
    read as whole numbers that differ in exactly one box: the two renderings could not be read as one
    number (the box reads surely otherwise in one of them), and which one is misread, the reader
    cannot tell. The box is framed on both crops with the other field's reading ("other")."""
    by = {r.name: r for r in readings}
    a, b = by.get(pair[0]), by.get(pair[1])
    n = layout.zone(pair[0]).cells
    if a is None or b is None or not all(len(r.value) == n and r.value.isdigit() for r in (a, b)):
        return readings
    i = decode.one_box_apart(a.value, b.value)
    if i is None:
        return readings
    out = []
    for r in readings:
        if r.name in pair:
            other = b if r is a else a
            marks = {d["i"]: d for d in r.detail.get("doubt", ())}
            fresh = doubt_marks(layout.zone(r.name), r.value, cells[r.name], other={i: other.value[i]})
            marks[i] = {**marks.get(i, {}), **next(d for d in fresh if d["i"] == i)}
            detail = dict(r.detail, one_box_apart=other.name, doubt=[marks[k] for k in sorted(marks)])
            r = FieldReading(r.name, r.value, round(min(r.confidence, ONE_BOX_APART_CONFIDENCE), 4), r.box,
                             r.source, r.suggestion, detail)
        out.append(r)
    return out


def comb_strip(page: np.ndarray, z: Zone) -> tuple[np.ndarray, list[tuple[int, int]], tuple[int, int]]:
    """A comb zone's crop with a margin, each cell's [x0, x1) and the comb's [y0, y1) in it."""
    crop, (cx0, cy0, _, _) = _crop(page, _strip_box(z))
    px = [c.to_px(ALIGN_DPI) for c in z.cell_boxes()]
    bounds = [(x0 - cx0, x1 - cx0) for x0, _, x1, _ in px]
    _, y0, _, y1 = z.box.to_px(ALIGN_DPI)
    return crop, bounds, (y0 - cy0, y1 - cy0)


def comb_cells(page: np.ndarray, z: Zone, ink: CombInk, color_crop: ColorCrop | None = None) -> list[np.ndarray | None]:
    """The normalised 28x28 cells of comb `z` on the aligned grey `page` (None: an empty box). A
    comb printed in a drop-out colour (`ink`) is dropped before the cells are cut: on a colour
    scan (`color_crop`) by taking the strip in the channel where that colour is as light as paper,
    on a grey scan by dropping its light lines (`ocr.digits.normalize_strip`)."""
    strip, bounds, rows = comb_strip(page, z)
    if not ink.dropout:
        return normalize_strip(strip, bounds, rows)
    color = color_crop(_strip_box(z)) if color_crop is not None else None
    dropped = color[:, :, ink.drop_channel] if color is not None and color.shape[:2] == strip.shape[:2] else None
    return normalize_strip(strip, bounds, rows, dropped=dropped, light_lines=dropped is None)


def _kept_cells(z: Zone, path: Path, cut: Callable[[], list[np.ndarray | None]]) -> list[np.ndarray | None]:
    """A re-read's cells of comb `z`: the ones the reader kept at ingest (`path`) where it has them.
    Only the grey page is stored, so a drop-out comb scanned in colour would otherwise be cut again
    the grey-scan way, not as it was read. The comb is cut again (`cut`) only when there is no
    such file, or for a box whose kept cell is a rewrite above it (its own ink, which the rewrite
    check needs)."""
    kept = labels.load_cells(path)
    if kept is None or len(kept[1]) != z.cells:
        return cut()
    cells, kinds = kept
    again = cut() if labels.REWRITE in kinds else None
    return [again[i] if k == labels.REWRITE else (cells[i] if k != labels.EMPTY else None) for i, k in enumerate(kinds)]


def _strip_box(z: Zone) -> Box:
    return _grow(z.box, STRIP_MARGIN_MM)


def _review_box(z: Zone) -> Box:
    """What the reviewer sees of a zone: the box with a margin, and above a comb the space where a
    parent rewrites a crossed-out digit."""
    m = REVIEW_MARGIN_MM
    top = REVIEW_ABOVE_COMB_MM if z.kind == "digits" else m
    return Box(z.box.x - m, z.box.y - top, z.box.w + 2 * m, z.box.h + top + m)


def _grow(b: Box, mm: float) -> Box:
    return Box(b.x - mm, b.y - mm, b.w + 2 * mm, b.h + 2 * mm)


def _crop(page: np.ndarray, b: Box) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    x0, y0, x1, y1 = b.to_px(ALIGN_DPI)
    h, w = page.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    return page[y0:y1, x0:x1], (x0, y0, x1, y1)


def _struck_rewrites(rewrites: list, struck: dict) -> list[tuple[int, int]]:
    """(index in `rewrites`, box) of the rewrites standing for their struck-out box."""
    return [(k, r.cell) for k, r in enumerate(rewrites) if r.cell in struck]


def _with_version(r: FieldReading, version: str) -> FieldReading:
    return FieldReading(r.name, r.value, r.confidence, r.box, r.source, r.suggestion, {**r.detail, "reader": version})


def _with_crop(r: FieldReading, rel: str) -> FieldReading:
    detail = dict(r.detail)
    detail["crop"] = detail.pop("card", None) or rel
    return FieldReading(r.name, r.value, r.confidence, r.box, r.source, r.suggestion, detail)

