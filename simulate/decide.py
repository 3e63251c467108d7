"""Decide what each form carries (its truth) from the seed and the fill rates. No drawing, no I/O.

Per-form choices use a generator seeded by (seed, form number), so one form's truth does not
depend on the others; batch-wide choices (siblings, the shared-phone class, missing and duplicate
scans) use one planning generator.

What a form carries follows its own layout: a value is decided for every role the simulator knows
(`truth.ROLES`, the same draws whatever the layout, so today's layout's truth stays as it was) and
kept under the name of the field that has the role; a role the layout lacks is left out. A comb
field without a role is filled by its constraint (`extra_values`), with a generator of its own.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np

from forms.layout import Layout, Zone
from formstation import demo, idnumber
from simulate.photos import portrait_look
from simulate.profiles import FillRates, ScanRates
from simulate.truth import ROLES, FormTruth, Person, age_of

RARE = "堃喆玥珺瑄昇燊淏"
GIVEN = demo.GIVEN


def form_rng(seed: int, purpose: int, form_id: str) -> np.random.Generator:
    """A generator for one form and one purpose (decide, draw), independent of batch order."""
    num = int("".join(c for c in form_id if c.isdigit()) or "0")
    return np.random.default_rng([seed, purpose, num, sum(form_id.encode())])


def mobile(rng: np.random.Generator) -> str:
    return "1" + str(int(rng.choice([3, 5, 7, 8, 9]))) + "".join(str(int(d)) for d in rng.integers(0, 10, 9))


def invalid_phone(rng: np.random.Generator) -> str:
    kind = int(rng.integers(0, 3))
    if kind == 0:  # a landline with area code
        return "0774" + "".join(str(int(d)) for d in rng.integers(0, 10, 7))
    if kind == 1:  # a digit forgotten
        return mobile(rng)[:10]
    return "12" + "".join(str(int(d)) for d in rng.integers(0, 10, 9))


def adult_id(rng: np.random.Generator, region: str, minor: bool = False) -> str:
    year = int(rng.integers(2010, 2016)) if minor else int(rng.integers(1972, 1996))
    born = date(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    return idnumber.make(region, born, int(rng.integers(0, 1000)))


def break_check(idn: str) -> str:
    """The same number with a wrong check character (a misread or mistyped digit)."""
    good = idn[17]
    wrong = [c for c in "0123456789X" if c != good]
    return idn[:17] + wrong[(ord(idn[5]) + int(idn[16])) % len(wrong)]


def _corrections(rng: np.random.Generator, p: Person, r: FillRates, taken: set[str]) -> dict:
    f = {"corrected_name": "", "corrected_id": "", "id_copy": ""}
    if rng.random() < r.name_corrected:
        pool = RARE if rng.random() < r.name_correction_rare else GIVEN
        name = p.name
        while name == p.name:
            name = p.name[:-1] + pool[int(rng.integers(len(pool)))]
        f["corrected_name"] = name
    if rng.random() < r.id_corrected:
        while True:
            cid = idnumber.make(p.id_number[:6], idnumber.birth_date(p.id_number), int(rng.integers(0, 1000)))
            if cid != p.id_number and cid not in taken:
                break
        f["corrected_id"] = break_check(cid) if rng.random() < r.corrected_id_invalid else cid
    corrected = bool(f["corrected_name"] or f["corrected_id"])
    if corrected and rng.random() < r.copy_with_correction:
        f["id_copy"] = f["corrected_id"] or p.id_number
        if f["corrected_id"] and rng.random() < r.copy_mismatch:
            f["id_copy"] = p.id_number  # the copy shows the old number
    elif not corrected and rng.random() < r.copy_without_correction:
        f["id_copy"] = p.id_number
    return f


def _photo(rng: np.random.Generator, p: Person, age: int, r: FillRates) -> str:
    if age < 6:
        return "none"
    if p.has_printed_photo:
        if rng.random() >= r.photo_over_printed:
            return "none"
    elif rng.random() < r.photo_missing:
        return "none"
    x = rng.random()
    return "grey_bg" if x < r.photo_grey_bg else "photocopy" if x < r.photo_grey_bg + r.photo_photocopy else "color"


def _guardian(rng: np.random.Generator, p: Person, phone: str, r: FillRates) -> tuple[dict, dict]:
    region = p.id_number[:6]
    x = rng.random()
    gid = (break_check(adult_id(rng, region)) if x < r.guardian_id_invalid
           else p.id_number if x < r.guardian_id_invalid + r.guardian_is_applicant
           else adult_id(rng, region, minor=x < r.guardian_id_invalid + r.guardian_is_applicant + r.guardian_minor))
    gphone = phone if phone and rng.random() < r.guardian_phone_same else mobile(rng)
    if rng.random() < r.guardian_phone_invalid:
        gphone = invalid_phone(rng)
    y = rng.random()
    style = "check" if y < r.relation_check else "cross" if y < r.relation_check + r.relation_cross else "fill"
    rel = str(rng.choice(["father", "mother", "other"], p=[0.45, 0.45, 0.1]))
    g = {"guardian_id": gid, "guardian_phone": gphone, "guardian_relation": rel, "guardian_signature": True}
    marks = {"relation_style": style}
    if rng.random() < r.guardian_missing:
        g = {"guardian_id": "", "guardian_phone": "", "guardian_relation": "", "guardian_signature": False}
        marks = {"guardian": "missing"}
    elif rng.random() < r.guardian_partial:
        drop = rng.choice(list(g), size=int(rng.integers(1, 4)), replace=False)
        g.update({k: (False if k == "guardian_signature" else "") for k in drop})
        marks["guardian"] = "partial"
    return g, marks


def _digit_marks(rng: np.random.Generator, f: dict, r: FillRates, layout: Layout) -> dict:
    marks: dict = {"touching": {}, "crossed_out": {}}
    for name in (z.name for z in layout.zones_of("digits")):
        v = f.get(name, "")
        if not v:
            continue
        if rng.random() < r.touching:
            cells = sorted({int(c) for c in rng.integers(0, len(v), int(rng.integers(1, 4)))})
            marks["touching"][name] = cells
        if rng.random() < r.crossed_out:
            cell = int(rng.integers(0, len(v)))
            wrong = str((int(v[cell]) + int(rng.integers(1, 9))) % 10) if v[cell] != "X" else "7"
            marks["crossed_out"][name] = {"cell": cell, "wrong": wrong}
    return marks


def decide_form(seed: int, p: Person, r: FillRates, day: date, taken: set[str]) -> FormTruth:
    """One form's truth (before batch-wide choices: siblings, shared phone, scan count)."""
    rng = form_rng(seed, 1, p.form_id)
    layout = p.layout
    f = {k: v if layout.by_role(k) else "" for k, v in _corrections(rng, p, r, taken).items()}
    age = age_of(f, p.id_number, day)
    phone = mobile(rng)
    x = rng.random()
    f["applicant_phone"] = ("" if x < r.phone_missing else invalid_phone(rng) if x < r.phone_missing + r.phone_invalid
                            else phone)
    f["applicant_photo"] = _photo(rng, p, age, r) if layout.by_role("applicant_photo") else "none"
    marks: dict = {"pen": "blue" if rng.random() < r.blue_pen else "black"}
    if f["applicant_photo"] != "none":
        marks["photo_look"] = portrait_look(rng, f["applicant_photo"])
    if age < 16 and layout.by_role("guardian_id"):  # a form without a guardian section: the parent signs
        g, gm = _guardian(rng, p, f["applicant_phone"], r)
        f.update(g)
        marks.update(gm)
        f["applicant_signature"] = bool(rng.random() < r.child_signs)
    else:
        f.update(guardian_id="", guardian_phone="", guardian_relation="", guardian_signature=False)
        f["applicant_signature"] = bool(rng.random() >= r.applicant_unsigned)
    marks["signature_style"] = "scribble" if rng.random() < r.signature_scribble else "name"
    marks["stray_marks"] = int(rng.poisson(1.5)) + 1 if rng.random() < r.stray_marks else 0
    marks["guardian_name"] = p.name[0] + "".join(GIVEN[int(i)] for i in rng.integers(0, len(GIVEN), 2))
    return FormTruth(p, age, by_name(layout, f) | extra_values(seed, p, layout), marks)


def by_name(layout: Layout, values: dict) -> dict:
    """Role-keyed values -> the same values under the names of the layout's fields with those roles."""
    return {layout.name_of(role): values[role] for role in ROLES if layout.by_role(role)}


def _by_constraint(rng: np.random.Generator, z: Zone, region: str) -> str:
    if z.constraint == "id_gb11643":
        return adult_id(rng, region)
    if z.constraint == "mobile_cn":
        return mobile(rng)
    return "".join(str(rng.choice(list(z.alphabet.replace("X", ""))) if z.alphabet else "0") for _ in range(z.cells))


def extra_values(seed: int, p: Person, layout: Layout) -> dict:
    """Comb fields without a role (a receipt number, ...): filled by their constraint and box count,
    an optional one half of the time; the generator is the form's own (purpose 8)."""
    rng = form_rng(seed, 8, p.form_id)
    out = {}
    for z in layout.zones_of("digits"):
        if not z.role:
            value = _by_constraint(rng, z, p.id_number[:6])
            out[z.name] = "" if z.optional and rng.random() < 0.5 else value
    return out


def plan(seed: int, people: list[Person], fill: FillRates, scan: ScanRates, day: date) -> list[FormTruth]:
    """Truth for every printed form, with siblings, the shared-phone class and scan counts."""
    taken = {p.id_number for p in people}
    forms = [decide_form(seed, p, fill, day, taken) for p in people]
    rng = np.random.default_rng([seed, 0])
    n = len(forms)
    counts = np.ones(n, int)
    for rate, value in ((scan.missing_forms, 0), (scan.duplicate_scans, 2)):
        k = max(1, round(rate * n)) if rate > 0 and n > 2 else 0
        idx = [i for i in rng.permutation(n) if counts[i] == 1][:k]
        counts[idx] = value
    forms = [replace(t, scan_count=int(c)) for t, c in zip(forms, counts, strict=True)]
    forms = _shared_phone(rng, _siblings(rng, forms, fill), fill)
    return [replace(t, marks={**t.marks, **_digit_marks(form_rng(seed, 3, t.person.form_id), t.fields, fill,
                                                        t.person.layout)})
            for t in forms]


def _siblings(rng: np.random.Generator, forms: list[FormTruth], r: FillRates) -> list[FormTruth]:
    """Pairs of forms in different classes share the contact phone (and the guardian)."""
    k = int(len(forms) * r.family_share / 2)
    order = list(rng.permutation(len(forms)))
    out = list(forms)
    while k > 0 and len(order) >= 2:
        a = order.pop()
        b = next((j for j in order if forms[j].person.class_name != forms[a].person.class_name), None)
        if b is None:
            break
        order.remove(b)
        fb = dict(out[b].fields)
        name = out[b].person.layout.name_of
        if name("applicant_phone"):
            fb[name("applicant_phone")] = out[a].role("applicant_phone")
        if out[a].role("guardian_id") and out[b].role("guardian_id") and out[b].age < 16:
            fb.update({name("guardian_id"): out[a].role("guardian_id"),
                       name("guardian_phone"): out[a].role("guardian_phone")})
        out[b] = replace(out[b], fields=fb, marks={**out[b].marks, "sibling_of": out[a].person.form_id})
        k -= 1
    return out


def _shared_phone(rng: np.random.Generator, forms: list[FormTruth], r: FillRates) -> list[FormTruth]:
    """In `shared_phone_classes` classes (with 3 or more forms scanned) every form has one number."""
    classes: dict[tuple[str, str], list[int]] = {}
    for i, t in enumerate(forms):
        classes.setdefault((t.person.school, t.person.class_name), []).append(i)
    eligible = sorted(k for k, ids in classes.items() if sum(forms[i].scan_count > 0 for i in ids) >= 3)
    out = list(forms)
    for j in rng.permutation(len(eligible))[: r.shared_phone_classes]:
        number = mobile(rng)
        for i in classes[eligible[int(j)]]:
            name = out[i].person.layout.name_of("applicant_phone")
            if name:
                out[i] = replace(out[i], fields={**out[i].fields, name: number}, shared_phone_class=True)
    return out
