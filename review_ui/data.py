"""Read-only queries behind the review pages: one form to review, class groups, search, audit trail."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Connection

from forms.layout import DEFAULT_LAYOUT, DERIVED, Layout
from formstation import idnumber
from formstation.store import (
    REOPEN_FIELD,
    audit,
    fields,
    forms,
    other_scan_reading,
    pages,
    persons,
    reasons,
    scan_files,
)
from review_ui import fieldinfo

# today's layout's fields in review order (field_order(layout) gives any layout's)
FIELD_ORDER = ("corrected_name", "corrected_id", "phone", "photo", "photo_face", "photo_background",
               "photo_color", "id_copy", "id_copy_number", "applicant_signature", "guardian_id",
               "guardian_phone", "guardian_relation", "guardian_signature")
GROUP_FIELDS = ("phone", "guardian_phone", "applicant_signature", "guardian_signature", "photo")  # today's layout
GROUP_KINDS = ("digits", "signature", "photo")  # the group view's fields: mobile numbers, signatures, photos
PRESENT = {"applicant_signature": "present", "guardian_signature": "present", "photo": "pasted"}
# the readings derived from a zone (forms.layout.DERIVED) a reviewer sees as fields of their own,
# after the zone: all but the scan mode (a fact of the scan, not of the paper)
REVIEW_DERIVED = {kind: tuple(s for s in suffixes if s != "scan") for kind, suffixes in DERIVED.items()}


def field_order(layout: Layout) -> tuple[str, ...]:
    """The fields of a layout a reviewer goes through, in the layout's order, each zone's derived
    readings (`photo_face`, `id_copy_number`) right after it."""
    return tuple(n for z in layout.zones if z.kind != "printed"
                 for n in (z.name, *(f"{z.name}_{s}" for s in REVIEW_DERIVED.get(z.kind, ()))))


@dataclass(frozen=True)
class Item:
    """One field that needs a look: what was read, and why it was flagged."""

    name: str
    value: str
    suggestion: str
    confidence: float | None
    source: str
    crop_path: str | None
    reasons: tuple[tuple[str, str], ...]  # (code, detail)
    doubt: tuple[dict, ...] = ()  # the boxes the reader doubts (ocr.read.doubt_marks), for the reading shown
    other: dict | None = None  # a later scan's different reading of a reviewer's value: value, confidence, crop
    copy_number: str = ""  # corrected_id only: the number read off the pasted ID copy (a valid one)
    layout_key: str = DEFAULT_LAYOUT  # the form's own layout: the field's shape, boxes and label


@dataclass(frozen=True)
class FormView:
    form_id: str
    status: str
    school: str
    class_name: str
    name: str
    id_number: str
    student_no: str
    gender: str
    items: tuple[Item, ...]
    form_reasons: tuple[tuple[str, str], ...]
    scans: tuple[dict, ...] = ()  # every scan of the form, oldest first (scans_of)
    rescans: tuple[dict, ...] = ()  # what later scans read differently, oldest first (rescans_of)
    reopened: tuple[dict, ...] = ()  # rejections lifted because the paper came in again (reopens_of)
    reopened_by: str = ""  # "who: why" of a decided form a person reopened (every field is a step)
    layout_key: str = DEFAULT_LAYOUT  # the layout the form was printed and read with (forms.layout_key)

    @property
    def layout(self) -> Layout:
        return fieldinfo.layout(self.layout_key)

    @property
    def page_image(self) -> str | None:
        """The form's latest scanned page (the one its readings come from)."""
        return self.scans[-1]["image"] if self.scans else None


def _rank(order: tuple[str, ...], name: str) -> tuple[int, str]:
    return (order.index(name) if name in order else len(order), name)


def _header(conn: Connection, form_id: str):
    q = (select(forms.c.form_id, forms.c.status, forms.c.layout_key, persons.c.school, persons.c.class_name, persons.c.name,
                persons.c.id_number, persons.c.student_no, persons.c.gender)
         .join(persons, forms.c.person_id == persons.c.person_id).where(forms.c.form_id == form_id))
    return conn.execute(q).first()


def scans_of(conn: Connection, form_id: str) -> tuple[dict, ...]:
    """Every scanned page of the form, oldest first: file name, page number (from 1), when, image."""
    q = (select(pages.c.page_index, pages.c.image_path, pages.c.created_at, scan_files.c.name)
         .outerjoin(scan_files, scan_files.c.sha256 == pages.c.file_sha256)
         .where(and_(pages.c.form_id == form_id, pages.c.kind == "form")).order_by(pages.c.page_id))
    return tuple({"file": r.name or "?", "page": r.page_index + 1, "at": r.created_at or "",
                  "image": r.image_path} for r in conn.execute(q))


def _audit_rows(conn: Connection, form_id: str, action: str):
    q = (select(audit.c.at, audit.c.field, audit.c.old_value, audit.c.new_value)
         .where(and_(audit.c.form_id == form_id, audit.c.action == action)).order_by(audit.c.id))
    return conn.execute(q)


def rescans_of(conn: Connection, form_id: str) -> tuple[dict, ...]:
    """The station's 'rescan' audit rows: a later scan read a field differently (ocr.persist)."""
    return tuple({"at": r.at, "field": r.field, "before": r.old_value or "", "now": r.new_value or ""}
                 for r in _audit_rows(conn, form_id, "rescan"))


def reopens_of(conn: Connection, form_id: str) -> tuple[dict, ...]:
    """The station's 'reopen' audit rows: a reviewer's rejection lifted by a new scan (ocr.persist)."""
    return tuple({"at": r.at, "code": r.field or "", "note": r.old_value or ""}
                 for r in _audit_rows(conn, form_id, "reopen"))


def load_form(conn: Connection, form_id: str) -> FormView | None:
    h = _header(conn, form_id)
    if h is None:
        return None
    why: dict[str | None, list[tuple[str, str]]] = {}
    for r in conn.execute(select(reasons).where(reasons.c.form_id == form_id).order_by(reasons.c.id)):
        why.setdefault(r.field, []).append((r.code, r.detail or ""))
    rows = {r.name: r for r in conn.execute(select(fields).where(fields.c.form_id == form_id))}
    marker = rows.get(REOPEN_FIELD)
    key = h.layout_key or DEFAULT_LAYOUT
    lay = fieldinfo.layout(key)
    order = field_order(lay)
    names = {n for n in why if n} | ({n for n in order if n in rows} if marker is not None else set())
    items = []
    for name in sorted(names, key=lambda n: _rank(order, n)):
        f = rows.get(name)
        items.append(Item(name, (f.value or "") if f else "", (f.suggestion or "") if f else "",
                          f.confidence if f else None, (f.source or "") if f else "",
                          f.crop_path if f else None, tuple(why.get(name, ())), _doubt(f), _other(f),
                          _copy_number(rows, lay) if name == lay.name_of("corrected_id") else "", key))
    scans = scans_of(conn, form_id)
    return FormView(h.form_id, h.status, h.school, h.class_name, h.name, h.id_number, h.student_no or "",
                    h.gender or "", tuple(items), tuple(why.get(None, [])), scans,
                    rescans_of(conn, form_id) if len(scans) > 1 else (), reopens_of(conn, form_id),
                    (marker.value or "") if marker is not None else "", key)


def _copy_number(rows: dict, lay: Layout) -> str:
    """The ID number printed on the pasted copy, when it was read as a valid number."""
    f = rows.get(f"{lay.name_of('id_copy')}_number") if lay.name_of("id_copy") else None
    return f.value if f is not None and f.value and idnumber.is_valid(f.value) else ""


def _other(f) -> dict | None:
    """A later scan's reading waiting beside a reviewer's value (fields.other_scan), if any."""
    return other_scan_reading(f.other_scan) if f is not None and f.source == "reviewer" else None


def _doubt(f) -> tuple[dict, ...]:
    """The reader's doubtful boxes, while the value is still the reader's (a reviewer's value has none)."""
    if f is None or not f.doubt or f.source != "read":
        return ()
    try:
        return tuple(d for d in json.loads(f.doubt) if isinstance(d, dict) and "i" in d)
    except ValueError:
        return ()


def all_fields(conn: Connection, form_id: str) -> list:
    """Every stored field of the form, in its own layout's review order."""
    key = conn.execute(select(forms.c.layout_key).where(forms.c.form_id == form_id)).scalar()
    order = field_order(fieldinfo.layout(key or DEFAULT_LAYOUT))
    q = select(fields).where(fields.c.form_id == form_id)
    return sorted(conn.execute(q), key=lambda r: _rank(order, r.name))


def audit_of(conn: Connection, form_id: str) -> list[dict]:
    """The form's audit trail, newest first (decision snapshots left out: they are for undo)."""
    q = select(audit).where(audit.c.form_id == form_id).order_by(audit.c.id.desc())
    out = []
    for r in conn.execute(q):
        old = "" if r.action == "decision" else (r.old_value or "")
        out.append({"at": r.at, "user": r.user_name or "", "action": r.action, "field": r.field or "",
                    "old value": old, "new value": r.new_value or ""})
    return out


def classes(conn: Connection) -> list[tuple[str, str]]:
    q = select(persons.c.school, persons.c.class_name).distinct().order_by(persons.c.school, persons.c.class_name)
    return [(r.school, r.class_name) for r in conn.execute(q)]


def group_fields(conn: Connection, school: str, class_name: str) -> tuple[str, ...]:
    """The fields the group view offers for one class, from its forms' own layouts: mobile
    numbers (copied from one parent to the whole class), signatures and photos (missing), by kind
    then the layout's order (today's layout: GROUP_FIELDS)."""
    q = (select(forms.c.layout_key).distinct().join(persons, forms.c.person_id == persons.c.person_id)
         .where(and_(persons.c.school == school, persons.c.class_name == class_name)))
    keys = sorted({k or DEFAULT_LAYOUT for k in conn.execute(q).scalars()}) or [DEFAULT_LAYOUT]
    out: list[str] = []
    for kind in GROUP_KINDS:
        for key in keys:
            for z in fieldinfo.layout(key).zones:
                wanted = z.kind == kind and (kind != "digits" or z.constraint == "mobile_cn")
                if wanted and z.name not in out:
                    out.append(z.name)
    return tuple(out)


def group_crops(conn: Connection, school: str, class_name: str, field: str) -> list[dict]:
    """One class's crops of one field in roster order; flag: 'copied' (a number on several forms)
    or 'missing' (no signature/photo), else ''."""
    q = (select(forms.c.form_id, forms.c.status, persons.c.name, persons.c.student_no, fields.c.value,
                fields.c.crop_path, fields.c.source)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .join(fields, and_(fields.c.form_id == forms.c.form_id, fields.c.name == field))
         .where(and_(persons.c.school == school, persons.c.class_name == class_name))
         .order_by(persons.c.student_no, forms.c.form_id))
    rows = [dict(r._mapping) for r in conn.execute(q)]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["value"] or ""] = counts.get(r["value"] or "", 0) + 1
    for r in rows:
        v = r["value"] or ""
        if field in PRESENT:
            r["flag"] = "" if v == PRESENT[field] else "missing"
        else:
            r["flag"] = "copied" if v and counts[v] > 1 else ""
    return rows


def shared_phone_doubts(conn: Connection, school: str, class_name: str) -> set[str]:
    """The class's forms in review on a suspected class-wide phone (PHONE_SHARED_BY_CLASS, form level)."""
    q = (select(forms.c.form_id).join(persons, forms.c.person_id == persons.c.person_id)
         .join(reasons, reasons.c.form_id == forms.c.form_id)
         .where(and_(persons.c.school == school, persons.c.class_name == class_name, forms.c.status == "review",
                     reasons.c.code == "PHONE_SHARED_BY_CLASS", reasons.c.field.is_(None))))
    return {r.form_id for r in conn.execute(q)}


def unidentified_pages(conn: Connection, limit: int = 200) -> list:
    q = (select(pages.c.page_id, pages.c.file_sha256, pages.c.page_index, pages.c.image_path, pages.c.created_at,
                pages.c.reason, scan_files.c.name.label("file_name"))
         .outerjoin(scan_files, scan_files.c.sha256 == pages.c.file_sha256)
         .where(and_(pages.c.kind == "unidentified", pages.c.form_id.is_(None))).order_by(pages.c.page_id)
         .limit(limit))
    return list(conn.execute(q))


def search_forms(conn: Connection, text: str, limit: int = 20) -> list[dict]:
    """Forms whose student name, ID number, student number or form id contains `text`."""
    t = text.strip()
    if not t:
        return []
    like = f"%{t}%"
    q = (select(forms.c.form_id, forms.c.status, persons.c.name, persons.c.id_number, persons.c.school,
                persons.c.class_name, persons.c.student_no)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .where(or_(persons.c.name.like(like), persons.c.id_number.like(like.upper()),
                    persons.c.student_no.like(like), forms.c.form_id.like(like.upper())))
         .order_by(persons.c.school, persons.c.class_name, persons.c.student_no).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def label(name: str, layout_key: str | None = None) -> str:
    return fieldinfo.label(name, fieldinfo.layout(layout_key))
