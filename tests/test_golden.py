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
from formstation.config import Config
from formstation.store import Store
from simulate.evaluate import evaluate


def _round_trip(tmp: Path, writers: str = "heldout"):
    ws = tmp / "ws"
    fs = ["--workspace", str(ws)]
    roster = demo.write_roster(tmp / "roster.csv", seed=11, per_class=4)
    assert main([*fs, "roster", "import", str(roster)]) == 0
    assert main([*fs, "print", "--out", str(tmp / "print"), "--campaign-date", demo.CAMPAIGN.isoformat()]) == 0
    pdfs = sorted(str(p) for p in (tmp / "print").glob("*.pdf"))
    assert main([*fs, "simulate", *pdfs, "--out", str(tmp / "sim"), "--seed", "3", "--profile", "typical",
                 "--writers", writers, "-q"]) == 0
    assert main([*fs, "ingest", str(tmp / "sim" / "scans"), "--workers", "2"]) == 0
    assert main([*fs, "export", "--out", str(tmp / "export")]) == 0
    truth = [json.loads(line) for line in (tmp / "sim" / "truth.jsonl").read_text(encoding="utf-8").splitlines()]
    return Store.open(ws), tmp, {t["form_id"]: t for t in truth}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _round_trip(tmp_path_factory.mktemp("golden"))


@pytest.fixture(scope="module")
def strangers(tmp_path_factory):
    """The same batch filled in by scikit-learn's writers, nothing like those the reader learned from."""
    return _round_trip(tmp_path_factory.mktemp("strangers"), "other")


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
    # every form accepted without a reviewer was read entirely right: it counts under the ceiling
    assert rep.status[("accepted", "accepted")] <= rep.acceptable_all_right <= rep.acceptable
    rows = _csv(tmp / "export" / "card_data.csv")
    accepted = {fid for fid, st in _statuses(store).items() if st == "accepted"}
    assert {r["表单编号"] for r in rows} == accepted
    for r in rows:
        t = truth[r["表单编号"]]
        assert r["联系电话"] == t["fields"]["phone"]
        assert r["代理人证件号码"] == (t["fields"]["guardian_id"] or "")
        assert r["身份证号码"] == (t["fields"]["corrected_id"] or t["printed"]["id_number"])
        assert r["核对前身份证号码"] == t["printed"]["id_number"]


def test_the_report_says_what_keeps_forms_read_right_in_review(run):
    """Every acceptable form waiting for a reviewer with every value already read right is counted
    under the reasons it waits for (what a better reader or threshold would have to clear)."""
    from ocr.reasons import REASONS
    from simulate.evaluate import markdown

    store, tmp, _ = run
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    assert sum(rep.held.values()) == rep.review_all_right > 0
    ok = sum(n for (exp, _), n in rep.status.items() if exp == "accepted")
    assert round(rep.no_reviewer_share * ok) == rep.status[("accepted", "accepted")] + rep.status[("accepted", "rescan")]
    assert rep.auto_accept_share <= rep.no_reviewer_share < 1.0
    for why in rep.held:
        assert why != "(no reason)" and all(part.split()[0] in REASONS for part in why.split(", ")), why
    assert "what keeps the acceptable forms read right in review" in markdown(rep)


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


def test_the_number_on_a_pasted_id_copy_is_read(run):
    """Every pasted ID copy's printed number is read (RapidOCR), whatever the worker read before it
    (a corrected name read as one line must not leave text detection off for the copy)."""
    from sqlalchemy import select

    from formstation.store import fields

    store, _, truth = run
    with store.tx() as conn:
        got = {r.form_id: r.value for r in conn.execute(select(fields).where(fields.c.name == "id_copy_number"))}
    copies = {fid: t["fields"]["id_copy"] for fid, t in truth.items() if t["scanned"] and t["fields"]["id_copy"]}
    names = [fid for fid, t in truth.items() if t["scanned"] and t["fields"]["corrected_name"]]
    assert copies and names
    right = sum(got.get(fid) == number for fid, number in copies.items())
    assert right >= 0.9 * len(copies), {fid: (n, got.get(fid)) for fid, n in copies.items()}


def test_detection_of_signatures_photos_and_guardian_section(run):
    store, tmp, _ = run
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    for name in ("applicant_signature", "guardian_signature", "photo", "guardian section"):
        d = rep.detection[name]
        assert d.tp > 0 and d.fp == 0 and d.fn == 0, (name, d)


# what a careful reviewer types for each flagged field: the value the parent really wrote
from simulate.reviewer import true_value  # noqa: E402


def test_a_reviewer_clears_the_queue_and_the_export_follows(run, tmp_path):
    from review_ui import data, decisions, review_queue

    store, tmp, truth = run
    cleared = 0
    while True:
        with store.tx() as conn:
            fid = review_queue.take_lease(conn, "rita")
            if fid is None:
                break
            view = data.load_form(conn, fid)
            form_codes = [c for c, _ in view.form_reasons]
            if "PHONE_SHARED_BY_CLASS" in form_codes and "PHONE_SHARED_BY_CLASS" in truth[fid]["expected_reasons"]:
                # the group view shows the class's phones: one number on every form
                decisions.reject_form(conn, fid, "rita", "PHONE_SHARED_BY_CLASS", "one number on the whole class")
            else:
                values = {it.name: true_value(truth[fid], it.name) for it in view.items}
                decisions.save_form(conn, fid, "rita", values, form_codes, store.workspace)
        cleared += 1
    assert cleared > 0
    statuses = _statuses(store)
    grey = _needs_colour_rescan(tmp, truth)
    assert {fid for fid, st in statuses.items() if st == "rescan"} == {
        fid for fid in grey if truth[fid]["expected_status"] != "rejected"}
    for fid, t in truth.items():
        if t["scanned"] and t["expected_status"] != "review" and statuses[fid] != "rescan":
            assert statuses[fid] == t["expected_status"], (fid, t["expected_reasons"])
    assert main(["--workspace", str(store.workspace), "export", "--out", str(tmp_path / "export")]) == 0
    rows = _csv(tmp_path / "export" / "card_data.csv")
    assert {r["表单编号"] for r in rows} == {fid for fid, st in statuses.items() if st == "accepted"}
    assert len(rows) >= sum(t["expected_status"] == "accepted" and fid not in grey for fid, t in truth.items()) > 0
    for r in rows:
        t = truth[r["表单编号"]]
        assert (r["联系电话"], r["代理人证件号码"], r["代理人联系电话"]) == (
            t["fields"]["phone"], t["fields"]["guardian_id"] or "", t["fields"]["guardian_phone"] or "")
        assert r["身份证号码"] == (t["fields"]["corrected_id"] or t["printed"]["id_number"])
        assert r["姓名"] == (t["fields"]["corrected_name"] or t["printed"]["name"])
    # what is left waits for the clerk: the pages to scan again in colour
    pending = {r["表单编号"]: r["待审字段"].split(",") for r in _csv(tmp_path / "export" / "pending.csv")}
    assert set(pending) == {fid for fid, st in statuses.items() if st == "rescan"}
    assert all("photo" in f for f in pending.values())


def _needs_colour_rescan(tmp: Path, truth: dict[str, dict]) -> set[str]:
    """Forms whose page came in from a grey or black-and-white scan only, with a pasted photo the
    applicant needs (6 or older, so the card takes it): their card photo can only come from a
    colour scan."""
    modes: dict[str, set[str]] = {}
    for line in (tmp / "sim" / "pages.jsonl").read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        if p["kind"] == "form" and p.get("form_id"):
            modes.setdefault(p["form_id"], set()).add(p["mode"])
    return {fid for fid, m in modes.items() if "color" not in m and truth[fid]["fields"]["photo"] != "none"
            and truth[fid]["age"] >= 6}


def _statuses(store: Store) -> dict[str, str]:
    from sqlalchemy import select

    from formstation.store import forms

    with store.tx() as conn:
        return {r.form_id: r.status for r in conn.execute(select(forms.c.form_id, forms.c.status))}


def test_page_cells_are_the_written_digits_and_never_train_a_reader(run, tmp_path):
    from ocr.digits import CLASSES, default_classifier
    from training.pagecells import cut_cells, load_page_cells

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
    with pytest.raises(SystemExit, match="never for training"):
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
    # a confident misread (a box read at 0.995 or more) is framed by nothing; on 500 forms 93-96 % of
    # the misread boxes are framed, and on this small batch (a handful of misreads) one may not be
    assert pointed >= 0.8 * misread or misread - pointed <= 1, (pointed, misread)


def test_a_page_scanned_in_grey_waits_for_its_colour_rescan(run, tmp_path):
    """A clerk scans a page with a pasted photo in grey: the form waits for a colour rescan (the
    card photo would be grey). The colour scan of the same page, ingested later, is read afresh and
    the form goes on as if scanned once: it was the scan the station asked for, no duplicate."""
    import shutil

    import cv2
    from sqlalchemy import select

    from formstation.store import fields, reasons
    from ocr.pages import decode_page, iter_pages

    store, tmp, truth = run
    ws = tmp_path / "ws"
    shutil.copytree(store.workspace, ws)
    pages = [json.loads(line) for line in (tmp / "sim" / "pages.jsonl").read_text(encoding="utf-8").splitlines()]
    page = next(p for p in pages if p["kind"] == "form" and p["mode"] == "color" and truth[p["form_id"]]["scan_count"] == 1
                and truth[p["form_id"]]["fields"]["photo"] == "color" and truth[p["form_id"]]["age"] >= 6
                and truth[p["form_id"]]["expected_status"] == "accepted")
    fid, path = page["form_id"], tmp / "sim" / page["file"]
    raw = next(r for r in iter_pages(path, "x") if r.page_index == page["page"])
    _, color = decode_page(raw)
    assert color is not None
    cv2.imwrite(str(tmp_path / "grey.png"), cv2.cvtColor(color, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "colour.png"), color)

    def state():
        s = Store.open(ws)
        with s.tx() as conn:
            scan = conn.execute(select(fields.c.value).where(fields.c.form_id == fid, fields.c.name == "photo_scan")).scalar()
            codes = {r.code for r in conn.execute(select(reasons.c.code).where(reasons.c.form_id == fid))}
        s.engine.dispose()
        return _statuses(Store.open(ws))[fid], scan, codes

    assert main(["--workspace", str(ws), "ingest", str(tmp_path / "grey.png"), "--workers", "1"]) == 0
    status, scan, codes = state()
    assert (status, scan) == ("rescan", "gray") and "PHOTO_SCANNED_IN_GREY" in codes
    assert main(["--workspace", str(ws), "ingest", str(tmp_path / "colour.png"), "--workers", "1"]) == 0
    status, scan, codes = state()
    assert status != "rescan" and scan == "color" and not codes & {"PHOTO_SCANNED_IN_GREY", "DUPLICATE_SCAN"}
    assert status in ("accepted", "review") and (status == "accepted") == (not codes)
    cv2.imwrite(str(tmp_path / "colour2.png"), color[:, :-1])  # a scan nobody asked for is a duplicate
    assert main(["--workspace", str(ws), "ingest", str(tmp_path / "colour2.png"), "--workers", "1"]) == 0
    assert "DUPLICATE_SCAN" in state()[2]


def test_a_scan_nobody_asked_for_keeps_the_reviewers_values(run, tmp_path):
    """A clerk feeds a reviewed form again. The reviewer's value stays; where the new scan reads it
    differently the reviewer is shown both crops (SCANS_DIFFER) and the scans (DUPLICATE_SCAN), the
    audit trail keeps every replaced reading, and the reviewer's next save settles it."""
    import shutil

    import cv2
    from sqlalchemy import select

    from formstation.store import fields, leases, reasons
    from ocr.pages import decode_page, iter_pages
    from review_ui import data, decisions, review_queue

    store, tmp, truth = run
    ws = tmp_path / "ws"
    shutil.copytree(store.workspace, ws)
    with store.tx() as conn:  # a phone as the reader left it (earlier tests' reviewers may have typed some)
        untouched = {r.form_id for r in conn.execute(select(fields.c.form_id).where(
            fields.c.name == "phone", fields.c.source == "read"))}
    pages = [json.loads(line) for line in (tmp / "sim" / "pages.jsonl").read_text(encoding="utf-8").splitlines()]
    page = next(p for p in pages if p["kind"] == "form" and p["mode"] == "color" and p["form_id"] in untouched
                and truth[p["form_id"]]["scan_count"] == 1)
    fid, path = page["form_id"], tmp / "sim" / page["file"]
    s = Store.open(ws)
    with s.tx() as conn:
        read = conn.execute(select(fields.c.value).where(fields.c.form_id == fid, fields.c.name == "phone")).scalar()
        typed = "13800000000" if read != "13800000000" else "13900000000"
        conn.execute(leases.delete())  # earlier tests' reviewers left theirs in the workspace copied
        assert review_queue.lease_form(conn, fid, "ann")
        decisions.save_form(conn, fid, "ann", {"phone": typed}, workspace=ws)
    s.engine.dispose()

    raw = next(r for r in iter_pages(path, "x") if r.page_index == page["page"])
    _, color = decode_page(raw)
    cv2.imwrite(str(tmp_path / "again.png"), color[:, :-2])
    assert main(["--workspace", str(ws), "ingest", str(tmp_path / "again.png"), "--workers", "1"]) == 0

    s = Store.open(ws)
    with s.tx() as conn:
        phone = conn.execute(select(fields.c.value, fields.c.source).where(
            fields.c.form_id == fid, fields.c.name == "phone")).one()
        found = {(r.code, r.field) for r in conn.execute(select(reasons).where(reasons.c.form_id == fid))}
        view = data.load_form(conn, fid)
        with pytest.raises(decisions.DecisionError, match="after your decision"):
            decisions.undo_last(conn, "ann")  # the form changed since: undo would drop the new scan
    assert tuple(phone) == (typed, "reviewer")
    assert {("DUPLICATE_SCAN", None), ("SCANS_DIFFER", "phone")} <= found
    item = next(it for it in view.items if it.name == "phone")
    assert item.other["value"] == read and item.other["crop"] and item.other["crop"] != item.crop_path
    assert [sc["file"] for sc in view.scans] == [Path(page["file"]).name, "again.png"]
    assert view.page_image == view.scans[-1]["image"]
    assert ("phone", typed, read) in [(r["field"], r["before"], r["now"]) for r in view.rescans]
    assert "writing_doubt" not in {r["field"] for r in view.rescans}  # a count, not a value on the form

    with s.tx() as conn:
        assert review_queue.lease_form(conn, fid, "ann")
        decisions.save_form(conn, fid, "ann", {"phone": typed}, ack=["DUPLICATE_SCAN"], workspace=ws)
        other = conn.execute(select(fields.c.other_scan).where(fields.c.form_id == fid, fields.c.name == "phone")).scalar()
        codes = {r.code for r in conn.execute(select(reasons.c.code).where(reasons.c.form_id == fid))}
    s.engine.dispose()
    assert other is None and not codes & {"DUPLICATE_SCAN", "SCANS_DIFFER"}


def test_handwriting_unlike_any_measured_goes_to_a_reviewer(strangers):
    """Writers unlike any the reader learned from or was measured on: it reads far fewer numbers
    right, and knows it. Every wrong number on a form that is not rejected is flagged on its field
    (most forms as UNUSUAL_HANDWRITING), nothing wrong is accepted, nothing acceptable rejected."""
    from sqlalchemy import select

    from formstation.store import fields, reasons

    store, tmp, truth = strangers
    rep = evaluate(store, tmp / "sim" / "truth.jsonl")
    assert rep.accepted_wrong == 0 and ("accepted", "rejected") not in rep.status, rep.status
    statuses = _statuses(store)
    with store.tx() as conn:
        got = {(r.form_id, r.name): r.value or "" for r in conn.execute(select(fields))}
        flagged = {(r.form_id, r.field) for r in conn.execute(select(reasons))}
        unusual = {r.form_id for r in conn.execute(select(reasons.c.form_id).where(reasons.c.code == "UNUSUAL_HANDWRITING"))}
    scanned = [fid for fid, t in truth.items() if t["scanned"]]
    wrong = [(fid, n) for fid in scanned for n in ("phone", "guardian_id", "guardian_phone", "corrected_id")
             if statuses[fid] != "rejected" and got.get((fid, n), "") != (truth[fid]["fields"][n] or "")]
    assert len(wrong) >= len(scanned) // 2  # the test sees the reader struggle
    assert all(w in flagged for w in wrong), [w for w in wrong if w not in flagged]
    doubt = {fid: tuple(map(int, got[(fid, "writing_doubt")].split("/"))) for fid in scanned}
    many = [fid for fid, (d, n) in doubt.items() if n >= 11]
    share = Config().unusual_writing_share  # the station's default
    assert sum(d > share * n for d, n in (doubt[f] for f in many)) >= 0.8 * len(many), doubt
    # the rule flags only forms of many boxes; with the v2 thresholds these writers' numbers are rarely
    # read surely at all (then LOW_CONFIDENCE, asserted above, already sends them to a reviewer)
    assert unusual <= set(many)


def test_the_share_of_doubtful_boxes_tells_unusual_writing_apart(run, strangers):
    """The reader's own doubt, counted over a whole form, separates writers like the measured ones
    from writers unlike them (the rule behind UNUSUAL_HANDWRITING: the station's
    `unusual_writing_share`, 0.30)."""
    from sqlalchemy import select

    from formstation.store import fields

    share = Config().unusual_writing_share

    def shares(store):
        with store.tx() as conn:
            rows = [r.value for r in conn.execute(select(fields.c.value).where(fields.c.name == "writing_doubt"))]
        pairs = [tuple(map(int, v.split("/"))) for v in rows]
        return np.array([d / n for d, n in pairs if n >= 11])

    familiar, unusual = shares(run[0]), shares(strangers[0])
    assert len(familiar) >= 10 and len(unusual) >= 10
    assert np.median(familiar) < share - 0.1 and np.median(unusual) > share + 0.05, (np.median(familiar),
                                                                                    np.median(unusual))
    assert np.mean(familiar > share) < 0.1 and np.mean(unusual > share) > 0.6


def _page_again(run, tmp_path: Path, pick, scale: float = 1.0, name: str = "again.png") -> tuple[Path, str, Path]:
    """A copy of the golden workspace, and one form page (the first `pick(page, truth)` accepts)
    scanned again as `name`, shrunk to `scale` around its centre: (workspace, form id, scan)."""
    import shutil

    import cv2

    from ocr.pages import decode_page, iter_pages

    store, tmp, truth = run
    ws = tmp_path / "ws"
    shutil.copytree(store.workspace, ws)
    sim_pages = [json.loads(line) for line in (tmp / "sim" / "pages.jsonl").read_text(encoding="utf-8").splitlines()]
    page = next(p for p in sim_pages if p["kind"] == "form" and pick(p, truth[p["form_id"]]))
    raw = next(r for r in iter_pages(tmp / "sim" / page["file"], "x") if r.page_index == page["page"])
    gray, color = decode_page(raw)
    img = color if color is not None else gray
    h, w = img.shape[:2]
    img = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale), (w, h),
                         borderValue=(255, 255, 255) if img.ndim == 3 else 255)
    cv2.imwrite(str(tmp_path / name), img)
    return ws, page["form_id"], tmp_path / name


def test_a_form_printed_fit_to_page_reads_the_same(run, tmp_path):
    """Printers often shrink a page to fit their margins ("fit to page", 94-97 %): the page still
    aligns on its marks and every value reads as on the page printed at full size."""
    from sqlalchemy import select

    from formstation.store import audit, fields, pages

    ws, fid, scan = _page_again(run, tmp_path, lambda p, t: t["scan_count"] == 1 and t["age"] < 16, 0.94, "fit.png")
    s = Store.open(ws)
    with s.tx() as conn:
        before = {r.name: r.value for r in conn.execute(select(fields).where(fields.c.form_id == fid))}
    s.engine.dispose()
    assert main(["--workspace", str(ws), "ingest", str(scan), "--workers", "1"]) == 0
    s = Store.open(ws)
    with s.tx() as conn:
        residual = conn.execute(select(pages.c.residual_mm).where(pages.c.form_id == fid)
                                .order_by(pages.c.page_id.desc())).scalars().first()
        changed = [(r.field, r.old_value, r.new_value) for r in conn.execute(select(audit).where(audit.c.action == "rescan"))]
        after = {r.name: r.value for r in conn.execute(select(fields).where(fields.c.form_id == fid))}
    s.engine.dispose()
    assert residual is not None and residual < 0.3
    digits = ("phone", "guardian_id", "guardian_phone")
    assert [after[n] for n in digits] == [before[n] for n in digits] and not changed, changed


def test_a_form_a_reviewer_rejected_is_looked_at_again_when_its_paper_comes_back(run, tmp_path):
    """The school sends a rejected form back (corrected, or the same sheet fed twice): the new scan
    lifts the rejection, the form goes to review with its scans, and the reviewer is told who
    rejected it and why; the old rejection stays in the audit trail and can no longer be undone."""
    from sqlalchemy import select

    from formstation.store import audit, forms, leases, reasons
    from review_ui import data, decisions, review_queue

    ws, fid, scan = _page_again(run, tmp_path, lambda p, t: t["scan_count"] == 1 and t["expected_status"] == "accepted")
    s = Store.open(ws)
    with s.tx() as conn:
        conn.execute(leases.delete())  # earlier tests' reviewers left theirs in the workspace copied
        assert review_queue.lease_form(conn, fid, "ann")
        assert decisions.reject_form(conn, fid, "ann", "PHONE_INVALID", "phone unreadable") == "rejected"
    s.engine.dispose()
    assert main(["--workspace", str(ws), "ingest", str(scan), "--workers", "1"]) == 0
    s = Store.open(ws)
    with s.tx() as conn:
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
        codes = {r.code for r in conn.execute(select(reasons.c.code).where(reasons.c.form_id == fid))}
        reopen = conn.execute(select(audit).where(audit.c.form_id == fid, audit.c.action == "reopen")).one()
        view = data.load_form(conn, fid)
        with pytest.raises(decisions.DecisionError, match="after your decision"):
            decisions.undo_last(conn, "ann")
    s.engine.dispose()
    assert status == "review" and "DUPLICATE_SCAN" in codes and "REVIEWER_REJECTED" not in codes
    assert (reopen.field, reopen.old_value) == ("PHONE_INVALID", "rejected by ann: phone unreadable")
    assert [r["code"] for r in view.reopened] == ["PHONE_INVALID"] and len(view.scans) == 2
    from review_ui.ui_queue import _scans_html  # what the reviewer's whole-form step shows

    assert "Rejected before this scan came in: PHONE_INVALID (rejected by ann: phone unreadable" in _scans_html(view)


def test_a_page_without_barcode_matched_by_a_reviewer_joins_its_form_with_its_readings(run, tmp_path):
    """Barcode torn off and printed ID unreadable: the page aligns, is read, and waits unidentified.
    A reviewer matches it to its form: the page's readings become the form's (no re-reading) and
    the form is decided as if identified at ingest, instead of waiting at 'received'."""
    import shutil

    import cv2
    from sqlalchemy import delete, select, update

    from formstation.store import fields, forms, pages, reasons
    from ocr.align import ALIGN_DPI
    from review_ui import data, matching

    store, tmp, truth = run
    fid = next(f for f, t in truth.items() if t["scan_count"] == 1 and t["fields"]["photo"] == "none")
    with store.tx() as conn:
        image = conn.execute(select(pages.c.image_path).where(pages.c.form_id == fid)).scalar()
        # what the reader made of the page (a reviewer may have changed some since: left out)
        read = {r.name: r.value for r in conn.execute(select(fields).where(fields.c.form_id == fid))
                if r.source == "read"}
    ws = tmp_path / "ws"
    shutil.copytree(store.workspace, ws)
    page = cv2.imread(str(store.workspace / image), cv2.IMREAD_GRAYSCALE)  # the aligned page, as stored
    from forms.layout import load_layout

    layout = load_layout()
    for box in (layout.barcode_box, layout.zone("id_number").box):
        x0, y0, x1, y1 = box.to_px(ALIGN_DPI)
        page[y0 - 6:y1 + 6, x0 - 6:x1 + 6] = 255
    cv2.imwrite(str(tmp_path / "torn.png"), page)
    s = Store.open(ws)
    with s.tx() as conn:  # as if this page were the form's only one
        conn.execute(delete(pages).where(pages.c.form_id == fid))
        conn.execute(delete(fields).where(fields.c.form_id == fid))
        conn.execute(delete(reasons).where(reasons.c.form_id == fid))
        conn.execute(update(forms).where(forms.c.form_id == fid).values(status="printed"))
    s.engine.dispose()
    assert main(["--workspace", str(ws), "ingest", str(tmp_path / "torn.png"), "--workers", "1"]) == 0
    s = Store.open(ws)
    with s.tx() as conn:
        waiting = max(data.unidentified_pages(conn), key=lambda p: p.page_id)  # torn.png
        assert conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar() == "printed"
        matching.match_page(conn, waiting.page_id, fid, "rita")
    message = matching.reread(s, fid)
    with s.tx() as conn:
        got = {r.name: r.value for r in conn.execute(select(fields).where(fields.c.form_id == fid))}
        now = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
    s.engine.dispose()
    assert "readings from the page joined the form" in message, message
    names = {"phone", "guardian_id", "guardian_phone", "corrected_id", "applicant_signature", "guardian_signature"} & set(read)
    assert len(names) >= 3 and {n: got.get(n) for n in names} == {n: read[n] for n in names}
    assert now in ("accepted", "review", "rejected")
