"""Form layouts as data: YAML files in `layouts/`, checked by a schema, turned into frozen types.

Geometry is in millimetres from the page's top-left corner. The one mm -> px transform is
`Box.to_px`; nothing else converts units. The same `Layout` drives printing and reading.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LAYOUT_DIR = Path(__file__).resolve().parent.parent / "layouts"
DEFAULT_LAYOUT = "ssc_application_v1"
MM_PER_INCH = 25.4

FieldKind = Literal["printed", "text", "digits", "checkbox", "signature", "photo", "attachment"]
# what a field means, for the rules, the decoder, the review station and the export (not its name):
# printed roles name the roster column the field shows; handwritten roles what the rules check
PRINTED_ROLES = {"school": "school", "class": "class_name", "student_no": "student_no", "printed_name": "name",
                 "gender": "gender", "printed_id": "id_number", "bank": "bank", "printed_photo": "photo_path"}
HANDWRITTEN_ROLES = ("corrected_name", "corrected_id", "applicant_phone", "applicant_photo", "id_copy",
                     "applicant_signature", "guardian_id", "guardian_phone", "guardian_relation",
                     "guardian_signature")
Role = Literal["school", "class", "student_no", "printed_name", "gender", "printed_id", "bank", "printed_photo",
               "corrected_name", "corrected_id", "applicant_phone", "applicant_photo", "id_copy",
               "applicant_signature", "guardian_id", "guardian_phone", "guardian_relation", "guardian_signature"]
# how a comb field is decoded and checked: an ID number (GB 11643, check character), a mainland
# mobile number, or box by box
Constraint = Literal["id_gb11643", "mobile_cn", "none"]
CONSTRAINT_SHAPES = {"id_gb11643": (18, "0123456789X"), "mobile_cn": (11, "0123456789")}
# which domain rules a layout's forms are decided by (ocr.rules); form-level checks always apply
RuleSet = Literal["corrections", "applicant_phone", "class_phone", "photo", "guardian", "signature"]
# what an export column shows: a form's own value, or "role:<role>" / "option:<role>" (the
# ticked option's label) of the field with that role, or "field:<name>"
EXPORT_VALUES = ("form_id", "school", "class", "student_no", "bank", "final_name", "final_gender", "final_id",
                 "printed_name", "printed_id", "photo_file", "rare_characters")

# a drop-out colour for comb boxes (`comb_ink`): as light as paper in one channel, coloured, and
# light grey in a grey scan (lighter than pen ink by far, under the 1-bit threshold's 150 too)
DROPOUT_LIGHT, DROPOUT_CHROMA, DROPOUT_GREY = 230, 60, 160


class LayoutError(Exception):
    """A layout file is missing, unreadable or breaks the schema; the message names file and key."""


@dataclass(frozen=True)
class Box:
    """A rectangle in millimetres: x, y of the top-left corner, width, height."""

    x: float
    y: float
    w: float
    h: float

    def to_px(self, dpi: float) -> tuple[int, int, int, int]:
        """The one mm -> px transform: (x0, y0, x1, y1) pixel bounds at `dpi` on an aligned page."""
        k = mm_to_px(1.0, dpi)
        return (round(self.x * k), round(self.y * k), round((self.x + self.w) * k), round((self.y + self.h) * k))

    def cells(self, n: int) -> tuple[Box, ...]:
        """Split into `n` equal-width boxes, left to right (comb boxes)."""
        w = self.w / n
        return tuple(Box(self.x + i * w, self.y, w, self.h) for i in range(n))

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)


@dataclass(frozen=True)
class CheckOption:
    name: str
    label: str
    box: Box


@dataclass(frozen=True)
class Zone:
    """One field of the form. `cells`/`alphabet` only for digits, `options` only for checkbox."""

    name: str
    kind: str
    label: str
    box: Box
    cells: int = 0
    alphabet: str = ""
    options: tuple[CheckOption, ...] = ()
    role: str = ""
    constraint: str = "none"
    pair_with: str = ""  # another comb field a family may write the same number in (read jointly)
    optional: bool = False  # a field the form may leave empty (no *_MISSING reason)
    hint: str = ""  # shown to the reviewer beside the field

    def cell_boxes(self) -> tuple[Box, ...]:
        return self.box.cells(self.cells) if self.cells else ()


@dataclass(frozen=True)
class Marks:
    dictionary: str
    size_mm: float
    quiet_mm: float
    positions: dict[int, tuple[float, float]]

    def corners_mm(self, marker_id: int) -> tuple[tuple[float, float], ...]:
        """The marker's four corners in mm, in OpenCV ArUco order (TL, TR, BR, BL)."""
        x, y = self.positions[marker_id]
        s = self.size_mm
        return ((x, y), (x + s, y), (x + s, y + s), (x, y + s))


@dataclass(frozen=True)
class Section:
    title: str
    box: Box


@dataclass(frozen=True)
class ExportSpec:
    """Which card data file a layout's accepted forms go to, and its columns (header, value)."""

    card_file: str
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CombInk:
    """How a layout's comb boxes are printed. 'grey' (the default): mid grey lines. 'dropout': a
    light colour (`rgb`) that black and blue pens are not, with nothing else printed within
    `band_mm` of a comb; the reader drops that colour before cutting cells (on a colour scan the
    channel where it is as light as paper, on a grey scan the light lines), so a digit touching or
    crossing a box line keeps all its ink."""

    kind: str = "grey"
    rgb: tuple[int, ...] = ()  # the drop-out colour (r, g, b), 0..255; grey combs: the printer's grey
    band_mm: float = 0.0

    @property
    def dropout(self) -> bool:
        return self.kind == "dropout"

    @property
    def drop_channel(self) -> int:
        """The BGR channel (OpenCV order) in which the drop-out colour is lightest: there it
        scans as paper, and dark pens stay dark."""
        return 2 - max(range(3), key=lambda i: self.rgb[i])


@dataclass(frozen=True)
class Layout:
    layout_id: str
    version: int
    title: str
    subtitle: str
    width_mm: float
    height_mm: float
    marks: Marks
    barcode_format: str
    barcode_box: Box
    sections: tuple[Section, ...]
    zones: tuple[Zone, ...]
    guide_box: Box
    guide_lines: tuple[str, ...]
    rules: tuple[str, ...] = ()
    export: ExportSpec | None = None
    comb_ink: CombInk = CombInk()

    @property
    def key(self) -> str:
        """`<layout_id>_v<version>`: the file stem and the id stored with every form."""
        return f"{self.layout_id}_v{self.version}"

    def zone(self, name: str) -> Zone:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(f"layout {self.key} has no field {name!r}")

    def by_role(self, role: str) -> Zone | None:
        """The field with this role, or None when the layout has none."""
        return next((z for z in self.zones if z.role == role), None)

    def name_of(self, role: str) -> str:
        """The name of the field with this role ('' when the layout has none)."""
        z = self.by_role(role)
        return z.name if z else ""

    def source_of(self, name: str) -> tuple[Zone | None, str]:
        """The zone a field the reader writes comes from and the derived reading's suffix
        (`photo_face` -> (photo, 'face'); a zone's own field -> (zone, '')); (None, '') if none."""
        for z in self.zones:
            if name == z.name:
                return z, ""
            if name.startswith(z.name + "_") and name[len(z.name) + 1:] in DERIVED.get(z.kind, ()):
                return z, name[len(z.name) + 1:]
        return None, ""

    def kind_of(self, name: str) -> str:
        """The zone kind of a field the reader writes, derived readings (`photo_face`,
        `id_copy_number`: named after their zone) counting as their zone's kind; '' if none."""
        z, _ = self.source_of(name)
        return z.kind if z else ""

    @property
    def read_fields(self) -> tuple[str, ...]:
        """The fields the reader writes from its zones (every zone that is not printed)."""
        return tuple(z.name for z in self.zones if z.kind != "printed")

    def zones_of(self, *kinds: str) -> tuple[Zone, ...]:
        return tuple(z for z in self.zones if z.kind in kinds)

    def page_px(self, dpi: float) -> tuple[int, int]:
        """(width, height) in pixels of the whole page at `dpi`."""
        _, _, w, h = Box(0, 0, self.width_mm, self.height_mm).to_px(dpi)
        return w, h


# readings the reader derives from a zone, named `<zone>_<suffix>` (ocr.read)
DERIVED = {"photo": ("face", "background", "color", "scan"), "attachment": ("number",)}


def mm_to_px(mm: float, dpi: float) -> float:
    """The one mm -> px factor for lengths (Box.to_px for boxes)."""
    return mm * dpi / MM_PER_INCH


# ---------------------------------------------------------------- schema (pydantic, strict keys)

BoxList = list[float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_box(v: BoxList) -> BoxList:
    if len(v) != 4 or v[2] <= 0 or v[3] <= 0:
        raise ValueError("box must be [x_mm, y_mm, w_mm, h_mm] with positive width and height")
    return v


class _OptionSpec(_Strict):
    label: str
    box: BoxList
    _b = field_validator("box")(_check_box)


class _FieldSpec(_Strict):
    kind: FieldKind
    label: str
    box: BoxList
    cells: int | None = Field(default=None, ge=1, le=40)
    alphabet: str | None = None
    options: dict[str, _OptionSpec] | None = None
    role: Role | None = None
    constraint: Constraint | None = None
    pair_with: str | None = None
    optional: bool = False
    hint: str = ""
    _b = field_validator("box")(_check_box)


class _MarksSpec(_Strict):
    dictionary: str
    size_mm: float = Field(gt=0)
    quiet_mm: float = Field(ge=0)
    positions: dict[int, BoxList]


class _BarcodeSpec(_Strict):
    format: Literal["QRCode"]
    box: BoxList
    _b = field_validator("box")(_check_box)


class _SectionSpec(_Strict):
    title: str
    box: BoxList


class _GuideSpec(_Strict):
    box: BoxList
    lines: list[str]


class _PageSpec(_Strict):
    width_mm: float = Field(gt=0)
    height_mm: float = Field(gt=0)


class _ExportSpec(_Strict):
    card_file: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    columns: list[tuple[str, str]]


class _CombInkSpec(_Strict):
    kind: Literal["grey", "dropout"] = "grey"
    rgb: list[int] | None = None
    band_mm: float = Field(default=2.0, ge=0, le=6)

    @field_validator("rgb")
    @classmethod
    def _rgb(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if len(v) != 3 or any(not 0 <= c <= 255 for c in v):
            raise ValueError("rgb must be [r, g, b], each 0..255")
        if max(v) < DROPOUT_LIGHT or max(v) - min(v) < DROPOUT_CHROMA:
            raise ValueError(f"a drop-out colour must be light in one channel (>= {DROPOUT_LIGHT}, where it scans "
                             f"as paper) and coloured (channels at least {DROPOUT_CHROMA} apart), e.g. [255, 150, 150]")
        if round(0.299 * v[0] + 0.587 * v[1] + 0.114 * v[2]) < DROPOUT_GREY:
            raise ValueError(f"a drop-out colour must scan light grey (luminance >= {DROPOUT_GREY}), e.g. [255, 150, 150]")
        return v


class _LayoutSpec(_Strict):
    layout_id: str
    version: int = Field(ge=1)
    title: str
    subtitle: str = ""
    page: _PageSpec
    marks: _MarksSpec
    barcode: _BarcodeSpec
    sections: list[_SectionSpec] = []
    fields: dict[str, _FieldSpec]
    guide: _GuideSpec
    rules: list[RuleSet] = []
    export: _ExportSpec | None = None
    comb_ink: _CombInkSpec | None = None


def _field_problems(name: str, f: _FieldSpec) -> list[str]:
    """Rules pydantic cannot express: which keys belong to which kind."""
    out = []
    if f.kind == "digits":
        if not f.cells or not f.alphabet:
            out.append(f"fields.{name}: kind 'digits' needs 'cells' and 'alphabet'")
    elif f.cells is not None or f.alphabet is not None:
        out.append(f"fields.{name}: 'cells'/'alphabet' are only for kind 'digits'")
    if f.kind == "checkbox" and not f.options:
        out.append(f"fields.{name}: kind 'checkbox' needs 'options'")
    if f.kind != "checkbox" and f.options is not None:
        out.append(f"fields.{name}: 'options' is only for kind 'checkbox'")
    if f.role in PRINTED_ROLES and f.kind != "printed" or f.role in HANDWRITTEN_ROLES and f.kind == "printed":
        out.append(f"fields.{name}.role: {f.role!r} does not fit kind {f.kind!r}")
    if f.constraint is not None and f.kind != "digits":
        out.append(f"fields.{name}.constraint: only for kind 'digits'")
    shape = CONSTRAINT_SHAPES.get(f.constraint or "none")
    if shape and (f.cells, f.alphabet) != shape:
        out.append(f"fields.{name}.constraint: {f.constraint!r} needs cells {shape[0]} and alphabet {shape[1]!r}")
    return out


def _layout_problems(spec: _LayoutSpec) -> list[str]:
    """Rules across fields: pairs name comb fields of one shape, a role is used once, export
    columns name known values and roles."""
    out = []
    roles = [f.role for f in spec.fields.values() if f.role]
    out += [f"role {r!r} is used by more than one field" for r in sorted({r for r in roles if roles.count(r) > 1})]
    for name, f in spec.fields.items():
        if f.pair_with is None:
            continue
        other = spec.fields.get(f.pair_with)
        if other is None or f.pair_with == name:
            out.append(f"fields.{name}.pair_with: no other field {f.pair_with!r}")
        elif f.kind != "digits" or (other.cells, other.alphabet, other.constraint) != (f.cells, f.alphabet, f.constraint):
            out.append(f"fields.{name}.pair_with: {f.pair_with!r} is not a comb field of the same shape")
    for i, (_, value) in enumerate(spec.export.columns if spec.export else ()):
        kind, _, role = value.partition(":")
        if not (value in EXPORT_VALUES or kind in ("role", "option") and role in roles
                or kind == "field" and role in spec.fields):
            out.append(f"export.columns.{i}: unknown value {value!r} (one of {', '.join(EXPORT_VALUES)}, "
                       "or role:<role> / option:<role> / field:<name> of a field of this layout)")
    return out


def _overlap(a: BoxList, b: BoxList) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _inside(a: BoxList, b: BoxList) -> bool:
    """`a` lies strictly inside `b` (no edge of `b` crosses it)."""
    return b[0] < a[0] and b[1] < a[1] and a[0] + a[2] < b[0] + b[2] and a[1] + a[3] < b[1] + b[3]


def _comb_ink_problems(spec: _LayoutSpec) -> list[str]:
    """A drop-out comb needs its colour, and its clear band (`band_mm` around each comb) must hold
    no other printing: no other field or option box, no section edge, no barcode, mark or guide."""
    ink = spec.comb_ink
    if ink is None or ink.kind == "grey":
        return ["comb_ink.rgb: only for kind 'dropout' (grey combs are printed in the station's grey)"] \
            if ink is not None and ink.rgb is not None else []
    if ink.rgb is None:
        return ["comb_ink: kind 'dropout' needs 'rgb' (the drop-out colour, e.g. [255, 150, 150])"]
    others: list[tuple[str, BoxList]] = [(f"fields.{n}", f.box) for n, f in spec.fields.items()]
    others += [(f"fields.{n}.options.{o}", ob.box) for n, f in spec.fields.items() for o, ob in (f.options or {}).items()]
    others += [("barcode", spec.barcode.box), ("guide", spec.guide.box)]
    others += [(f"marks.{i}", [*v[:2], spec.marks.size_mm, spec.marks.size_mm]) for i, v in spec.marks.positions.items()]
    out = []
    b = ink.band_mm
    for name, f in spec.fields.items():
        if f.kind != "digits":
            continue
        band = [f.box[0] - b, f.box[1] - b, f.box[2] + 2 * b, f.box[3] + 2 * b]
        out += [f"comb_ink.band_mm: {where} is printed within {b:g} mm of comb {name!r}"
                for where, box in others if where != f"fields.{name}" and _overlap(band, box)]
        out += [f"comb_ink.band_mm: the edge of sections.{i} runs within {b:g} mm of comb {name!r}"
                for i, s in enumerate(spec.sections) if _overlap(band, s.box) and not _inside(band, s.box)]
    return out


def _fmt_error(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif e["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        elif e["type"] == "literal_error":
            what = next(str(p) for p in reversed(e["loc"]) if not isinstance(p, int))
            parts.append(f"{loc}: unknown {what} {e['input']!r} ({e['msg']})")
        else:
            parts.append(f"{loc}: {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def _to_box(v: BoxList) -> Box:
    return Box(*(float(x) for x in v))


def _build(spec: _LayoutSpec) -> Layout:
    zones = []
    for name, f in spec.fields.items():
        opts = tuple(CheckOption(k, o.label, _to_box(o.box)) for k, o in (f.options or {}).items())
        zones.append(Zone(name, f.kind, f.label, _to_box(f.box), f.cells or 0, f.alphabet or "", opts,
                          f.role or "", f.constraint or "none", f.pair_with or "", f.optional, f.hint))
    m = spec.marks
    return Layout(
        layout_id=spec.layout_id, version=spec.version, title=spec.title, subtitle=spec.subtitle,
        width_mm=spec.page.width_mm, height_mm=spec.page.height_mm,
        marks=Marks(m.dictionary, m.size_mm, m.quiet_mm, {k: (v[0], v[1]) for k, v in m.positions.items()}),
        barcode_format=spec.barcode.format, barcode_box=_to_box(spec.barcode.box),
        sections=tuple(Section(s.title, _to_box(s.box)) for s in spec.sections),
        zones=tuple(zones), guide_box=_to_box(spec.guide.box), guide_lines=tuple(spec.guide.lines),
        rules=tuple(spec.rules),
        export=ExportSpec(spec.export.card_file, tuple(tuple(c) for c in spec.export.columns)) if spec.export else None,
        comb_ink=_comb_ink(spec.comb_ink),
    )


def _comb_ink(ink: _CombInkSpec | None) -> CombInk:
    if ink is None or ink.kind == "grey":
        return CombInk()
    return CombInk("dropout", tuple(int(c) for c in ink.rgb or ()), float(ink.band_mm))


def parse_layout(text: str, source: str = "<layout>") -> Layout:
    """Parse and validate layout YAML; raise LayoutError naming `source` and the offending key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise LayoutError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise LayoutError(f"{source}: expected a mapping at the top level")
    try:
        spec = _LayoutSpec.model_validate(raw)
    except ValidationError as e:
        raise LayoutError(_fmt_error(source, e)) from None
    problems = [p for n, f in spec.fields.items() for p in _field_problems(n, f)] + _layout_problems(spec)
    problems += _comb_ink_problems(spec)
    if problems:
        raise LayoutError(f"{source}: " + "; ".join(problems))
    return _build(spec)


_CACHE: dict[str, Layout] = {}
LAYOUT_PATH_ENV = "FORMSTATION_LAYOUT_PATH"  # more folders of layout YAML, searched before layouts/


def layout_dirs() -> tuple[Path, ...]:
    """Where layouts are found by key: the folders in FORMSTATION_LAYOUT_PATH, then `layouts/`."""
    extra = [Path(p) for p in os.environ.get(LAYOUT_PATH_ENV, "").split(os.pathsep) if p]
    return (*extra, LAYOUT_DIR)


def known_layouts() -> tuple[str, ...]:
    """The keys of every layout that can be loaded by key, sorted."""
    return tuple(sorted({x.stem for d in layout_dirs() for x in d.glob("*.yaml")}))


def load_layout(name_or_path: str | Path = DEFAULT_LAYOUT) -> Layout:
    """Load a layout by key (`ssc_application_v1`) from the layout folders, or by file path. A
    layout's key must be its file's stem (the key the barcode carries finds the file). Cached."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = next((d / f"{name_or_path}.yaml" for d in layout_dirs() if (d / f"{name_or_path}.yaml").is_file()),
                 LAYOUT_DIR / f"{name_or_path}.yaml")
    key = str(p.resolve())
    if key not in _CACHE:
        if not p.is_file():
            raise LayoutError(f"unknown layout {str(name_or_path)!r} (known: {', '.join(known_layouts())})")
        lay = parse_layout(p.read_text(encoding="utf-8"), str(p))
        if lay.key != p.stem:
            raise LayoutError(f"{p}: layout_id and version make {lay.key!r}, but the file is named {p.stem!r}")
        _CACHE[key] = lay
    return _CACHE[key]
