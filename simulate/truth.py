"""Ground truth records and the expected outcome of every form, computed from the truth alone.

A form's truth is keyed by the field names of its own layout (the one its barcode names); what a
field means comes from its role (`FormTruth.role`). The expected reason codes restate the domain
rules (DOMAIN.md) independently of any reading code, for the rule sets and fields the form's layout
declares, with the public codes of `ocr.reasons`; the expected status is `ocr.reasons.status_for(codes)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from forms.layout import DEFAULT_LAYOUT, Layout, load_layout
from formstation import idnumber
from ocr.reasons import REASONS, status_for

# the roles the simulator fills (forms.layout.HANDWRITTEN_ROLES), in the order it decides them
ROLES = ("corrected_name", "corrected_id", "applicant_phone", "applicant_photo", "id_copy", "applicant_signature",
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
    layout_key: str = DEFAULT_LAYOUT  # the layout its barcode names

    @property
    def layout(self) -> Layout:
        return load_layout(self.layout_key)


@dataclass(frozen=True)
class FormTruth:
    person: Person
    age: int
    fields: dict = field(hash=False)  # field name of the form's layout -> true value
    marks: dict = field(hash=False)  # how things were drawn (styles, touching cells, ...)
    scan_count: int = 1
    shared_phone_class: bool = False

    def role(self, role: str):
        """The true value of the field with this role ('' when the form's layout has none)."""
        name = self.person.layout.name_of(role)
        return self.fields.get(name, "") if name else ""

    def final_name(self) -> str:
        return self.role("corrected_name") or self.person.name

    def final_id(self) -> str:
        return self.role("corrected_id") or self.person.id_number


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


def _phone_codes(t: FormTruth, role: str, prefix: str) -> list[str]:
    z = t.person.layout.by_role(role)
    if z is None:
        return []
    value = t.fields.get(z.name, "")
    if not value:
        return [] if z.optional else [f"{prefix}PHONE_MISSING"]
    return [] if idnumber.is_mobile(value) else [f"{prefix}PHONE_INVALID"]


def _guardian_codes(t: FormTruth, day: date) -> list[str]:
    out = []
    has = t.person.layout.by_role
    gid = t.role("guardian_id")
    if not has("guardian_id"):
        pass
    elif not gid:
        out.append("GUARDIAN_ID_MISSING")
    elif not idnumber.is_valid(gid):
        out.append("GUARDIAN_ID_INVALID")
    elif gid == t.final_id():
        out.append("GUARDIAN_IS_APPLICANT")
    elif (idnumber.age_on(gid, day) or 0) < 18:
        out.append("GUARDIAN_NOT_ADULT")
    out += _phone_codes(t, "guardian_phone", "GUARDIAN_")
    if has("guardian_relation") and not t.role("guardian_relation"):
        out.append("GUARDIAN_RELATION_MISSING")
    if has("guardian_signature") and not t.role("guardian_signature"):
        out.append("GUARDIAN_SIGNATURE_MISSING")
    return out


def _photo_codes(t: FormTruth) -> list[str]:
    if not t.person.layout.by_role("applicant_photo"):
        return []
    photo = t.role("applicant_photo")
    if t.age < 6:
        return []
    if photo == "none":
        return [] if t.person.has_printed_photo else ["PHOTO_MISSING"]
    return {"grey_bg": ["PHOTO_NOT_LIGHT_BG"], "photocopy": ["PHOTO_GRAYSCALE"]}.get(photo, [])


def _correction_codes(t: FormTruth) -> list[str]:
    out = []
    name, cid, copy = t.role("corrected_name"), t.role("corrected_id"), t.role("id_copy")
    if name:
        out.append("NAME_CORRECTED")
    if (name or cid) and t.person.layout.by_role("id_copy") and not copy:  # no area: no copy asked for
        out.append("CORRECTION_WITHOUT_COPY")
    if cid and not idnumber.is_valid(cid):
        out.append("CORRECTED_ID_INVALID")
    if cid and copy and copy != cid:
        out.append("ID_COPY_MISMATCH")
    return out


def expected_reasons(t: FormTruth, day: date) -> list[str]:
    """Sorted reason codes the station should give this form, from the truth alone, by the rule
    sets its layout declares."""
    rules = t.person.layout.rules
    out = []
    if "corrections" in rules:
        out += _correction_codes(t)
    if "applicant_phone" in rules:
        out += _phone_codes(t, "applicant_phone", "")
    if "class_phone" in rules and t.shared_phone_class:
        out.append("PHONE_SHARED_BY_CLASS")
    if "photo" in rules:
        out += _photo_codes(t)
    if "guardian" in rules and t.age < 16:
        out += _guardian_codes(t, day)
    elif "signature" in rules and t.person.layout.by_role("applicant_signature") and not t.role("applicant_signature"):
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
        "form_id": p.form_id, "layout": p.layout_key, "school": p.school, "class": p.class_name, "age": t.age,
        "printed": {"name": p.name, "id_number": p.id_number, "photo": p.has_printed_photo},
        "scanned": scanned, "scan_count": t.scan_count,
        "fields": dict(t.fields), "marks": t.marks,
        "expected_status": status_for(codes) if scanned else "printed",
        "expected_reasons": codes,
    }
