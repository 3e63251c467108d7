"""Roster import: row-by-row reasons, idempotent re-import, clear errors that change nothing."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from formstation import demo
from formstation.errors import StationError
from formstation.roster import import_roster
from formstation.store import Store, persons


def _write_csv(path: Path, rows, encoding="utf-8-sig"):
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(demo.HEADER[:7])
        w.writerows(r[:7] for r in rows)
    return path


def _count(store):
    with store.tx() as conn:
        return conn.execute(select(func.count()).select_from(persons)).scalar()


def test_bad_rows_reported_valid_rows_imported(tmp_path, workspace):
    rows = demo.roster_rows(seed=5, per_class=3)
    good = rows[:6]
    bad_check = list(rows[6])
    bad_check[4] = bad_check[4][:17] + ("0" if bad_check[4][17] != "0" else "1")
    no_name = list(rows[7])
    no_name[2] = ""
    dup = list(rows[0])
    path = _write_csv(tmp_path / "r.csv", [*good, bad_check, no_name, dup])
    store = Store.open(workspace)
    rep = import_roster(store, path)
    assert rep.added == 6 and _count(store) == 6
    by_row = {p.row: p.reason for p in rep.problems}
    assert set(by_row) == {8, 9, 10}
    assert "check character" in by_row[8]
    assert "姓名 is empty" in by_row[9]
    assert "duplicates row 2" in by_row[10]
    assert rows[6][4] not in by_row[8]  # the full ID is masked in messages
    again = import_roster(store, path)
    assert again.added == 0 and again.unchanged == 6 and _count(store) == 6


def test_gb18030_csv_and_xlsx_with_sheet(tmp_path, workspace):
    rows = demo.roster_rows(seed=6, per_class=2)
    store = Store.open(workspace)
    assert import_roster(store, _write_csv(tmp_path / "gbk.csv", rows[:4], encoding="gb18030")).added == 4
    wb = Workbook()
    wb.active.title = "说明"
    wb.active.append(["请在“名册”页填写"])
    ws = wb.create_sheet("名册")
    ws.append(demo.HEADER[:7])
    for r in rows[4:]:
        ws.append(r[:7])
    wb.save(tmp_path / "r.xlsx")
    with pytest.raises(StationError, match="no sheet '花名册'.*名册"):
        import_roster(store, tmp_path / "r.xlsx", sheet="花名册")
    with pytest.raises(StationError, match="missing column"):
        import_roster(store, tmp_path / "r.xlsx")  # first sheet has no headers
    wb.create_sheet("空白")
    wb.save(tmp_path / "r.xlsx")
    with pytest.raises(StationError, match="sheet '空白' is empty"):
        import_roster(store, tmp_path / "r.xlsx", sheet="空白")
    assert import_roster(store, tmp_path / "r.xlsx", sheet="名册").added == len(rows) - 4


def _cli(*args, ws):
    return subprocess.run([sys.executable, "-m", "formstation.cli", "--workspace", str(ws), *args],
                          capture_output=True, text=True)


def test_cli_bad_input_one_line_error_and_store_unchanged(tmp_path, workspace):
    path = _write_csv(tmp_path / "ok.csv", demo.roster_rows(seed=7, per_class=1))
    assert _cli("roster", "import", str(path), ws=workspace).returncode == 0
    store = Store.open(workspace)
    n = _count(store)
    (tmp_path / "latin1.csv").write_bytes("学校".encode("utf-16"))
    (tmp_path / "roster.txt").write_text("x")
    cases = [
        (["roster", "import", str(tmp_path / "missing.csv")], "no such file"),
        (["roster", "import", str(tmp_path / "latin1.csv")], "not UTF-8 or GB18030"),
        (["roster", "import", str(tmp_path / "roster.txt")], "unsupported roster format"),
        (["--layout", "nope_v3", "print", "--out", str(tmp_path / "p")], "unknown layout"),
    ]
    for args, msg in cases:
        r = _cli(*args, ws=workspace)
        assert r.returncode == 3, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and lines[0].startswith("formstation: error:")
    assert _count(store) == n
