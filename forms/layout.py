"""Form layouts as data: YAML files in `layouts/`, checked by a schema, turned into frozen types.

Geometry is in millimetres from the page's top-left corner. The one mm -> px transform is
`Box.to_px`; nothing else converts units. The same `Layout` drives printing and reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

LAYOUT_DIR = Path(__file__).resolve().parent.parent / "layouts"
DEFAULT_LAYOUT = "ssc_application_v1"
MM_PER_INCH = 25.4

FieldKind = Literal["printed", "text", "digits", "checkbox", "signature", "photo", "attachment"]


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
        k = dpi / MM_PER_INCH
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

    @property
    def key(self) -> str:
        """`<layout_id>_v<version>`: the file stem and the id stored with every form."""
        return f"{self.layout_id}_v{self.version}"

    def zone(self, name: str) -> Zone:
        for z in self.zones:
            if z.name == name:
                return z
        raise KeyError(f"layout {self.key} has no field {name!r}")

    def zones_of(self, *kinds: str) -> tuple[Zone, ...]:
        return tuple(z for z in self.zones if z.kind in kinds)

    def page_px(self, dpi: float) -> tuple[int, int]:
        """(width, height) in pixels of the whole page at `dpi`."""
        _, _, w, h = Box(0, 0, self.width_mm, self.height_mm).to_px(dpi)
        return w, h


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
    return out


def _fmt_error(source: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif e["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        else:
            parts.append(f"{loc}: {e['msg']}")
    return f"{source}: " + "; ".join(parts)


def _to_box(v: BoxList) -> Box:
    return Box(*(float(x) for x in v))


def _build(spec: _LayoutSpec) -> Layout:
    zones = []
    for name, f in spec.fields.items():
        opts = tuple(CheckOption(k, o.label, _to_box(o.box)) for k, o in (f.options or {}).items())
        zones.append(Zone(name, f.kind, f.label, _to_box(f.box), f.cells or 0, f.alphabet or "", opts))
    m = spec.marks
    return Layout(
        layout_id=spec.layout_id, version=spec.version, title=spec.title, subtitle=spec.subtitle,
        width_mm=spec.page.width_mm, height_mm=spec.page.height_mm,
        marks=Marks(m.dictionary, m.size_mm, m.quiet_mm, {k: (v[0], v[1]) for k, v in m.positions.items()}),
        barcode_format=spec.barcode.format, barcode_box=_to_box(spec.barcode.box),
        sections=tuple(Section(s.title, _to_box(s.box)) for s in spec.sections),
        zones=tuple(zones), guide_box=_to_box(spec.guide.box), guide_lines=tuple(spec.guide.lines),
    )


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
    problems = [p for n, f in spec.fields.items() for p in _field_problems(n, f)]
    if problems:
        raise LayoutError(f"{source}: " + "; ".join(problems))
    return _build(spec)


_CACHE: dict[str, Layout] = {}


def load_layout(name_or_path: str | Path = DEFAULT_LAYOUT) -> Layout:
    """Load a layout by key (`ssc_application_v1`) from `layouts/`, or by file path. Cached."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = LAYOUT_DIR / f"{name_or_path}.yaml"
    key = str(p.resolve())
    if key not in _CACHE:
        if not p.is_file():
            known = ", ".join(sorted(x.stem for x in LAYOUT_DIR.glob("*.yaml")))
            raise LayoutError(f"unknown layout {str(name_or_path)!r} (known: {known})")
        _CACHE[key] = parse_layout(p.read_text(encoding="utf-8"), str(p))
    return _CACHE[key]
