"""Ground truth records and the expected outcome of every form, computed from the truth alone.

The expected reason codes restate the domain rules (DOMAIN.md) independently of any reading code,
with the public codes of `ocr.reasons`; the expected status is `ocr.reasons.status_for(codes)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from formstation import idnumber
from ocr.reasons import REASONS, status_for

FIELD_NAMES = ("corrected_name", "corrected_id", "phone", "photo", "id_copy", "applicant_signature",
               "guardian_id", "guardian_phone", "guardian_relation", "guardian_signature")


@dataclass(frozen=True)
class Person:
    """One printed form as found in the printed PDFs and the store."""

    form_id: str
    school: str
    class_name: str
    name: str
    gender: str
    id_number: str
    has_printed_photo: bool
    pdf: str  # printed PDF path
    page_index: int


@dataclass(frozen=True)
class FormTruth:
    person: Person
    age: int
    fields: dict = field(hash=False)  # field name -> true value (see FIELD_NAMES)
    marks: dict = field(hash=False)  # how things were drawn (styles, touching cells, ...)
    scan_count: int = 1
    shared_phone_class: bool = False

    def final_name(self) -> str:
        return self.fields["corrected_name"] or self.person.name

    def final_id(self) -> str:
        return self.fields["corrected_id"] or self.person.id_number


def _rare(name: str) -> bool:
    try:
        name.encode("gb2312")
    except UnicodeEncodeError:
        return True
    return False


def age_of(t_fields: dict, printed_id: str, day: date) -> int:
    cid = t_fields.get("corrected_id", "")
    ref = cid if cid and idnumber.is_valid(cid) else printed_id
    return int(idnumber.age_on(ref, day) or 0)


def _phone_codes(value: str, prefix: str) -> list[str]:
    if not value:
        return [f"{prefix}PHONE_MISSING"]
    return [] if idnumber.is_mobile(value) else [f"{prefix}PHONE_INVALID"]


def _guardian_codes(f: dict, final_id: str, day: date) -> list[str]:
    out = []
    gid = f["guardian_id"]
    if not gid:
        out.append("GUARDIAN_ID_MISSING")
    elif not idnumber.is_valid(gid):
        out.append("GUARDIAN_ID_INVALID")
    elif gid == final_id:
        out.append("GUARDIAN_IS_APPLICANT")
    elif (idnumber.age_on(gid, day) or 0) < 18:
        out.append("GUARDIAN_NOT_ADULT")
    out += _phone_codes(f["guardian_phone"], "GUARDIAN_")
    if not f["guardian_relation"]:
        out.append("GUARDIAN_RELATION_MISSING")
    if not f["guardian_signature"]:
        out.append("GUARDIAN_SIGNATURE_MISSING")
    return out


def _photo_codes(t: FormTruth) -> list[str]:
    photo = t.fields["photo"]
    if t.age < 6:
        return []
    if photo == "none":
        return [] if t.person.has_printed_photo else ["PHOTO_MISSING"]
    return {"grey_bg": ["PHOTO_NOT_LIGHT_BG"], "photocopy": ["PHOTO_GRAYSCALE"]}.get(photo, [])


def expected_reasons(t: FormTruth, day: date) -> list[str]:
    """Sorted reason codes the station should give this form, from the truth alone."""
    f = t.fields
    out = []
    if f["corrected_name"]:
        out.append("NAME_CORRECTED")
    if (f["corrected_name"] or f["corrected_id"]) and not f["id_copy"]:
        out.append("CORRECTION_WITHOUT_COPY")
    if f["corrected_id"] and not idnumber.is_valid(f["corrected_id"]):
        out.append("CORRECTED_ID_INVALID")
    if f["corrected_id"] and f["id_copy"] and f["id_copy"] != f["corrected_id"]:
        out.append("ID_COPY_MISMATCH")
    out += _phone_codes(f["phone"], "")
    if t.shared_phone_class:
        out.append("PHONE_SHARED_BY_CLASS")
    out += _photo_codes(t)
    if t.age < 16:
        out += _guardian_codes(f, t.final_id(), day)
    elif not f["applicant_signature"]:
        out.append("SIGNATURE_MISSING")
    if t.scan_count > 1:
        out.append("DUPLICATE_SCAN")
    if _rare(t.final_name()):
        out.append("RARE_CHARACTER")
    unknown = [c for c in out if c not in REASONS]
    assert not unknown, f"not a public reason code: {unknown}"
    return sorted(set(out))


def truth_record(t: FormTruth, day: date) -> dict:
    """One line of truth.jsonl."""
    scanned = t.scan_count > 0
    codes = expected_reasons(t, day) if scanned else []
    p = t.person
    return {
        "form_id": p.form_id, "school": p.school, "class": p.class_name, "age": t.age,
        "printed": {"name": p.name, "id_number": p.id_number, "photo": p.has_printed_photo},
        "scanned": scanned, "scan_count": t.scan_count,
        "fields": {k: t.fields[k] for k in FIELD_NAMES}, "marks": t.marks,
        "expected_status": status_for(codes) if scanned else "printed",
        "expected_reasons": codes,
    }
