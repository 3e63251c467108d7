"""What a reviewer may type into each field: labels, allowed values, shape checks. No I/O."""

from __future__ import annotations

from functools import cache

from forms.layout import CONSTRAINT_SHAPES, Layout, load_layout
from formstation import idnumber

# readings the reader derives beside a zone, named `<zone>_<suffix>` (see ocr/read.py), by suffix
DERIVED_LABELS = {
    "face": "照片人像 (photo face)",
    "background": "照片底色 (photo background)",
    "color": "照片彩色 (photo colour)",
    "number": "复印件上的号码 (number on the ID copy)",
}
DERIVED_CHOICES = {"face": ("yes", "no"), "background": ("light", "dark"), "color": ("color", "grayscale")}
KIND_CHOICES = {"photo": ("pasted", "absent"), "signature": ("present", "absent"), "attachment": ("present", "absent")}
ID_SHAPE = CONSTRAINT_SHAPES["id_gb11643"]  # the number read off a pasted ID copy


@cache
def layout(key: str | None = None) -> Layout:
    return load_layout(key) if key else load_layout()


def _derived(name: str, lay: Layout) -> str:
    """The suffix of a derived reading (`photo_face` -> 'face'), '' for a zone's own field."""
    return lay.source_of(name)[1]


def label(name: str, lay: Layout | None = None) -> str:
    lay = lay or layout()
    try:
        return f"{lay.zone(name).label} ({name})"
    except KeyError:
        return DERIVED_LABELS.get(_derived(name, lay), name)


def choices(name: str, lay: Layout | None = None) -> tuple[str, ...]:
    """Allowed values for a choice field ('' always allowed: nothing on the paper); () for free text."""
    lay = lay or layout()
    suffix = _derived(name, lay)
    if suffix:
        return DERIVED_CHOICES.get(suffix, ())
    try:
        z = lay.zone(name)
    except KeyError:
        return ()
    return tuple(o.name for o in z.options) if z.kind == "checkbox" else KIND_CHOICES.get(z.kind, ())


def digit_shape(name: str, lay: Layout | None = None) -> tuple[int, str] | None:
    lay = lay or layout()
    if _derived(name, lay) == "number":
        return ID_SHAPE
    try:
        z = lay.zone(name)
    except KeyError:
        return None
    return (z.cells, z.alphabet) if z.kind == "digits" else None


def meaning(name: str, lay: Layout | None = None) -> str | None:
    """'id' (an ID number with its check character) or 'mobile' (a mobile number) for a comb
    field, by the constraint its layout gives it (as the decoder reads it: ocr.decode.decode_comb)."""
    lay = lay or layout()
    if _derived(name, lay) == "number":
        return "id"
    try:
        constraint = lay.zone(name).constraint
    except KeyError:
        return None
    return {"id_gb11643": "id", "mobile_cn": "mobile"}.get(constraint)


def check(name: str, value: str, lay: Layout | None = None) -> str | None:
    """What the rules would object to in a value of the right shape, or None: an ID's check
    character and birth date (GB 11643), a mobile number's pattern. Empty is no objection here."""
    if not value:
        return None
    kind = meaning(name, lay)
    if kind == "id":
        problem = idnumber.problem(value)
        if problem and problem.startswith("check character"):  # not which one: the paper says what was written
            problem = "the check character (box 18) does not fit the other 17 boxes"
        return f"not a valid ID number: {problem}" if problem else None
    if kind == "mobile" and not idnumber.is_mobile(value):
        return "not a mobile number (11 digits, starting 13 to 19)"
    return None


@cache
def cell_fracs(name: str, layout_key: str | None = None) -> tuple[tuple[float, float, float, float], ...]:
    """Each comb box's place in the field's review crop (the reader's `_review_box`), as fractions
    [x0, y0, x1, y1] of the crop's width and height: where a frame goes over box i."""
    from ocr.read import _review_box

    z = layout(layout_key).zone(name)
    r = _review_box(z)
    return tuple(((c.x - r.x) / r.w, (c.y - r.y) / r.h, (c.x + c.w - r.x) / r.w, (c.y + c.h - r.y) / r.h)
                 for c in z.cell_boxes())


def normalize(name: str, typed: str, lay: Layout | None = None) -> tuple[str, str | None]:
    """(value to store, problem or None). Choice fields take any unique prefix ('p' -> 'present')."""
    text = typed.strip()
    opts = choices(name, lay)
    if opts:
        if not text:
            return "", None
        hits = [o for o in opts if o.startswith(text.lower())]
        if len(hits) == 1:
            return hits[0], None
        return text, f"type one of: {', '.join(opts)} (or leave empty)"
    shape = digit_shape(name, lay)
    if shape:
        cells, alphabet = shape
        text = text.replace(" ", "").upper()
        bad = sorted({c for c in text if c not in alphabet})
        if bad:
            return text, f"only {alphabet} allowed; remove {' '.join(bad)}"
        if text and len(text) != cells:
            return text, f"{cells} characters needed (or leave empty); got {len(text)}"
    return text, None


def hint(name: str, lay: Layout | None = None) -> str:
    """How to type the field, after the layout's own hint for it when it has one."""
    lay = lay or layout()
    opts = choices(name, lay)
    if opts:
        how = " / ".join(opts) + " (a first letter is enough; empty = nothing on paper)"
    elif shape := digit_shape(name, lay):
        how = f"{shape[0]} characters ({shape[1]}); empty = nothing on paper"
    else:
        how = "as written on the paper; empty = nothing written"
    try:
        own = lay.zone(name).hint
    except KeyError:
        own = ""
    return f"{own} · {how}" if own else how
