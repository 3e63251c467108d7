"""Read-only queries: the store -> immutable `ExportForm` records in a fixed order.

Ordering is by school, class, student number, form id, so the same store always yields the same
sequence (and so the same export bytes). Nothing here writes to the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from forms.layout import DEFAULT_LAYOUT, PRINTED_ROLES, Layout, load_layout
from formstation import idnumber
from formstation.store import Store, fields, forms, persons, reasons

STATUSES = ("printed", "received", "review", "rescan", "accepted", "rejected")
# printed (pre-filled) values, under today's layout's field names (another layout's: its printed zones)
PRINTED_FIELDS = ("school", "class", "student_no", "name", "gender", "id_number", "bank", "printed_photo")


@dataclass(frozen=True)
class FieldValue:
    value: str
    confidence: float | None
    source: str
    updated_by: str | None = None
    crop_path: str | None = None


@dataclass(frozen=True)
class ReasonRow:
    code: str
    field: str
    detail: str


@dataclass(frozen=True)
class ExportForm:
    form_id: str
    status: str
    school: str
    class_name: str
    student_no: str
    name: str          # printed (roster) value
    gender: str        # printed (roster) value
    id_number: str     # printed (roster) value
    bank: str
    roster_photo: str | None
    received_at: str | None
    decided_at: str | None
    fields: tuple[tuple[str, FieldValue], ...] = ()  # read/reviewed fields, sorted by name
    reasons: tuple[ReasonRow, ...] = ()
    layout_key: str = DEFAULT_LAYOUT  # the layout the form was printed with (forms.layout_key)

    @property
    def layout(self) -> Layout:
        return load_layout(self.layout_key)

    def role_value(self, role: str) -> str:
        """The value of the form's field with this role ('' when its layout has none)."""
        name = self.layout.name_of(role)
        return self.value(name) if name else ""

    def field(self, name: str) -> FieldValue | None:
        return next((f for n, f in self.fields if n == name), None)

    def value(self, name: str) -> str:
        f = self.field(name)
        return (f.value or "") if f else ""

    @property
    def final_name(self) -> str:
        return self.role_value("corrected_name").strip() or self.name

    @property
    def final_id(self) -> str:
        return idnumber.normalize(self.role_value("corrected_id")) or self.id_number

    @property
    def final_gender(self) -> str:
        """Gender as the final ID encodes it when the ID was corrected, else the roster's."""
        cid = self.final_id
        if cid != self.id_number and idnumber.is_valid(cid):
            return idnumber.gender(cid)
        return self.gender

    def printed(self, role: str) -> str:
        """What the form's printed field of this role shows (forms.layout.PRINTED_ROLES)."""
        if role == "printed_photo":
            return "present" if self.roster_photo else "absent"
        col = PRINTED_ROLES.get(role, "")
        return {"class_name": self.class_name, "id_number": self.id_number}.get(col, getattr(self, col, "")) if col else ""

    @property
    def printed_values(self) -> dict[str, str]:
        """The printed fields of the form's layout, by field name."""
        return {z.name: self.printed(z.role) for z in self.layout.zones if z.kind == "printed"}


def sort_key(f: ExportForm) -> tuple[str, str, str, str]:
    return (f.school, f.class_name, f.student_no, f.form_id)


def load_forms(store: Store, school: str | None = None) -> tuple[ExportForm, ...]:
    """Every form (of one school if given) with its fields and reasons, in export order."""
    q = (select(forms.c.form_id, forms.c.status, forms.c.received_at, forms.c.decided_at, forms.c.layout_key,
                persons.c.school, persons.c.class_name, persons.c.student_no, persons.c.name,
                persons.c.gender, persons.c.id_number, persons.c.bank, persons.c.photo_path)
         .join(persons, forms.c.person_id == persons.c.person_id))
    if school is not None:
        q = q.where(persons.c.school == school)
    with store.tx() as conn:
        base = list(conn.execute(q))
        ids = [r.form_id for r in base]
        fmap = _fields_by_form(conn, ids)
        rmap = _reasons_by_form(conn, ids)
    out = [ExportForm(
        form_id=r.form_id, status=r.status, school=r.school, class_name=r.class_name,
        student_no=r.student_no or "", name=r.name, gender=r.gender or "", id_number=r.id_number,
        bank=r.bank or "", roster_photo=r.photo_path or None, received_at=r.received_at,
        decided_at=r.decided_at, fields=tuple(sorted(fmap.get(r.form_id, {}).items())),
        reasons=tuple(rmap.get(r.form_id, ())), layout_key=r.layout_key) for r in base]
    return tuple(sorted(out, key=sort_key))


def _chunks(ids: list[str], n: int = 500):
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def _fields_by_form(conn, ids: list[str]) -> dict[str, dict[str, FieldValue]]:
    out: dict[str, dict[str, FieldValue]] = {}
    for part in _chunks(ids):
        for r in conn.execute(select(fields).where(fields.c.form_id.in_(part))):
            conf = None if r.confidence is None else float(r.confidence)
            out.setdefault(r.form_id, {})[r.name] = FieldValue(
                r.value or "", conf, r.source or "", r.updated_by, r.crop_path)
    return out


def _reasons_by_form(conn, ids: list[str]) -> dict[str, list[ReasonRow]]:
    out: dict[str, list[ReasonRow]] = {}
    for part in _chunks(ids):
        q = select(reasons).where(reasons.c.form_id.in_(part)).order_by(reasons.c.id)
        for r in conn.execute(q):
            out.setdefault(r.form_id, []).append(ReasonRow(r.code, r.field or "", r.detail or ""))
    return out
