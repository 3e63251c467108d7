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

from forms.layout import Layout, load_layout
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
from ocr.types import SCAN_DPI, WRITING_DOUBT

UNUSUAL_MIN_BOXES = 11  # fewer inked boxes say too little about the writer
CLASS_UNUSUAL_MIN_BOXES = 200  # a class's pooled share counts from this many inked boxes (5-10 forms)
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
    class_doubt: tuple[int, int] = (0, 0)  # (doubtful, inked) comb boxes of the class's received forms
    printed_on: date | None = None  # the day the form was printed: the ages' day unless one is set
    # the form's own layout: which field has which role, which rule sets apply (forms.layout_key)
    layout: Layout = field(default_factory=load_layout, compare=False)


@dataclass(frozen=True)
class RuleConfig:
    campaign_date: date | None = None  # None: each form's printed_on (formstation.config)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    alignment_residual_mm: float = 1.0
    unusual_writing_share: float = 0.30  # formstation.config.Config.unusual_writing_share
    unusual_class_share: float = 0.20  # formstation.config.Config.unusual_class_share


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


def _n(f: FormFacts, role: str) -> str:
    """The name of the form's field with this role ('' when its layout has none)."""
    return f.layout.name_of(role)


def _r(f: FormFacts, role: str) -> str:
    """The value of the form's field with this role ('' when its layout has none)."""
    return _v(f, _n(f, role))


def final_values(f: FormFacts) -> tuple[str, str]:
    """(name, id) after correction: the corrected value when one was written."""
    return (_r(f, "corrected_name") or f.printed_name, _r(f, "corrected_id") or f.printed_id)


def _is_rare(name: str) -> bool:
    try:
        name.encode("gb2312")
        return False
    except UnicodeEncodeError:
        return True


def _phone_rules(f: FormFacts, prefix: str, role: str, out: list[Found]) -> None:
    z = f.layout.by_role(role)
    if z is None:
        return
    name = z.name
    v = _v(f, name)
    if not v:
        if not z.optional:
            out.append(Found(f"{prefix}PHONE_MISSING", name))
    elif not idnumber.is_mobile(v):
        out.append(Found(f"{prefix}PHONE_INVALID", name, f"{idnumber.mask(v)}"))


def _correction_rules(f: FormFacts, out: list[Found]) -> None:
    n_name, n_id, n_copy = _n(f, "corrected_name"), _n(f, "corrected_id"), _n(f, "id_copy")
    cname, cid = _v(f, n_name), _v(f, n_id)
    if cname and f.readings[n_name].source != "reviewer":
        out.append(Found("NAME_CORRECTED", n_name))
    if n_copy and (cname or cid) and _v(f, n_copy) != "present":  # no attachment area: no copy asked for
        made = tuple(n for n, v in ((n_name, cname), (n_id, cid)) if v)
        out.append(Found("CORRECTION_WITHOUT_COPY", n_copy, rests_on=made))
    if cid and not idnumber.is_valid(cid):
        out.append(Found("CORRECTED_ID_INVALID", n_id, idnumber.problem(cid) or ""))
    copy_no = _v(f, f"{n_copy}_number") if n_copy else ""
    if cid and copy_no and copy_no != cid:
        out.append(Found("ID_COPY_MISMATCH", f"{n_copy}_number", rests_on=(n_id,)))


def _photo_rules(f: FormFacts, age: int | None, out: list[Found]) -> None:
    p = _n(f, "applicant_photo")
    if not p or age is not None and age < 6:
        return
    if _v(f, p) != "pasted":
        if not f.has_printed_photo:
            out.append(Found("PHOTO_MISSING", p))
        return
    if _v(f, f"{p}_scan") == "gray":  # no colour in the scan: the card photo cannot come from it
        out.append(Found("PHOTO_SCANNED_IN_GREY", p))
    if _v(f, f"{p}_background") == "dark":
        out.append(Found("PHOTO_NOT_LIGHT_BG", f"{p}_background"))
    if _v(f, f"{p}_color") == "grayscale":
        out.append(Found("PHOTO_GRAYSCALE", f"{p}_color"))
    if _v(f, f"{p}_face") == "no":
        out.append(Found("PHOTO_NO_FACE", f"{p}_face"))


def _guardian_rules(f: FormFacts, final_id: str, day: date, out: list[Found]) -> None:
    n = _n(f, "guardian_id")
    gid = _v(f, n)
    if not n:
        pass
    elif not gid:
        out.append(Found("GUARDIAN_ID_MISSING", n))
    elif not idnumber.is_valid(gid):
        out.append(Found("GUARDIAN_ID_INVALID", n, idnumber.problem(gid) or ""))
    elif gid == final_id:
        out.append(Found("GUARDIAN_IS_APPLICANT", n))
    elif (idnumber.age_on(gid, day) or 0) < 18:
        out.append(Found("GUARDIAN_NOT_ADULT", n))
    _phone_rules(f, "GUARDIAN_", "guardian_phone", out)
    if _n(f, "guardian_relation") and not _r(f, "guardian_relation"):
        out.append(Found("GUARDIAN_RELATION_MISSING", _n(f, "guardian_relation")))
    if _n(f, "guardian_signature") and _r(f, "guardian_signature") != "present":
        out.append(Found("GUARDIAN_SIGNATURE_MISSING", _n(f, "guardian_signature")))


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


def _confirmed_by_copy(f: FormFacts, cfg: RuleConfig) -> bool:
    """The handwritten corrected ID reads exactly as the valid number printed on the pasted ID copy
    (read surely): two independent readings, one of print, agree on 18 characters."""
    cid, copy = f.readings.get(_n(f, "corrected_id")), f.readings.get(f"{_n(f, 'id_copy')}_number")
    return (cid is not None and copy is not None and bool(cid.value) and cid.value == copy.value
            and idnumber.is_valid(cid.value) and copy.confidence >= cfg.thresholds.get("attachment", 0.9))


def threshold_for(thresholds: dict[str, float], name: str, layout: Layout | None = None) -> float:
    """The confidence a reading of field `name` needs: the field's own threshold (digit fields
    picked from risk-coverage curves: `station.toml` [thresholds] names today's fields), else its
    zone kind's in `layout` (the default layout when none is given)."""
    if name in thresholds:
        return thresholds[name]
    return thresholds.get((layout or load_layout()).kind_of(name), 0.9)


def _low_confidence(f: FormFacts, cfg: RuleConfig) -> list[Found]:
    """Fields read with doubt, and fields that were not read at all (e.g. the page could not be aligned)."""
    out = [Found("LOW_CONFIDENCE", name, "not read") for name in f.layout.read_fields if name not in f.readings]
    photo = _n(f, "applicant_photo")
    grey = bool(photo) and _v(f, f"{photo}_scan") == "gray"
    for name, r in sorted(f.readings.items()):
        kind = f.layout.kind_of(name)
        if grey and name == f"{photo}_color":
            continue  # the colour rescan will tell
        if name == _n(f, "corrected_id") and _confirmed_by_copy(f, cfg):
            continue
        if kind and r.source != "reviewer" and r.confidence < threshold_for(cfg.thresholds, name, f.layout):
            out.append(Found("LOW_CONFIDENCE", name, f"{r.confidence:.2f}"))
    return out


def _scans_differ(f: FormFacts) -> list[Found]:
    """Values a reviewer set that a later scan of the form reads differently: a reviewer compares."""
    out = []
    for name, r in sorted(f.readings.items()):
        if r.source == "reviewer" and r.other_scan is not None:
            other = idnumber.mask(r.other_scan) if f.layout.kind_of(name) == "digits" else r.other_scan
            out.append(Found("SCANS_DIFFER", name, f"later scan: {other or '(empty)'}"))
    return out


def doubt_counts(value: str) -> tuple[int, int]:
    """(doubtful, inked) comb boxes of a form from its 'writing_doubt' reading ("d/n"); (0, 0)
    when it is missing or malformed."""
    try:
        doubtful, inked = (int(x) for x in value.split("/"))
    except ValueError:
        return 0, 0
    return doubtful, inked


def _doubt_counts(f: FormFacts) -> tuple[int, int]:
    """(doubtful, inked) comb boxes of the whole form, as the reader counted them ('writing_doubt')."""
    return doubt_counts(_v(f, WRITING_DOUBT))


def _unusual_writing(f: FormFacts, cfg: RuleConfig) -> list[Found]:
    """Surely read numbers on a form whose boxes are doubtful far more often than on the forms the
    reader was measured on, or of a class whose forms' boxes pooled are: the writers are unlike
    those, so is the reader's certainty (a form with one phone has 11 boxes, too few to tell
    alone; its class's few hundred tell)."""
    doubtful, inked = _doubt_counts(f)
    cd, ci = f.class_doubt
    if inked >= UNUSUAL_MIN_BOXES and doubtful > cfg.unusual_writing_share * inked:
        why = f"{doubtful} of {inked} boxes doubtful"
    elif ci >= CLASS_UNUSUAL_MIN_BOXES and cd > cfg.unusual_class_share * ci:
        why = f"class: {cd} of {ci} boxes doubtful"
    else:
        return []
    return [Found("UNUSUAL_HANDWRITING", name, why) for name in _surely_read_numbers(f, cfg)]


def _surely_read_numbers(f: FormFacts, cfg: RuleConfig) -> list[str]:
    """The form's digit fields read (not set by a reviewer) at or above their thresholds."""
    return [name for name, r in sorted(f.readings.items())
            if f.layout.kind_of(name) == "digits" and r.value and r.source != "reviewer"
            and r.confidence >= threshold_for(cfg.thresholds, name, f.layout)]


# The reader and its thresholds were measured on pages scanned at 200 and 300 dpi. At 150 dpi (a
# scanner's fast mode) its sure readings are wrong far more often: 300 forms of the heldout writers
# (bench/campaign.py --rates with scan dpis [150]): phones at the 0.986 threshold 1.4 % wrong,
# guardian phones at 0.985 1.8 %, against none at 200-300 dpi. A page whose marks say it was
# scanned under MIN_READ_DPI has none of its numbers accepted on the reader's word. The resolution
# comes from the marks' printed size, so a form printed "fit to page" (94 %) and scanned at 200 dpi
# shows 188: the limit sits halfway between 150 and that.
MIN_READ_DPI = 170


def _low_resolution(f: FormFacts, cfg: RuleConfig) -> list[Found]:
    """Surely read numbers of a form scanned under MIN_READ_DPI ('scan_dpi', from its marks' size):
    a reviewer confirms them (the reason asks the clerk for 200 dpi or more)."""
    try:
        dpi = int(_v(f, SCAN_DPI) or 0)
    except ValueError:
        return []
    if not dpi or dpi >= MIN_READ_DPI:
        return []
    return [Found("SCAN_RESOLUTION_LOW", name, f"scanned at {dpi} dpi") for name in _surely_read_numbers(f, cfg)]


def _reopened(f: FormFacts) -> list[Found]:
    """A decided form a person reopened (REOPEN_FIELD: "who: why"): it waits for a reviewer."""
    return [Found("REOPENED", None, _v(f, REOPEN_FIELD))] if REOPEN_FIELD in f.readings else []


def _class_phone(f: FormFacts, out: list[Found]) -> None:
    if f.phone_shared_by_class:
        out.append(Found("PHONE_SHARED_BY_CLASS", _n(f, "applicant_phone")))
    elif f.phone_shared_suspected and "PHONE_SHARED_BY_CLASS" not in _acked(f):
        # a form-level doubt for a reviewer (group view by class): reject it or save to clear it
        out.append(Found("PHONE_SHARED_BY_CLASS", None, "suspected", rests_on=(CLASS_PHONES,)))


def decide(f: FormFacts, cfg: RuleConfig) -> tuple[str, list[Found]]:
    """Status and reasons for one form from its facts. Pure."""
    final_name, final_id = final_values(f)
    age_id = final_id if idnumber.is_valid(final_id) else f.printed_id
    day = cfg.campaign_date or f.printed_on or date.today()
    age = idnumber.age_on(age_id, day)
    out: list[Found] = []
    rules = f.layout.rules
    if "corrections" in rules:
        _correction_rules(f, out)
    if "applicant_phone" in rules:
        _phone_rules(f, "", "applicant_phone", out)
    if "class_phone" in rules:
        _class_phone(f, out)
    by_age: list[Found] = []  # findings that exist because of the applicant's age
    if "photo" in rules:
        _photo_rules(f, age, by_age)
    if "guardian" in rules and age is not None and age < 16:
        _guardian_rules(f, final_id, day, by_age)
    elif "signature" in rules and _r(f, "applicant_signature") != "present":
        by_age.append(Found("SIGNATURE_MISSING", _n(f, "applicant_signature")))
    if age_id != f.printed_id:  # the age comes from a corrected ID: those findings rest on it too
        by_age = [replace(x, rests_on=(*x.rests_on, _n(f, "corrected_id"))) for x in by_age]
    out += by_age
    _form_level(f, final_name, cfg, out)
    out += _scans_differ(f)
    reopened = _reopened(f)
    out += reopened
    low = _low_confidence(f, cfg) + _unusual_writing(f, cfg) + _low_resolution(f, cfg)  # what a rejection may not rest on
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
                      alignment_residual_mm=c.alignment_residual_mm, unusual_writing_share=c.unusual_writing_share,
                      unusual_class_share=c.unusual_class_share)


def _class_keys(conn: Connection, form_ids: set[str]) -> set[tuple[str, str]]:
    q = select(persons.c.school, persons.c.class_name).join(forms, forms.c.person_id == persons.c.person_id)
    return {(r.school, r.class_name) for r in conn.execute(q.where(forms.c.form_id.in_(form_ids)))}


def _load_facts(conn: Connection, form_ids: set[str], cfg: RuleConfig) -> list[FormFacts]:
    """Facts for the received forms of every class the given forms belong to."""
    classes = _class_keys(conn, form_ids)
    q = (select(forms.c.form_id, forms.c.printed_at, forms.c.layout_key, persons.c.name, persons.c.id_number, persons.c.photo_path,
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
    q = (select(forms.c.form_id, forms.c.layout_key, persons.c.id_number)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .where(forms.c.status != "printed"))
    rows = list(conn.execute(q))
    names = {load_layout(k).name_of("corrected_id") for k in {r.layout_key for r in rows}} - {""}
    corrected = {(r.form_id, r.name): r.value for r in conn.execute(
        select(fields.c.form_id, fields.c.name, fields.c.value).where(fields.c.name.in_(names)))}
    return Counter(_id_for_duplicates(corrected.get((r.form_id, load_layout(r.layout_key).name_of("corrected_id"))),
                                      r.id_number) for r in rows)


def _id_for_duplicates(corrected: str | None, printed: str) -> str:
    """The ID a form stands for when looking for duplicates: a corrected ID only once it is a
    valid number (a partial or misread correction duplicates nothing)."""
    return corrected if corrected and idnumber.is_valid(corrected) else printed


def _near(a: str, b: str, digits: int = 2) -> bool:
    return len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) <= digits


def _class_sharing(phones: list[Reading], threshold: float) -> tuple[bool, bool]:
    """(shared, suspected) for one class's phone readings. Both need every phone to be one number
    or a doubtful reading a digit or two away from it; a doubtful reading that lost a box (fewer or
    more digits than the number: it tells nothing of which number was written) is left aside
    rather than taken for another number. A phone left blank, or on a page that could not be read,
    is no other number: it is left aside too (before, 13 pages skewed off the scanner's glass let
    14 forms carrying the teacher's number through, and one parent leaving the phone blank would
    have). Shared: at least SHARED_PHONE_MIN_SURE forms carry the number with confidence;
    suspected: fewer do."""
    phones = [p for p in phones if p.value]
    if len(phones) < 3:
        return False, False
    number, n = Counter(p.value for p in phones).most_common(1)[0]
    if not number or n < 2:
        return False, False

    def sure(p: Reading) -> bool:
        return p.source == "reviewer" or p.confidence >= threshold

    phones = [p for p in phones if sure(p) or not p.value or len(p.value) == len(number)]
    if any(sure(p) or not _near(p.value, number) for p in phones if p.value != number):
        return False, False
    carriers = sum(sure(p) for p in phones if p.value == number)
    return (True, False) if carriers >= SHARED_PHONE_MIN_SURE else (False, True)


def _with_class_facts(rows, reads, page_info, id_counts: Counter, threshold: float) -> list[FormFacts]:
    by_class: dict[tuple[str, str], list[Reading]] = {}
    layouts = {k: load_layout(k) for k in {r.layout_key for r in rows}}
    for r in rows:  # the class's forms whose layout asks for one phone per family
        lay = layouts[r.layout_key]
        if "class_phone" in lay.rules and lay.name_of("applicant_phone"):
            by_class.setdefault((r.school, r.class_name), []).append(
                reads.get(r.form_id, {}).get(lay.name_of("applicant_phone")) or Reading("", 1.0, "read"))
    sharing = {key: _class_sharing(phones, threshold) for key, phones in by_class.items()}
    doubt: dict[tuple[str, str], tuple[int, int]] = {}
    for r in rows:  # the comb boxes of the class's forms, doubtful and inked, pooled
        d, n = doubt_counts(reads.get(r.form_id, {}).get(WRITING_DOUBT, Reading("", 0.0, "")).value)
        a, b = doubt.get((r.school, r.class_name), (0, 0))
        doubt[(r.school, r.class_name)] = (a + d, b + n)
    out = []
    for r in rows:
        rd = reads.get(r.form_id, {})
        lay = layouts[r.layout_key]
        shared, suspected = sharing.get((r.school, r.class_name), (False, False))
        n, res = page_info.get(r.form_id, (1, None))
        cid = rd.get(lay.name_of("corrected_id"))
        final_id = _id_for_duplicates(cid.value if cid else "", r.id_number)
        out.append(FormFacts(r.form_id, r.name, r.id_number, bool(r.photo_path), rd, n, res,
                             phone_shared_by_class=shared, phone_shared_suspected=suspected,
                             duplicate_id=id_counts.get(final_id, 0) > 1,
                             class_doubt=doubt.get((r.school, r.class_name), (0, 0)),
                             printed_on=date.fromisoformat(r.printed_at[:10]) if r.printed_at else None,
                             layout=lay))
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
