"""The station learns its campaign's handwriting from its reviewers (issue 15), on real engines: a
campaign printed, filled in by writers unlike the reader's training (`--writers other`), scanned and
ingested by the project's tools; a simulated reviewer (the truth) clears the queue; `formstation
reader adapt` fits a candidate, compares it on held-out forms and promotes it only when better.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from formstation.cli import main
from formstation.store import Store, audit, fields, forms, labelled_cells
from ocr import adapt, labels, learning, versions
from ocr.digits import ONNX_MODEL
from simulate.reviewer import clear_queue, load_truth
from tests import campaigns

pytestmark = pytest.mark.skipif(not ONNX_MODEL.is_file(), reason="the v2 reader (ocr/models/reader_v2.onnx) is not shipped")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """48 forms (4 classes of 12) filled in by scikit-learn's writers, ingested; pristine workspace."""
    tmp = tmp_path_factory.mktemp("adapt")
    return tmp, campaigns.ingested(tmp, 15, 12, "--writers", "other")


@pytest.fixture
def station(campaign, tmp_path, monkeypatch):
    """A fresh copy of the ingested campaign's workspace (SQLite)."""
    tmp, truth = campaign
    ws = tmp_path / "ws"
    shutil.copytree(tmp / "ws", ws)
    monkeypatch.setenv("FORMSTATION_WORKSPACE", str(ws))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(adapt, "MIN_HOLDOUT_FORMS", 3)
    monkeypatch.setattr(adapt, "MIN_TRAIN_CELLS", 100)
    # 48 forms leave some 120 held-out cells on a handful of forms, too few for the 5 % sign test; the
    # candidate must still be better on more forms than worse (the rule itself: test_the_gate_refuses_a_gain...)
    monkeypatch.setattr(adapt, "SIGNIFICANCE", 0.4)
    store = Store.open(ws)
    yield store, truth
    store.engine.dispose()


DIGITS = ("phone", "guardian_phone", "guardian_id", "corrected_id")


def _rows(store, *where):
    with store.tx() as conn:
        return conn.execute(select(labelled_cells).where(*where)).all()


def test_every_field_reading_records_the_reader_version(station):
    store, _ = station
    with store.tx() as conn:
        got = {r.reader_version for r in conn.execute(select(fields.c.reader_version).where(fields.c.source == "read"))}
    assert got == {versions.shipped_version()}


def test_a_saved_digit_field_keeps_its_cells_with_the_final_characters(station):
    store, truth = station
    assert clear_queue(store, truth, "rita") > 0
    rows = _rows(store)
    assert rows, "no labelled cells kept"
    by_field: dict[tuple[str, str], list] = {}
    for r in rows:
        by_field.setdefault((r.form_id, r.field), []).append(r)
    for (fid, name), rs in by_field.items():
        assert name in DIGITS
        value = truth[fid]["fields"][name]
        assert all(r.value == value and r.label == value[r.box] for r in rs)  # one character per box
        assert {r.reviewer for r in rs} == {"rita"} and {r.reader_version for r in rs} == {versions.shipped_version()}
        assert all(len(r.cell) == 784 for r in rs)
    # the cells are the ones the reader saw: the shipped reader reads most of them as labelled
    from ocr.digits import CLASSES, default_classifier

    x = np.frombuffer(b"".join(r.cell for r in rows), np.uint8).reshape(-1, 28, 28)
    read = default_classifier().predict_proba(x).argmax(axis=1)
    assert (read == np.array([CLASSES.index(r.label) for r in rows])).mean() > 0.5


def test_a_value_that_does_not_fit_the_boxes_keeps_no_cell_and_undo_forgets(station):
    store, truth = station
    from review_ui import decisions, review_queue

    with store.tx() as conn:
        fid = review_queue.take_lease(conn, "rita")
        name = next(n for n in ("phone", "guardian_phone") if truth[fid]["fields"].get(n))
        value = truth[fid]["fields"][name]
        decisions.save_form(conn, fid, "rita", {name: value[:-1]}, (), store.workspace)  # one digit short
    assert not _rows(store, labelled_cells.c.form_id == fid)
    with store.tx() as conn:
        review_queue.lease_form(conn, fid, "rita")  # the decision may have ended the lease
        decisions.save_form(conn, fid, "rita", {name: value}, (), store.workspace)
    assert len(_rows(store, labelled_cells.c.form_id == fid)) > 5
    with store.tx() as conn:
        assert decisions.undo_last(conn, "rita") == fid
    assert not _rows(store, labelled_cells.c.form_id == fid)


def test_undo_after_a_re_read_restores_no_stale_reading(station):
    """A reviewer saves one field of a form that stays in review; the form is then read again by a
    new reader version (its other fields, decided again). Her undo would put back readings and
    reasons of the reader before: it is refused, saying why, and nothing changes."""
    from ocr.reread import reread_forms
    from review_ui import decisions, review_queue

    store, truth = station
    with store.tx() as conn:
        waiting = [(r.form_id, r.layout_key) for r in conn.execute(
            select(forms.c.form_id, forms.c.layout_key).where(forms.c.status == "review").order_by(forms.c.form_id))]
        low = {r.form_id for r in conn.execute(select(fields.c.form_id).where(
            fields.c.name == "guardian_id", fields.c.source == "read", fields.c.confidence < 0.5))}
    fid, key = next((f, k) for f, k in waiting if f in low and truth[f]["fields"].get("phone"))
    with store.tx() as conn:
        assert review_queue.lease_form(conn, fid, "rita")
        assert decisions.save_form(conn, fid, "rita", {"phone": truth[fid]["fields"]["phone"]}, (),
                                   store.workspace) == "review"  # the guardian's ID is still doubtful
        review_queue.release(conn, fid, "rita")  # she moves on; the form waits
    assert reread_forms(store, [(fid, key)]).forms == 1

    def state():
        with store.tx() as conn:
            return (conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar(),
                    sorted((r.name, r.value, r.source) for r in conn.execute(
                        select(fields).where(fields.c.form_id == fid))))

    before = state()
    with store.tx() as conn, pytest.raises(decisions.DecisionError, match="read again"):
        decisions.undo_last(conn, "rita")
    assert state() == before
    assert ("phone", truth[fid]["fields"]["phone"], "reviewer") in before[1]


def test_labelled_boxes_leave_out_the_ambiguous_ones():
    k = np.array([labels.OWN, labels.REWRITE, labels.NOTED, labels.EMPTY, labels.OWN], np.uint8)
    assert labels.labelled_boxes("12345", k, "0123456789") == [0, 1, 4]  # noted and empty boxes: out
    assert labels.labelled_boxes("1234", k, "0123456789") == []  # not one character per box
    assert labels.labelled_boxes("1234X", k, "0123456789") == [0, 1]  # X where the box cannot hold it


def test_adapt_promotes_a_better_reader_and_re_reads_what_waits(station):
    store, truth = station
    ws = store.workspace
    first = sorted(truth)[: len(truth) * 3 // 4]
    clear_queue(store, truth, "rita", only=first)
    with store.tx() as conn:
        waiting_before = {r.form_id for r in conn.execute(select(forms.c.form_id).where(forms.c.status == "review"))}
    assert waiting_before
    out = learning.run_adapt(store, user="sam")
    figs = out.figures
    assert out.version and figs["forms"]["holdout"] >= 3 and figs["cells"]["train"] >= 100
    # whole forms are held out: no held-out or calibration form gave a training cell
    with store.tx() as conn:
        parts = {adapt.part_of(f) for f in conn.execute(select(labelled_cells.c.form_id)).scalars()}
    assert parts == {"train", "calib", "holdout"}
    cand, cur = figs["candidate"], figs["current"]
    assert out.promoted, out.message
    assert cand["cell_accuracy"] > cur["cell_accuracy"] and cand["wrong_share"] <= 0.005
    assert versions.current_name(ws) == out.version
    kept = {v.name: v for v in versions.list_versions(ws)}
    assert kept[out.version].figures["promoted"] is True and (ws / "readers" / out.version / "heads.npz").is_file()
    # the forms still in review were read again with it, fields no reviewer touched
    rr = out.reread
    assert rr is not None and rr.version == out.version and rr.forms > 0
    with store.tx() as conn:
        rows = conn.execute(select(audit).where(audit.c.action == "reread")).all()
        by_reviewer = conn.execute(select(fields.c.reader_version).where(fields.c.source == "reviewer")).scalars().all()
        now_read = set(conn.execute(select(fields.c.reader_version).where(
            fields.c.form_id.in_(waiting_before - set(first)), fields.c.source == "read",
            fields.c.name.in_(DIGITS))).scalars())
    assert any(r.field is None and r.new_value == out.version for r in rows)
    assert {r.form_id for r in rows} <= waiting_before
    assert out.version not in by_reviewer
    if waiting_before - set(first):
        assert now_read == {out.version}


def test_a_reviewer_who_types_wrong_values_cannot_poison_the_reader(station):
    store, truth = station
    ws = store.workspace
    train = [f for f in truth if adapt.part_of(f) == "train"]
    other = [f for f in truth if adapt.part_of(f) != "train"]

    def wrong(fid, name, value):  # every digit one off
        return "".join(str((int(c) + 1) % 10) if c.isdigit() else c for c in value) if name in DIGITS else value

    clear_queue(store, truth, "mallory", only=train, typed=wrong)
    clear_queue(store, truth, "rita", only=other)
    out = learning.run_adapt(store, user="sam")
    assert out.version and not out.promoted
    assert "below the current reader" in out.message
    assert versions.current_name(ws) == versions.shipped_version()  # nothing changed
    assert not (ws / "readers" / "CURRENT").exists()
    with store.tx() as conn:
        assert not conn.execute(select(audit).where(audit.c.action == "reread")).first()
    assert versions.list_versions(ws)[-1].figures["why_not"]


def test_caps_on_one_forms_and_one_reviewers_share():
    rng = np.random.default_rng(0)
    groups = np.array(["a"] * 80 + ["b"] * 10 + ["c"] * 10, object)
    idx = np.arange(100)
    kept = adapt.cap_shares(groups, idx, 0.5, rng)
    assert (groups[kept] == "a").sum() == 50 and len(kept) == 70
    assert len(adapt.cap_shares(np.array(["a"] * 30, object), np.arange(30), 0.5, rng)) == 30  # one group: all


def _gate_cells(fields_: dict[str, str], sure: float, unsure: dict[str, float] | None = None
                ) -> tuple[np.ndarray, adapt.Cells]:
    """One held-out form's labelled cells: each box read as its written digit with probability
    `sure` (or its field's in `unsure`; the rest spread over the other classes), alike by every
    member of the ensemble."""
    from ocr.digits import CLASSES

    rows = [(name, i, ch) for name, value in fields_.items() for i, ch in enumerate(value)]
    p = np.zeros((len(rows), 3, len(CLASSES)))
    for k, (name, _, ch) in enumerate(rows):
        q = (unsure or {}).get(name, sure)
        p[k] = (1 - q) / (len(CLASSES) - 1)
        p[k, :, CLASSES.index(ch)] = q
    cells = adapt.Cells(np.zeros((len(rows), 28, 28), np.uint8), np.array([CLASSES.index(c) for *_, c in rows]),
                        np.array(["F1"] * len(rows), object), np.array([r[0] for r in rows], object),
                        np.array([r[1] for r in rows]), np.array([fields_[r[0]] for r in rows], object),
                        np.zeros(len(rows), bool), np.array(["rita"] * len(rows), object),
                        {"F1": "ssc_application_v1"})
    return p, cells


def test_the_gate_decides_a_number_written_twice_as_the_station_does():
    """The phone a family writes twice is read from both renderings, as the station reads it: each
    rendering alone is below the station's phone thresholds, the two together are accepted; on a
    form where most boxes are doubtful (unusual writing) nothing is accepted."""
    from formstation.config import DEFAULT_THRESHOLDS

    th = dict(DEFAULT_THRESHOLDS)
    alone = adapt.measure(*_gate_cells({"phone": "13812345678"}, 0.997), th)
    assert (alone.fields, alone.field_accuracy, alone.accepted) == (1, 1.0, 0)  # 0.997^10 < 0.99
    twice = adapt.measure(*_gate_cells({"phone": "13812345678", "guardian_phone": "13812345678"}, 0.997), th)
    assert (twice.fields, twice.field_accuracy, twice.accepted, twice.accepted_wrong) == (2, 1.0, 2, 0)
    two_numbers = adapt.measure(*_gate_cells({"phone": "13812345678", "guardian_phone": "13987654321"}, 0.997), th)
    assert two_numbers.accepted == 0
    guardian = "450481198003270625"  # every box of the guardian's ID doubtful: 18 of 40 inked boxes
    unusual = _gate_cells({"phone": "13812345678", "guardian_phone": "13812345678", "guardian_id": guardian},
                          0.997, {"guardian_id": 0.9})
    assert adapt.measure(*unusual, th).accepted == 0  # unusual writing: not even the pair is accepted
    assert adapt.measure(*unusual, th, unusual_share=1.0).accepted == 2  # without the rule the pair would be


def test_temperatures_are_fitted_on_calibration_forms_only(station, monkeypatch):
    store, truth = station
    clear_queue(store, truth, "rita")
    seen = []
    real = adapt.fit_temperature
    monkeypatch.setattr(adapt, "fit_temperature", lambda z, y: seen.append(len(y)) or real(z, y))
    with store.tx() as conn:
        cells = adapt.load_cells(conn)
    learning.run_adapt(store)
    n_calib = sum(adapt.part_of(f) == "calib" for f in cells.form)
    assert seen and set(seen) == {n_calib}


def test_rollback_and_workers_pick_up_the_current_version_at_the_next_file(station, capsys):
    store, truth = station
    ws = store.workspace
    clear_queue(store, truth, "rita")
    out = learning.run_adapt(store)
    assert out.promoted, out.message
    f = versions.Follower(ws)
    shipped = versions.load_reader(ws, versions.shipped_version())
    r = f.reader_for("file-1", shipped)
    assert r.version == out.version
    learning.use_version(store, versions.shipped_version(), user="sam")  # roll back
    assert f.reader_for("file-1", r) is r  # the same file goes on with the reader it began with
    assert f.reader_for("file-2", r).version == versions.shipped_version()
    capsys.readouterr()
    assert main(["--workspace", str(ws), "reader", "versions"]) == 0
    listed = capsys.readouterr().out.splitlines()
    c = out.figures["cell_changes"]
    assert listed[0].startswith(f"* {versions.shipped_version()} (shipped)")  # current again after the rollback
    assert f"forms better {c['forms_better']}, worse {c['forms_worse']}" in listed[1]
    assert listed[1].startswith(f"  {out.version} ") and listed[1].endswith("; verdict: promoted")
    assert main(["--workspace", str(ws), "reader", "use", "no-such-version"]) == 3
    with store.tx() as conn:
        moves = conn.execute(select(audit.c.old_value, audit.c.new_value).where(
            audit.c.action == "reader_current")).all()
    assert [tuple(m) for m in moves] == [(versions.shipped_version(), out.version),
                                        (out.version, versions.shipped_version())]


def test_auto_adapts_on_ingest_after_n_reviewed_forms(station, tmp_path, capsys):
    store, truth = station
    ws = store.workspace
    clear_queue(store, truth, "rita")
    empty = tmp_path / "none"
    empty.mkdir()
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet", "--auto", "10000"]) == 0
    assert len(versions.list_versions(ws)) == 1  # not due
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet", "--auto", "5"]) == 0
    assert len(versions.list_versions(ws)) == 2 and "candidate" in capsys.readouterr().out
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet", "--auto", "5"]) == 0
    assert len(versions.list_versions(ws)) == 2  # no new reviewed form since


def test_ingest_adapts_by_itself_at_the_cadence_of_station_toml(station, tmp_path, capsys):
    """Without --auto, ingest learns at the workspace's cadence ([reader] adapt_every, 200 by
    default: this campaign's 48 forms are not enough); --auto 0 never adapts."""
    from dataclasses import replace

    from formstation.config import load_config, save_config

    store, truth = station
    ws = store.workspace
    clear_queue(store, truth, "rita")
    empty = tmp_path / "none"
    empty.mkdir()
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet"]) == 0
    assert len(versions.list_versions(ws)) == 1  # 200 by default: not due
    save_config(ws, replace(load_config(ws), adapt_every=5))
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet", "--auto", "0"]) == 0
    assert len(versions.list_versions(ws)) == 1  # --auto 0: never
    assert main(["--workspace", str(ws), "ingest", str(empty), "--quiet"]) == 0
    assert len(versions.list_versions(ws)) == 2 and "candidate" in capsys.readouterr().out


def test_labelled_cells_are_never_exported(station, tmp_path):
    store, truth = station
    clear_queue(store, truth, "rita")
    assert _rows(store)
    assert main(["--workspace", str(store.workspace), "export", "--out", str(tmp_path / "export")]) == 0
    names = {p.name for p in (tmp_path / "export").rglob("*")}
    assert not any("cell" in n or n.endswith(".npz") for n in names)
    assert main(["--workspace", str(store.workspace), "reader", "forget"]) == 0
    assert not _rows(store)


def test_labelled_cells_are_kept_in_the_store_on_both_backends(printed, tmp_path):
    """SQLite and PostgreSQL: a small class filled in, ingested, reviewed; the cells are in the store."""
    store, _, pdfs = printed
    fs = ["--workspace", str(store.workspace)]
    assert main([*fs, "simulate", *map(str, pdfs), "--out", str(tmp_path / "sim"), "--seed", "5",
                 "--writers", "other", "-q"]) == 0
    assert main([*fs, "ingest", str(tmp_path / "sim" / "scans"), "--workers", "1", "--quiet"]) == 0
    truth = load_truth(tmp_path / "sim" / "truth.jsonl")
    assert clear_queue(store, truth, "rita") > 0
    rows = _rows(store)
    assert rows and all(len(bytes(r.cell)) == 784 and r.label == truth[r.form_id]["fields"][r.field][r.box]
                        for r in rows)
    with store.tx() as conn:
        assert labels.reviewed_forms(conn) == len({r.form_id for r in rows})
        assert labels.forget(conn) == len(rows)


def test_the_supervisor_lists_the_versions_and_rolls_back(station):
    from streamlit.testing.v1 import AppTest

    from review_ui import auth

    store, truth = station
    ws = store.workspace
    clear_queue(store, truth, "rita")
    out = learning.run_adapt(store)
    assert out.promoted, out.message
    c = out.figures["cell_changes"]  # the sign test's figures, in the message and figures.json
    assert c["fixed"] > c["broken"] and f"{c['fixed']} right by the candidate only" in out.message
    with store.tx() as conn:
        auth.add_user(conn, "sam", "supervisor", "secret-pass-2")
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "review_ui" / "app.py"),
                           default_timeout=60).run()
    at.text_input(key="login_name").input("sam")
    at.text_input(key="login_password").input("secret-pass-2")
    at.button[0].click().run()
    at.sidebar.radio(key="nav_page").set_value("Thresholds").run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "version" in d.value.columns)
    assert list(table["version"]) == [versions.shipped_version(), out.version]
    assert list(table["current"]) == [False, True]
    assert table["cell accuracy"].iloc[1] == out.figures["candidate"]["cell_accuracy"]
    u = out.figures["unreviewed"]  # what it accepts on the forms no reviewer opened, and the reader before
    assert (table["unreviewed fields accepted"].iloc[1], table["then accepted"].iloc[1]) == (
        u["candidate_accepted"], u["current_accepted"])
    assert (table["cells fixed"].iloc[1], table["cells broken"].iloc[1]) == (c["fixed"], c["broken"])
    assert any(f"Newest candidate {out.version}: promoted." in x.value for x in at.caption)
    at.selectbox(key="rv_pick").set_value(versions.shipped_version())
    at.button(key="rv_use").click().run()
    assert not at.exception, at.exception
    assert versions.current_name(ws) == versions.shipped_version()
    assert any("is now the current reader" in s.value for s in at.success)
    with store.tx() as conn:
        row = conn.execute(select(audit).where(audit.c.action == "reader_current").order_by(audit.c.id.desc())).first()
    assert (row.user_name, row.new_value) == ("sam", versions.shipped_version())


def test_the_gate_refuses_a_candidate_that_would_accept_less_on_forms_no_reviewer_opened():
    """The reviewed forms are the doubtful ones, where the current reader accepts next to nothing;
    what a candidate does to the readings the station accepts today shows on the other forms."""
    same = adapt.Figures(100, 0.95, 10, 0.8, 0, 0.0, 0, 0.0)
    better = adapt.Figures(100, 0.99, 10, 0.9, 0, 0.0, 0, 0.0)
    assert adapt.verdict(same, better).promoted  # the reviewed forms alone say: better
    shy = adapt.Unreviewed(forms=300, fields=700, current_accepted=344, candidate_accepted=90, changed=0)
    out = adapt.verdict(same, better, shy)
    assert not out.promoted and "more forms would wait for a reviewer" in out.reasons[0]
    assert "344" in out.reasons[0] and "90" in out.reasons[0]
    # reading otherwise what the current reader accepts is no reason by itself: it may be a correction
    assert adapt.verdict(same, better, adapt.Unreviewed(300, 700, 344, 350, 3)).promoted


def test_the_gate_refuses_a_gain_on_the_held_out_cells_that_chance_would_give():
    """Of the held-out forms on which the two readers read cells differently, a candidate no better
    than the current one is better on each half the time: one better on 10 and worse on 9 has shown
    nothing (such a candidate, promoted, read other parents' digits worse), one better on 30 and
    worse on 5 has. A writer's cells count together: 30 cells fixed on 3 forms and 5 broken on 5 are
    no gain."""
    y = np.arange(60) % 10
    right = np.eye(11)[y][:, None, :]  # (n, 1 member, 11): reads every cell right
    wrong = np.eye(11)[(y + 1) % 10][:, None, :]
    cur = np.concatenate([right[:20], wrong[20:30], right[30:39], wrong[39:]])
    cand = np.concatenate([right[:20], right[20:30], wrong[30:39], wrong[39:]])
    chance = adapt.cell_changes(cur, cand, y)  # every cell its own form
    assert (chance.fixed, chance.broken, chance.forms_better, chance.forms_worse) == (10, 9, 10, 9)
    assert 0.4 < chance.p_value < 0.6
    c35, n35 = np.concatenate([wrong[:30], right[30:35]]), np.concatenate([right[:30], wrong[30:35]])
    clear = adapt.cell_changes(c35, n35, y[:35])
    assert (clear.fixed, clear.broken) == (30, 5) and clear.p_value < 0.001
    form = np.array([f"F{i // 10}" for i in range(30)] + [f"G{i}" for i in range(5)], object)
    lumped = adapt.cell_changes(c35, n35, y[:35], form)
    assert (lumped.fixed, lumped.broken, lumped.forms_better, lumped.forms_worse) == (30, 5, 3, 5)
    assert lumped.p_value > 0.5
    same = adapt.Figures(100, 0.95, 10, 0.8, 0, 0.0, 0, 0.0)
    better = adapt.Figures(100, 0.96, 10, 0.9, 1, 0.1, 0, 0.0)
    out = adapt.verdict(same, better, None, chance)
    assert not out.promoted and out.reasons == (
        "of the held-out cells the two read differently, it reads 10 right and the current reader 9, better on 10 "
        f"forms and worse on 9: no clear gain (a reader no better would do as well {chance.p_value:.0%} of the time; "
        "under 5% is needed)",)
    assert not adapt.verdict(same, better, None, lumped).promoted
    assert adapt.verdict(same, better, None, clear).promoted and out.changes == chance


def test_the_unreviewed_forms_are_read_from_the_cells_kept_at_ingest(station):
    store, truth = station
    first = sorted(truth)[: len(truth) // 2]
    clear_queue(store, truth, "rita", only=first)
    with store.tx() as conn:
        reviewed = set(conn.execute(select(labelled_cells.c.form_id).distinct()).scalars())
        unrev = adapt.load_unreviewed(conn, store.workspace)
    assert reviewed and len(unrev.form) and not set(unrev.form) & reviewed
    assert set(unrev.field) <= set(DIGITS) and (unrev.y == -1).all()
    for f, name in {(f, n) for f, n in zip(unrev.form, unrev.field, strict=True)}:
        boxes = unrev.box[(unrev.form == f) & (unrev.field == name)]
        assert list(boxes) == list(range(len(boxes)))  # every box of the field, in order
    with store.tx() as conn:  # at most `limit` forms, the same ones as the campaign grows
        few = adapt.load_unreviewed(conn, store.workspace, limit=3)
    assert len(set(few.form)) <= 3 and set(few.form) <= set(unrev.form)


def test_a_shy_candidate_is_made_as_sure_as_needed_to_accept_what_the_current_reader_accepts(station, monkeypatch):
    """A likelihood temperature fitted on a few hard calibration forms can leave the candidate too
    unsure to accept what the current reader accepts: its temperatures are scaled down until it
    accepts as many of the unreviewed forms' fields."""
    store, truth = station
    clear_queue(store, truth, "rita", only=sorted(truth)[: len(truth) * 3 // 4])
    monkeypatch.setattr(adapt, "fit_temperature", lambda z, y: 3.0)  # far too unsure
    out = learning.run_adapt(store, user="sam")
    u, fit = out.figures["unreviewed"], out.figures["fit"]
    assert u["fields"] > 0 and u["current_accepted"] > 0  # the current reader accepts some of them
    assert fit["temperature_scale"] < 1.0 and u["candidate_accepted"] >= u["current_accepted"]
    assert all(t < 3.0 for t in fit["temperatures"])
    assert "forms no reviewer opened" in out.message
