"""Siblings' forms (ocr.siblings): a campaign where half the forms have a brother or sister's form
with the same phone, printed, filled in, scanned and ingested with the project's own tools and real
engines; a number two forms carry is read from both, a number on three forms is left alone."""

from __future__ import annotations

import json
import shutil

import pytest
from sqlalchemy import func, select

from formstation.store import Store, audit, fields, forms
from ocr import siblings
from ocr.digits import ONNX_MODEL
from ocr.rules import decide_forms, load_config, threshold_for
from tests import campaigns

pytestmark = pytest.mark.skipif(not ONNX_MODEL.is_file(), reason="the v2 reader (ocr/models/reader_v2.onnx) is not shipped")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("siblings")
    (tmp / "rates.yaml").write_text("fill:\n  family_share: 0.6\n")
    return tmp, campaigns.ingested(tmp, 21, 10, "--rates", str(tmp / "rates.yaml"), "--writers", "calib")


@pytest.fixture
def store(campaign, tmp_path):
    tmp, _ = campaign
    shutil.copytree(tmp / "ws", tmp_path / "ws")
    s = Store.open(tmp_path / "ws")
    yield s
    s.engine.dispose()


def _phones(store) -> list:
    with store.tx() as conn:
        return conn.execute(select(fields.c.form_id, fields.c.name, fields.c.value, fields.c.confidence).where(
            fields.c.name.in_(("phone", "guardian_phone")), fields.c.source == "read")).all()


def test_a_number_two_forms_carry_is_read_from_both_and_nothing_wrong_is_accepted(campaign, store):
    _, truth = campaign
    with store.tx() as conn:
        paired = conn.execute(select(audit).where(audit.c.action == "sibling_pair")).all()
        status = dict(conn.execute(select(forms.c.form_id, forms.c.status)).all())
    assert paired, "no sibling's phone was read from both forms"
    phones = {(r.form_id, r.name): r for r in _phones(store)}
    cfg = load_config(store)
    crossed = 0
    for a in paired:
        r = phones[(a.form_id, a.field)]
        other = a.new_value.split(" with ")[1]
        # the other form carries the same number, and the field holds the joint confidence, surer
        assert any(v.value == r.value for (f, _), v in phones.items() if f == other)
        assert r.confidence == float(a.new_value.split()[0]) > float(a.old_value)
        if float(a.old_value) < threshold_for(cfg.thresholds, a.field) <= r.confidence:
            assert r.value == truth[a.form_id]["fields"][a.field]  # what a sibling made sure is right
            crossed += 1
    assert crossed, "no phone crossed its threshold by its sibling's rendering"
    with store.tx() as conn:  # a phone one box from a number other forms of its school carry: a reviewer's
        capped = conn.execute(select(audit.c.form_id, audit.c.field).where(
            audit.c.action == "one_box_from_other_forms")).all()
    assert all(phones[(f, name)].confidence <= 0.5 and status[f] != "accepted" for f, name in capped)
    for f, t in truth.items():  # no wrong value accepted
        if status.get(f) == "accepted":
            for name in ("phone", "guardian_phone", "guardian_id", "corrected_id"):
                if (f, name) in phones:
                    assert phones[(f, name)].value == (t["fields"].get(name) or "")


def test_a_number_on_three_forms_is_read_pairwise_and_never_from_other_ink(store):
    """A third form reading the pair's number (a class's shared number, or a misread): each doubtful
    reading is read with the surest other rendering of the number. The two forms whose boxes show
    it rise; the third, whose boxes show another number, pairs with neither and keeps its doubt."""
    rows = _phones(store)
    by_value: dict[str, set[str]] = {}
    for r in rows:
        by_value.setdefault(r.value, set()).add(r.form_id)
    value = next(v for v, fs in by_value.items() if len(fs) == 2)
    third = next(r for r in rows if r.value != value and r.name == "phone" and r.form_id not in by_value[value])
    with store.tx() as conn:
        conn.execute(fields.update().where((fields.c.form_id == third.form_id) & (fields.c.name == "phone"))
                     .values(value=value, confidence=0.5))
        conn.execute(fields.update().where(fields.c.value == value).values(confidence=0.5))
    changed = siblings.pair(store, {third.form_id})
    after = {(r.form_id, r.name): r.confidence for r in _phones(store) if r.value == value}
    assert after[(third.form_id, "phone")] == 0.5 and third.form_id not in changed
    assert changed == by_value[value]
    assert all(c > 0.5 for (f, _), c in after.items() if f != third.form_id)
    decide_forms(store, {third.form_id, *changed})


def test_the_audit_row_names_forms_only(store):
    """Children's data stays out of the audit detail: the confidences and the other form's id, never
    the number."""
    with store.tx() as conn:
        rows = conn.execute(select(audit.c.old_value, audit.c.new_value).where(audit.c.action == "sibling_pair")).all()
        ids = set(conn.execute(select(forms.c.form_id)).scalars())
    numbers = {r.value for r in _phones(store) if len(r.value) == 11}
    assert rows
    for r in rows:
        conf, word, other = r.new_value.split()
        assert word == "with" and other in ids and 0 < float(conf) <= 1 and 0 <= float(r.old_value) < 1
        assert not any(n in r.new_value or n in r.old_value for n in numbers)


def test_a_guardian_id_two_forms_carry_is_read_from_both(campaign, store):
    """A guardian's ID on both children's forms: where one reading is doubtful (here made so), the
    pass reads the boxes from both forms and the doubtful one takes the surer joint reading; what
    it makes sure is the guardian's number, and the audit row names the other form."""
    _, truth = campaign
    with store.tx() as conn:
        rows = conn.execute(select(fields.c.form_id, fields.c.value).where(
            fields.c.name == "guardian_id", fields.c.source == "read")).all()
    by_value: dict[str, set[str]] = {}
    for r in rows:
        if len(r.value) == 18:
            by_value.setdefault(r.value, set()).add(r.form_id)
    pairs = {v: fs for v, fs in by_value.items() if len(fs) == 2}
    assert pairs, "no guardian's ID read alike on two forms"
    with store.tx() as conn:
        seen = conn.execute(select(func.max(audit.c.id))).scalar() or 0  # rows of the ingest's own pass
        for fs in pairs.values():
            conn.execute(fields.update().where((fields.c.form_id == min(fs)) & (fields.c.name == "guardian_id"))
                         .values(confidence=0.5))
    changed = siblings.pair(store, {f for fs in pairs.values() for f in fs})
    with store.tx() as conn:
        raised = conn.execute(select(audit.c.form_id, audit.c.old_value, audit.c.new_value).where(
            (audit.c.action == "sibling_pair") & (audit.c.field == "guardian_id") & (audit.c.id > seen))).all()
        conf = dict(conn.execute(select(fields.c.form_id, fields.c.confidence).where(fields.c.name == "guardian_id")).all())
    assert raised and {a.form_id for a in raised} <= changed
    threshold = threshold_for(load_config(store).thresholds, "guardian_id")
    crossed = 0
    for a in raised:
        value = next(v for v, fs in pairs.items() if a.form_id in fs)
        assert a.old_value == "0.5000" and conf[a.form_id] == float(a.new_value.split()[0]) > 0.5
        assert a.new_value.split()[2] in pairs[value] - {a.form_id}
        if conf[a.form_id] >= threshold:
            assert value == truth[a.form_id]["fields"]["guardian_id"]
            crossed += 1
    assert crossed, "no guardian ID crossed its threshold by its sibling's rendering"


def test_a_phone_one_box_from_a_number_more_forms_of_its_school_carry_goes_to_a_reviewer(store):
    """A class's shared number written on every form, read on two forms with one box otherwise (a
    flagged 1 read as 7, the same box): those two renderings would make each other sure. The pass
    caps them for a reviewer with the box framed, leaves the forms that read the number itself as
    they are, and leaves a number one box from it in another school alone."""
    from formstation.store import persons

    with store.tx() as conn:
        school = dict(conn.execute(select(forms.c.form_id, persons.c.school).join(
            persons, forms.c.person_id == persons.c.person_id)).all())
    rows = [r for r in _phones(store) if r.name == "phone"]
    by_school: dict[str, list[str]] = {}
    for r in rows:
        by_school.setdefault(school[r.form_id], []).append(r.form_id)
    here = max(by_school.values(), key=len)
    elsewhere = next(fs[0] for s, fs in by_school.items() if fs is not here)
    number = "13912314678"
    misread = number[:6] + "7" + number[7:]
    carry, wrong = here[:3], here[3:5]
    with store.tx() as conn:
        for f, value, conf in [*((f, number, 0.999) for f in carry), *((f, misread, 0.95) for f in wrong),
                               (elsewhere, number[:8] + "0" + number[9:], 0.995)]:
            conn.execute(fields.update().where((fields.c.form_id == f) & (fields.c.name == "phone"))
                         .values(value=value, confidence=conf, doubt=None))
    changed = siblings.pair(store, set(wrong) | {elsewhere})
    after = {r.form_id: r for r in _phones(store) if r.name == "phone"}
    assert changed == set(wrong)
    assert all(after[f].confidence == 0.5 for f in wrong)  # not made sure by each other's rendering
    assert all(after[f].confidence == 0.999 for f in carry) and after[elsewhere].confidence == 0.995
    with store.tx() as conn:
        marks = {r.form_id: json.loads(r.doubt) for r in conn.execute(select(fields).where(
            fields.c.form_id.in_(wrong), fields.c.name == "phone"))}
        trail = conn.execute(select(audit).where(audit.c.action == "one_box_from_other_forms")).all()
    for f in wrong:
        box = next(d for d in marks[f] if d["i"] == 6)
        assert (box["read"], box["other_forms"], box["n_other"]) == ("7", "1", 3) and 0 <= box["box"][0] < box["box"][2] <= 1
    assert sorted(t.form_id for t in trail if t.form_id in wrong) == sorted(wrong)  # one row each
    assert siblings.pair(store, set(wrong)) == set()  # a later batch: still capped, no new audit row
    with store.tx() as conn:
        assert conn.execute(select(func.count()).select_from(audit).where(
            audit.c.action == "one_box_from_other_forms")).scalar() == len(trail)
    decided = decide_forms(store, set(wrong))
    assert all(decided[f] != "accepted" for f in wrong)
