"""Pages scanned under 200 dpi (a scanner's fast mode): the reader's sure numbers are not sure there
(phones at their thresholds 1.4-1.8 % wrong at 150 dpi), so none is accepted on its word; a
reviewer confirms them, and the clerk is asked for 200 dpi or more."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from formstation import idnumber
from formstation.store import Store, fields, forms, reasons
from ocr.digits import ONNX_MODEL
from ocr.rules import FormFacts, Reading, RuleConfig, decide
from tests import campaigns

CFG = RuleConfig(campaign_date=date(2026, 9, 1))
CHILD = idnumber.make("450481", date(2016, 5, 4), 123)
PARENT = idnumber.make("450481", date(1985, 1, 2), 201)


def _facts(**over) -> FormFacts:
    base = {
        "corrected_name": Reading("", 0.99, "read"), "corrected_id": Reading("", 0.99, "read"),
        "phone": Reading("13800138000", 0.999, "read"), "photo": Reading("pasted", 0.99, "read"),
        "photo_face": Reading("yes", 0.99, "read"), "photo_background": Reading("light", 0.99, "read"),
        "photo_color": Reading("color", 0.99, "read"), "id_copy": Reading("absent", 0.99, "read"),
        "applicant_signature": Reading("absent", 0.99, "read"), "guardian_id": Reading(PARENT, 0.999, "read"),
        "guardian_phone": Reading("13900139000", 0.999, "read"), "guardian_relation": Reading("mother", 0.99, "read"),
        "guardian_signature": Reading("present", 0.99, "read"),
    }
    base.update(over)
    return FormFacts("F1", "王小明", CHILD, False, base)


def test_sure_numbers_of_a_page_scanned_under_200_dpi_go_to_a_reviewer():
    status, found = decide(_facts(scan_dpi=Reading("150", 1.0, "read")), CFG)
    assert status == "review"
    assert {(x.code, x.field, x.detail) for x in found} == {
        ("SCAN_RESOLUTION_LOW", n, "scanned at 150 dpi") for n in ("phone", "guardian_id", "guardian_phone")}
    # the marks' estimate of a 200 dpi scan is within a few dpi; of a form printed "fit to page" (94 %), 188
    for dpi in ("200", "197", "188", "300", "600"):
        assert decide(_facts(scan_dpi=Reading(dpi, 1.0, "read")), CFG) == ("accepted", [])
    assert decide(_facts(), CFG) == ("accepted", [])  # a store from before the reading: as before
    # a rejection may not rest on a number read at 150 dpi either
    bad = PARENT[:17] + ("0" if PARENT[17] != "0" else "1")
    status, found = decide(_facts(scan_dpi=Reading("150", 1.0, "read"), guardian_id=Reading(bad, 0.999, "read")), CFG)
    assert status == "review" and "GUARDIAN_ID_INVALID" in {x.code for x in found}
    assert decide(_facts(guardian_id=Reading(bad, 0.999, "read")), CFG)[0] == "rejected"
    # what a reviewer confirmed stands
    confirmed = {n: Reading(v, 1.0, "reviewer") for n, v in
                 (("phone", "13800138000"), ("guardian_id", PARENT), ("guardian_phone", "13900139000"))}
    assert decide(_facts(scan_dpi=Reading("150", 1.0, "read"), **confirmed), CFG) == ("accepted", [])


@pytest.mark.skipif(not ONNX_MODEL.is_file(), reason="the v2 reader (ocr/models/reader_v2.onnx) is not shipped")
def test_forms_scanned_at_150_dpi_are_read_and_none_accepted_on_the_readers_word(tmp_path):
    """Printed, filled and scanned at 150 dpi by the project's own tools, ingested with real engines:
    each form page records the resolution its marks show, and no form is accepted while a number
    on it rests on the reader alone."""
    (tmp_path / "rates.yaml").write_text("scan:\n  dpis: [150]\n")
    campaigns.ingested(tmp_path, 61, 3, "--rates", str(tmp_path / "rates.yaml"))
    store = Store.open(tmp_path / "ws")
    with store.tx() as conn:
        dpis = [int(v) for v in conn.execute(select(fields.c.value).where(fields.c.name == "scan_dpi")).scalars()]
        status = dict(conn.execute(select(forms.c.form_id, forms.c.status)).all())
        low = set(conn.execute(select(reasons.c.form_id).where(reasons.c.code == "SCAN_RESOLUTION_LOW")).scalars())
    store.engine.dispose()
    assert dpis and all(140 <= d <= 160 for d in dpis)
    assert "accepted" not in status.values()
    assert low, "no form was held for its scan's resolution"
