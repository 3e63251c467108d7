"""Comb boxes printed in a drop-out colour (a layout's `comb_ink: dropout`): printed so, scanned so
by the simulator, and dropped by the reader before it cuts cells, so that a digit crossing a box
line keeps its ink on colour, grey and 1-bit scans."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp

from forms.barcode import decode
from forms.layout import Box, CombInk, LayoutError, load_layout, parse_layout
from forms.printing import PrintRecord, blank_form, render_pdf
from ocr.align import ALIGN_DPI, MarkFinder, align, warp
from ocr.digits import CLASSES, default_classifier
from ocr.read import comb_cells
from simulate import ink, scanner
from simulate.digitsets import heldout_mask, load_mnist
from simulate.runner import render

LAYOUT_YAML = Path(__file__).resolve().parent.parent / "layouts" / "ssc_application_v1.yaml"
DROPOUT = "\ncomb_ink: {kind: dropout, rgb: [255, 150, 150], band_mm: 2}\n"
G4_THRESHOLD = 150  # the simulator's 1-bit scan threshold


def _grey_layout():
    return parse_layout(LAYOUT_YAML.read_text(encoding="utf-8").replace("\ncomb_ink:", "\n# comb_ink:"), "grey.yaml")


@pytest.fixture(scope="module")
def layouts():
    grey = _grey_layout()
    return grey, replace(grey, comb_ink=CombInk("dropout", (255, 150, 150), 2.0))


def test_comb_ink_is_grey_unless_the_layout_says_dropout() -> None:
    text = LAYOUT_YAML.read_text(encoding="utf-8").replace("\ncomb_ink:", "\n# comb_ink:")
    assert not parse_layout(text, "x.yaml").comb_ink.dropout
    ink_ = parse_layout(text + DROPOUT, "x.yaml").comb_ink
    assert ink_.dropout and ink_.rgb == (255, 150, 150) and ink_.band_mm == 2.0
    assert ink_.drop_channel == 2  # OpenCV's BGR: red is where a light red scans as paper


@pytest.mark.parametrize("extra, message", [
    ("comb_ink: {kind: dropout}", "comb_ink: kind 'dropout' needs 'rgb'"),
    ("comb_ink: {kind: grey, rgb: [255, 150, 150]}", "comb_ink.rgb: only for kind 'dropout'"),
    ("comb_ink: {kind: dropout, rgb: [200, 200, 200]}", "comb_ink.rgb"),  # grey: cannot be dropped from colour
    ("comb_ink: {kind: dropout, rgb: [255, 40, 40]}", "comb_ink.rgb"),  # too dark: scans as a dark line in grey
    ("comb_ink: {kind: dropout, rgb: [255, 150, 150], band_mm: 4}",
     "fields.guardian_signature is printed within 4 mm of comb 'guardian_phone'"),
    ("comb_ink: {kind: dropout, rgb: [255, 150, 150], colour: red}", "unknown key 'comb_ink.colour'"),
])
def test_comb_ink_schema_names_the_file_and_the_key(extra: str, message: str) -> None:
    text = LAYOUT_YAML.read_text(encoding="utf-8").replace("\ncomb_ink:", "\n# comb_ink:")
    with pytest.raises(LayoutError) as e:
        parse_layout(text + "\n" + extra + "\n", "my_form.yaml")
    assert str(e.value).startswith("my_form.yaml:") and message in str(e.value)


def _reddish(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[:, :, i].astype(int) for i in range(3))
    return (r > 200) & (r - g > 40) & (r - b > 40)


def _in_combs(layout, shape, dpi, grow_mm: float) -> np.ndarray:
    inside = np.zeros(shape[:2], bool)
    for z in layout.zones_of("digits"):
        b = z.box
        x0, y0, x1, y1 = Box(b.x - grow_mm, b.y - grow_mm, b.w + 2 * grow_mm, b.h + 2 * grow_mm).to_px(dpi)
        inside[y0:y1, x0:x1] = True
    return inside


def test_only_the_combs_are_printed_in_the_dropout_colour_and_scan_light(layouts) -> None:
    grey, drop = layouts
    dpi = 100
    page = blank_form(drop, dpi, color=True)
    red = _reddish(page)
    combs = _in_combs(drop, page.shape, dpi, 0.5)
    assert red[combs].sum() > 1000 and not red[~combs].any()
    assert not _reddish(blank_form(grey, dpi, color=True)).any()
    # a grey scan shows the boxes light grey, a 1-bit scan loses them; the clear band holds no print
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    lines = red & combs
    assert np.median(gray[lines]) >= 160 and (gray[lines] >= G4_THRESHOLD).mean() > 0.95
    band = _in_combs(drop, page.shape, dpi, drop.comb_ink.band_mm) & ~_in_combs(drop, page.shape, dpi, 0.8)
    assert (gray[band] > 240).all()


def test_simulator_prints_dropout_pages_in_colour_and_grey_pages_in_grey(layouts, tmp_path: Path) -> None:
    grey, drop = layouts
    rec = PrintRecord("F0000042", "桂林市第一中学", "高一(3)班", "李光艳", "女", "45048120080327062X", "G1", "桂林银行")
    for layout, name in ((grey, "grey.pdf"), (drop, "drop.pdf")):
        render_pdf(layout, [rec], tmp_path / name)
    doc_g, doc_d = pdfium.PdfDocument(str(tmp_path / "grey.pdf")), pdfium.PdfDocument(str(tmp_path / "drop.pdf"))
    try:
        g = render(doc_g, 0, 200, grey, color=grey.comb_ink.dropout)
        d = render(doc_d, 0, 200, drop, color=drop.comb_ink.dropout)
    finally:
        doc_g.close()
        doc_d.close()
    assert g.ndim == 2 and d.shape == (*g.shape, 3) and _reddish(d).sum() > 1000
    faint = scanner.toner(d, "faint", np.random.default_rng(1))  # washed-out toner on a colour print
    assert faint.shape == d.shape and _reddish(faint).sum() > 0 and faint.mean() > d.mean()
    # the marks and the barcode of a drop-out page are found as on any page
    gray = cv2.cvtColor(d, cv2.COLOR_BGR2GRAY)
    a = align(drop, MarkFinder(drop), gray)
    assert a is not None and a.marks_found == 4 and a.residual_mm < 0.2
    x0, y0, x1, y1 = drop.barcode_box.to_px(ALIGN_DPI)
    found = zxingcpp.read_barcodes(warp(drop, gray, a)[y0:y1, x0:x1], formats=zxingcpp.BarcodeFormat.QRCode)
    assert decode(found[0].text).form_id == "F0000042"


# digits written over their box lines: (digit, dx, dy) as fractions of a box from its centre, one
# box in two (a neighbour's digit is another matter); each crosses a side, the top or the bottom line
CROSSING = [(1, 0.35, 0.0), (8, 0.3, -0.22), (2, -0.35, -0.2), (4, 0.0, -0.25), (9, -0.32, 0.0), (1, -0.35, 0.0)]


def _written(layout, canvas: np.ndarray, digits: dict[int, np.ndarray]) -> np.ndarray:
    cells = layout.zone("phone").cell_boxes()
    for k, (d, dx, dy) in enumerate(CROSSING):
        c = cells[2 * k]
        x0, y0, x1, y1 = Box(c.x + dx * c.w, c.y + dy * c.h, c.w, c.h).to_px(ALIGN_DPI)
        a = ink.digit_alpha(np.random.default_rng(k), digits[d], y1 - y0, 0.45 * ALIGN_DPI / 25.4)
        ink.blend(canvas, a, (x0 + x1 - a.shape[1]) // 2, (y0 + y1 - a.shape[0]) // 2, ink.PENS["blue"])
    return canvas


def _iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    a, b = a > 64, b > 64
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def crossing(layouts):
    """The aligned pages (BGR at ALIGN_DPI) of both prints with the same digits written over the
    phone comb's lines, and the cells those digits give on blank paper (nothing to cross)."""
    data = load_mnist()
    keep = heldout_mask(data.labels)
    digits = {d: data.images[keep & (data.labels == d)][7] for d, _, _ in CROSSING}
    grey, drop = layouts
    pages = {lay.comb_ink.kind: _written(lay, blank_form(lay, ALIGN_DPI, color=True), digits) for lay in layouts}
    paper = _written(grey, np.full_like(pages["grey"], 255), digits)
    ref = comb_cells(cv2.cvtColor(paper, cv2.COLOR_BGR2GRAY), grey.zone("phone"), grey.comb_ink)
    return pages, ref


def _scan(page: np.ndarray, mode: str) -> tuple[np.ndarray, object]:
    """(grey aligned page, colour crop or None) as the worker hands them to the reader."""
    gray = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
    if mode == "bilevel":
        return np.where(gray >= G4_THRESHOLD, 255, 0).astype(np.uint8), None
    if mode == "gray":
        return gray, None

    def crop(box: Box) -> np.ndarray:
        x0, y0, x1, y1 = box.to_px(ALIGN_DPI)
        return page[y0:y1, x0:x1]
    return gray, crop


@pytest.mark.parametrize("mode, min_iou", [("color", 0.9), ("gray", 0.8), ("bilevel", 0.65)])
def test_a_digit_crossing_a_dropout_box_line_keeps_its_ink(layouts, crossing, mode: str, min_iou: float) -> None:
    grey, drop = layouts
    pages, ref = crossing
    z = drop.zone("phone")
    model = default_classifier()
    gray, crop = _scan(pages["dropout"], mode)
    cells = comb_cells(gray, z, drop.comb_ink, crop)
    written = [cells[2 * k] for k in range(len(CROSSING))]
    assert all(cells[2 * k + 1] is None for k in range(len(CROSSING) - 1))  # no ink handed to a neighbour
    reads = [CLASSES[int(np.argmax(p))] for p in model.predict_proba(np.stack(written))]
    assert reads == [str(d) for d, _, _ in CROSSING]
    ious = [_iou(c, ref[2 * k]) for k, c in enumerate(written)]
    assert min(ious) >= min_iou, ious  # the same glyph as on blank paper: no ink lost to the lines
    # the same digits over grey box lines lose ink to the lines' mask (what drop-out is for)
    g_gray, _ = _scan(pages["grey"], mode)
    g_cells = comb_cells(g_gray, grey.zone("phone"), grey.comb_ink)
    assert np.mean([_iou(g_cells[2 * k], ref[2 * k]) for k in range(len(CROSSING))]) < np.mean(ious) - 0.2


@pytest.mark.parametrize("mode", ["color", "gray"])
def test_a_form_printed_with_grey_combs_reads_the_same_under_the_dropout_layout(layouts, crossing, mode: str) -> None:
    """Forms printed before the layout switched to drop-out combs (same layout key, grey boxes) are
    still in the parents' hands: their lines are as dark as a pen stroke's edge, so they are masked
    as grey combs are, not dropped as light lines (which would cut the digits crossing them)."""
    grey, drop = layouts
    pages, _ = crossing
    gray, crop = _scan(pages["grey"], mode)
    as_grey = comb_cells(gray, grey.zone("phone"), grey.comb_ink)
    as_drop = comb_cells(gray, drop.zone("phone"), drop.comb_ink, crop)
    assert len(as_grey) == len(as_drop)
    for a, b in zip(as_grey, as_drop, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert _iou(a, b) > 0.95


def test_the_shipped_layouts_load_with_their_comb_ink() -> None:
    for key in ("ssc_application_v1", "wuzhou_info_v1"):
        lay = load_layout(key)
        assert lay.comb_ink.kind in ("grey", "dropout")


def test_a_re_read_reads_a_colour_scanned_dropout_comb_as_ingest_did(layouts, crossing, tmp_path: Path) -> None:
    """Only the grey page is stored; a re-read with a new reader version (ocr.reread) reads the comb
    cells the reader kept at ingest, so a drop-out comb scanned in colour is read as it was then,
    not the grey-scan way (digits crossing the lines would read otherwise)."""
    from ocr.read import PageReader

    _, drop = layouts
    pages, _ = crossing
    gray, crop = _scan(pages["dropout"], "color")
    reader = PageReader(drop)
    first = {r.name: r for r in reader.read(gray, tmp_path, "crops/p0", crop)}
    kept = _kept(tmp_path / "crops/p0/phone.cells.npz")
    again = {r.name: r for r in reader.read(gray, tmp_path, "crops/p0", combs_only=True)}
    assert again["phone"].value == first["phone"].value
    assert again["phone"].confidence == pytest.approx(first["phone"].confidence, abs=1e-9)
    again_kept = _kept(tmp_path / "crops/p0/phone.cells.npz")
    assert all(np.array_equal(a, b) for a, b in zip(again_kept, kept, strict=True))
    # the grey-scan way cuts those cells otherwise: what the re-read would have seen without them
    grey_way = comb_cells(gray, drop.zone("phone"), drop.comb_ink)
    assert any(g is not None and not np.array_equal(g, c) for g, c in zip(grey_way, kept[0], strict=True))


def _kept(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as d:
        return d["cells"], d["kinds"]


def _jpeg_scan(page: np.ndarray, seed: int) -> tuple[np.ndarray, object]:
    """A page (BGR, at ALIGN_DPI) through the simulator's scanner and its colour JPEG at quality
    25-40, aligned: (grey aligned page, colour crop) as the worker hands them to the reader."""
    import io

    from PIL import Image

    from simulate.writers import encode_jpeg

    rng = np.random.default_rng(seed)
    s = scanner.PageScan(dpi=ALIGN_DPI, rotation=0, skew=float(rng.uniform(-0.8, 0.8)), shift_mm=(1.0, -0.5),
                         scale=1.0, noise=float(rng.uniform(2, 6)), blur=float(rng.uniform(0, 1.0)), specks=0,
                         streak=False)
    data = encode_jpeg(scanner.scan_page(page.copy(), s, rng), int(rng.integers(25, 41)), ALIGN_DPI)
    color = cv2.cvtColor(np.array(Image.open(io.BytesIO(data)).convert("RGB")), cv2.COLOR_RGB2BGR)
    gray = cv2.cvtColor(color, cv2.COLOR_BGR2GRAY)
    return gray, color


def test_a_heavily_compressed_colour_scan_of_an_empty_dropout_comb_reads_empty(layouts, crossing) -> None:
    """JPEG at quality 25-40 keeps a faint trace of a dropped comb's lines in the drop-out channel
    (its colour is coarser than its grey): a thin sliver of it on a box line was read as a lone '1'
    in an empty comb (400 forms at quality 25-40: 16 empty guardian combs, 5 acceptable forms held for
    a reviewer). Ink as thin as a line and lying on the print is no digit; digits written across the
    lines still read on the same scans."""
    from ocr.worker import color_cropper

    _, drop = layouts
    pages, _ = crossing
    finder = MarkFinder(drop)
    combs = [drop.zone(n) for n in ("guardian_id", "corrected_id", "guardian_phone", "phone")]
    empty = blank_form(drop, ALIGN_DPI, color=True)
    found = 0
    for seed in range(20, 40):
        for page, written in ((empty, False), (pages["dropout"], True)):
            gray, color = _jpeg_scan(page, seed)
            a = align(drop, finder, gray)
            aligned, crop = warp(drop, gray, a), color_cropper(a, color)
            if written:
                cells = comb_cells(aligned, drop.zone("phone"), drop.comb_ink, crop)
                reads = [CLASSES[int(np.argmax(p))] for p in default_classifier().predict_proba(
                    np.stack([cells[2 * k] for k in range(len(CROSSING))]))]
                assert reads == [str(d) for d, _, _ in CROSSING], seed
                assert all(cells[2 * k + 1] is None for k in range(len(CROSSING) - 1)), seed
            else:
                found += sum(c is not None for z in combs for c in comb_cells(aligned, z, drop.comb_ink, crop))
    assert found == 0
