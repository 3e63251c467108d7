"""The golden round trip, through the command line as a vendor runs it: roster import -> print ->
simulated filling and scanning -> ingest (real alignment, zxing-cpp, digit model, RapidOCR) ->
export, compared with the simulator's truth.

What a supervisor checks: every returned form is found, nothing acceptable is sent back to the
school, nothing the truth rejects reaches the card data file, and every value in the card data file
is the value the parent wrote.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from formstation import demo
from formstation.cli import main
from formstation.store import Store
from simulate.evaluate import evaluate


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    ws = tmp / "ws"
    fs = ["--workspace", str(ws)]
    roster = demo.write_roster(tmp / "roster.csv", seed=11, per_class=4)
    assert main([*fs, "roster", "import", str(roster)]) == 0
    assert main([*fs, "print", "--out", str(tmp / "print")]) == 0
    pdfs = sorted(str(p) for p in (tmp / "print").glob("*.pdf"))
    assert main([*fs, "simulate", *pdfs, "--out", str(tmp / "sim"), "--seed", "3", "--profile", "typical", "-q"]) == 0
    assert main([*fs, "ingest", str(tmp / "sim" / "scans"), "--workers", "2"]) == 0
    assert main([*fs, "export", "--out", str(tmp / "export")]) == 0
    truth = [json.loads(line) for line in (tmp / "sim" / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    return Store.open(ws), tmp, {t["form_id"]: t for t in truth}


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def test_every_returned_form_is_found_and_nothing_acceptable_is_rejected(run):
    store, tmp, truth = run
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    assert rep.forms_scanned == sum(t["scanned"] for t in truth.values()) > 0
    got = {(exp, st) for (exp, st) in rep.status}
    assert not {st for exp, st in got if exp != "printed"} & {"missing", "printed", "received"}, rep.status
    assert ("accepted", "rejected") not in got, rep.status  # a good form is never sent back
    assert ("rejected", "accepted") not in got, rep.status  # a bad one never reaches the card file
    assert ("review", "accepted") not in got, rep.status


def test_card_data_holds_exactly_the_accepted_forms_with_the_written_values(run):
    store, tmp, truth = run
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    assert rep.accepted_wrong == 0, rep.wrong_examples
    rows = _csv(tmp / "export" / "card_data.csv")
    accepted = {fid for fid, st in _statuses(store).items() if st == "accepted"}
    assert {r["表单编号"] for r in rows} == accepted
    for r in rows:
        t = truth[r["表单编号"]]
        assert r["联系电话"] == t["fields"]["phone"]
        assert r["代理人证件号码"] == (t["fields"]["guardian_id"] or "")
        assert r["身份证号码"] == (t["fields"]["corrected_id"] or t["printed"]["id_number"])
        assert r["核对前身份证号码"] == t["printed"]["id_number"]


def test_rejections_name_the_truths_reasons(run):
    store, tmp, truth = run
    statuses = _statuses(store)
    rows = _csv(tmp / "export" / "rejections.csv")
    by_form: dict[str, set[str]] = {}
    for r in rows:
        by_form.setdefault(r["表单编号"], set()).add(r["原因代码"])
    assert set(by_form) == {fid for fid, st in statuses.items() if st == "rejected"}
    for fid, codes in by_form.items():
        expected = set(truth[fid]["expected_reasons"])
        # a form is rejected on confident evidence: at least one of its reject reasons is in the truth
        assert codes & expected, (fid, codes, expected)


def test_detection_of_signatures_photos_and_guardian_section(run):
    store, tmp, _ = run
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    for name in ("applicant_signature", "guardian_signature", "photo", "guardian section"):
        d = rep.detection[name]
        assert d.tp > 0 and d.fp == 0 and d.fn == 0, (name, d)


# what a careful reviewer types for each flagged field: the value the parent really wrote
_TRUE_VALUE = {
    "applicant_signature": lambda f: "present" if f["applicant_signature"] else "absent",
    "guardian_signature": lambda f: "present" if f["guardian_signature"] else "absent",
    "id_copy": lambda f: "present" if f["id_copy"] else "absent",
    "id_copy_number": lambda f: f["id_copy"] or "",
    "photo": lambda f: "absent" if f["photo"] == "none" else "pasted",
    "photo_background": lambda f: "dark" if f["photo"] == "grey_bg" else "light",
    "photo_color": lambda f: "grayscale" if f["photo"] == "photocopy" else "color",
    "photo_face": lambda f: "yes",
}


def test_a_reviewer_clears_the_queue_and_the_export_follows(run, tmp_path):
    from review_ui import data, decisions, queue

    store, tmp, truth = run
    cleared = 0
    while True:
        with store.tx() as conn:
            fid = queue.take_lease(conn, "rita")
            if fid is None:
                break
            view = data.load_form(conn, fid)
            f = truth[fid]["fields"]
            form_codes = [c for c, _ in view.form_reasons]
            if "PHONE_SHARED_BY_CLASS" in form_codes and "PHONE_SHARED_BY_CLASS" in truth[fid]["expected_reasons"]:
                # the group view shows the class's phones: one number on every form
                decisions.reject_form(conn, fid, "rita", "PHONE_SHARED_BY_CLASS", "one number on the whole class")
            else:
                values = {it.name: _TRUE_VALUE.get(it.name, lambda f, n=it.name: f.get(n) or "")(f)
                          for it in view.items}
                decisions.save_form(conn, fid, "rita", values, form_codes, store.workspace)
        cleared += 1
    assert cleared > 0
    statuses = _statuses(store)
    for fid, t in truth.items():
        if t["scanned"] and t["expected_status"] != "review":
            assert statuses[fid] == t["expected_status"], (fid, t["expected_reasons"])
    assert main(["--workspace", str(store.workspace), "export", "--out", str(tmp_path / "export")]) == 0
    rows = _csv(tmp_path / "export" / "card_data.csv")
    assert {r["表单编号"] for r in rows} == {fid for fid, st in statuses.items() if st == "accepted"}
    assert len(rows) >= sum(t["expected_status"] == "accepted" for t in truth.values()) > 0
    for r in rows:
        t = truth[r["表单编号"]]
        assert (r["联系电话"], r["代理人证件号码"], r["代理人联系电话"]) == (
            t["fields"]["phone"], t["fields"]["guardian_id"] or "", t["fields"]["guardian_phone"] or "")
        assert r["身份证号码"] == (t["fields"]["corrected_id"] or t["printed"]["id_number"])
        assert r["姓名"] == (t["fields"]["corrected_name"] or t["printed"]["name"])
    assert not _csv(tmp_path / "export" / "pending.csv")


def _statuses(store: Store) -> dict[str, str]:
    from sqlalchemy import select

    from formstation.store import forms

    with store.tx() as conn:
        return {r.form_id: r.status for r in conn.execute(select(forms.c.form_id, forms.c.status))}


def test_page_cells_are_the_written_digits_and_never_train_a_reader(run, tmp_path):
    from ocr.digits import CLASSES, default_classifier
    from ocr.pagecells import cut_cells, load_page_cells

    store, tmp, truth = run
    cells = cut_cells(tmp / "sim", Path(store.workspace))
    assert str(cells["writers"]) == "heldout"
    written = sum(len(t["fields"][n]) for t in truth.values() if t["scanned"]
                  for n in ("corrected_id", "phone", "guardian_id", "guardian_phone"))
    assert 0.9 * written <= len(cells["y"]) <= written  # struck-out cells are left out
    read = default_classifier().predict_proba(cells["x"]).argmax(axis=1)
    assert (read == cells["y"]).mean() > 0.9  # labels line up with the cells
    assert set(np.unique(cells["y"])) <= set(range(len(CLASSES)))
    np.savez(tmp_path / "cells.npz", **cells)
    with pytest.raises(SystemExit, match="held-out"):
        load_page_cells([tmp_path / "cells.npz"])


def test_the_reviewer_is_pointed_at_the_misread_boxes(run):
    """A digit field the reader got wrong shows the reviewer which boxes to look at: the boxes where
    the reading differs from the paper are framed, and a frame lies on its box inside the crop."""
    import json as _json

    from sqlalchemy import select

    from formstation.store import fields

    store, _, truth = run
    misread = pointed = frames = 0
    with store.tx() as conn:
        rows = list(conn.execute(select(fields).where(fields.c.name.in_(("phone", "guardian_id", "guardian_phone")))))
    for r in rows:
        paper = truth[r.form_id]["fields"][r.name] or ""
        marks = _json.loads(r.doubt) if r.doubt else []
        for a, b in zip(marks, marks[1:], strict=False):  # boxes left to right, side by side, one size
            assert a["i"] < b["i"] and a["box"][2] <= b["box"][0] + 1e-6
            assert abs((a["box"][2] - a["box"][0]) - (b["box"][2] - b["box"][0])) < 1e-3
        for m in marks:
            x0, y0, x1, y1 = m["box"]
            assert 0 < x0 < x1 < 1 and 0 < y0 < y1 <= 1
            assert m["read"] != m["alt"] or not m["read"]  # an empty box: nothing read
            frames += 1
        if len(r.value) == len(paper):
            wrong = {i for i, (a, b) in enumerate(zip(r.value, paper, strict=True)) if a != b}
            misread += len(wrong)
            pointed += len(wrong & {m["i"] for m in marks})
    assert frames > 0 and misread > 0
    print(f"misread boxes {misread}, framed {pointed}; frames {frames}")
    assert pointed >= 0.8 * misread, (pointed, misread)
