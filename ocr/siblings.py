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

A phone one box from a number other forms of the same school carry is most often that number with a
box misread (a class that gives its teacher's number writes it 40 times: a flagged '1' read as '7' on
a few forms, the same box, and those renderings would even make each other sure). Where two numbers
of a school's forms are one box apart, the renderings of the number fewer forms carry (of both, when
as many) go to a reviewer whatever they read alone or jointly (confidence capped at
`ocr.read.ONE_BOX_APART_CONFIDENCE`), the box framed with what the other forms read there
(`fields.doubt`: "other_forms", "n_other"; audit row "one_box_from_other_forms"). An ID cannot be
one box from another valid ID (its check character), so this is for phones only.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import and_, select, update

from forms.layout import load_layout
from formstation.store import Store, audit, fields, forms, now, persons
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


def _names(layouts: dict, roles: tuple[str, ...]) -> set[str]:
    """The field names the store's layouts give `roles`."""
    return {lay.name_of(role) for lay in layouts.values() for role in roles} - {""}


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
            names = _names(layouts, roles)
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
    capped, newly = _one_box_from_others(store, layouts, form_ids, probs)
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
            if (r.form_id, r.name) in capped:
                continue  # one box from a number other forms carry: its renderings do not vouch for it
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
    return {f for f, _ in changed} | newly


def _one_box_from_others(store: Store, layouts: dict, form_ids: set[str],
                         probs) -> tuple[set[tuple[str, str]], set[str]]:
    """Cap (and frame the box of) every read phone of the batch's schools that is one box from a
    number more forms of its school carry, or as many (see the module's docstring); returns every
    such field, (form id, name), capped now or before, and the forms capped now. `probs`: a field
    row's kept cells read."""
    from ocr.read import ONE_BOX_APART_CONFIDENCE

    names = _names(layouts, KINDS[0][0])  # the phones
    if not names:
        return set(), set()
    with store.tx() as conn:
        schools = set(conn.execute(select(persons.c.school).join(forms, forms.c.person_id == persons.c.person_id)
                                   .where(forms.c.form_id.in_(form_ids))).scalars())
        q = (select(fields.c.form_id, fields.c.name, fields.c.value, fields.c.confidence, fields.c.source,
                    fields.c.doubt, fields.c.crop_path, fields.c.reader_version, persons.c.school, forms.c.layout_key)
             .join(forms, forms.c.form_id == fields.c.form_id).join(persons, forms.c.person_id == persons.c.person_id)
             .where(and_(fields.c.name.in_(names), persons.c.school.in_(schools))))
        rows = [r for r in conn.execute(q) if r.value and len(r.value) == 11 and r.value.isdigit()]
    carriers: dict[tuple[str, str], set[str]] = {}  # (school, number) -> the forms carrying it
    for r in rows:
        carriers.setdefault((r.school, r.value), set()).add(r.form_id)
    out: set[tuple[str, str]] = set()
    updates = []
    for r in rows:
        if r.source != "read":
            continue
        mine = carriers[(r.school, r.value)]
        near = None  # (box, what the other forms read there, how many forms, one of them)
        for i, ch in enumerate(r.value):
            for d in "0123456789":
                other = carriers.get((r.school, r.value[:i] + d + r.value[i + 1:])) if d != ch else None
                if other and other - mine and len(other) >= len(mine) and (near is None or len(other) > near[2]):
                    near = (i, d, len(other), min(other - mine))
        if near is None:
            continue
        out.add((r.form_id, r.name))
        marks = [m for m in json.loads(r.doubt or "[]") if isinstance(m, dict) and "i" in m]
        if any(m.get("other_forms") == near[1] and m["i"] == near[0] for m in marks):
            continue  # capped and framed by an earlier batch's pass
        updates.append((r, near, marks))
    if updates:
        from ocr.read import doubt_marks

        with store.tx() as conn:
            for r, (i, d, n, example), marks in updates:
                z = layouts[r.layout_key].zone(r.name)
                cells = probs(r) or [None] * z.cells
                fresh = next(m for m in doubt_marks(z, r.value, cells, other={i: d}) if m["i"] == i)
                fresh.pop("other")
                fresh["read"] = r.value[i]
                old = {m["i"]: m for m in marks}
                old[i] = {**fresh, **old.get(i, {}), "other_forms": d, "n_other": n}
                conf = min(r.confidence or 0.0, ONE_BOX_APART_CONFIDENCE)
                conn.execute(update(fields).where(and_(fields.c.form_id == r.form_id, fields.c.name == r.name))
                             .values(confidence=conf, doubt=json.dumps([old[k] for k in sorted(old)])))
                conn.execute(audit.insert().values(
                    at=now(), user_name="station", action="one_box_from_other_forms", form_id=r.form_id,
                    field=r.name, old_value=f"{r.confidence or 0:.4f}",
                    new_value=f"{conf:.4f}: box {i + 1} reads otherwise on {n} other forms, e.g. {example}"))
    return out, {r.form_id for r, _, _ in updates}
