"""The review app's page logic with Streamlit's AppTest (no browser): login and roles, the keyboard
queue flow, reject/skip/undo, group view, unidentified pages, lookup, supervisor pages."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from sqlalchemy import select, update

from formstation.store import audit, fields, forms, pages, persons, reasons
from review_ui import auth, data
from tests import review_sample as sample

APP = str(Path(__file__).resolve().parent.parent / "review_ui" / "app.py")
USERS = {"rita": ("reviewer", "secret-pass-1"), "sam": ("supervisor", "secret-pass-2"),
         "cleo": ("clerk", "secret-pass-3")}


@pytest.fixture(scope="session")
def sample_base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("review-app-sample")


@pytest.fixture
def review(sample_base: Path, tmp_path: Path, monkeypatch) -> sample.Sample:
    s = sample.cached(sample_base, tmp_path / "ws")
    with s.store.tx() as conn:
        for name, (role, pw) in USERS.items():
            auth.add_user(conn, name, role, pw)
    monkeypatch.setenv("FORMSTATION_WORKSPACE", str(tmp_path / "ws"))
    yield s
    s.store.engine.dispose()


def login(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(USERS[name][1])
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def field_key(at) -> str:
    return next(t.key for t in at.text_input if t.key and t.key.startswith("in_"))


def enter(at, value: str | None = None):
    """Type (or accept) and press Enter: the form's submit button."""
    key = field_key(at)
    if value is not None:
        at.text_input(key=key).input(value)
    next(b for b in at.button if b.label.startswith("Save")).click()
    at.run()
    assert not at.exception, at.exception
    return key


def finish(at, fid: str) -> None:
    """The form's remaining steps as they are; the whole-form step (if any) cleared with 'c'."""
    while field_key(at).startswith(f"in_{fid}_"):
        key = field_key(at)
        enter(at, "c" if key == f"in_{fid}_form" else None)
        assert field_key(at) != key, f"{key}: Enter did not move on: {[e.value for e in at.error]}"


def db(review, q):
    with review.store.tx() as conn:
        return conn.execute(q)


def test_login_rejects_a_wrong_password_and_roles_see_only_their_pages(review):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="login_name").input("rita")
    at.text_input(key="login_password").input("not-her-password")
    at.button[0].click().run()
    assert "wrong password" in at.error[0].value and not at.sidebar.radio
    for name, role in (("rita", "reviewer"), ("cleo", "clerk"), ("sam", "supervisor")):
        at = login(name)
        assert list(at.sidebar.radio(key="nav_page").options) == list(auth.PAGES[role])
    assert at.sidebar.radio(key="nav_page").value == "Dashboard"


def test_keyboard_flow_fixes_a_field_and_moves_on(review):
    at = login("rita")
    key = field_key(at)
    _, fid, name = key.split("_", 2)
    assert name == "phone" and review.scenario[fid] == 1
    # the reader's doubt: the last box framed on the crop, its digit highlighted, named in words
    panel = next(h.proto.body for h in at.get("html") if "fs-panel" in h.proto.body)
    paper, read = review.truth[fid]["phone"], at.text_input(key=key).value
    assert panel.count("class='fs-mark'") == 1 and f"<span>{read[-1]}/{paper[-1]}</span>" in panel
    assert f"<mark>{read[-1]}</mark></code>" in panel and f"look at box 11 ({read[-1]} or {paper[-1]})" in panel
    enter(at, "13a")  # a typo: stays on the field with the problem shown
    assert field_key(at) == key and "only 0123456789" in at.error[0].value
    enter(at, review.truth[fid]["phone"])
    finish(at, fid)  # form-level reasons: 'c' clears them
    assert field_key(at).split("_")[1] != fid
    assert any(f"{fid} saved: accepted" in s.value for s in at.success)
    with review.store.tx() as conn:
        row = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "phone")).first()
        st = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
    assert (row.value, row.source, row.updated_by, st) == (review.truth[fid]["phone"], "reviewer", "rita", "accepted")


def test_reject_skip_and_undo(review):
    at = login("rita")
    fid = field_key(at).split("_")[1]
    at.toggle(key="q_show_reject").set_value(True).run()
    at.selectbox(key="q_reject_code").set_value("PHONE_INVALID")
    at.text_input(key="q_reject_note").input("the number has 10 digits")
    next(b for b in at.button if b.label == "Reject form").click().run()
    with review.store.tx() as conn:
        assert conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar() == "rejected"
        note = conn.execute(select(reasons.c.detail).where(reasons.c.form_id == fid,
                                                           reasons.c.code == "REVIEWER_REJECTED")).scalar()
    assert note == "the number has 10 digits"
    second = field_key(at).split("_")[1]
    assert second != fid
    at.button(key="q_skip").click().run()
    third = field_key(at).split("_")[1]
    assert third not in (fid, second)
    at.button(key="q_undo").click().run()
    assert field_key(at).split("_")[1] == fid  # the rejected form is back, leased to rita
    with review.store.tx() as conn:
        assert conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar() == "review"
    at.toggle(key="q_show_history").set_value(True).run()
    actions = list(at.dataframe[0].value["action"])
    assert "undo" in actions and "reject" in actions


def test_group_view_flags_a_copied_number(review):
    with review.store.tx() as conn:  # two forms of the first class carry the same phone
        view = data.load_form(conn, "F0000001")
        same = [r.form_id for r in conn.execute(select(fields.c.form_id).where(fields.c.name == "phone"))
                if data.load_form(conn, r.form_id).class_name == view.class_name][:2]
        conn.execute(update(fields).where(fields.c.form_id.in_(same), fields.c.name == "phone")
                     .values(value="13912345678"))
    at = login("rita")
    at.sidebar.radio(key="nav_page").set_value("Group view").run()
    at.selectbox(key="g_class").set_value(f"{view.school} · {view.class_name}").run()
    assert "2 forms share a value" in at.warning[0].value
    assert sum("⚠" in c.value for c in at.caption) == 2
    at.radio(key="g_field").set_value("guardian_signature").run()  # the misread one shows as missing
    assert not at.exception and "1 forms have nothing here" in at.warning[0].value


def test_unidentified_page_is_matched_by_name(review):
    fid = review.unidentified_for
    with review.store.tx() as conn:
        name = data.load_form(conn, fid).name
    at = login("rita")
    at.sidebar.radio(key="nav_page").set_value("Unidentified").run()
    page_key = next(t.key for t in at.text_input if t.key.startswith("u_q_"))
    at.text_input(key=page_key).input(name).run()
    next(b for b in at.button if b.key and b.key.endswith(f"_{fid}")).click().run()
    assert any(fid in s.value for s in at.success)
    assert "No unidentified pages" in at.success[-1].value
    with review.store.tx() as conn:
        assert conn.execute(select(pages.c.kind).where(pages.c.form_id == fid)).scalar() == "form"


def test_form_lookup_shows_fields_and_audit(review):
    at = login("rita")
    fid = field_key(at).split("_")[1]
    enter(at, review.truth[fid]["phone"])
    finish(at, fid)
    at.sidebar.radio(key="nav_page").set_value("Form lookup").run()
    at.text_input(key="l_q").input(fid).run()
    assert any(fid in s.value for s in at.subheader)
    trail = at.dataframe[1].value
    assert "confirm" in list(trail["action"]) or "edit" in list(trail["action"])


def test_supervisor_dashboard_and_thresholds(review):
    # one form came in from a grey scan of a pasted photo: the dashboard says which page to scan again
    fid = next(f for f, sc in review.scenario.items() if sc == 0)
    with review.store.tx() as conn:
        conn.execute(update(forms).where(forms.c.form_id == fid).values(status="rescan"))
        # and a page whose barcode names a form another station printed
        conn.execute(pages.insert().values(file_sha256="f" * 64, page_index=0, form_id="F9999999",
                                           kind="not_in_roster", identified_by="barcode"))
    at = login("sam")
    labels = {m.label: m.value for m in at.metric}
    assert labels["printed"] == str(len(review.scenario)) and int(labels["not returned"]) >= 1
    assert labels["colour rescan"] == "1" and "Scan these pages again in colour" in at.warning[0].value
    table = next(d.value for d in at.dataframe if "scan file" in d.value.columns)
    assert list(table["form_id"]) == [fid] and list(table["page"]) == [1]
    assert any("did not print" in w.value for w in at.warning)
    stranger = next(d.value for d in at.dataframe if "form id on the barcode" in d.value.columns)
    assert list(stranger["form id on the barcode"]) == ["F9999999"]
    why = next(d.value for d in at.dataframe if "forms in review" in d.value.columns)
    with review.store.tx() as conn:
        in_review = conn.execute(select(forms.c.form_id).where(forms.c.status == "review")).scalars().all()
        low = {r.form_id for r in conn.execute(select(reasons.c.form_id).where(reasons.c.code == "LOW_CONFIDENCE"))}
    counts = dict(zip(why["reason"], why["forms in review"], strict=True))
    assert counts["LOW_CONFIDENCE"] == len(low & set(in_review)) > 0 and max(counts.values()) <= len(in_review)
    at.sidebar.radio(key="nav_page").set_value("Thresholds").run()
    at.number_input(key="t_digits").set_value(0.75)
    at.number_input(key="t_phone").set_value(0.9123)
    next(b for b in at.button if b.label == "Save thresholds").click().run()
    saved = (review.store.workspace / "station.toml").read_text()
    assert "digits = 0.750" in saved and "phone = 0.9123" in saved
    with review.store.tx() as conn:
        assert conn.execute(select(audit.c.user_name).where(audit.c.action == "config")).scalar() == "sam"


def test_downloads_with_the_real_export_and_each_download_logged(review):
    from review_ui import ui_supervisor
    from review_ui.ui_common import Ctx

    at = login("sam")
    at.sidebar.radio(key="nav_page").set_value("Downloads").run()
    at.text_input(key="d_pw").input("a long passphrase 17")
    at.button(key="d_run").click().run()
    assert not at.exception and not at.error
    assert len(at.get("download_button")) >= 2  # a zip per school and the manifest of the zips
    ui_supervisor.on_download(Ctx(review.store, "sam", "supervisor", 60), "manifest.json", None)
    with review.store.tx() as conn:
        row = conn.execute(select(audit).where(audit.c.action == "download")).first()
    assert (row.user_name, row.new_value) == ("sam", "manifest.json")


def test_clerk_upload_page_and_progress_bar(review):
    at = login("cleo")
    assert at.header[0].value == "Upload scans" and not at.warning
    from review_ui.ui_clerk import BarProgress

    calls = []
    bar = types.SimpleNamespace(progress=lambda v, text: calls.append((v, text)))
    p = BarProgress(bar)
    p.start(4)
    p.advance(1)
    p.advance(3)
    p.finish()
    assert calls[0] == (0.0, "0 / 4 pages") and calls[2][0] == 1.0 and calls[-1][1].endswith("done")
    # a form waiting for a colour rescan: the clerk, who has the paper, is told which one
    fid = next(f for f, sc in review.scenario.items() if sc == 0)
    with review.store.tx() as conn:
        conn.execute(update(forms).where(forms.c.form_id == fid).values(status="rescan"))
    at = login("cleo")
    assert "scan them in colour" in at.warning[0].value
    assert list(next(d.value for d in at.dataframe if "scan file" in d.value.columns)["form_id"]) == [fid]


def test_a_later_scan_reading_a_reviewers_value_differently_shows_both(review, tmp_path):
    """A reviewed form fed again: the reviewer gets the field back with both crops (Enter keeps the
    value), then the whole-form step lists both scans and what the later one read differently."""
    from ocr import persist
    from ocr.types import FieldReading, PageResult
    from review_ui import review_queue

    at = login("rita")
    _, fid, name = field_key(at).split("_", 2)
    paper = review.truth[fid]["phone"]
    enter(at, paper)
    finish(at, fid)
    with review.store.tx() as conn:
        row = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "phone")).one()
        image = conn.execute(select(pages.c.image_path).where(pages.c.form_id == fid)).scalar()
    later = "13" + paper[2:-1] + str((int(paper[-1]) + 1) % 10)
    again = tmp_path / "again.png"
    again.write_bytes(b"a scan file")
    res = PageResult("later-scan", 0, "form", fid, image_path=image, readings=(
        FieldReading("phone", later, 0.9, (0, 0, 1, 1), detail={"crop": row.crop_path}),))
    with review.store.tx() as conn:
        persist.store_page(conn, res)
    persist.finish_file(review.store, "later-scan", again, 1, "")
    persist.after_batch(review.store, {fid})
    from formstation.store import leases

    with review.store.tx() as conn:
        conn.execute(leases.delete().where(leases.c.user_name == "rita"))  # the form she moved on to
        assert review_queue.lease_form(conn, fid, "rita")  # first in her queue

    at = login("rita")
    assert field_key(at) == f"in_{fid}_phone" and at.text_input(key=field_key(at)).value == paper
    panel = next(h.proto.body for h in at.get("html") if "fs-panel" in h.proto.body)
    assert "earlier scan" in panel and "later scan" in panel and panel.count("<img") == 2
    assert f"kept: <code>{paper}</code>" in panel and f"the later scan reads: <code>{later}</code>" in panel
    enter(at)  # keep the reviewer's value
    body = next(h.proto.body for h in at.get("html") if "The whole form" in h.proto.body)
    assert "DUPLICATE_SCAN" in body and "scan 2: again.png, page 1" in body
    assert f"<code>{paper}</code> → <code>{later}</code>" in body
    enter(at, "c")
    with review.store.tx() as conn:
        row = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "phone")).one()
        st = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
    assert (row.value, row.source, row.other_scan, st) == (paper, "reviewer", None, "accepted")
    at.sidebar.radio(key="nav_page").set_value("Form lookup").run()
    at.text_input(key="l_q").input(fid).run()
    assert any("scan 2: again.png, page 1" in c.value for c in at.caption)
    trail = at.dataframe[1].value
    assert ("station", "rescan", "phone") in set(zip(trail["user"], trail["action"], trail["field"], strict=True))


def test_a_doubtful_corrected_id_is_offered_the_number_on_the_pasted_copy(review):
    """The parent's handwritten corrected ID is read with doubt, the ID copy's printed number is a
    valid ID: the reviewer sees both and the copy's number is offered (Enter takes it)."""
    from datetime import date

    from sqlalchemy import insert

    from formstation import idnumber
    from formstation.store import leases, upsert_field
    from review_ui import review_queue

    at = login("rita")
    _, fid, _ = field_key(at).split("_", 2)
    copy = idnumber.make("450481", date(2012, 3, 27), 62)
    written = copy[:5] + str((int(copy[5]) + 1) % 10) + copy[6:]  # one box misread
    with review.store.tx() as conn:
        crop = conn.execute(select(fields.c.crop_path).where(fields.c.form_id == fid, fields.c.name == "phone")).scalar()
        upsert_field(conn, fid, "corrected_id", {"value": written, "confidence": 0.4, "source": "read", "crop_path": crop})
        upsert_field(conn, fid, "id_copy_number", {"value": copy, "confidence": 0.9, "source": "read"})
        conn.execute(insert(reasons).values(form_id=fid, code="LOW_CONFIDENCE", field="corrected_id", detail="0.40"))
    at = login("rita")
    assert field_key(at) == f"in_{fid}_corrected_id"
    assert at.text_input(key=field_key(at)).value == copy
    panel = next(h.proto.body for h in at.get("html") if "fs-panel" in h.proto.body)
    assert f"the pasted ID copy reads <code>{copy}</code>" in panel
    # the one box where the reading and the offered number differ is framed, named and highlighted
    assert panel.count("class='fs-mark'") == 1 and f"<span>{written[5]} ⇒{copy[5]}</span>" in panel
    assert f"{written[:5]}<mark>{written[5]}</mark>{written[6:]}" in panel
    assert f"look at box 6 (reads {written[5]}; the entry box holds {copy[5]})" in panel
    enter(at)  # takes the copy's number; the other steps as they are
    finish(at, fid)
    with review.store.tx() as conn:
        row = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "corrected_id")).one()
    assert (row.value, row.source) == (copy, "reviewer")
    # a copy that shows the printed ID backs a name correction: it is not offered as a corrected ID
    with review.store.tx() as conn:
        printed = data.load_form(conn, fid).id_number
    fid2 = next(f for f in review.scenario if f != fid)
    with review.store.tx() as conn:
        upsert_field(conn, fid2, "corrected_id", {"value": "1", "confidence": 0.0, "source": "read", "crop_path": crop})
        upsert_field(conn, fid2, "id_copy_number", {"value": data.load_form(conn, fid2).id_number, "confidence": 0.9,
                                                    "source": "read"})
        conn.execute(insert(reasons).values(form_id=fid2, code="LOW_CONFIDENCE", field="corrected_id", detail="0.00"))
        conn.execute(update(forms).where(forms.c.form_id == fid2).values(status="review"))
        conn.execute(leases.delete().where(leases.c.user_name == "rita"))  # the form she moved on to
        assert review_queue.lease_form(conn, fid2, "rita")
    at = login("rita")
    assert field_key(at) == f"in_{fid2}_corrected_id" and at.text_input(key=field_key(at)).value == "1"
    assert printed != copy and "the printed ID: was the ID corrected at all?" in next(
        h.proto.body for h in at.get("html") if "fs-panel" in h.proto.body)


# ------------------------------------------------------------------ a form of another layout

def _wuzhou_form_in_review(tmp_path: Path, monkeypatch):
    """A Wuzhou form printed by the station, a corrected name and a phone written on it by the
    simulator's pen, scanned and ingested: it waits in review (NAME_CORRECTED)."""
    import cv2

    from forms.layout import load_layout
    from formstation import demo
    from formstation.printjob import print_forms
    from formstation.roster import import_roster
    from formstation.store import Store
    from ocr.ingest import ingest_paths
    from simulate.fill import draw_form
    from simulate.runner import render
    from simulate.truth import FormTruth, Person

    ws = tmp_path / "ws"
    monkeypatch.setenv("FORMSTATION_WORKSPACE", str(ws))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    store = Store.open(ws)
    import_roster(store, demo.write_roster(tmp_path / "roster.csv", seed=2, per_class=1, classes=demo.DEMO_CLASSES[2:3]))
    wz = load_layout("wuzhou_info_v1")
    pdf = print_forms(store, wz, tmp_path / "print")[0].path
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdf))
    page = cv2.cvtColor(render(doc, 0, 200, wz), cv2.COLOR_GRAY2BGR)
    doc.close()
    with store.tx() as conn:
        fid = conn.execute(select(forms.c.form_id)).scalar()
    person = Person(fid, "", "", "张三", "", "450481201203150012", False, str(pdf), 0, wz.key)
    draw_form(page, wz, FormTruth(person, 14, {"corrected_name": "李光艳", "phone": "13812345678"}, {}), 200, 1)
    cv2.imwrite(str(tmp_path / "scan.png"), page)
    ingest_paths(store, load_layout(), [tmp_path / "scan.png"], workers=1)
    with store.tx() as conn:
        for name, (role, pw) in USERS.items():
            auth.add_user(conn, name, role, pw)
        assert conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar() == "review"
    return store, fid


def test_a_form_of_another_layout_is_reviewed_with_its_own_fields(tmp_path, monkeypatch):
    """The reviewer of a Wuzhou form sees Wuzhou's fields: its labels and hints, the name cut from
    its own name box, and what is typed is checked by its own fields' shapes."""
    store, fid = _wuzhou_form_in_review(tmp_path, monkeypatch)
    with store.tx() as conn:
        view = data.load_form(conn, fid)
        school, class_name = conn.execute(select(persons.c.school, persons.c.class_name)).first()
        offered = data.group_fields(conn, school, class_name)
    assert view.layout_key == "wuzhou_info_v1" and {it.layout_key for it in view.items} == {"wuzhou_info_v1"}
    assert offered == ("phone",)  # the group view offers what Wuzhou's form has: no signature, photo
    assert {it.name for it in view.items} <= set(data.field_order(view.layout))
    at = login("rita")
    assert field_key(at) == f"in_{fid}_corrected_name"
    panel = next(h.proto.body for h in at.get("html") if "fs-panel" in h.proto.body)
    assert "<h4>姓名 (corrected_name)</h4>" in panel and "更正姓名" not in panel  # Wuzhou's label, not today's
    assert at.text_input(key=field_key(at)).proto.help.startswith("按《户口簿》填写的姓名")
    enter(at, "李光艳")

    def step() -> str:
        return next((t.key for t in at.text_input if t.key and t.key.startswith(f"in_{fid}_")), "")

    while step():
        if step() == f"in_{fid}_phone":
            enter(at, "1381234567")  # a box short: Wuzhou's phone has 11
            assert "11 characters needed" in at.error[0].value
            enter(at, "13812345678")
        else:
            enter(at, "c" if step() == f"in_{fid}_form" else None)
    with store.tx() as conn:
        got = {r.name: (r.value, r.source) for r in conn.execute(select(fields).where(fields.c.form_id == fid))}
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
    assert got["corrected_name"] == ("李光艳", "reviewer") and status == "accepted", (got, status)
    store.engine.dispose()


def test_the_boxes_framed_for_a_reviewer_are_those_of_the_forms_own_layout():
    """A comb field today's layout does not have (the third layout's `tel`): its boxes are framed
    where that layout puts them in the crop."""
    from review_ui import fieldinfo, ui_panels
    from tests.layouts import THIRD

    key = THIRD.stem
    import os

    from forms.layout import LAYOUT_PATH_ENV

    old = os.environ.get(LAYOUT_PATH_ENV)
    os.environ[LAYOUT_PATH_ENV] = str(THIRD.parent)
    try:
        it = data.Item("tel", "13812345678", "03812345678", 0.9, "read", None, (), layout_key=key)
        marks = ui_panels.framed(it, "13812345670")
        fracs = fieldinfo.cell_fracs("tel", key)
    finally:
        if old is None:
            os.environ.pop(LAYOUT_PATH_ENV)
        else:
            os.environ[LAYOUT_PATH_ENV] = old
    assert [(m["i"], m.get("raw"), m.get("offered")) for m in marks] == [(0, "0", None), (10, None, "0")]
    assert [m["box"] for m in marks] == [list(fracs[0]), list(fracs[10])]


def test_todays_review_order_is_its_layouts_order():
    from forms.layout import load_layout

    assert data.field_order(load_layout()) == data.FIELD_ORDER


def test_a_box_the_other_phone_reads_otherwise_is_framed_and_named():
    from review_ui.ui_panels import _doubt_word, marks_html

    # the applicant's and the guardian's phone read one box apart (ocr.read._one_box_apart)
    mark = {"i": 6, "read": "7", "p": 0.999, "alt": "1", "other": "4", "box": [0.5, 0.0, 0.6, 1.0]}
    assert "<span>7≠4</span>" in marks_html([mark])
    assert _doubt_word(mark) == "7 or 1; the other phone reads 4 here"
