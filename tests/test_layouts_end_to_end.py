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
from formstation.store import Store, forms, pages, reasons
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


# ------------------------------------------------ print -> simulate -> ingest -> review -> export

SIM_RATES = """
fill: {name_corrected: 0.3, id_corrected: 0.4, corrected_id_invalid: 0.3, phone_missing: 0.15}
scan: {missing_forms: 0.0}
"""
LAYOUT_OF_CLASS = ("ssc_application_v1", "wuzhou_info_v1", "test_slip_v3")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A class printed with each layout, all PDFs simulated in one run (each page filled with the
    layout its barcode names), scanned pages ingested in one go, the station's decisions noted,
    the queue cleared by the simulated reviewer and everything exported, through the CLI."""
    from formstation.cli import main
    from simulate.evaluate import evaluate
    from simulate.reviewer import clear_queue, load_truth

    tmp = tmp_path_factory.mktemp("layouts_sim")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(LAYOUT_PATH_ENV, str(THIRD.parent))
        ws = ["--workspace", str(tmp / "ws")]
        classes = demo.DEMO_CLASSES[1:4]
        roster = demo.write_roster(tmp / "roster.csv", seed=8, per_class=5, classes=classes)
        assert main([*ws, "roster", "import", str(roster)]) == 0
        for (school, cls, _), key in zip(classes, LAYOUT_OF_CLASS, strict=True):
            assert main([*ws, "--layout", key, "print", "--out", str(tmp / "print"), "--school", school,
                         "--class", cls, "--campaign-date", demo.CAMPAIGN.isoformat()]) == 0
        (tmp / "rates.yaml").write_text(SIM_RATES, encoding="utf-8")
        pdfs = sorted(str(p) for p in (tmp / "print").glob("*.pdf"))
        assert main([*ws, "simulate", *pdfs, "--out", str(tmp / "sim"), "--seed", "4", "--rates",
                     str(tmp / "rates.yaml"), "-q"]) == 0
        assert main([*ws, "ingest", str(tmp / "sim" / "scans"), "--workers", "2"]) == 0
        store = Store.open(tmp / "ws")
        before = evaluate(store, tmp / "sim" / "truth.jsonl")
        truth = load_truth(tmp / "sim" / "truth.jsonl")
        with store.tx() as conn:
            codes = {}
            for r in conn.execute(select(reasons)):
                codes.setdefault(r.form_id, set()).add(r.code)
            read = {r.form_id: (r.status, r.layout_key, codes.get(r.form_id, set()))
                    for r in conn.execute(select(forms))}
        clear_queue(store, truth)
        assert main([*ws, "export", "--out", str(tmp / "export")]) == 0
        with store.tx() as conn:
            decided = {r.form_id: r.status for r in conn.execute(select(forms))}
        yield tmp, truth, before, read, decided  # the tests load the third layout too


def _rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_printed_forms_of_three_layouts_are_simulated_in_one_run_each_by_its_own_fields(simulated):
    tmp, truth, _, read, _ = simulated
    by_layout = {}
    for t in truth.values():
        by_layout.setdefault(t["layout"], []).append(t)
    assert sorted(by_layout) == sorted(LAYOUT_OF_CLASS) and all(len(v) == 5 for v in by_layout.values())
    for key, ts in by_layout.items():  # a form's truth names the fields of its own layout, no other
        written = {z.name for z in load_layout(key).zones if z.kind != "printed"}
        assert all(set(t["fields"]) == written for t in ts), (key, ts[0]["fields"])
    slips = by_layout["test_slip_v3"]
    assert all(len(t["fields"]["ticket"]) == 18 for t in slips)  # a comb field with no role: by its boxes
    assert any(t["fields"]["new_id"] for t in slips) and any(t["fields"]["corrected_id"]
                                                             for t in by_layout["wuzhou_info_v1"])
    # every scanned page was found and read with the layout its barcode names
    assert all(read[fid][0] != "printed" and read[fid][1] == t["layout"] for fid, t in truth.items() if t["scanned"])


def test_the_station_decides_each_simulated_form_by_its_own_layouts_rules(simulated):
    _, truth, before, read, _ = simulated
    got = set(before.status)
    assert ("accepted", "rejected") not in got and ("rejected", "accepted") not in got, before.status
    assert ("review", "accepted") not in got and before.accepted_wrong == 0, before.wrong_examples
    wz = [t for t in truth.values() if t["layout"] == "wuzhou_info_v1" and t["scanned"]]
    # Wuzhou's phone is optional and its form has no photo, guardian or signature to miss
    assert not {c for t in wz for c in t["expected_reasons"]} & {
        "PHONE_MISSING", "PHOTO_MISSING", "SIGNATURE_MISSING", "GUARDIAN_ID_MISSING", "CORRECTION_WITHOUT_COPY"}
    # before the reviewer: what the station found is what the truth expects, or doubt about a reading
    doubt = {"LOW_CONFIDENCE", "UNUSUAL_HANDWRITING"}
    for t in truth.values():
        if t["scanned"] and t["layout"] != "ssc_application_v1":
            assert read[t["form_id"]][2] - doubt <= set(t["expected_reasons"]), (t["form_id"], read[t["form_id"]], t)
            assert set(t["expected_reasons"]) <= read[t["form_id"]][2] or read[t["form_id"]][0] == "rejected", t


def _final(t):
    f, layout = t["fields"], load_layout(t["layout"])
    return (f.get(layout.name_of("corrected_id")) or t["printed"]["id_number"],
            f.get(layout.name_of("corrected_name")) or t["printed"]["name"])


def test_wuzhou_round_trip_info_check_holds_the_written_values_beside_the_printed_ones(simulated):
    """Seed 002's checked list: after the reviewer, every accepted Wuzhou form is a row with the
    values the parent wrote (or the printed ones where nothing was corrected), the values before
    the check beside them, and nothing the truth rejects."""
    tmp, truth, _, _, decided = simulated
    rows = _rows(tmp / "export" / "info_check.csv")
    wz = {fid: t for fid, t in truth.items() if t["layout"] == "wuzhou_info_v1" and t["scanned"]}
    assert {r["表单编号"] for r in rows} == {fid for fid in wz if decided[fid] == "accepted"}
    assert {fid for fid, t in wz.items() if t["expected_status"] != "rejected"} <= {r["表单编号"] for r in rows}
    assert any(r["身份证号码"] != r["核对前身份证号码"] for r in rows)  # a corrected ID went through
    for r in rows:
        t = truth[r["表单编号"]]
        assert (r["身份证号码"], r["姓名"]) == _final(t)
        assert (r["核对前身份证号码"], r["核对前姓名"]) == (t["printed"]["id_number"], t["printed"]["name"])
        assert r["联系电话"] == t["fields"]["phone"]


def test_a_third_layout_goes_print_simulate_ingest_export_with_no_code_change(simulated):
    tmp, truth, _, _, decided = simulated
    rows = _rows(tmp / "export" / "slip_cards.csv")
    slips = {fid: t for fid, t in truth.items() if t["layout"] == "test_slip_v3" and t["scanned"]}
    assert {r["编号"] for r in rows} == {fid for fid in slips if decided[fid] == "accepted"} != set()
    for r in rows:
        t = truth[r["编号"]]
        assert (r["证件号"], r["姓名"]) == _final(t)
        assert (r["原证件号"], r["原姓名"], r["电话"]) == (t["printed"]["id_number"], t["printed"]["name"],
                                                    t["fields"]["tel"])
        assert r["签字"] == "present" == ("present" if t["fields"]["pupil_sign"] else "absent")
    card = _rows(tmp / "export" / "card_data.csv")  # today's layout alongside, as before
    assert {r["表单编号"] for r in card} == {fid for fid, t in truth.items()
                                        if t["layout"] == "ssc_application_v1" and decided[fid] == "accepted"}
    assert all(r["联系电话"] == truth[r["表单编号"]]["fields"]["phone"] for r in card)
