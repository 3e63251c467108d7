"""Review logic without a browser: users, leases (two reviewers at once), decisions and undo,
unidentified pages, settings, supervisor figures, the `users` / `review` subcommands."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from formstation.config import Config, ConfigError, load_config, save_config
from formstation.store import Store, audit, fields, forms, pages, reasons
from review_ui import auth, data, decisions, matching, review_queue, stats
from tests import review_sample as sample


@pytest.fixture(scope="session")
def sample_base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("review-sample")


@pytest.fixture
def review(sample_base: Path, tmp_path: Path) -> sample.Sample:
    s = sample.cached(sample_base, tmp_path / "ws")
    yield s
    s.store.engine.dispose()


def _status(store: Store, form_id: str) -> str:
    with store.tx() as conn:
        return conn.execute(select(forms.c.status).where(forms.c.form_id == form_id)).scalar()


def _codes(store: Store, form_id: str) -> list[tuple[str, str | None]]:
    with store.tx() as conn:
        rows = conn.execute(select(reasons.c.code, reasons.c.field).where(reasons.c.form_id == form_id))
        return sorted(((r.code, r.field) for r in rows), key=lambda t: (t[0], t[1] or ""))


def _first_of(s: sample.Sample, scenario: int) -> str:
    return min(f for f, sc in s.scenario.items() if sc == scenario)


# ------------------------------------------------------------------ users

def test_password_hash_format_and_check():
    h = auth.hash_password("correct horse")
    algo, n, r, p, salt, digest = h.split("$")
    assert (algo, n, r, p) == ("scrypt", "16384", "8", "1") and len(salt) == 32 and len(digest) == 64
    assert auth.verify_password("correct horse", h)
    assert not auth.verify_password("correct hors", h)
    assert auth.hash_password("correct horse") != h  # random salt
    assert not auth.verify_password("x", "garbage")


def test_add_and_authenticate_users(review):
    with review.store.tx() as conn:
        auth.add_user(conn, "rita", "reviewer", "secret-pass-1")
        assert auth.authenticate(conn, "rita", "secret-pass-1") == "reviewer"
        assert auth.authenticate(conn, "rita", "wrong-pass-1") is None
        assert auth.authenticate(conn, "nobody", "secret-pass-1") is None
        with pytest.raises(ValueError, match="exists"):
            auth.add_user(conn, "rita", "clerk", "secret-pass-2")
        with pytest.raises(ValueError, match="role"):
            auth.add_user(conn, "x", "admin", "secret-pass-2")
        with pytest.raises(ValueError, match="at least"):
            auth.add_user(conn, "x", "clerk", "short")
        auth.add_user(conn, "rita", "supervisor", "secret-pass-3", replace=True)
        assert auth.authenticate(conn, "rita", "secret-pass-3") == "supervisor"
    assert auth.can_see("clerk", "Upload") and not auth.can_see("clerk", "Queue")
    assert not auth.can_see("reviewer", "Downloads") and auth.can_see("supervisor", "Downloads")


# ------------------------------------------------------------------ leases

def _review_forms(store: Store) -> list[str]:
    with store.tx() as conn:
        conn.execute(update(forms).where(forms.c.status != "printed").values(status="review"))
        return [r.form_id for r in conn.execute(select(forms.c.form_id).where(forms.c.status == "review"))]


def test_two_reviewers_at_once_never_get_the_same_form(review, tmp_path):
    todo = _review_forms(review.store)
    stores = [review.store, Store.open(review.store.workspace)]  # two engines: two connections
    got: dict[str, list[str]] = {"ann": [], "bob": [], "cid": [], "dan": []}
    barrier = threading.Barrier(len(got))

    def work(user: str, store: Store) -> None:
        barrier.wait()
        while True:
            with store.tx() as conn:
                fid = review_queue.take_lease(conn, user)
            if fid is None:
                return
            got[user].append(fid)
            with store.tx() as conn:  # the reviewer decides: the form leaves the queue
                conn.execute(update(forms).where(forms.c.form_id == fid).values(status="accepted"))

    threads = [threading.Thread(target=work, args=(u, stores[i % 2])) for i, u in enumerate(got)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    handed = [f for fs in got.values() for f in fs]
    assert sorted(handed) == sorted(todo)  # every form once, none twice
    stores[1].engine.dispose()


def test_lease_is_kept_renewed_and_expires(review):
    _review_forms(review.store)
    store = review.store
    with store.tx() as conn:
        a = review_queue.take_lease(conn, "ann", ttl_s=60)
        assert review_queue.take_lease(conn, "ann") == a  # a reload gives the same form back
        b = review_queue.take_lease(conn, "bob", ttl_s=60)
        assert b != a
        assert review_queue.holds(conn, a, "ann") and not review_queue.holds(conn, a, "bob")
        assert not review_queue._insert_lease(conn, a, "bob", "2099-01-01T00:00:00Z")  # the key refuses a 2nd holder
        # ann goes quiet: an hour later her lease has expired and the form is free again
        later = review_queue.utcnow() + timedelta(hours=1)
        assert not review_queue.holds(conn, a, "ann", at=later)
        assert review_queue.take_lease(conn, "cid", at=later) == a


def test_leases_on_every_store_backend(printed):
    """The same lease rules on SQLite and on a real PostgreSQL server (FORMSTATION_TEST_PG_URL)."""
    store = printed[0]
    with store.tx() as conn:  # as if ingested: every printed form waits for a reviewer
        conn.execute(update(forms).values(status="review"))
        todo = [r.form_id for r in conn.execute(select(forms.c.form_id))]
    with store.tx() as conn:
        a = review_queue.take_lease(conn, "ann")
        b = review_queue.take_lease(conn, "bob")
        assert a in todo and b in todo and a != b
        assert review_queue.holds(conn, a, "ann") and review_queue.holds(conn, b, "bob")
        assert not review_queue._insert_lease(conn, a, "cid", "2099-01-01T00:00:00Z")
        assert not review_queue.lease_form(conn, a, "cid")  # ann holds it
        assert review_queue.lease_form(conn, a, "ann")  # her own: renewed
        review_queue.release(conn, b, "bob")
        assert review_queue.lease_form(conn, b, "cid")  # a free form is leased
        assert review_queue.active_leases(conn) == 2
    store.engine.dispose()


def test_queue_order_is_school_class_student(review):
    _review_forms(review.store)
    with review.store.tx() as conn:
        first = review_queue.take_lease(conn, "ann")
        view = data.load_form(conn, first)
        schools = sorted({s for s, _ in data.classes(conn)})
    assert view.school == schools[0]


def test_skip_releases_and_moves_on(review):
    _review_forms(review.store)
    with review.store.tx() as conn:
        a = review_queue.take_lease(conn, "ann")
        b = review_queue.take_lease(conn, "ann", skip={a})
        assert b != a and not review_queue.holds(conn, a, "ann")
        assert review_queue.take_lease(conn, "bob") == a


# ------------------------------------------------------------------ decisions

def _lease(store: Store, form_id: str, user: str = "rita") -> None:
    with store.tx() as conn:
        assert review_queue.lease_form(conn, form_id, user)


def test_save_accepts_and_undo_restores(review):
    store, fid = review.store, _first_of(review, 1)
    before = _codes(store, fid)
    with store.tx() as conn:
        view = data.load_form(conn, fid)
        old_phone = conn.execute(select(fields.c.value).where(fields.c.form_id == fid, fields.c.name == "phone")).scalar()
    assert [it.name for it in view.items] == ["phone"]
    _lease(store, fid)
    with store.tx() as conn:
        status = decisions.save_form(conn, fid, "rita", {"phone": review.truth[fid]["phone"]},
                                     [c for c, _ in view.form_reasons], store.workspace)
    assert status == "accepted" and _status(store, fid) == "accepted" and _codes(store, fid) == []
    with store.tx() as conn:
        f = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "phone")).first()
        trail = data.audit_of(conn, fid)
    assert (f.value, f.source, f.confidence, f.updated_by) == (review.truth[fid]["phone"], "reviewer", 1.0, "rita")
    edit = next(r for r in trail if r["action"] == "edit")
    assert (edit["user"], edit["field"], edit["old value"], edit["new value"]) == (
        "rita", "phone", old_phone, review.truth[fid]["phone"])
    assert any(r["action"] == "status" and r["new value"] == "accepted" for r in trail)
    with store.tx() as conn:
        assert decisions.undo_last(conn, "rita") == fid
    assert _status(store, fid) == "review" and _codes(store, fid) == before
    with store.tx() as conn:
        f = conn.execute(select(fields).where(fields.c.form_id == fid, fields.c.name == "phone")).first()
        assert (f.value, f.source) == (old_phone, "read")
        assert decisions.undo_last(conn, "rita") is None  # nothing left to undo


def test_reject_with_code_and_note_then_undo(review):
    store, fid = review.store, _first_of(review, 2)
    before = _codes(store, fid)
    _lease(store, fid)
    with store.tx() as conn:
        assert decisions.reject_form(conn, fid, "rita", "GUARDIAN_SIGNATURE_MISSING", "no signature at all") == "rejected"
        row = conn.execute(select(reasons).where(reasons.c.form_id == fid, reasons.c.code == "REVIEWER_REJECTED")).first()
    assert _status(store, fid) == "rejected" and row.detail == "no signature at all"
    assert ("GUARDIAN_SIGNATURE_MISSING", None) in _codes(store, fid)
    with store.tx() as conn:
        decisions.undo_last(conn, "rita")
    assert _status(store, fid) == "review" and _codes(store, fid) == before
    with store.tx() as conn, pytest.raises(decisions.DecisionError):
        decisions.reject_form(conn, fid, "rita", "LOW_CONFIDENCE", "")  # not a reject code


def test_decisions_need_the_lease(review):
    fid = _first_of(review, 1)
    with review.store.tx() as conn, pytest.raises(decisions.DecisionError, match="lease"):
        decisions.save_form(conn, fid, "rita", {"phone": "13900000000"})


def test_undo_refused_after_someone_else_changed_the_form(review):
    store, fid = review.store, _first_of(review, 2)
    _lease(store, fid)
    with store.tx() as conn:
        decisions.save_form(conn, fid, "rita", {"guardian_signature": "present"}, workspace=store.workspace)
        review_queue.release(conn, fid, "rita")
    _lease(store, fid, "sam")
    with store.tx() as conn:
        decisions.reject_form(conn, fid, "sam", "GUARDIAN_PHONE_MISSING", "")
    with store.tx() as conn, pytest.raises(decisions.DecisionError, match="sam"):
        decisions.undo_last(conn, "rita")


def test_a_reopened_form_stays_in_review_until_a_reviewer_decides_it_again(review):
    store, fid = review.store, _first_of(review, 3)  # an invalid phone read surely: rejected by the rules
    with store.tx() as conn:
        auth.add_user(conn, "rita", "reviewer", "secret-pass-1")
        auth.add_user(conn, "sam", "supervisor", "secret-pass-2")
    assert _status(store, fid) == "rejected"
    with store.tx() as conn, pytest.raises(decisions.DecisionError, match="supervisor"):
        decisions.reopen_form(conn, fid, "rita", "wrong", store.workspace)  # the rules decided it, not rita
    with store.tx() as conn, pytest.raises(decisions.DecisionError, match="why"):
        decisions.reopen_form(conn, fid, "sam", "  ", store.workspace)
    with store.tx() as conn:
        assert decisions.reopen_form(conn, fid, "sam", "the parent phoned in the number", store.workspace) == "review"
    assert ("REOPENED", None) in _codes(store, fid) and ("PHONE_INVALID", "phone") in _codes(store, fid)
    from ocr.rules import decide_forms

    decide_forms(store, {fid})  # the class re-decided (any save or scan does it): still in review
    assert _status(store, fid) == "review"
    with store.tx() as conn:
        view = data.load_form(conn, fid)
        with pytest.raises(decisions.DecisionError, match="only an accepted or rejected"):
            decisions.reopen_form(conn, fid, "sam", "again", store.workspace)
    assert view.reopened_by == "sam: the parent phoned in the number"
    assert {it.name for it in view.items} >= {"phone", "guardian_id", "guardian_signature", "photo"}
    _lease(store, fid)
    with store.tx() as conn:  # a save that does not clear REOPENED (the group view's) leaves it in review
        assert decisions.save_form(conn, fid, "rita", {"phone": "13912345678"}, [], store.workspace) == "review"
        assert decisions.save_form(conn, fid, "rita", {}, ["REOPENED"], store.workspace) == "accepted"
        assert decisions.decided_by(conn, fid) == "rita"
        assert decisions.undo_last(conn, "rita") == fid  # undo brings the reopened state back
    assert _status(store, fid) == "review" and ("REOPENED", None) in _codes(store, fid)


def test_a_reviewers_rejection_is_lifted_by_her_reopening_it(review):
    store, fid = review.store, _first_of(review, 2)
    with store.tx() as conn:
        auth.add_user(conn, "rita", "reviewer", "secret-pass-1")
        auth.add_user(conn, "rosa", "reviewer", "secret-pass-4")
    _lease(store, fid)
    with store.tx() as conn:
        decisions.reject_form(conn, fid, "rita", "GUARDIAN_SIGNATURE_MISSING", "no signature")
    with store.tx() as conn, pytest.raises(decisions.DecisionError, match="rita"):
        decisions.reopen_form(conn, fid, "rosa", "looks signed to me", store.workspace)
    with store.tx() as conn:
        assert decisions.reopen_form(conn, fid, "rita", "it is signed on the back", store.workspace) == "review"
        row = conn.execute(select(audit).where(audit.c.form_id == fid, audit.c.action == "reopen_by_reviewer")).first()
        assert review_queue.take_lease(conn, "rosa") == fid  # first in the queue
        with pytest.raises(decisions.DecisionError, match="changed by"):
            decisions.undo_last(conn, "rita")  # her rejection is no longer hers to undo
    assert ("REVIEWER_REJECTED", None) not in _codes(store, fid)
    assert (row.user_name, row.new_value) == ("rita", "it is signed on the back")
    assert row.old_value == "rejected by rita: GUARDIAN_PHONE_MISSING,GUARDIAN_SIGNATURE_MISSING (no signature)"


# ------------------------------------------------------------------ unidentified pages

def test_match_unidentified_page_to_its_form(review):
    store, fid = review.store, review.unidentified_for
    with store.tx() as conn:
        page = data.unidentified_pages(conn)[0]
        name = data.load_form(conn, fid).name
        assert fid in [h["form_id"] for h in data.search_forms(conn, name)]
        matching.match_page(conn, page.page_id, fid, "rita")
        row = conn.execute(select(pages).where(pages.c.page_id == page.page_id)).first()
        with pytest.raises(matching.MatchError):
            matching.mark_foreign(conn, page.page_id, "rita")  # handled already
    assert (row.kind, row.form_id, row.identified_by) == ("form", fid, "reviewer")
    assert _status(store, fid) == "received"
    assert fid in matching.reread(store, fid)


def test_a_matched_page_gets_the_pass_an_ingest_batch_gets(review):
    """The matched page's phone reads one box from the number two other forms of the school carry:
    as after an ingest batch (ocr.siblings), it goes to a reviewer instead of being accepted on its
    own confidence."""
    import json

    from formstation.store import persons, upsert_field

    store, fid = review.store, review.unidentified_for
    number = "13912314678"
    with store.tx() as conn:
        school = conn.execute(select(persons.c.school).join(forms, forms.c.person_id == persons.c.person_id)
                              .where(forms.c.form_id == fid)).scalar()
        mates = [f for f in conn.execute(select(forms.c.form_id).join(persons, forms.c.person_id == persons.c.person_id)
                                          .where(persons.c.school == school, forms.c.form_id != fid)).scalars()][:2]
        for f in mates:
            upsert_field(conn, f, "phone", {"value": number, "confidence": 0.999, "source": "read"})
        page = data.unidentified_pages(conn)[0]
        readings = [{"name": "phone", "value": number[:6] + "7" + number[7:], "confidence": 0.999,
                     "box": [0, 0, 1, 1], "source": "read", "suggestion": "", "detail": {}}]
        conn.execute(update(pages).where(pages.c.page_id == page.page_id).values(readings=json.dumps(readings)))
        matching.match_page(conn, page.page_id, fid, "rita")
    matching.reread(store, fid)
    with store.tx() as conn:
        got = conn.execute(select(fields.c.confidence).where(fields.c.form_id == fid, fields.c.name == "phone")).scalar()
    assert got == 0.5 and _status(store, fid) != "accepted"


def test_foreign_page(review):
    with review.store.tx() as conn:
        page = data.unidentified_pages(conn)[0]
        matching.mark_foreign(conn, page.page_id, "rita")
        assert conn.execute(select(pages.c.kind).where(pages.c.page_id == page.page_id)).scalar() == "foreign"
        assert data.unidentified_pages(conn) == []
        assert conn.execute(select(func.count()).select_from(audit).where(audit.c.action == "foreign")).scalar() == 1


# ------------------------------------------------------------------ settings, figures

def test_config_defaults_and_round_trip(tmp_path):
    cfg = load_config(tmp_path)
    assert cfg == Config() and cfg.thresholds["digits"] == 0.98 and cfg.thresholds["text"] == 0.80
    new = Config(thresholds={**cfg.thresholds, "digits": 0.75}, alignment_residual_mm=1.5, unusual_writing_share=0.5,
                 unusual_class_share=0.25, adapt_every=50)
    save_config(tmp_path, new)
    assert load_config(tmp_path) == new
    for text, named in (("[thresholds]\ndigits = 3\n", "digits"),
                        ("[thresholds]\nunusual_writing_share = 0\n", "unusual_writing_share"),
                        ("[thresholds]\nunusual_class_share = 1.5\n", "unusual_class_share"),
                        ("[reader]\nadapt_every = -1\n", "adapt_every")):
        (tmp_path / "station.toml").write_text(text)
        with pytest.raises(ConfigError, match=named):
            load_config(tmp_path)
    (tmp_path / "station.toml").write_text("[reader]\nadapt_every = 0\n")  # 0: only when asked
    assert load_config(tmp_path).adapt_every == 0


def test_progress_and_throughput(review):
    with review.store.tx() as conn:
        prog = stats.progress(conn)
    assert sum(r["printed"] for r in prog) == len(review.scenario)
    for r in prog:
        assert r["printed"] == r["received"] + r["not returned"]
        assert r["received"] == r["accepted"] + r["in review"] + r["colour rescan"] + r["rejected"]
    fid = _first_of(review, 1)
    _lease(review.store, fid)
    with review.store.tx() as conn:
        decisions.save_form(conn, fid, "rita", {"phone": review.truth[fid]["phone"]}, workspace=review.store.workspace)
        rates = stats.throughput(conn)
    assert rates[0]["reviewer"] == "rita" and rates[0]["forms"] == 1 and rates[0]["forms/hour"] > 0


# ------------------------------------------------------------------ subcommands

def test_users_add_and_list_cli(review, monkeypatch, capsys):
    from formstation.cli import main

    ws = str(review.store.workspace)
    monkeypatch.setenv("FORMSTATION_PASSWORD", "secret-pass-9")
    assert main(["--workspace", ws, "users", "add", "cleo", "--role", "clerk"]) == 0
    assert main(["--workspace", ws, "users", "add", "cleo", "--role", "clerk"]) == 2  # exists
    assert main(["--workspace", ws, "users", "list"]) == 0
    assert "cleo\tclerk" in capsys.readouterr().out
    with review.store.tx() as conn:
        assert auth.authenticate(conn, "cleo", "secret-pass-9") == "clerk"


def test_review_cli_needs_a_user_and_builds_the_server_command(review, monkeypatch):
    from formstation.cli import main
    from review_ui.serve import streamlit_command

    assert main(["--workspace", str(review.store.workspace), "review"]) == 2  # no users yet
    cmd = streamlit_command(Path("/w"), 8600, "0.0.0.0")
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0" and cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--workspace") + 1] == "/w" and "--server.headless" in cmd


def test_a_workspace_of_schema_1_is_migrated_and_keeps_its_data(tmp_path):
    """A station updated in place: its database (schema 1, without the doubt and other_scan columns)
    opens, gains the columns and keeps its fields."""
    from sqlalchemy import create_engine, insert, inspect

    from formstation import store as store_mod

    engine = create_engine(f"sqlite:///{tmp_path / 'station.db'}")
    with engine.begin() as conn:
        store_mod.md.create_all(conn)
        conn.exec_driver_sql("ALTER TABLE fields DROP COLUMN doubt")  # what schema 1 created
        conn.exec_driver_sql("ALTER TABLE fields DROP COLUMN other_scan")
        conn.exec_driver_sql("ALTER TABLE pages DROP COLUMN readings")
        conn.execute(insert(store_mod.meta).values(key="schema_version", value="1"))
        conn.exec_driver_sql("INSERT INTO fields (form_id, name, value) VALUES ('F0000001', 'phone', '13912345678')")
    engine.dispose()
    s = Store.open(tmp_path)
    with s.tx() as conn:
        assert s.schema_version(conn) == store_mod.SCHEMA_VERSION == 8
        assert {"doubt", "other_scan", "reader_version"} <= {c["name"] for c in inspect(conn).get_columns("fields")}
        assert "labelled_cells" in inspect(conn).get_table_names()
        assert {"readings", "layout_key", "reason"} <= {c["name"] for c in inspect(conn).get_columns("pages")}
        row = conn.execute(select(fields.c.value, fields.c.doubt, fields.c.other_scan)).one()
    assert tuple(row) == ("13912345678", None, None)
    s.engine.dispose()
    Store.open(tmp_path).engine.dispose()  # opening again changes nothing


def test_a_new_store_opened_by_several_sessions_at_once_is_made_once(tmp_path, monkeypatch):
    """The review app's first sessions (and ingest workers) may open a new workspace's store at the
    same moment: every one of them gets a working store, none fails on a table another just made."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    for k in range(6):
        ws = tmp_path / f"ws{k}"
        start = threading.Barrier(4)
        errors: list[BaseException] = []

        def opener(ws=ws, start=start, errors=errors) -> None:
            start.wait()
            try:
                with Store.open(ws).tx() as conn:
                    conn.execute(select(func.count()).select_from(forms)).scalar()
            except BaseException as e:  # noqa: BLE001 - the test reports any failure
                errors.append(e)

        threads = [threading.Thread(target=opener) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
