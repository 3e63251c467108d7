"""Simulation profiles: how parents fill the forms (FillRates) and how the scanner treats them
(ScanRates). `clean`, `typical` and `harsh` share the filling habits and differ in scanning.
A YAML file (`--rates`) can override any rate: `{fill: {phone_invalid: 0.1}, scan: {skew_max_deg: 2}}`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

FORMATS = ("pdf", "tiff_g4", "tiff_jpeg", "jpeg_dir")


@dataclass(frozen=True)
class FillRates:
    """Per-form probabilities (or counts where named so) of what parents write."""

    name_corrected: float = 0.06
    name_correction_rare: float = 0.3  # the correction puts back a character outside GB 2312
    id_corrected: float = 0.05
    corrected_id_invalid: float = 0.3
    copy_with_correction: float = 0.7
    copy_without_correction: float = 0.02
    copy_mismatch: float = 0.1
    phone_missing: float = 0.03
    phone_invalid: float = 0.05
    family_share: float = 0.1  # share of forms paired with a sibling (same phone and guardian)
    shared_phone_classes: int = 1  # classes where every form carries the same number
    photo_missing: float = 0.08  # of those who need one
    photo_over_printed: float = 0.1  # pasted although a photo is printed
    photo_grey_bg: float = 0.06
    photo_photocopy: float = 0.05
    applicant_unsigned: float = 0.06  # 16 and over
    child_signs: float = 0.4  # under 16: the child signs too
    guardian_missing: float = 0.04
    guardian_partial: float = 0.08
    guardian_id_invalid: float = 0.04
    guardian_is_applicant: float = 0.01
    guardian_minor: float = 0.01
    guardian_phone_same: float = 0.6  # guardian phone = contact phone
    guardian_phone_invalid: float = 0.03
    relation_check: float = 0.6
    relation_cross: float = 0.25  # the rest: filled box
    signature_scribble: float = 0.35  # otherwise the name in regular script
    touching: float = 0.12  # per digit field: some digits touch or cross the box lines
    crossed_out: float = 0.04  # per digit field: a digit struck out and rewritten beside the box
    stray_marks: float = 0.2  # per form
    blue_pen: float = 0.45


@dataclass(frozen=True)
class ScanRates:
    dpis: tuple[int, ...] = (300,)
    skew_max_deg: float = 0.0
    shift_mm: float = 0.0
    scale_jitter: float = 0.0
    upside_down: float = 0.0
    duplex: float = 0.0  # share of batches scanned duplex (a back page after every page)
    near_blank: float = 0.3  # share of backs with show-through, specks or a stray mark
    noise: tuple[float, float] = (0.0, 0.0)  # sensor noise sigma range (grey levels)
    specks: float = 0.0  # dust specks per page (mean)
    blur: float = 0.0  # max Gaussian sigma (px)
    streak: float = 0.0  # share of pages with a vertical dust line
    toner_faint: float = 0.0
    toner_dark: float = 0.0
    jpeg_quality: tuple[int, int] = (92, 92)
    color: float = 1.0  # share of batches scanned in colour (else grey; G4 is always 1-bit)
    formats: tuple[str, ...] = ("pdf",)
    foreign_pages: float = 0.0  # share of forms; at least one when > 0
    duplicate_scans: float = 0.0
    missing_forms: float = 0.0
    batch_forms: int = 50  # forms per output file (files never mix printed PDFs)


@dataclass(frozen=True)
class Profile:
    name: str
    fill: FillRates
    scan: ScanRates


PROFILES = {
    "clean": Profile("clean", FillRates(), ScanRates()),
    "typical": Profile("typical", FillRates(), ScanRates(
        dpis=(200, 300), skew_max_deg=1.5, shift_mm=2.0, scale_jitter=0.006, upside_down=0.05,
        duplex=0.5, noise=(1.5, 4.0), specks=3, blur=0.6, streak=0.02, toner_faint=0.03, toner_dark=0.02,
        jpeg_quality=(75, 90), color=0.8, formats=("pdf", "tiff_jpeg", "jpeg_dir"),
        foreign_pages=0.01, duplicate_scans=0.01, missing_forms=0.01)),
    "harsh": Profile("harsh", FillRates(), ScanRates(
        dpis=(200, 300), skew_max_deg=3.0, shift_mm=4.0, scale_jitter=0.015, upside_down=0.12,
        duplex=0.8, noise=(4.0, 10.0), specks=25, blur=1.0, streak=0.1, toner_faint=0.12, toner_dark=0.1,
        jpeg_quality=(55, 80), color=0.6, formats=("pdf", "tiff_g4", "tiff_jpeg", "jpeg_dir"),
        foreign_pages=0.02, duplicate_scans=0.02, missing_forms=0.02)),
}


class RatesError(ValueError):
    pass


def _override(obj, values: dict, where: str):
    known = {f.name: f for f in fields(obj)}
    changes = {}
    for k, v in (values or {}).items():
        if k not in known:
            raise RatesError(f"{where}: unknown rate {k!r} (known: {', '.join(sorted(known))})")
        cur = getattr(obj, k)
        changes[k] = tuple(v) if isinstance(cur, tuple) else type(cur)(v)
    return replace(obj, **changes)


def load_profile(name: str, rates_file: Path | None = None, formats: tuple[str, ...] | None = None) -> Profile:
    """The named profile, with the overrides of `rates_file` and the `formats` list applied."""
    p = PROFILES[name]
    if rates_file is not None:
        raw = yaml.safe_load(Path(rates_file).read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or set(raw) - {"fill", "scan"}:
            raise RatesError(f"{rates_file}: expected a mapping with keys 'fill' and/or 'scan'")
        p = Profile(p.name, _override(p.fill, raw.get("fill"), f"{rates_file}: fill"),
                    _override(p.scan, raw.get("scan"), f"{rates_file}: scan"))
    if formats:
        bad = [f for f in formats if f not in FORMATS]
        if bad:
            raise RatesError(f"unknown output format(s) {', '.join(bad)} (known: {', '.join(FORMATS)})")
        p = replace(p, scan=replace(p.scan, formats=tuple(formats)))
    return p
