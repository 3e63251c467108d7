"""Issue 16, points 2-5: forms of several layouts in one scan file, each page read with its own
layout (named by its barcode), decided by its layout's rules and exported to its layout's card
file; a third layout known to no code goes the same way; an unknown layout is never read."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from sqlalchemy import select

from forms.layout import LAYOUT_PATH_ENV, load_layout
from formstation import demo
from formstation.printjob import print_forms
from formstation.roster import import_roster
from formstation.store import Store, forms, pages
from ocr.ingest import ingest_paths
from output.export import export
from output.tables import CARD_HEADER
from tests.layouts import THIRD


def _render(pdf, dpi=200):
    doc = pdfium.PdfDocument(str(pdf))
    out = [np.array(p.render(scale=dpi / 72, grayscale=True).to_pil()) for p in doc]
    doc.close()
    return out


def _scan_file(path, pdfs):
    """One scan file (TIFF, 200 dpi) holding every page of the printed PDFs, in turn."""
    ims = [Image.fromarray(i) for pdf in pdfs for i in _render(pdf)]
    ims[0].save(path, save_all=True, append_images=ims[1:], compression="tiff_lzw", dpi=(200, 200))
    return path


@pytest.fixture
def three_layouts(workspace, tmp_path, monkeypatch):
    """One roster class printed with each layout: today's, Wuzhou's and the tests' third one."""
    monkeypatch.setenv(LAYOUT_PATH_ENV, str(THIRD.parent))
    store = Store.open(workspace)
    roster = demo.write_roster(tmp_path / "roster.csv", seed=3, per_class=2, classes=demo.DEMO_CLASSES[1:4])
    import_roster(store, roster)
    pdfs = []
    for (school, cls, _), key in zip(demo.DEMO_CLASSES[1:4], ("ssc_application_v1", "wuzhou_info_v1", "test_slip_v3"),
                                     strict=True):
        pdfs += [f.path for f in print_forms(store, load_layout(key), tmp_path / key, school, cls)]
    return store, pdfs


def _csv(path):
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_a_mixed_batch_is_read_decided_and_exported_per_layout(three_layouts, tmp_path):
    store, pdfs = three_layouts
    scan = _scan_file(tmp_path / "mixed.tif", pdfs)
    s = ingest_paths(store, load_layout(), [scan], workers=1)
    assert (s.pages, s.forms, s.unidentified, s.quarantined) == (6, 6, 0, 0)
    with store.tx() as conn:
        layout_of = {r.form_id: r.layout_key for r in conn.execute(select(forms))}
        page_rows = list(conn.execute(select(pages)))
    assert sorted(layout_of.values()) == ["ssc_application_v1"] * 2 + ["test_slip_v3"] * 2 + ["wuzhou_info_v1"] * 2
    assert all(r.layout_key == layout_of[r.form_id] and r.residual_mm < 0.5 for r in page_rows)
    res = export(store, tmp_path / "export")
    out = tmp_path / "export"
    records = [json.loads(line) for line in (out / "forms.jsonl").read_text(encoding="utf-8").splitlines()]
    by_layout = {}
    for r in records:
        by_layout.setdefault(r["layout"], []).append(r)
    # the blank Wuzhou form: nothing to correct, the phone is optional: accepted on its own
    assert [r["status"] for r in by_layout["wuzhou_info_v1"]] == ["accepted", "accepted"]
    assert all(r["reason_codes"] == [] for r in by_layout["wuzhou_info_v1"])
    # the third layout's phone (`tel`) is required and its parent must sign (`pupil_sign`)
    assert all(r["status"] == "rejected" and {x["field"] for x in r["reasons"]} >= {"tel", "pupil_sign"}
               for r in by_layout["test_slip_v3"])
    assert all("ticket" in r["fields"] and "tel" in r["fields"] for r in by_layout["test_slip_v3"])
    # today's layout: no phone, no signature, no photo: rejected, its fields under their names
    assert all(r["status"] == "rejected" and "PHONE_MISSING" in r["reason_codes"]
               for r in by_layout["ssc_application_v1"])
    card = _csv(out / "card_data.csv")
    assert tuple(card[0]) == CARD_HEADER and len(card) == 1  # today's headers exactly as they were
    info = _csv(out / "info_check.csv")
    assert info[0] == ["表单编号", "学校", "班级", "身份证号码", "姓名", "核对前身份证号码", "核对前姓名", "联系电话", "冷僻字"]
    assert len(info) == 3 and all(row[3] == row[5] and row[4] == row[6] for row in info[1:])
    assert (out / "info_check.xlsx").is_file() and _csv(out / "slip_cards.csv")[0][0] == "编号"
    assert res.counts["accepted"] == 2


def test_a_page_of_a_layout_the_station_does_not_have_is_never_read(three_layouts, tmp_path, monkeypatch):
    store, pdfs = three_layouts
    monkeypatch.delenv(LAYOUT_PATH_ENV)  # this station was never given the third layout
    slip = [p for p in pdfs if "test_slip_v3" in str(p)]
    s = ingest_paths(store, load_layout(), [_scan_file(tmp_path / "slip.tif", slip)], workers=1)
    assert (s.pages, s.forms, s.unidentified) == (2, 0, 2)
    with store.tx() as conn:
        rows = list(conn.execute(select(pages)))
        received = [r for r in conn.execute(select(forms)) if r.status != "printed"]
    assert [(r.kind, r.reason, r.layout_key) for r in rows] == [("unidentified", "LAYOUT_UNKNOWN", "test_slip_v3")] * 2
    assert received == [] and all(r.readings is None for r in rows)
