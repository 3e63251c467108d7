"""Roster import: CSV (UTF-8 or GB18030) or XLSX with the bureau's Chinese headers.

Bad rows are reported one by one with their reason and skipped; valid rows import. Re-importing
the same rows changes nothing. A file that cannot be read at all changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from formstation import idnumber
from formstation.errors import StationError
from formstation.safefs import FORMULA_START
from formstation.store import Store, now, persons, roster_imports

# header -> column in `persons`
HEADERS = {
    "学校": "school", "班级": "class_name", "姓名": "name", "性别": "gender",
    "身份证号码": "id_number", "学籍号": "student_no", "开户银行": "bank",
}
OPTIONAL = {"照片": "photo_path"}
REQUIRED_NONEMPTY = ("school", "class_name", "name", "id_number")
TEXT_COLUMNS = ("school", "class_name", "name", "student_no", "bank")  # exported as text: no formulas
ROW_COLUMNS = ("school", "class_name", "name", "gender", "id_number", "student_no", "bank", "photo_path")


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based row number as the user sees it in the file (header = row 1)
    reason: str


@dataclass
class ImportReport:
    file: str
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)


def _read_csv(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    for enc in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise StationError(f"{path}: not UTF-8 or GB18030 text; save the roster as CSV UTF-8 or XLSX")
    return [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]


def _read_xlsx(path: Path, sheet: str | None) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a broken file
        raise StationError(f"{path}: not a readable XLSX workbook ({type(e).__name__})") from None
    if sheet is not None and sheet not in wb.sheetnames:
        raise StationError(f"{path}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})")
    ws = wb[sheet] if sheet else wb.worksheets[0]
    rows = [["" if c is None else str(c).strip() for c in r] for r in ws.iter_rows(values_only=True)]
    names = wb.sheetnames
    wb.close()
    rows = [r for r in rows if any(r)]
    if not rows:
        raise StationError(f"{path}: sheet {ws.title!r} is empty (sheets: {', '.join(names)}); choose one with --sheet")
    return rows


def read_table(path: Path, sheet: str | None = None) -> list[list[str]]:
    if not path.is_file():
        raise StationError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    raise StationError(f"{path}: unsupported roster format {suffix or '(none)'}; use .csv or .xlsx")


def _header_map(path: Path, header: list[str]) -> dict[str, int]:
    names = [h.strip() for h in header]
    twice = sorted({h for h in names if h in HEADERS or h in OPTIONAL} & {h for h in names if names.count(h) > 1})
    if twice:
        raise StationError(f"{path}: column(s) {', '.join(twice)} appear more than once; keep one of each "
                           "(otherwise one would silently replace the other)")
    cols = {h: i for i, h in enumerate(names)}
    missing = [h for h in HEADERS if h not in cols]
    if missing:
        raise StationError(
            f"{path}: missing column(s) {', '.join(missing)}; the first row must hold the headers "
            f"{','.join(HEADERS)} (照片 optional)")
    return {col: cols[h] for h, col in {**HEADERS, **OPTIONAL}.items() if h in cols}


def _row_values(row: list[str], hmap: dict[str, int]) -> dict[str, str]:
    vals = {c: (row[i].strip() if i < len(row) else "") for c, i in hmap.items()}
    vals["id_number"] = idnumber.normalize(vals["id_number"])
    return vals


def _check_row(vals: dict[str, str], seen: dict[str, int]) -> str | None:
    for col in REQUIRED_NONEMPTY:
        if not vals.get(col):
            header = next(h for h, c in HEADERS.items() if c == col)
            return f"{header} is empty"
    why = idnumber.problem(vals["id_number"])
    if why:
        return f"身份证号码 {idnumber.mask(vals['id_number'])}: {why}"
    if vals["id_number"] in seen:
        return f"身份证号码 {idnumber.mask(vals['id_number'])} duplicates row {seen[vals['id_number']]}"
    for col in TEXT_COLUMNS:
        if vals.get(col, "").startswith(FORMULA_START):
            header = next(h for h, c in HEADERS.items() if c == col)
            return f"{header} starts with {vals[col][0]!r}, as a spreadsheet formula does; correct the cell"
    if vals.get("gender") not in ("", "男", "女"):
        return f"性别 must be 男 or 女, not {vals['gender']!r}"
    return None


def _resolve_photo(vals: dict[str, str], base: Path, rowno: int, report: ImportReport) -> None:
    """照片: an image file under the roster's folder (a path leaving it, e.g. /etc/passwd or
    ../x.jpg, or a file that is not an image, is a warning and the row imports without a photo)."""
    p = vals.get("photo_path") or ""
    vals["photo_path"] = None
    if not p:
        return
    root = base.resolve()
    photo = (root / p).resolve()
    if not photo.is_relative_to(root):
        why = "outside the roster's folder"
    elif not photo.is_file():
        why = "file not found"
    else:
        why = _not_an_image(photo)
    if why:
        report.warnings.append(RowProblem(rowno, f"照片 {p}: {why}; imported without a photo"))
    else:
        vals["photo_path"] = str(photo)


def _not_an_image(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # Pillow raises many types for a file that is no image
        return f"not a readable image ({type(e).__name__})"
    return None


def import_roster(store: Store, path: Path, sheet: str | None = None) -> ImportReport:
    """Validate every row, then write all valid rows in one transaction."""
    table = read_table(path, sheet)
    if not table:
        raise StationError(f"{path}: the file is empty")
    hmap = _header_map(path, table[0])
    report = ImportReport(file=str(path), rows=len(table) - 1)
    seen: dict[str, int] = {}
    good: list[tuple[int, dict[str, str]]] = []
    for rowno, row in enumerate(table[1:], start=2):
        vals = _row_values(row, hmap)
        why = _check_row(vals, seen)
        if why:
            report.problems.append(RowProblem(rowno, why))
            continue
        seen[vals["id_number"]] = rowno
        if not vals.get("gender"):
            vals["gender"] = idnumber.gender(vals["id_number"])
        _resolve_photo(vals, path.parent, rowno, report)
        good.append((rowno, vals))
    _write(store, path, good, report)
    return report


def _write(store: Store, path: Path, good: list[tuple[int, dict[str, str]]], report: ImportReport) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with store.tx() as conn:
        existing = {r.id_number: r for r in conn.execute(select(persons))}
        for rowno, vals in good:
            row = {c: vals.get(c) for c in ROW_COLUMNS}
            old = existing.get(row["id_number"])
            if old is None:
                conn.execute(persons.insert().values(
                    **row, source_file=path.name, source_row=rowno, imported_at=now()))
                report.added += 1
            elif all(getattr(old, c) == row[c] for c in ROW_COLUMNS):
                report.unchanged += 1
            else:
                conn.execute(persons.update().where(persons.c.person_id == old.person_id).values(
                    **row, source_file=path.name, source_row=rowno, imported_at=now()))
                report.updated += 1
        if conn.execute(select(roster_imports).where(roster_imports.c.file_sha256 == digest)).first() is None:
            conn.execute(roster_imports.insert().values(
                file_sha256=digest, file_name=path.name, imported_at=now(), rows_total=report.rows,
                rows_ok=len(good), rows_bad=len(report.problems)))
