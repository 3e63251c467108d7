"""Siblings' forms: one number written on two forms or more.

A parent with two children at the campaign's schools fills two forms (in different classes, or twins
in one) with the same phone and, for children under 16, the same guardian's ID number; a class whose
forms all give one number (a teacher's, `PHONE_SHARED_BY_CLASS`) writes it on every form. Where a
reading of a number two or more forms' phones read as (11 digits), or their guardian IDs (18
characters), is under its threshold, each box is read from that form's rendering and each other
form's at once, as a form's own two phones are (`decode._pair_cells`: one hand's errors repeat, so
the two count partly as one; `decode.decode_phone_pair`, `decode.decode_id_pair`, the ID then under
its check character and `ocr.read.check_decided`), from the cells each reader saw (kept at ingest,
`ocr.labels`), by the reader version that read each; a field whose surest joint reading is the same
number, surer, takes that confidence, with an audit row ("sibling_pair": old and new confidence,
the other form). Two renderings that differ surely in a box are two numbers. A class's shared
number read surely on its forms lets the class rule reject them on confident evidence. A box struck
out or noted above, a reviewer's value or a reading of another length leaves the field as it is.
Run after every ingest batch, before its forms are decided (`persist.after_batch`); it returns the
forms it changed, to be decided too.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import and_, select, update

from forms.layout import load_layout
from formstation.store import Store, audit, fields, forms, now
from ocr import decode, labels, versions


def _phone(mine: list, theirs: list, value: str) -> float | None:
    d = decode.decode_phone_pair(mine, theirs)
    return d.confidence if d is not None and d.value == value else None


def _guardian_id(mine: list, theirs: list, value: str) -> float | None:
    from ocr.read import check_decided

    got = decode.decode_id_pair(mine, theirs)
    if got is None or got[0].value != value or check_decided(value, got[1]):
        return None
    return got[0].confidence


# the numbers a parent writes on each child's form: (roles, length, joint reading's confidence)
KINDS = ((("applicant_phone", "guardian_phone"), 11, _phone),
         (("guardian_id",), 18, _guardian_id))


def _number_rows(conn, names: set[str], form_ids: set[str], length: int) -> dict[str, list]:
    """The numbers of `length` characters the fields `names` of `form_ids` read as -> every read
    field of those names on any form carrying one of them."""
    read = and_(fields.c.name.in_(names), fields.c.source == "read")
    own = {v for v in conn.execute(select(fields.c.value).where(and_(read, fields.c.form_id.in_(form_ids)))).scalars()
           if v and len(v) == length}
    out: dict[str, list] = {}
    if own:
        q = select(fields.c.form_id, fields.c.name, fields.c.value, fields.c.confidence, fields.c.crop_path,
                   fields.c.reader_version).where(and_(read, fields.c.value.in_(own)))
        for r in conn.execute(q):
            out.setdefault(r.value, []).append(r)
    return out


def pair(store: Store, form_ids: set[str]) -> set[str]:
    """Read every number two or more forms carry, one of them among `form_ids` (a batch's forms),
    from two forms' renderings at once, where a reading of it is under its field's threshold;
    returns the forms whose phone or guardian ID confidence rose."""
    from ocr.rules import load_config, threshold_for

    if not form_ids:
        return set()
    ws = Path(store.workspace)
    thresholds = load_config(store).thresholds
    with store.tx() as conn:
        layouts = {k: load_layout(k) for k in conn.execute(select(forms.c.layout_key).distinct()).scalars()}
        numbers = []  # (value, its rows, joint reading)
        for roles, length, joint in KINDS:
            names = {lay.name_of(role) for lay in layouts.values() for role in roles} - {""}
            if names:
                numbers += [(v, rows, joint) for v, rows in _number_rows(conn, names, set(form_ids), length).items()]
        carriers = {r.form_id for _, rows, _ in numbers for r in rows}
        keys = dict(conn.execute(select(forms.c.form_id, forms.c.layout_key).where(forms.c.form_id.in_(carriers))).all()
                    ) if carriers else {}

    def doubtful(r) -> bool:
        return (r.confidence or 0) < threshold_for(thresholds, r.name, layouts[keys[r.form_id]])

    readers: dict[str, object] = {}

    def probs(row):
        x = labels.own_cells(ws, row.crop_path)
        if x is None or len(x) != len(row.value):
            return None
        name = row.reader_version or ""
        if name not in readers:
            readers[name] = versions.load_reader(ws, name or None)
        return list(readers[name].predict_proba(x))

    changed: dict[tuple[str, str], tuple[float, float, str]] = {}
    for value, rows, joint in numbers:
        if len({r.form_id for r in rows}) < 2 or not any(doubtful(r) for r in rows):
            continue
        cells = {(r.form_id, r.name): probs(r) for r in rows}
        for r in filter(doubtful, rows):
            mine, best = cells[(r.form_id, r.name)], None
            for o in rows:
                theirs = cells[(o.form_id, o.name)]
                if o.form_id == r.form_id or mine is None or theirs is None:
                    continue
                conf = joint(mine, theirs, value)
                if conf is not None and (best is None or conf > best[0]):
                    best = (conf, o.form_id)
            if best is not None and round(best[0], 4) > (r.confidence or 0):
                changed[(r.form_id, r.name)] = (r.confidence or 0, round(best[0], 4), best[1])
    if changed:
        with store.tx() as conn:
            for (form_id, name), (old, new, other) in changed.items():
                conn.execute(update(fields).where(and_(fields.c.form_id == form_id, fields.c.name == name))
                             .values(confidence=new))
                conn.execute(audit.insert().values(at=now(), user_name="station", action="sibling_pair",
                                                   form_id=form_id, field=name, old_value=f"{old:.4f}",
                                                   new_value=f"{new:.4f} with {other}"))
    return {f for f, _ in changed}
