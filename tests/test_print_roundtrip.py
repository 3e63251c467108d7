"""Printed PDF -> raster -> marks, barcode and every field box found where the layout says."""

from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp
from sqlalchemy import select

from forms.barcode import decode
from formstation.store import forms, persons
from ocr.align import ALIGN_DPI, MarkFinder, align, warp


def _pages(pdf_path, dpi):
    doc = pdfium.PdfDocument(str(pdf_path))
    for page in doc:
        yield np.array(page.render(scale=dpi / 72, grayscale=True).to_pil())
    doc.close()


def _dark(img, x0, y0, x1, y1, thr=160):
    return float((img[y0:y1, x0:x1] < thr).mean())


@pytest.mark.parametrize("dpi", [200, 300])
def test_printed_page_round_trip(printed, dpi):
    store, layout, pdfs = printed
    finder = MarkFinder(layout)
    with store.tx() as conn:
        by_form = {r.form_id: r for r in conn.execute(select(forms, persons).join(persons))}
    seen = []
    for pdf in pdfs:
        for gray in _pages(pdf, dpi):
            a = align(layout, finder, gray)
            assert a is not None and a.marks_found == 4
            assert a.residual_mm < 0.2 and a.rotation == 0
            assert abs(a.scan_dpi - dpi) < 0.03 * dpi
            page = warp(layout, gray, a)
            x0, y0, x1, y1 = layout.barcode_box.to_px(ALIGN_DPI)
            found = zxingcpp.read_barcodes(page[y0:y1, x0:x1], formats=zxingcpp.BarcodeFormat.QRCode)
            code = decode(found[0].text)
            assert code is not None and code.layout_key == layout.key and code.page == 1
            rec = by_form[code.form_id]
            assert rec.print_file == pdf.name and rec.printed_at
            seen.append(code.form_id)
            _check_boxes(layout, page)
    assert sorted(seen) == sorted(by_form)


def _check_boxes(layout, page):
    """Each handwriting zone's frame is printed on its edges, and its inside is empty paper."""
    for z in layout.zones:
        if z.kind == "printed" or z.kind == "checkbox":
            continue
        x0, y0, x1, y1 = z.box.to_px(ALIGN_DPI)
        # a comb printed in a drop-out colour shows light grey on a grey raster: under 200, not under 160
        light = z.kind == "digits" and layout.comb_ink.dropout
        thr = 200 if light else 160
        top = _dark(page, x0 + 4, y0 - 2, x1 - 4, y0 + 3, thr)
        left = _dark(page, x0 - 2, y0 + 4, x0 + 3, y1 - 4, thr)
        assert top > 0.15 and left > 0.15, (z.name, top, left)
        if light:
            assert _dark(page, x0 + 4, y0 - 2, x1 - 4, y0 + 3) < 0.02, z.name
        inner = [(c.to_px(ALIGN_DPI)) for c in z.cell_boxes()] or [(x0, y0, x1, y1)]
        for cx0, cy0, cx1, cy1 in inner:
            assert _dark(page, cx0 + 5, cy0 + 5, cx1 - 5, cy1 - 5) < 0.002, z.name
    for opt in layout.zone("guardian_relation").options:
        x0, y0, x1, y1 = opt.box.to_px(ALIGN_DPI)
        assert _dark(page, x0 - 2, y0 - 2, x1 + 2, y1 + 2) > 0.1
        assert _dark(page, x0 + 4, y0 + 4, x1 - 4, y1 - 4) < 0.01
    x0, y0, x1, y1 = layout.zone("name").box.to_px(ALIGN_DPI)
    assert _dark(page, x0 + 3, y0 + 3, x1 - 3, y1 - 3) > 0.01  # the printed name is there


def test_print_filters_and_reprint_keeps_form_ids(printed, tmp_path):
    from formstation.errors import StationError
    from formstation.printjob import print_forms

    store, layout, pdfs = printed
    with store.tx() as conn:
        before = {r.person_id: r.form_id for r in conn.execute(select(forms))}
        school, cls = conn.execute(select(persons.c.school, persons.c.class_name)).first()
    out = print_forms(store, layout, tmp_path / "again", school=school, class_name=cls)
    assert len(out) == 1 and out[0].pages == 3
    with store.tx() as conn:
        assert {r.person_id: r.form_id for r in conn.execute(select(forms))} == before
    with pytest.raises(StationError, match="no students found"):
        print_forms(store, layout, tmp_path / "none", school="不存在的学校")


def _faint_blurred(gray, sigma=6.0, contrast=0.3):
    """A scan far out of focus and faded: the marks' edges spread over ~40 px."""
    import cv2

    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return (255 - (255 - blurred.astype(np.float32)) * contrast).astype(np.uint8)


def test_marks_found_on_a_blurred_faded_scan_one_window_misses(printed):
    """The corners are first searched with one threshold window; in a corner where that finds no
    mark (here the top left of a 400 dpi scan, out of focus and faded there), the full range of
    windows still finds it: all four marks, as on a clean scan."""
    from ocr.align import CORNER_FRACTION

    store, layout, pdfs = printed
    finder = MarkFinder(layout)
    gray = next(_pages(pdfs[0], 400)).copy()
    s = int(min(gray.shape) * CORNER_FRACTION)
    gray[:s, :s] = _faint_blurred(gray[:s, :s])
    assert finder._detect(gray[:s, :s], detector=finder.quick) == {}  # the one window alone misses it
    assert finder._detect(gray[:s, :s]) != {}
    a = align(layout, finder, gray)
    assert a is not None and a.marks_found == 4 and a.residual_mm < 0.2 and a.rotation == 0


def test_flat_scan_warped_as_affine_and_a_tilted_one_in_full(printed):
    """A sheet-fed scan is an affine map of the page: it is warped as one (faster), to the same
    pixels within interpolation rounding. A page photographed at an angle has perspective: its
    homography is used in full, and every field box is still where the layout says."""
    import cv2

    store, layout, pdfs = printed
    finder = MarkFinder(layout)
    flat = next(_pages(pdfs[0], 300))
    a = align(layout, finder, flat)
    assert a is not None and a.affine is not None
    full = cv2.warpPerspective(flat, a.matrix, layout.page_px(ALIGN_DPI), flags=cv2.INTER_AREA, borderValue=255)
    diff = np.abs(warp(layout, flat, a).astype(np.int16) - full)
    assert diff.max() <= 40 and (diff > 8).mean() < 0.002  # interpolation rounding at edges only

    h, w = flat.shape
    tilt = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    seen = np.float32([[40, 30], [w - 10, 80], [w - 60, h - 20], [15, h - 90]])  # a keystone, ~1 % per side
    shot = cv2.warpPerspective(flat, cv2.getPerspectiveTransform(tilt, seen), (w, h), borderValue=255)
    b = align(layout, finder, shot)
    assert b is not None and b.marks_found == 4 and b.residual_mm < 0.2
    assert b.affine is None
    _check_boxes(layout, warp(layout, shot, b))


@pytest.mark.parametrize("angle, off", [(1.0, "both"), (-2.5, "both"), (1.5, "right")])
def test_a_sheet_fed_with_lower_marks_off_the_glass_is_aligned_from_the_others(printed, angle, off):
    """A sheet fed askew whose lower marks (both, or the right one) fell off the scanner's glass,
    scanned at 300 dpi: the two or three marks left hold a rotation, scale and shift (an affine
    map with three), not a homography, which fits their corners exactly and bends the rest of the
    page (the guardian section's zones landed 7 mm below the writing). Every field box is where the
    layout says, down to the bottom of the page."""
    import cv2

    from forms.layout import mm_to_px

    store, layout, pdfs = printed
    gray = next(_pages(pdfs[0], 300))
    h, w = gray.shape
    turned = cv2.warpAffine(gray, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h),
                            flags=cv2.INTER_AREA, borderValue=255)
    cut = int(h - mm_to_px(16, 300))
    turned[cut:, w // 2 if off == "right" else 0:] = 255
    scan = turned
    a = align(layout, MarkFinder(layout), scan)
    assert a is not None and a.marks_found == (2 if off == "both" else 3) and a.residual_mm < 0.2
    assert a.rotation == 0 and abs(a.scan_dpi - 300) < 9
    _check_boxes(layout, warp(layout, scan, a))


def test_a_speckled_barcode_of_faded_toner_scanned_1_bit_is_read(printed):
    """Faded toner with sensor noise, scanned 1-bit at 200 dpi (the simulator's own toner and G4
    threshold): the QR code's dark modules become scattered dots. Where the crop as scanned reads
    nothing, it is read blurred or thickened, and the page is identified by its barcode rather than
    waiting for a clerk."""
    from forms.layout import Box
    from ocr.identify import BARCODE_MARGIN_MM, _ours, barcode_in_region
    from simulate.scanner import to_mode, toner

    store, layout, pdfs = printed
    finder = MarkFinder(layout)
    gray = next(_pages(pdfs[0], 200))
    b, m = layout.barcode_box, BARCODE_MARGIN_MM
    x0, y0, x1, y1 = Box(b.x - m, b.y - m, b.w + 2 * m, b.h + 2 * m).to_px(ALIGN_DPI)
    speckled = 0
    for seed in (1, 6, 7):
        rng = np.random.default_rng(seed)
        faded = np.clip(toner(gray, "faint", rng).astype(np.float32) + rng.normal(0, 8, gray.shape), 0, 255)
        scan = to_mode(faded.astype(np.uint8), "bilevel").astype(np.uint8) * 255
        a = align(layout, finder, scan)
        assert a is not None
        page = warp(layout, scan, a)
        code = barcode_in_region(layout, page)
        assert code is not None and code.layout_key == layout.key
        speckled += _ours(zxingcpp.read_barcodes(page[y0:y1, x0:x1], formats=zxingcpp.BarcodeFormat.QRCode)) is None
    assert speckled, "no scan speckled the code enough to need mending"


def test_marks_of_faded_toner_scanned_1_bit_are_found_blurred(printed):
    """The same faded, noisy 1-bit scan can leave the corner marks as scatters of dots that neither
    threshold pass finds: each corner is searched once more blurred, and the page is registered and
    identified instead of waiting for a clerk."""
    from ocr.align import CORNER_FRACTION
    from ocr.identify import barcode_in_region
    from simulate.scanner import to_mode, toner

    store, layout, pdfs = printed
    finder = MarkFinder(layout)
    gray = next(_pages(pdfs[0], 200))
    rng = np.random.default_rng(8)
    faded = np.clip(toner(gray, "faint", rng).astype(np.float32) + rng.normal(0, 8, gray.shape), 0, 255)
    scan = to_mode(faded.astype(np.uint8), "bilevel").astype(np.uint8) * 255
    h, w = scan.shape
    s = int(min(h, w) * CORNER_FRACTION)
    for ox, oy in ((0, 0), (w - s, 0), (0, h - s), (w - s, h - s)):  # the two threshold passes alone
        square = scan[oy:oy + s, ox:ox + s]
        assert not finder._detect(square, detector=finder.quick) and not finder._detect(square)
    a = align(layout, finder, scan)
    assert a is not None and a.marks_found >= 3 and a.residual_mm < 0.3 and a.rotation == 0
    code = barcode_in_region(layout, warp(layout, scan, a))
    assert code is not None and code.layout_key == layout.key
