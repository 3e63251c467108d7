"""Orchestration of `formstation simulate` (the only module here that reads and writes files):
printed PDFs -> who is on each page and with which layout (QR + store) -> truth plan -> batches of
scanned pages, streamed page by page into the writers -> truth.jsonl and pages.jsonl.

Every page is filled with the layout its barcode names, so PDFs printed with several layouts
simulate in one run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import zxingcpp
from sqlalchemy import select

from forms.barcode import PageCode, decode
from forms.layout import DEFAULT_LAYOUT, Box, Layout, LayoutError, load_layout
from formstation.store import Store, forms, persons
from simulate import scanner, writers
from simulate.decide import plan
from simulate.fill import draw_form
from simulate.profiles import Profile
from simulate.truth import FormTruth, Person, truth_record

ID_DPI = 150  # rasterisation used only to read the QR codes of the printed PDFs


class SimulationError(Exception):
    """Bad input for the simulator (not a printed form, form unknown to the store, ...)."""


@dataclass(frozen=True)
class SimConfig:
    pdfs: tuple[Path, ...]
    out: Path
    seed: int
    profile: Profile
    campaign: date
    writers: str = "heldout"  # whose handwriting: see simulate.WRITERS
    glyph_halves: bool = False  # each form writes with its group of the pool's glyphs (simulate.glyph_group)


@dataclass(frozen=True)
class PageRecord:
    file: str
    page: int
    form_id: str | None
    kind: str  # form | blank_back | foreign
    dpi: int
    rotation: int
    skew: float
    format: str
    mode: str  # color | gray | bilevel
    back_of: str | None = None
    toner: str = "normal"
    near_blank: bool = False


@dataclass(frozen=True)
class Summary:
    forms: int
    scanned: int
    pages: int
    files: int
    seconds: float


def render(doc: pdfium.PdfDocument, index: int, dpi: int, layout: Layout, color: bool = False) -> np.ndarray:
    """Gray raster of one printed page (BGR with `color`: a layout printing in colour, e.g. drop-out
    comb boxes), cut or padded to exactly the layout's page size at dpi."""
    a = doc[index].render(scale=dpi / 72, grayscale=not color).to_numpy()
    if not color:
        a = a[:, :, 0] if a.ndim == 3 else a
    elif a.ndim == 2 or a.shape[2] != 3:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR if a.ndim == 2 else cv2.COLOR_BGRA2BGR)
    w, h = layout.page_px(dpi)
    out = np.full((h, w, 3) if color else (h, w), 255, np.uint8)
    out[: min(h, a.shape[0]), : min(w, a.shape[1])] = a[:h, :w]
    return out


def _page_code(gray: np.ndarray, layout: Layout) -> PageCode | None:
    """The page's barcode: where `layout` puts it (fast), else anywhere on the page (another layout)."""
    b = layout.barcode_box
    x0, y0, x1, y1 = Box(b.x - 4, b.y - 4, b.w + 8, b.h + 8).to_px(ID_DPI)
    for crop in (gray[y0:y1, x0:x1], gray):
        for r in zxingcpp.read_barcodes(crop, formats=zxingcpp.BarcodeFormat.QRCode):
            code = decode(r.text)
            if code is not None:
                return code
    return None


def _layout_of(code: PageCode, pdf: Path, page: int) -> Layout:
    try:
        return load_layout(code.layout_key)
    except LayoutError as e:
        raise SimulationError(f"{pdf}: page {page} names layout {code.layout_key!r}, which is not found "
                              f"({e})") from None


def _printed_pages(pdfs: tuple[Path, ...]) -> list[tuple[str, str, Path, int]]:
    """(form id, layout key, PDF, page index) of every printed page, from its barcode."""
    default = load_layout(DEFAULT_LAYOUT)
    found = []
    for pdf in pdfs:
        doc = pdfium.PdfDocument(str(pdf))
        try:
            for i in range(len(doc)):
                code = _page_code(render(doc, i, ID_DPI, default), default)
                if code is None:
                    raise SimulationError(f"{pdf}: page {i + 1} has no Form Station QR code (not a printed form?)")
                found.append((code.form_id, _layout_of(code, pdf, i + 1).key, pdf, i))
        finally:
            doc.close()
    return found


def find_people(pdfs: tuple[Path, ...], store: Store) -> list[Person]:
    """Every page of the printed PDFs -> the person on it (form id and layout from the QR, data
    from the store)."""
    found = _printed_pages(pdfs)
    q = (select(forms.c.form_id, persons.c.school, persons.c.class_name, persons.c.name, persons.c.gender,
                persons.c.id_number, persons.c.photo_path)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .where(forms.c.form_id.in_([f for f, _, _, _ in found])))
    with store.tx() as conn:
        rows = {r.form_id: r for r in conn.execute(q)}
    missing = [f for f, _, _, _ in found if f not in rows]
    if missing:
        raise SimulationError(f"forms not in this workspace's store: {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''} (use the workspace the forms were printed from)")
    return [Person(f, rows[f].school, rows[f].class_name, rows[f].name, rows[f].gender or "",
                   rows[f].id_number, bool(rows[f].photo_path), str(pdf), i, key) for f, key, pdf, i in found]


def batches(truths: list[FormTruth], cfg: SimConfig) -> list[list[FormTruth | None]]:
    """Output files in order: each printed PDF in chunks of batch_forms, then a rescan batch with
    the forms scanned twice. `None` is a page of another document."""
    per_pdf: dict[str, list[FormTruth]] = {}
    for t in truths:
        if t.scan_count > 0:
            per_pdf.setdefault(t.person.pdf, []).append(t)
    size = max(1, cfg.profile.scan.batch_forms)
    out: list[list[FormTruth | None]] = []
    for ts in per_pdf.values():
        out.extend(list(ts[i:i + size]) for i in range(0, len(ts), size))
    rescan = [t for t in truths if t.scan_count > 1]
    if rescan:
        out.append(list(rescan))
    rng = np.random.default_rng([cfg.seed, 5])
    rate = cfg.profile.scan.foreign_pages
    n_foreign = max(1, round(rate * len(truths))) if rate > 0 and out else 0
    for _ in range(n_foreign):
        b = out[int(rng.integers(len(out)))]
        b.insert(int(rng.integers(len(b) + 1)), None)
    return out


class _Docs:
    """Printed PDFs opened on first use and kept open for the run."""

    def __init__(self) -> None:
        self.docs: dict[str, pdfium.PdfDocument] = {}

    def get(self, path: str) -> pdfium.PdfDocument:
        if path not in self.docs:
            self.docs[path] = pdfium.PdfDocument(path)
        return self.docs[path]

    def close(self) -> None:
        for d in self.docs.values():
            d.close()


def _front(t: FormTruth | None, cfg: SimConfig, docs: _Docs, dpi: int, rng: np.random.Generator):
    """(BGR page before scanning, toner kind) of a form, or of a foreign page for None."""
    if t is None:
        w, h = load_layout(DEFAULT_LAYOUT).page_px(dpi)
        return cv2.cvtColor(scanner.foreign_page(rng, w, h, dpi), cv2.COLOR_GRAY2BGR), "normal"
    layout = t.person.layout
    color = layout.comb_ink.dropout  # printed in colour: render it so (a grey print stays on the fast grey path)
    printed = render(docs.get(t.person.pdf), t.person.page_index, dpi, layout, color)
    r, s = rng.random(), cfg.profile.scan
    kind = "faint" if r < s.toner_faint else "dark" if r < s.toner_faint + s.toner_dark else "normal"
    page = scanner.toner(printed, kind, rng)
    page = page if color else cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    draw_form(page, layout, t, dpi, cfg.seed, cfg.writers, cfg.glyph_halves)
    return page, kind


def _write_batch(bi: int, items: list, cfg: SimConfig, docs: _Docs, fmt: str, log) -> list[PageRecord]:
    s = cfg.profile.scan
    brng = np.random.default_rng([cfg.seed, 4, bi])
    dpi = int(brng.choice(s.dpis))
    mode = writers.mode_for(fmt, bool(brng.random() < s.color))
    duplex = bool(brng.random() < s.duplex)
    name = f"batch_{bi + 1:03d}{writers.SUFFIX[fmt]}"
    w = writers.open_writer(fmt, cfg.out / "scans" / name)
    recs: list[PageRecord] = []

    def put(img: np.ndarray, rng, **kw) -> None:
        q = int(rng.integers(s.jpeg_quality[0], s.jpeg_quality[1] + 1))
        idx = w.add(scanner.to_mode(img, mode), dpi, q)
        rel = (w.page_file() if fmt == "jpeg_dir" else w.path).relative_to(cfg.out).as_posix()
        recs.append(PageRecord(rel, idx, dpi=dpi, format=fmt, mode=mode, **kw))

    try:
        for pi, t in enumerate(items):
            prng = np.random.default_rng([cfg.seed, 6, bi, pi])
            page, toner = _front(t, cfg, docs, dpi, prng)
            sc = scanner.sample_scan(prng, s, dpi)
            fid = t.person.form_id if t is not None else None
            put(scanner.scan_page(page, sc, prng), prng, form_id=fid, kind="form" if t else "foreign",
                rotation=sc.rotation, skew=sc.skew, toner=toner)
            if duplex:
                back, near = scanner.blank_back(prng, page, s.near_blank)
                put(scanner.scan_page(back, sc, prng), prng, form_id=None, kind="blank_back",
                    rotation=sc.rotation, skew=sc.skew, back_of=fid, near_blank=near)
            log(len(recs))
    finally:
        w.close()
    return recs


def run(cfg: SimConfig, store: Store, log=lambda n: None) -> Summary:
    """Simulate filling and scanning of every page of `cfg.pdfs`; writes under `cfg.out`."""
    t0 = time.perf_counter()
    people = find_people(cfg.pdfs, store)
    truths = plan(cfg.seed, people, cfg.profile.fill, cfg.profile.scan, cfg.campaign)
    scans = cfg.out / "scans"
    if scans.exists():
        shutil.rmtree(scans)
    scans.mkdir(parents=True)
    formats = cfg.profile.scan.formats
    start = int(np.random.default_rng([cfg.seed, 7]).integers(len(formats)))
    docs, pages, files = _Docs(), [], 0
    try:
        for bi, items in enumerate(batches(truths, cfg)):
            done = len(pages)
            pages += _write_batch(bi, items, cfg, docs, formats[(start + bi) % len(formats)],
                                  lambda n, done=done: log(done + n))
            files += 1
    finally:
        docs.close()
    (cfg.out / "simulation.json").write_text(json.dumps(
        {"seed": cfg.seed, "profile": cfg.profile.name, "writers": cfg.writers, "glyph_halves": cfg.glyph_halves,
         "campaign_date": cfg.campaign.isoformat()}, indent=1) + "\n", encoding="utf-8")
    _jsonl(cfg.out / "truth.jsonl", (truth_record(t, cfg.campaign) for t in truths))
    _jsonl(cfg.out / "pages.jsonl", (asdict(p) for p in pages))
    return Summary(len(truths), sum(t.scan_count > 0 for t in truths), len(pages), files,
                   time.perf_counter() - t0)


def _jsonl(path: Path, rows) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
