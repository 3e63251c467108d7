from pathlib import Path

import pytest

from forms.layout import LAYOUT_DIR, LayoutError, load_layout, parse_layout

CONTRACT = {
    "name": "printed", "gender": "printed", "id_number": "printed", "school": "printed", "class": "printed",
    "student_no": "printed", "bank": "printed", "printed_photo": "printed",
    "corrected_name": "text", "corrected_id": "digits", "phone": "digits", "photo": "photo",
    "id_copy": "attachment", "applicant_signature": "signature", "guardian_id": "digits",
    "guardian_phone": "digits", "guardian_relation": "checkbox", "guardian_signature": "signature",
}


def test_shipped_layout_has_every_contract_field():
    lay = load_layout()
    assert {z.name: z.kind for z in lay.zones} == CONTRACT
    assert lay.zone("corrected_id").cells == 18 and lay.zone("corrected_id").alphabet == "0123456789X"
    assert lay.zone("guardian_id").cells == 18
    assert lay.zone("phone").cells == 11 and lay.zone("guardian_phone").cells == 11
    assert [o.name for o in lay.zone("guardian_relation").options] == ["father", "mother", "other"]
    photo = lay.zone("photo").box
    assert photo.w >= 25 and photo.h >= 35


def test_zones_stay_on_page_and_clear_of_marks():
    lay = load_layout()
    q = lay.marks.quiet_mm
    marks = [(x - q, y - q, x + lay.marks.size_mm + q, y + lay.marks.size_mm + q)
             for x, y in lay.marks.positions.values()]
    boxes = [z.box for z in lay.zones] + [lay.barcode_box]
    for b in boxes:
        assert b.x >= 0 and b.x + b.w <= lay.width_mm and b.y >= 0 and b.y + b.h <= lay.height_mm
        for x0, y0, x1, y1 in marks:
            assert b.x + b.w <= x0 or b.x >= x1 or b.y + b.h <= y0 or b.y >= y1, b


def _shipped_text() -> str:
    return (LAYOUT_DIR / "ssc_application_v1.yaml").read_text(encoding="utf-8")


def test_unknown_key_is_named_with_the_file():
    bad = _shipped_text().replace("    cells: 11\n", "    cels: 11\n", 1)
    with pytest.raises(LayoutError) as e:
        parse_layout(bad, "layouts/bad.yaml")
    msg = str(e.value)
    assert msg.startswith("layouts/bad.yaml:") and "unknown key 'fields.phone.cels'" in msg


def test_digits_without_cells_rejected():
    bad = _shipped_text().replace("    cells: 11\n", "", 1)
    with pytest.raises(LayoutError, match="fields.phone: kind 'digits' needs 'cells'"):
        parse_layout(bad, "x.yaml")


def test_unknown_kind_and_bad_box_rejected():
    with pytest.raises(LayoutError, match="fields.name.kind"):
        parse_layout(_shipped_text().replace("name:          {kind: printed", "name:          {kind: handwriting", 1))
    with pytest.raises(LayoutError, match="box must be"):
        parse_layout(_shipped_text().replace("box: [40, 52, 110, 7]", "box: [40, 52, 110]", 1))


def test_unknown_layout_name(tmp_path: Path):
    with pytest.raises(LayoutError, match="unknown layout 'nope_v9'.*ssc_application_v1"):
        load_layout("nope_v9")


def test_mm_to_px_is_dpi_independent():
    lay = load_layout()
    b = lay.zone("phone").box
    x0, y0, x1, y1 = b.to_px(300)
    a0, b0, a1, b1 = b.to_px(150)
    assert abs(x0 - 2 * a0) <= 1 and abs(x1 - 2 * a1) <= 1 and abs(y1 - 2 * b1) <= 1
