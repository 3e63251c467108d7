"""Domain rules: each received form -> status (accepted / review / rejected) with reason codes.

`decide(facts, cfg)` is pure. `decide_forms(store, ids)` and `redecide(conn, id)` load the facts
(including class-wide ones: a phone on every form of a class, an ID used twice) and write the
outcome. A rule failure that rests on a low-confidence reading only sends the form to review:
a form is rejected only on confident evidence.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from formstation import idnumber
from formstation.config import DEFAULT_THRESHOLDS
from formstation.store import (
    ACK_FIELD,
    REOPEN_FIELD,
    Store,
    fields,
    forms,
    now,
    other_scan_value,
    pages,
    persons,
    reasons,
)
from ocr.reasons import REASONS
from ocr.types import WRITING_DOUBT

# zone kind of every field the reader writes (derived fields count as their zone's kind)
FIELD_KIND = {
    "corrected_name": "text", "corrected_id": "digits", "phone": "digits", "guardian_id": "digits",
    "guardian_phone": "digits", "guardian_relation": "checkbox", "applicant_signature": "signature",
    "guardian_signature": "signature", "photo": "photo", "photo_face": "photo", "photo_background": "photo",
    "photo_color": "photo", "photo_scan": "photo", "id_copy": "attachment", "id_copy_number": "attachment",
}
UNUSUAL_MIN_BOXES = 11  # fewer inked boxes say too little about the writer
CLASS_PHONES = "class phones"  # the other forms' phones, which a suspected class-wide number rests on
SHARED_PHONE_MIN_SURE = 3  # confidently read forms carrying the number before a class is rejected


@dataclass(frozen=True)
class Reading:
    value: str
    confidence: float
    source: str
    other_scan: str | None = None  # a later scan's different reading of a reviewer's value (ocr.persist)


@dataclass(frozen=True)
class FormFacts:
    form_id: str
    printed_name: str
    printed_id: str
    has_printed_photo: bool
    readings: dict[str, Reading]
    form_pages: int = 1
    residual_mm: float | None = None
    phone_shared_by_class: bool = False  # every phone of the class is one number, read with confidence
    phone_shared_suspected: bool = False  # the same pattern, resting on doubtful readings of other forms
    duplicate_id: bool = False
    printed_on: date | None = None  # the day the form was printed: the ages' day unless one is set


@dataclass(frozen=True)
class RuleConfig:
    campaign_date: date | None = None  # None: each form's printed_on (formstation.config)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    alignment_residual_mm: float = 1.0
    unusual_writing_share: float = 0.30  # formstation.config.Config.unusual_writing_share


@dataclass(frozen=True)
class Found:
    code: str
    field: str | None = None
    detail: str = ""
    # other readings the finding rests on (e.g. the correction that makes a missing copy matter);
    # a finding is confident only when its field and all of these were read confidently
    rests_on: tuple[str, ...] = ()


def _v(f: FormFacts, name: str) -> str:
    r = f.readings.get(name)
    return r.value if r else ""


def final_values(f: FormFacts) -> tuple[str, str]:
    """(name, id) after correction: the corrected value when one was written."""
    return (_v(f, "corrected_name") or f.printed_name, _v(f, "corrected_id") or f.printed_id)


def _is_rare(name: str) -> bool:
    try:
        name.encode("gb2312")
        return False
    except UnicodeEncodeError:
        return True


def _phone_rules(f: FormFacts, prefix: str, name: str, out: list[Found]) -> None:
    v = _v(f, name)
    if not v:
        out.append(Found(f"{prefix}PHONE_MISSING", name))
    elif not idnumber.is_mobile(v):
        out.append(Found(f"{prefix}PHONE_INVALID", name, f"{idnumber.mask(v)}"))


def _correction_rules(f: FormFacts, out: list[Found]) -> None:
    cname, cid = _v(f, "corrected_name"), _v(f, "corrected_id")
    if cname and f.readings["corrected_name"].source != "reviewer":
        out.append(Found("NAME_CORRECTED", "corrected_name"))
    if (cname or cid) and _v(f, "id_copy") != "present":
        made = tuple(n for n, v in (("corrected_name", cname), ("corrected_id", cid)) if v)
        out.append(Found("CORRECTION_WITHOUT_COPY", "id_copy", rests_on=made))
    if cid and not idnumber.is_valid(cid):
        out.append(Found("CORRECTED_ID_INVALID", "corrected_id", idnumber.problem(cid) or ""))
    copy_no = _v(f, "id_copy_number")
    if cid and copy_no and copy_no != cid:
        out.append(Found("ID_COPY_MISMATCH", "id_copy_number", rests_on=("corrected_id",)))


def _photo_rules(f: FormFacts, age: int | None, out: list[Found]) -> None:
    if age is not None and age < 6:
        return
    if _v(f, "photo") != "pasted":
        if not f.has_printed_photo:
            out.append(Found("PHOTO_MISSING", "photo"))
        return
    if _v(f, "photo_scan") == "gray":  # no colour in the scan: the card photo cannot come from it
        out.append(Found("PHOTO_SCANNED_IN_GREY", "photo"))
    if _v(f, "photo_background") == "dark":
        out.append(Found("PHOTO_NOT_LIGHT_BG", "photo_background"))
    if _v(f, "photo_color") == "grayscale":
        out.append(Found("PHOTO_GRAYSCALE", "photo_color"))
    if _v(f, "photo_face") == "no":
        out.append(Found("PHOTO_NO_FACE", "photo_face"))


def _guardian_rules(f: FormFacts, final_id: str, day: date, out: list[Found]) -> None:
    gid = _v(f, "guardian_id")
    if not gid:
        out.append(Found("GUARDIAN_ID_MISSING", "guardian_id"))
    elif not idnumber.is_valid(gid):
        out.append(Found("GUARDIAN_ID_INVALID", "guardian_id", idnumber.problem(gid) or ""))
    elif gid == final_id:
        out.append(Found("GUARDIAN_IS_APPLICANT", "guardian_id"))
    elif (idnumber.age_on(gid, day) or 0) < 18:
        out.append(Found("GUARDIAN_NOT_ADULT", "guardian_id"))
    _phone_rules(f, "GUARDIAN_", "guardian_phone", out)
    if not _v(f, "guardian_relation"):
        out.append(Found("GUARDIAN_RELATION_MISSING", "guardian_relation"))
    if _v(f, "guardian_signature") != "present":
        out.append(Found("GUARDIAN_SIGNATURE_MISSING", "guardian_signature"))


def _acked(f: FormFacts) -> set[str]:
    """Codes a reviewer has looked at and cleared on this form."""
    return set(filter(None, _v(f, ACK_FIELD).split(",")))


def _scans_acked(acked: set[str]) -> int:
    """How many scans of the form are known not to be duplicates: 'DUPLICATE_SCAN@n' (the station
    took scan n as the colour rescan it asked for) clears n scans; a reviewer's plain code, all."""
    if "DUPLICATE_SCAN" in acked:
        return 1 << 30
    return max((int(c.split("@", 1)[1]) for c in acked if c.startswith("DUPLICATE_SCAN@")), default=1)


def _form_level(f: FormFacts, final_name: str, cfg: RuleConfig, out: list[Found]) -> None:
    acked = _acked(f)
    checks = [
        ("DUPLICATE_SCAN", f.form_pages > _scans_acked(acked)),
        ("DUPLICATE_ID", f.duplicate_id),
        ("RARE_CHARACTER", _is_rare(final_name)),
        ("ALIGNMENT_POOR", f.residual_mm is not None and f.residual_mm > cfg.alignment_residual_mm),
    ]
    out.extend(Found(code) for code, hit in checks if hit and code not in acked)


READ_FIELDS = ("corrected_name", "corrected_id", "phone", "guardian_id", "guardian_phone", "guardian_relation",
               "applicant_signature", "guardian_signature", "photo", "id_copy")


def _confirmed_by_copy(f: FormFacts, cfg: RuleConfig) -> bool:
    """The handwritten corrected ID reads exactly as the valid number printed on the pasted ID copy
    (read surely): two independent readings, one of print, agree on 18 characters."""
    cid, copy = f.readings.get("corrected_id"), f.readings.get("id_copy_number")
    return (cid is not None and copy is not None and bool(cid.value) and cid.value == copy.value
            and idnumber.is_valid(cid.value) and copy.confidence >= cfg.thresholds.get("attachment", 0.9))


def threshold_for(thresholds: dict[str, float], name: str) -> float:
    """The confidence a reading of field `name` needs: the field's own threshold (digit fields
    picked from risk-coverage curves), else its zone kind's."""
    if name in thresholds:
        return thresholds[name]
    return thresholds.get(FIELD_KIND.get(name, ""), 0.9)


def _low_confidence(f: FormFacts, cfg: RuleConfig) -> list[Found]:
    """Fields read with doubt, and fields that were not read at all (e.g. the page could not be aligned)."""
    out = [Found("LOW_CONFIDENCE", name, "not read") for name in READ_FIELDS if name not in f.readings]
    grey = _v(f, "photo_scan") == "gray"
    for name, r in sorted(f.readings.items()):
        kind = FIELD_KIND.get(name)
        if grey and name == "photo_color":
            continue  # the colour rescan will tell
        if name == "corrected_id" and _confirmed_by_copy(f, cfg):
            continue
        if kind and r.source != "reviewer" and r.confidence < threshold_for(cfg.thresholds, name):
            out.append(Found("LOW_CONFIDENCE", name, f"{r.confidence:.2f}"))
    return out


def _scans_differ(f: FormFacts) -> list[Found]:
    """Values a reviewer set that a later scan of the form reads differently: a reviewer compares."""
    out = []
    for name, r in sorted(f.readings.items()):
        if r.source == "reviewer" and r.other_scan is not None:
            other = idnumber.mask(r.other_scan) if FIELD_KIND.get(name) == "digits" else r.other_scan
            out.append(Found("SCANS_DIFFER", name, f"later scan: {other or '(empty)'}"))
    return out


def _doubt_counts(f: FormFacts) -> tuple[int, int]:
    """(doubtful, inked) comb boxes of the whole form, as the reader counted them ('writing_doubt')."""
    try:
        doubtful, inked = (int(x) for x in _v(f, WRITING_DOUBT).split("/"))
    except ValueError:
        return 0, 0
    return doubtful, inked


def _unusual_writing(f: FormFacts, cfg: RuleConfig) -> list[Found]:
    """Surely read numbers on a form whose boxes are doubtful far more often than on the forms the
    reader was measured on: the writer is unlike those, so is the reader's certainty."""
    doubtful, inked = _doubt_counts(f)
    if inked < UNUSUAL_MIN_BOXES or doubtful <= cfg.unusual_writing_share * inked:
        return []
    out = []
    for name, r in sorted(f.readings.items()):
        if (FIELD_KIND.get(name) == "digits" and r.value and r.source != "reviewer"
                and r.confidence >= threshold_for(cfg.thresholds, name)):
            out.append(Found("UNUSUAL_HANDWRITING", name, f"{doubtful} of {inked} boxes doubtful"))
    return out


def _reopened(f: FormFacts) -> list[Found]:
    """A decided form a person reopened (REOPEN_FIELD: "who: why"): it waits for a reviewer."""
    return [Found("REOPENED", None, _v(f, REOPEN_FIELD))] if REOPEN_FIELD in f.readings else []


def decide(f: FormFacts, cfg: RuleConfig) -> tuple[str, list[Found]]:
    """Status and reasons for one form from its facts. Pure."""
    final_name, final_id = final_values(f)
    age_id = final_id if idnumber.is_valid(final_id) else f.printed_id
    day = cfg.campaign_date or f.printed_on or date.today()
    age = idnumber.age_on(age_id, day)
    out: list[Found] = []
    _correction_rules(f, out)
    _phone_rules(f, "", "phone", out)
    if f.phone_shared_by_class:
        out.append(Found("PHONE_SHARED_BY_CLASS", "phone"))
    elif f.phone_shared_suspected and "PHONE_SHARED_BY_CLASS" not in _acked(f):
        # a form-level doubt for a reviewer (group view by class): reject it or save to clear it
        out.append(Found("PHONE_SHARED_BY_CLASS", None, "suspected", rests_on=(CLASS_PHONES,)))
    by_age: list[Found] = []  # findings that exist because of the applicant's age
    _photo_rules(f, age, by_age)
    if age is not None and age < 16:
        _guardian_rules(f, final_id, day, by_age)
    elif _v(f, "applicant_signature") != "present":
        by_age.append(Found("SIGNATURE_MISSING", "applicant_signature"))
    if age_id != f.printed_id:  # the age comes from a corrected ID: those findings rest on it too
        by_age = [replace(x, rests_on=(*x.rests_on, "corrected_id")) for x in by_age]
    out += by_age
    _form_level(f, final_name, cfg, out)
    out += _scans_differ(f)
    reopened = _reopened(f)
    out += reopened
    low = _low_confidence(f, cfg) + _unusual_writing(f, cfg)  # what a rejection may not rest on
    unsure = {x.field for x in low} | {CLASS_PHONES}
    confident_reject = any(REASONS[x.code].severity == "reject" and x.field not in unsure
                           and unsure.isdisjoint(x.rests_on) for x in out)
    found = out + low
    if reopened:  # whatever the rules find, a person decides it again first
        return "review", found
    if confident_reject:
        return "rejected", found
    if any(REASONS[x.code].severity == "rescan" for x in out):
        return "rescan", found  # before any review: the colour scan is read afresh
    return ("review" if found else "accepted"), found


# ------------------------------------------------------------------ loading facts, writing outcomes

def load_config(store_or_workspace) -> RuleConfig:
    """Thresholds and campaign date from the workspace config file (formstation.config)."""
    from formstation.config import load_config as load

    ws = getattr(store_or_workspace, "workspace", store_or_workspace)
    c = load(ws)
    return RuleConfig(campaign_date=c.campaign_date, thresholds=dict(c.thresholds),
                      alignment_residual_mm=c.alignment_residual_mm, unusual_writing_share=c.unusual_writing_share)


def _class_keys(conn: Connection, form_ids: set[str]) -> set[tuple[str, str]]:
    q = select(persons.c.school, persons.c.class_name).join(forms, forms.c.person_id == persons.c.person_id)
    return {(r.school, r.class_name) for r in conn.execute(q.where(forms.c.form_id.in_(form_ids)))}


def _load_facts(conn: Connection, form_ids: set[str], cfg: RuleConfig) -> list[FormFacts]:
    """Facts for the received forms of every class the given forms belong to."""
    classes = _class_keys(conn, form_ids)
    q = (select(forms.c.form_id, forms.c.printed_at, persons.c.name, persons.c.id_number, persons.c.photo_path,
                persons.c.school, persons.c.class_name)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .where(forms.c.status != "printed"))
    rows = [r for r in conn.execute(q) if (r.school, r.class_name) in classes]
    ids = [r.form_id for r in rows]
    reads: dict[str, dict[str, Reading]] = {}
    for r in conn.execute(select(fields).where(fields.c.form_id.in_(ids))):
        reads.setdefault(r.form_id, {})[r.name] = Reading(r.value or "", float(r.confidence or 0), r.source or "",
                                                          other_scan_value(r.other_scan))
    pq = (select(pages.c.form_id, func.count().label("n"), func.max(pages.c.residual_mm).label("res"))
          .where(and_(pages.c.form_id.in_(ids), pages.c.kind == "form")).group_by(pages.c.form_id))
    page_info = {r.form_id: (r.n, r.res) for r in conn.execute(pq)}
    return _with_class_facts(rows, reads, page_info, _all_final_ids(conn),
                             threshold_for({**DEFAULT_THRESHOLDS, **cfg.thresholds}, "phone"))


def _all_final_ids(conn: Connection) -> Counter:
    """How many received forms carry each final ID number (across the whole store)."""
    q = (select(forms.c.form_id, persons.c.id_number, fields.c.value)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .outerjoin(fields, and_(fields.c.form_id == forms.c.form_id, fields.c.name == "corrected_id"))
         .where(forms.c.status != "printed"))
    return Counter(_id_for_duplicates(r.value, r.id_number) for r in conn.execute(q))


def _id_for_duplicates(corrected: str | None, printed: str) -> str:
    """The ID a form stands for when looking for duplicates: a corrected ID only once it is a
    valid number (a partial or misread correction duplicates nothing)."""
    return corrected if corrected and idnumber.is_valid(corrected) else printed


def _near(a: str, b: str, digits: int = 2) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= digits


def _class_sharing(phones: list[Reading], threshold: float) -> tuple[bool, bool]:
    """(shared, suspected) for one class's phone readings. Both need every phone to be one number
    or a doubtful reading a digit or two away from it. Shared: at least SHARED_PHONE_MIN_SURE forms
    carry the number with confidence; suspected: fewer do."""
    if len(phones) < 3:
        return False, False
    number, n = Counter(p.value for p in phones).most_common(1)[0]
    if not number or n < 2:
        return False, False

    def sure(p: Reading) -> bool:
        return p.source == "reviewer" or p.confidence >= threshold

    if any(sure(p) or not _near(p.value, number) for p in phones if p.value != number):
        return False, False
    carriers = sum(sure(p) for p in phones if p.value == number)
    return (True, False) if carriers >= SHARED_PHONE_MIN_SURE else (False, True)


def _with_class_facts(rows, reads, page_info, id_counts: Counter, threshold: float) -> list[FormFacts]:
    by_class: dict[tuple[str, str], list[Reading]] = {}
    for r in rows:
        by_class.setdefault((r.school, r.class_name), []).append(
            reads.get(r.form_id, {}).get("phone") or Reading("", 1.0, "read"))
    sharing = {key: _class_sharing(phones, threshold) for key, phones in by_class.items()}
    out = []
    for r in rows:
        rd = reads.get(r.form_id, {})
        shared, suspected = sharing[(r.school, r.class_name)]
        n, res = page_info.get(r.form_id, (1, None))
        cid = rd.get("corrected_id")
        final_id = _id_for_duplicates(cid.value if cid else "", r.id_number)
        out.append(FormFacts(r.form_id, r.name, r.id_number, bool(r.photo_path), rd, n, res,
                             phone_shared_by_class=shared, phone_shared_suspected=suspected,
                             duplicate_id=id_counts.get(final_id, 0) > 1,
                             printed_on=date.fromisoformat(r.printed_at[:10]) if r.printed_at else None))
    return out


def _write(conn: Connection, form_id: str, status: str, found: list[Found]) -> None:
    conn.execute(reasons.delete().where(reasons.c.form_id == form_id))
    for x in found:
        conn.execute(reasons.insert().values(form_id=form_id, code=x.code, field=x.field, detail=x.detail or None))
    conn.execute(forms.update().where(forms.c.form_id == form_id).values(status=status, decided_at=now()))


def decide_forms(store: Store, form_ids: set[str], cfg: RuleConfig | None = None) -> dict[str, str]:
    """Decide the given forms and every other received form of their classes; returns id -> status."""
    cfg = cfg or load_config(store)
    out = {}
    with store.tx() as conn:
        for f in _load_facts(conn, set(form_ids), cfg):
            if _locked(conn, f.form_id):
                continue
            status, found = decide(f, cfg)
            _write(conn, f.form_id, status, found)
            out[f.form_id] = status
    return out


def _locked(conn: Connection, form_id: str) -> bool:
    """A form a reviewer rejected stays rejected until a reviewer reopens it."""
    q = select(reasons.c.id).where(and_(reasons.c.form_id == form_id, reasons.c.code == "REVIEWER_REJECTED"))
    return conn.execute(q).first() is not None


def redecide(conn: Connection, form_id: str, workspace=None) -> str:
    """Re-decide one form (after a reviewer's change) inside the caller's transaction."""
    from formstation.store import DEFAULT_WORKSPACE

    cfg = load_config(workspace or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE)
    status = None
    for f in _load_facts(conn, {form_id}, cfg):
        if _locked(conn, f.form_id):
            if f.form_id == form_id:
                status = "rejected"
            continue
        st, found = decide(f, cfg)
        _write(conn, f.form_id, st, found)
        if f.form_id == form_id:
            status = st
    return status or "review"
