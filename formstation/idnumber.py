"""Chinese resident ID numbers (GB 11643-1999): structure, check character, birth date, masking."""

from __future__ import annotations

import re
import unicodedata
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"  # index = (sum of weighted digits) mod 11
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$")  # ASCII only: \d would take full-width and other digits
MOBILE = re.compile(r"^1[3-9][0-9]{9}$")


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character for the first 17 digits."""
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def birth_date(id_number: str) -> date | None:
    """The birth date encoded at positions 7-14, or None if it is not a real date."""
    try:
        return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    except ValueError:
        return None


def problem(id_number: str) -> str | None:
    """Why `id_number` is not a valid 18-char ID (a short English phrase), or None when valid."""
    s = (id_number or "").strip().upper()
    if not _SHAPE.match(s):
        return "must be 17 digits followed by a digit or X"
    if birth_date(s) is None:
        return "birth date is not a real date"
    if not (1900 <= int(s[6:10]) <= 2100):
        return "birth year out of range"
    if check_char(s[:17]) != s[17]:
        return f"check character should be {check_char(s[:17])}"
    return None


def is_valid(id_number: str) -> bool:
    return problem(id_number) is None


def normalize(id_number: str) -> str:
    """Spaces removed, full-width digits and Ｘ made ASCII (NFKC), x made X: one person, one string."""
    return unicodedata.normalize("NFKC", id_number or "").strip().upper().replace(" ", "")


def gender(id_number: str) -> str:
    """'男' for an odd sequence digit (position 17), '女' for even."""
    return "男" if int(id_number[16]) % 2 else "女"


def age_on(id_number: str, day: date) -> int | None:
    b = birth_date(id_number)
    if b is None:
        return None
    return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def is_mobile(phone: str) -> bool:
    return bool(MOBILE.match(phone or ""))


def mask(value: str | None) -> str:
    """Mask an ID number or phone for logs: keep the first 4 and last 4 characters."""
    v = value or ""
    if len(v) <= 8:
        return "*" * len(v)
    return v[:4] + "*" * (len(v) - 8) + v[-4:]


def make(region: str, born: date, seq: int) -> str:
    """Build a valid ID (used by the demo roster and the simulator): 6-digit region, date, 3-digit seq."""
    first17 = f"{region}{born:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)
