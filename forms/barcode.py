"""The payload of the barcode on every printed page: form id + layout + page, with a check.

Format: `FS1|<form_id>|<layout_key>|<page>|<check>` where check is two hex digits of CRC-8
over everything before the last `|`. QR's own error correction handles damage; the check catches
a payload from another system that happens to look like ours.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "FS1"


def _crc8(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


@dataclass(frozen=True)
class PageCode:
    form_id: str
    layout_key: str
    page: int = 1

    def encode(self) -> str:
        body = f"{PREFIX}|{self.form_id}|{self.layout_key}|{self.page}"
        return f"{body}|{_crc8(body.encode()):02X}"


def decode(text: str) -> PageCode | None:
    """Parse a payload; None when it is not ours or its check fails."""
    parts = (text or "").split("|")
    if len(parts) != 5 or parts[0] != PREFIX:
        return None
    body = "|".join(parts[:4])
    if f"{_crc8(body.encode()):02X}" != parts[4].upper() or not parts[3].isdigit():
        return None
    return PageCode(parts[1], parts[2], int(parts[3]))
