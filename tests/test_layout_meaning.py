"""Point 1 of issue 16: what a field means lives in the layout (role, constraint, pair_with, rules,
export), read by the rules, the decoder and the review station; the schema names file and key."""

from datetime import date

import numpy as np
import pytest

from forms.layout import LAYOUT_DIR, LayoutError, load_layout, parse_layout
from formstation import idnumber
from ocr import decode
from ocr.decode import CLASSES
from ocr.rules import FormFacts, Reading, RuleConfig, decide
from review_ui import fieldinfo
from tests.layouts import THIRD

CFG = RuleConfig(campaign_date=date(2026, 9, 1))
CHILD = idnumber.make("450481", date(2016, 5, 4), 123)


def _text() -> str:
    return (LAYOUT_DIR / "ssc_application_v1.yaml").read_text(encoding="utf-8")


def test_todays_layout_names_the_meaning_of_its_fields():
    lay = load_layout()
    assert lay.name_of("applicant_phone") == "phone" and lay.name_of("printed_id") == "id_number"
    assert lay.zone("phone").pair_with == "guardian_phone" and lay.zone("guardian_phone").pair_with == "phone"
    assert {z.name: z.constraint for z in lay.zones if z.kind == "digits"} == {
        "corrected_id": "id_gb11643", "phone": "mobile_cn", "guardian_id": "id_gb11643", "guardian_phone": "mobile_cn"}
    assert lay.rules == ("corrections", "applicant_phone", "class_phone", "photo", "guardian", "signature")


@pytest.mark.parametrize("old,new,message", [
    ("    role: applicant_phone\n", "    role: caller_phone\n", "fields.phone.role: unknown role 'caller_phone'"),
    ("    constraint: mobile_cn\n    pair_with: guardian_phone\n", "    constraint: mobile_us\n    pair_with: guardian_phone\n",
     "fields.phone.constraint: unknown constraint 'mobile_us'"),
    ("    pair_with: guardian_phone\n", "    pair_with: guardian_fax\n", "fields.phone.pair_with: no other field 'guardian_fax'"),
    ("    pair_with: guardian_phone\n", "    pair_with: corrected_id\n", "not a comb field of the same shape"),
    ("    pair_with: guardian_phone\n", "    pair_wiht: guardian_phone\n", "unknown key 'fields.phone.pair_wiht'"),
    ("    cells: 11\n    alphabet: \"0123456789\"\n", "    cells: 12\n    alphabet: \"0123456789\"\n",
     "fields.phone.constraint: 'mobile_cn' needs cells 11"),
    ("role: guardian_id\n", "role: corrected_id\n", "role 'corrected_id' is used by more than one field"),
    ("rules: [corrections,", "rules: [age_limits, corrections,", "rules.0: unknown rules 'age_limits'"),
    ("[联系电话, \"role:applicant_phone\"]", "[联系电话, \"role:fax\"]", "export.columns.8: unknown value 'role:fax'"),
    ("  card_file: card_data\n", "  card_file: card_data\n  sheet: x\n", "unknown key 'export.sheet'"),
    ("  school:        {kind: printed, role: school,", "  school:        {kind: text, role: school,",
     "fields.school.role: 'school' does not fit kind 'text'"),
])
def test_the_schema_rejects_unknown_meaning_naming_file_and_key(old, new, message):
    assert old in _text()
    with pytest.raises(LayoutError) as e:
        parse_layout(_text().replace(old, new, 1), "layouts/bad.yaml")
    assert str(e.value).startswith("layouts/bad.yaml:") and message in str(e.value)


def _facts(lay, readings: dict) -> FormFacts:
    return FormFacts("F1", "王小明", CHILD, False, {k: Reading(v, 0.999, "read") for k, v in readings.items()},
                     layout=lay)


def test_the_rules_follow_roles_not_field_names():
    """The third layout calls the phone `tel`, the corrected ID `new_id`, and has no guardian, photo
    or ID copy: its rules name its fields, and rules it does not declare do not apply."""
    lay = load_layout(THIRD)
    status, found = decide(_facts(lay, {"new_name": "", "new_id": "", "tel": "", "pupil_sign": "present", "ticket": ""}), CFG)
    assert status == "rejected" and {(x.code, x.field) for x in found} == {("PHONE_MISSING", "tel")}
    bad = CHILD[:17] + ("0" if CHILD[17] != "0" else "1")
    status, found = decide(_facts(lay, {"new_name": "", "new_id": bad, "tel": "13800138000",
                                        "pupil_sign": "present", "ticket": ""}), CFG)
    assert {(x.code, x.field) for x in found} == {("CORRECTED_ID_INVALID", "new_id")}  # no copy asked for
    ok = {"new_name": "", "new_id": "", "tel": "13800138000", "pupil_sign": "present", "ticket": ""}
    assert decide(_facts(lay, ok), CFG) == ("accepted", [])


def test_an_optional_phone_may_be_left_empty_but_not_written_wrong():
    lay = load_layout("wuzhou_info_v1")
    base = {"corrected_name": "", "corrected_id": "", "phone": ""}
    assert decide(_facts(lay, base), CFG) == ("accepted", [])
    status, found = decide(_facts(lay, {**base, "phone": "12345678901"}), CFG)
    assert status == "rejected" and [x.code for x in found] == ["PHONE_INVALID"]


def _probs(value: str, sure: float = 0.995) -> list[np.ndarray]:
    out = []
    for ch in value:
        p = np.full(len(CLASSES), (1 - sure) / (len(CLASSES) - 1))
        p[CLASSES.index(ch)] = sure
        out.append(p)
    return out


def test_the_decoder_follows_the_constraint_not_the_box_count():
    """An 18-box number that is no ID (constraint none) is read box by box: the ID decoder would
    refuse it (its check character does not fit)."""
    lay = load_layout(THIRD)
    z = lay.zone("ticket")
    assert z.cells == 18 and z.constraint == "none"
    value = "123456789012345678"
    assert not idnumber.is_valid(value)
    d = decode.decode_comb(_probs(value), z.constraint, z.alphabet)
    assert d.value == value and d.confidence > 0.9
    assert decode.decode_comb(_probs(value), "id_gb11643", z.alphabet).confidence == 0.0


def test_the_review_station_reads_meaning_and_hints_from_the_layout():
    lay = load_layout(THIRD)
    assert fieldinfo.meaning("tel", lay) == "mobile" and fieldinfo.meaning("ticket", lay) is None
    assert fieldinfo.check("ticket", "123456789012345678", lay) is None
    assert "not a valid ID" in fieldinfo.check("new_id", "123456789012345678", lay)
    assert fieldinfo.choices("pupil_sign", lay) == ("present", "absent")
    assert fieldinfo.hint("tel", lay).startswith("家长手机")
    today = load_layout()
    assert fieldinfo.choices("photo_face", today) == ("yes", "no")
    assert fieldinfo.digit_shape("id_copy_number", today) == (18, "0123456789X")
    assert fieldinfo.meaning("id_copy_number", today) == "id"
