"""File formats and destinations for the export: CSV, reproducible XLSX, a folder or an AES zip.

A *sink* receives finished files as bytes under a relative path ("photos/学校/班级/x.jpg") and
remembers each one's size and SHA-256 for the manifest. `DirSink` writes into a folder;
`AesZipSink` builds an inner zip in memory and writes it into an AES-256 encrypted zip, so no
plaintext touches the disk and the encrypted zip's entry names name nobody.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pyzipper

from formstation.safefs import FORMULA_START

# every timestamp inside generated files (xlsx properties, zip entries) is this fixed value
FIXED_DATETIME = datetime(2000, 1, 1, 0, 0, 0)
ZIP_DATE_TIME = (2000, 1, 1, 0, 0, 0)
_CORE_XML = "docProps/core.xml"
_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
_FIXED_W3C = FIXED_DATETIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()


# ------------------------------------------------------------------ formats

def csv_cell(value) -> str:
    """A cell as text that no spreadsheet runs as a formula: one starting like a formula gets a
    leading apostrophe (OWASP's rule against CSV injection; `=HYPERLINK(...)` stays visible text)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """UTF-8 with BOM and CRLF line ends: Excel opens it with the Chinese text intact. Every cell
    goes through `csv_cell`."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow([csv_cell(v) for v in header])
    w.writerows([csv_cell(v) for v in r] for r in rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def xlsx_bytes(sheet_title: str, header: Sequence[str], rows: Iterable[Sequence[str]],
               widths: Sequence[int] | None = None) -> bytes:
    """One sheet of text cells; the same rows always give the same bytes."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    wb = Workbook(write_only=True)
    wb.properties.creator = "Form Station"
    wb.properties.created = FIXED_DATETIME
    wb.properties.modified = FIXED_DATETIME
    ws = wb.create_sheet(sheet_title)
    for i, w in enumerate(widths or (), start=1):
        ws.column_dimensions[get_column_letter(i)].width = w

    def text(v: str) -> WriteOnlyCell:
        c = WriteOnlyCell(ws, value="" if v is None else str(v))
        c.data_type = "s"  # never a formula, never a number (ID numbers keep every digit)
        c.number_format = "@"
        return c

    ws.append([text(h) for h in header])
    for r in rows:
        ws.append([text(v) for v in r])
    buf = io.BytesIO()
    wb.save(buf)
    return normalize_ooxml(buf.getvalue())


def normalize_ooxml(data: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed entry times and a fixed `modified` property."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == _CORE_XML:
                body = _MODIFIED.sub(rb"\g<1>" + _FIXED_W3C + rb"\g<2>", body)
            zi = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            dst.writestr(zi, body)
    return out.getvalue()


def json_line(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------ destinations

class Sink(Protocol):
    index: _Entries

    def put(self, rel: str, data: bytes, rows: int | None = None) -> None: ...

@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int
    sha256: str
    rows: int | None = None

    @classmethod
    def of(cls, rel: str, data: bytes, rows: int | None = None) -> FileEntry:
        return cls(rel, len(data), hashlib.sha256(data).hexdigest(), rows)

    def as_json(self) -> dict:
        d = {"path": self.path, "size": self.size, "sha256": self.sha256}
        if self.rows is not None:
            d["rows"] = self.rows
        return d


@dataclass
class _Entries:
    entries: list[FileEntry] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(self, rel: str, data: bytes, rows: int | None) -> None:
        if rel in self._seen or rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"export path used twice or not relative: {rel!r}")
        self._seen.add(rel)
        self.entries.append(FileEntry.of(rel, data, rows))

    def __contains__(self, rel: str) -> bool:
        return rel in self._seen


class DirSink:
    """Files under a folder (the export's temporary folder until it is complete)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = _Entries()

    def put(self, rel: str, data: bytes, rows: int | None = None) -> None:
        self.index.add(rel, data, rows)
        path = self.root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def has(self, rel: str) -> bool:
        return rel in self.index


INNER_ARCHIVE = "export.zip"  # the one entry of an encrypted zip: its name tells nothing


class AesZipSink:
    """Files inside one AES-256 (WinZip AE-2) encrypted zip. Zip entry names are never encrypted,
    and ours name children (`photos/<school>/<class>/<ID>-<name>.jpg`): so the files go into an
    inner zip, built in memory, and the encrypted zip holds that one entry, `export.zip`. Without
    the passphrase nothing personal is readable, not even a name. Entries carry a fixed timestamp."""

    def __init__(self, path: Path, passphrase: bytes) -> None:
        self.path = path
        self.passphrase = passphrase
        self.index = _Entries()
        self.buf = io.BytesIO()
        self.inner = zipfile.ZipFile(self.buf, "w", compression=zipfile.ZIP_DEFLATED)

    def put(self, rel: str, data: bytes, rows: int | None = None) -> None:
        self.index.add(rel, data, rows)
        zi = zipfile.ZipInfo(rel, date_time=ZIP_DATE_TIME)
        zi.external_attr = 0o600 << 16
        zi.compress_type = zipfile.ZIP_DEFLATED
        self.inner.writestr(zi, data)

    def has(self, rel: str) -> bool:
        return rel in self.index

    def close(self) -> None:
        self.inner.close()
        with pyzipper.AESZipFile(self.path, "w", compression=pyzipper.ZIP_STORED,
                                 encryption=pyzipper.WZ_AES) as zf:
            zf.setpassword(self.passphrase)
            zf.setencryption(pyzipper.WZ_AES, nbits=256)
            zi = zf.zipinfo_cls(filename=INNER_ARCHIVE, date_time=ZIP_DATE_TIME)
            zi.external_attr = 0o600 << 16
            zf.writestr(zi, self.buf.getvalue(), compress_type=pyzipper.ZIP_STORED)
        self.buf = io.BytesIO()

    def __enter__(self) -> AesZipSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
