"""Export: a store built with the project's own tools, decided the way the reading stage writes it,
-> card data, rejections, chase lists, photos, class sheets, forms.jsonl, manifest, encrypted zips."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import pyzipper
from openpyxl import load_workbook
from PIL import Image
from sqlalchemy import select

from forms.layout import load_layout
from formstation import demo, idnumber
from formstation.cli import main
from formstation.errors import ExitCode
from formstation.printjob import print_forms, safe_name
from formstation.roster import import_roster
from formstation.store import Store, fields, forms, now, persons, reasons
from ocr.reasons import zh
from output.export import export, read_passphrase
from output.photos import CARD_SIZE, fit_card
from output.tables import (
    CARD_HEADER,
    CLASS_SHEET_HEADER,
    NOT_RETURNED_HEADER,
    PENDING_HEADER,
    REJECTION_HEADER,
)
from output.writers import ZIP_DATE_TIME

PASS = "correct horse battery staple"


# ------------------------------------------------------------------ building the batch

def _write_roster(path: Path) -> Path:
    rows = demo.roster_rows(seed=5, per_class=3)  # 4 classes (kindergarten .. senior), 3 each
    rows[6][2] = "欧阳/娜"                         # middle school, first student: '/' in the name
    photo_dir = path.parent / "roster_photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((400, 300, 3), (200, 180, 160), np.uint8)).save(photo_dir / "p.png")
    rows[6][7] = "roster_photos/p.png"             # roster (public-security) photo, not card-sized
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow(demo.HEADER)
        w.writerows(rows)
    return path


def _card_crop(ws: Path, form_id: str, color) -> str:
    rel = f"crops/{form_id}/card_photo.jpg"
    (ws / rel).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((441, 358, 3), color, np.uint8)).save(ws / rel, quality=90)
    return rel


def _decide(store: Store, form_id: str, status: str, values: dict, why=()) -> None:
    """Write fields, reasons and status the way ocr.persist / ocr.rules / the review UI do."""
    with store.tx() as conn:
        for name, v in values.items():
            value, conf, source, crop = (v + (None,) * 4)[:4] if isinstance(v, tuple) else (v, 0.98, "read", None)
            conn.execute(fields.insert().values(
                form_id=form_id, name=name, value=value, confidence=conf, source=source or "read",
                crop_path=crop, updated_by="rev1" if source == "reviewer" else None, updated_at=now()))
        for code, field, detail in why:
            conn.execute(reasons.insert().values(form_id=form_id, code=code, field=field, detail=detail))
        done = status in ("accepted", "rejected")
        conn.execute(forms.update().where(forms.c.form_id == form_id).values(
            status=status, received_at=None if status == "printed" else now(),
            decided_at=now() if done else None))


def _guardian(relation="mother") -> dict:
    return {"guardian_id": idnumber.make("450403", demo.CAMPAIGN.replace(year=1985), 123),
            "guardian_phone": "13900000002", "guardian_relation": relation, "guardian_signature": "present",
            "applicant_signature": "absent", "id_copy": "absent", "corrected_name": "", "corrected_id": ""}


def _build(root: Path) -> tuple[Store, dict]:
    ws = root / "ws"
    store = Store.open(ws, url=f"sqlite:///{ws / 'station.db'}")
    import_roster(store, _write_roster(root / "in" / "roster.csv"))
    print_forms(store, load_layout(), root / "print")
    with store.tx() as conn:
        q = select(forms.c.form_id, persons).join(persons, forms.c.person_id == persons.c.person_id)
        people = sorted(conn.execute(q), key=lambda r: (r.school, r.class_name, r.student_no))
    by_class: dict[str, list] = {}
    for r in people:
        by_class.setdefault(r.class_name, []).append(r)
    k, p, m, s = (by_class[c[1]] for c in demo.DEMO_CLASSES)
    m.sort(key=lambda r: r.name != "欧阳/娜")  # M0 = the one with '/' and a roster photo
    assert m[0].photo_path and m[0].name == "欧阳/娜"
    new_id = idnumber.make("450481", idnumber.birth_date(p[1].id_number), 777)
    scenario = {
        "K0": (k[0], "accepted", {"phone": "13800000001", "photo": "absent", **_guardian("father")}, ()),
        "K1": (k[1], "printed", {}, ()),
        "K2": (k[2], "received", {"phone": "13800000003"}, ()),
        "P0": (p[0], "accepted", {"phone": "13800000004", **_guardian(),
                                  "photo": ("pasted", 0.96, "read", _card_crop(ws, p[0].form_id, (250, 240, 230)))}, ()),
        "P1": (p[1], "accepted", {"phone": "13800000005", **_guardian("other"), "id_copy": "present",
                                  "corrected_name": ("李:明", 0.99, "reviewer"), "corrected_id": (new_id, 0.97, "read"),
                                  "photo": ("pasted", 0.95, "read", _card_crop(ws, p[1].form_id, (240, 240, 250)))}, ()),
        "P2": (p[2], "rejected", {"phone": "1380000", **_guardian(), "guardian_signature": "absent"},
               (("PHONE_INVALID", "phone", "1380000"), ("GUARDIAN_SIGNATURE_MISSING", "guardian_signature", None))),
        "M0": (m[0], "accepted", {"phone": "13800000007", "photo": "absent", **_guardian()}, ()),
        "M1": (m[1], "review", {"phone": ("13800000008", 0.55, "read"), **_guardian(), "corrected_name": "王五"},
               (("LOW_CONFIDENCE", "phone", "0.55"), ("NAME_CORRECTED", "corrected_name", None))),
        "M2": (m[2], "printed", {}, ()),
        "S0": (s[0], "accepted", {"phone": "13800000010", "applicant_signature": "present",
                                  "photo": ("pasted", 0.97, "read", _card_crop(ws, s[0].form_id, (255, 255, 255)))}, ()),
        "S1": (s[1], "rejected", {"phone": "13800000011", "applicant_signature": "absent", "photo": "pasted",
                                  "photo_color": "grayscale"},
               (("SIGNATURE_MISSING", "applicant_signature", None), ("PHOTO_GRAYSCALE", "photo_color", None))),
        "S2": (s[2], "review", {"phone": "13800000012", "applicant_signature": "present"},
               (("DUPLICATE_SCAN", None, None),)),
    }
    for person, status, values, why in scenario.values():
        if status != "printed":
            _decide(store, person.form_id, status, values, why)
    info = {key: person for key, (person, *_rest) in scenario.items()}
    info["new_id"] = new_id
    return store, info


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    store, info = _build(root)
    out = root / "export"
    res = export(store, out)
    return store, info, out, res


# ------------------------------------------------------------------ reading the export back

def _csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), f"{path.name}: no UTF-8 BOM"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def _xlsx(path: Path) -> list[list[str]]:
    wb = load_workbook(path, read_only=True)
    rows = [["" if c is None else c for c in r] for r in wb.worksheets[0].iter_rows(values_only=True)]
    wb.close()
    return rows


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _photo_rel(person, name=None, idn=None) -> str:
    return (f"photos/{safe_name(person.school)}/{safe_name(person.class_name)}/"
            f"{safe_name((idn or person.id_number) + '-' + (name or person.name))}.jpg")


# ------------------------------------------------------------------ tests

def test_card_data_rows_headers_and_values(batch):
    _store, info, out, res = batch
    rows = _csv(out / "card_data.csv")
    assert tuple(rows[0]) == CARD_HEADER
    assert rows[0] == ["表单编号", "学校", "班级", "姓名", "性别", "身份证号码", "核对前姓名", "核对前身份证号码", "联系电话", "学籍号", "开户银行", "代理人证件号码", "代理人联系电话", "代理人关系", "照片文件", "冷僻字"]
    assert _xlsx(out / "card_data.xlsx") == rows
    body = {r[0]: dict(zip(CARD_HEADER, r, strict=True)) for r in rows[1:]}
    accepted = ["K0", "P0", "P1", "M0", "S0"]
    order = sorted((info[k] for k in accepted), key=lambda x: (x.school, x.class_name, x.student_no, x.form_id))
    assert [r[0] for r in rows[1:]] == [x.form_id for x in order]  # school, class, student_no, form_id
    assert res.counts == {"printed": 2, "received": 1, "review": 2, "rescan": 0, "accepted": 5, "rejected": 2, "total": 12}

    k0, p0, p1, m0, s0 = (body[info[k].form_id] for k in accepted)
    assert k0["照片文件"] == "" and k0["代理人关系"] == "父亲" and k0["联系电话"] == "13800000001"
    assert k0["姓名"] == k0["核对前姓名"] == info["K0"].name and k0["身份证号码"] == info["K0"].id_number
    assert p0["照片文件"] == _photo_rel(info["P0"]) and p0["代理人关系"] == "母亲"
    assert p0["学籍号"] == info["P0"].student_no and p0["开户银行"] == info["P0"].bank
    # corrected: final values in 姓名/身份证号码, printed ones beside them, photo named after the final ones
    assert (p1["姓名"], p1["身份证号码"]) == ("李:明", info["new_id"])
    assert (p1["核对前姓名"], p1["核对前身份证号码"]) == (info["P1"].name, info["P1"].id_number)
    assert p1["性别"] == idnumber.gender(info["new_id"]) and p1["代理人关系"] == "其他"
    assert p1["照片文件"] == _photo_rel(info["P1"], "李_明", info["new_id"])
    assert m0["姓名"] == "欧阳/娜" and m0["照片文件"].endswith(f"/{info['M0'].id_number}-欧阳_娜.jpg")
    assert s0["代理人证件号码"] == s0["代理人联系电话"] == s0["代理人关系"] == ""


def test_forms_in_review_or_undecided_never_in_card_data(batch):
    _store, info, out, _res = batch
    ids = {r[0] for r in _csv(out / "card_data.csv")[1:]} | {r[0] for r in _xlsx(out / "card_data.xlsx")[1:]}
    for key in ("M1", "S2", "K2", "K1", "M2", "P2", "S1"):
        assert info[key].form_id not in ids
    text = "\n".join(p.read_text(encoding="utf-8-sig") for p in out.glob("*.csv") if p.name != "pending.csv")
    assert "王五" not in text  # an unconfirmed correction of a form in review is nowhere but forms.jsonl


def test_rejections_pending_not_returned(batch):
    _store, info, out, _res = batch
    rej = _csv(out / "rejections.csv")
    assert tuple(rej[0]) == REJECTION_HEADER and _xlsx(out / "rejections.xlsx") == rej
    p2, s1 = info["P2"], info["S1"]
    expected = [
        [p2.form_id, p2.school, p2.class_name, p2.name, p2.id_number, "PHONE_INVALID", zh("PHONE_INVALID"), ""],
        [p2.form_id, p2.school, p2.class_name, p2.name, p2.id_number, "GUARDIAN_SIGNATURE_MISSING", zh("GUARDIAN_SIGNATURE_MISSING"), ""],
        [s1.form_id, s1.school, s1.class_name, s1.name, s1.id_number, "SIGNATURE_MISSING", zh("SIGNATURE_MISSING"), ""],
        [s1.form_id, s1.school, s1.class_name, s1.name, s1.id_number, "PHOTO_GRAYSCALE", zh("PHOTO_GRAYSCALE"), ""],
    ]
    assert rej[1:] == sorted(expected, key=lambda r: r[1])  # stable: reasons keep their order per form
    pend = _csv(out / "pending.csv")
    assert tuple(pend[0]) == PENDING_HEADER
    m1, s2 = info["M1"], info["S2"]
    assert pend[1:] == sorted([[m1.form_id, m1.school, m1.class_name, m1.name, "phone,corrected_name"],
                               [s2.form_id, s2.school, s2.class_name, s2.name, "DUPLICATE_SCAN"]])
    nr = _csv(out / "not_returned.csv")
    assert tuple(nr[0]) == NOT_RETURNED_HEADER
    assert nr[1:] == sorted([[x.form_id, x.school, x.class_name, x.student_no, x.name] for x in (info["K1"], info["M2"])],
                            key=lambda r: r[1])


def test_rejections_list_only_what_the_school_fixes_once_each_in_chinese(batch, tmp_path):
    """Issue 17, point 11: the station's own doubt is not a reason a school can fix; a reason read
    twice is listed once; a reviewer's note has its own column."""
    from formstation.store import reasons

    store, info, _out, _res = batch
    p2 = info["P2"]
    with store.tx() as conn:
        before = conn.execute(reasons.select().where(reasons.c.form_id == p2.form_id)).all()
        for code, field, detail in (("LOW_CONFIDENCE", "phone", "0.40"), ("UNUSUAL_HANDWRITING", "phone", "9 of 20"),
                                    ("PHONE_INVALID", "phone", "1380000"), ("REVIEWER_REJECTED", None, "电话少写一位")):
            conn.execute(reasons.insert().values(form_id=p2.form_id, code=code, field=field, detail=detail))
    try:
        export(store, tmp_path / "again")
    finally:  # the batch is shared by the other tests
        with store.tx() as conn:
            conn.execute(reasons.delete().where(reasons.c.form_id == p2.form_id,
                                                reasons.c.id.notin_([r.id for r in before])))
    rows = [r for r in _csv(tmp_path / "again" / "rejections.csv")[1:] if r[0] == p2.form_id]
    assert [r[5] for r in rows] == ["PHONE_INVALID", "GUARDIAN_SIGNATURE_MISSING"]
    assert [r[6] for r in rows] == [zh("PHONE_INVALID"), zh("GUARDIAN_SIGNATURE_MISSING")]
    assert {r[7] for r in rows} == {"电话少写一位"}
    assert not any(c.isascii() and c.isalpha() for r in rows for c in r[6])  # Chinese only


def test_a_rare_character_is_marked_in_card_data_and_listed(batch, tmp_path):
    """Issue 17, point 12: an accepted form whose final name has a character outside GB 2312."""
    from formstation.store import upsert_field

    store, info, _out, _res = batch
    k0 = info["K0"]
    from formstation.store import fields
    from output.tables import _gb2312

    with store.tx() as conn:
        old = conn.execute(fields.select().where(fields.c.form_id == k0.form_id, fields.c.name == "corrected_name")).first()
        upsert_field(conn, k0.form_id, "corrected_name", {"value": "王䶮", "confidence": 1.0, "source": "reviewer"})
    try:
        export(store, tmp_path / "again")
    finally:  # the batch is shared by the other tests
        with store.tx() as conn:
            if old is None:
                conn.execute(fields.delete().where(fields.c.form_id == k0.form_id, fields.c.name == "corrected_name"))
            else:
                upsert_field(conn, k0.form_id, "corrected_name", {"value": old.value, "confidence": old.confidence,
                                                                  "source": old.source})
    card = {r[0]: dict(zip(CARD_HEADER, r, strict=True)) for r in _csv(tmp_path / "again" / "card_data.csv")[1:]}
    assert card[k0.form_id]["冷僻字"] == "䶮" and card[k0.form_id]["姓名"] == "王䶮"
    for r in card.values():  # every other name: its characters outside GB 2312, or nothing
        assert r["冷僻字"] == "".join(c for c in r["姓名"] if not _gb2312(c))
    rare = _csv(tmp_path / "again" / "rare_characters.csv")
    assert rare[0] == ["表单编号", "学校", "班级", "姓名", "身份证号码", "冷僻字"]
    assert [k0.form_id, k0.school, k0.class_name, "王䶮", k0.id_number, "䶮"] in rare[1:]
    assert sorted(r[0] for r in rare[1:]) == sorted(f for f, r in card.items() if r["冷僻字"])



def test_photos_and_class_sheets(batch):
    _store, info, out, res = batch
    card = [dict(zip(CARD_HEADER, r, strict=True)) for r in _csv(out / "card_data.csv")[1:]]
    wanted = {r["照片文件"] for r in card if r["照片文件"]}
    jpgs = {p.relative_to(out).as_posix() for p in out.rglob("*.jpg")}
    assert jpgs == wanted and len(jpgs) == 4 == res.photos
    for rel in jpgs:
        with Image.open(out / rel) as im:
            assert im.format == "JPEG" and im.size == CARD_SIZE == (358, 441)
    # a card-sized pasted crop is kept byte for byte; the roster photo is fitted on white
    crop = info["P0"]
    assert (out / _photo_rel(crop)).read_bytes() == (out.parent / "ws" / f"crops/{crop.form_id}/card_photo.jpg").read_bytes()
    with Image.open(next(out.rglob("*欧阳_娜.jpg"))) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    assert (px[0, 0] > 245).all() and abs(px[220, 179] - (200, 180, 160)).max() < 12
    # one sheet per class folder, listing that folder's photos
    sheets = sorted(out.rglob("*.xlsx"))
    sheets = [p for p in sheets if p.parent != out]
    assert len(sheets) == 3  # primary (2 photos), middle (1), senior (1); kindergarten has none
    for sheet in sheets:
        assert sheet.name == f"{sheet.parent.name}.xlsx"
        rows = _xlsx(sheet)
        assert tuple(rows[0]) == CLASS_SHEET_HEADER
        in_folder = sorted(p.stem for p in sheet.parent.glob("*.jpg"))
        assert sorted(safe_name(f"{r[0]}-{r[1]}") for r in rows[1:]) == in_folder
    p_sheet = _xlsx(out / Path(_photo_rel(info["P0"])).parent / f"{safe_name(info['P0'].class_name)}.xlsx")
    assert p_sheet[2] == [info["new_id"], "李:明", info["P1"].id_number, info["P1"].name]


def test_forms_jsonl_is_the_full_record(batch):
    _store, info, out, _res = batch
    recs = {r["form_id"]: r for r in map(json.loads, (out / "forms.jsonl").read_text(encoding="utf-8").splitlines())}
    assert len(recs) == 12
    assert {r["status"] for r in recs.values()} == {"printed", "received", "review", "accepted", "rejected"}
    m1 = recs[info["M1"].form_id]
    assert m1["fields"]["phone"] == {"value": "13800000008", "confidence": 0.55, "source": "read", "updated_by": None}
    assert m1["fields"]["id_number"]["source"] == "printed" and m1["fields"]["name"]["value"] == info["M1"].name
    assert m1["reason_codes"] == ["LOW_CONFIDENCE", "NAME_CORRECTED"] and "name_corrected" in m1["flags"]
    p1 = recs[info["P1"].form_id]
    assert p1["fields"]["corrected_name"]["source"] == "reviewer" and p1["fields"]["corrected_name"]["updated_by"] == "rev1"
    assert p1["final"]["id_number"] == info["new_id"] and {"id_corrected", "photo_pasted"} <= set(p1["flags"])
    assert recs[info["S2"].form_id]["reasons"] == [
        {"code": "DUPLICATE_SCAN", "field": None, "detail": None, "text": zh("DUPLICATE_SCAN")}]
    assert recs[info["K1"].form_id]["fields"].keys() == {"school", "class", "student_no", "name", "gender",
                                                         "id_number", "bank", "printed_photo"}


def test_manifest_matches_files(batch):
    _store, _info, out, res = batch
    man = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    listed = {f["path"]: f for f in man["files"]}
    on_disk = _files(out)
    assert set(listed) == set(on_disk) - {"manifest.json"}
    for path, data in on_disk.items():
        if path != "manifest.json":
            assert listed[path]["size"] == len(data) and listed[path]["sha256"] == hashlib.sha256(data).hexdigest()
    assert man["counts"] == res.counts and man["photos"] == 4 and man["warnings"] == []
    rows = {p: listed[p]["rows"] for p in ("card_data.csv", "card_data.xlsx", "rejections.csv",
                                            "rejections.xlsx", "pending.csv", "not_returned.csv", "forms.jsonl")}
    assert rows == {"card_data.csv": 5, "card_data.xlsx": 5, "rejections.csv": 4, "rejections.xlsx": 4,
                    "pending.csv": 2, "not_returned.csv": 2, "forms.jsonl": 12}


def test_same_store_same_bytes_and_no_duplicates(batch, tmp_path):
    store, _info, out, _res = batch
    first = _files(out)
    export(store, tmp_path / "again")
    export(store, tmp_path / "again")  # over the previous export: replaced, not merged
    second = _files(tmp_path / "again")
    assert set(first) == set(second)
    for path in first:
        if path != "manifest.json":
            assert first[path] == second[path], path
    m1, m2 = (json.loads(x[("manifest.json")]) for x in (first, second))
    m1.pop("generated_at"), m2.pop("generated_at")
    assert m1 == m2
    assert [p.name for p in tmp_path.iterdir()] == ["again"]  # no temporary folder left behind
    for path in (p for p in first if p.endswith(".xlsx")):  # no clock inside the workbooks
        with zipfile.ZipFile(io.BytesIO(first[path])) as zf:
            assert {i.date_time for i in zf.infolist()} == {ZIP_DATE_TIME}
            core = zf.read("docProps/core.xml").decode()
        assert core.count("2000-01-01T00:00:00Z") == 2, core


def test_school_filter(batch, tmp_path):
    store, info, _out, _res = batch
    school = info["P0"].school
    res = export(store, tmp_path / "one", school=school)
    assert res.counts["total"] == 3 and res.counts["accepted"] == 2
    rows = _csv(tmp_path / "one" / "card_data.csv")[1:]
    assert {r[1] for r in rows} == {school} and len(rows) == 2
    assert [p.name for p in (tmp_path / "one" / "photos").iterdir()] == [safe_name(school)]
    assert main(["--workspace", str(store.workspace), "export", "--out", str(tmp_path / "x"),
                 "--school", "没有这个学校"]) == ExitCode.NOTHING_TO_DO


def test_encrypted_zip_per_school_nothing_plain(batch, tmp_path, monkeypatch):
    store, info, out, _res = batch
    monkeypatch.delenv("DATABASE_URL", raising=False)
    pw = tmp_path / "pass.txt"
    pw.write_text(PASS + "\n", encoding="utf-8")
    enc = tmp_path / "enc"
    assert main(["--workspace", str(store.workspace), "export", "--out", str(enc), "--encrypt-to", str(pw)]) == 0
    names = sorted(p.name for p in enc.iterdir())
    assert names == sorted([f"{safe_name(c[0])}.zip" for c in demo.DEMO_CLASSES] + ["manifest.json"])
    assert all(p.is_file() for p in enc.rglob("*"))  # no folders: no plaintext photos or sheets
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc", "pass.txt"]
    outer = json.loads((enc / "manifest.json").read_text(encoding="utf-8"))
    for z in outer["zips"]:
        data = (enc / z["path"]).read_bytes()
        assert z["sha256"] == hashlib.sha256(data).hexdigest() and z["size"] == len(data)
    assert info["P0"].id_number not in (enc / "manifest.json").read_text(encoding="utf-8")

    school = info["P1"].school
    with pyzipper.AESZipFile(enc / f"{safe_name(school)}.zip") as zf:
        assert zf.namelist() == ["export.zip"]  # entry names are not encrypted: they name nobody
        assert all(i.flag_bits & 0x1 for i in zf.infolist())  # every entry encrypted
        with pytest.raises(RuntimeError):
            zf.read("export.zip")  # no password
        zf.setpassword(b"wrong passphrase")
        with pytest.raises(RuntimeError):
            zf.read("export.zip")
        zf.setpassword(PASS.encode())
        with zipfile.ZipFile(io.BytesIO(zf.read("export.zip"))) as inner_zip:
            inner = {n: inner_zip.read(n) for n in inner_zip.namelist()}
    plain = _files(out)
    card = list(csv.reader(io.StringIO(inner["card_data.csv"].decode("utf-8-sig"))))
    assert card[0] == list(CARD_HEADER) and [r[1] for r in card[1:]] == [school, school]
    assert card == [_csv(out / "card_data.csv")[0]] + [r for r in _csv(out / "card_data.csv")[1:] if r[1] == school]
    photo = _photo_rel(info["P1"], "李_明", info["new_id"])
    assert inner[photo] == plain[photo]
    man = json.loads(inner["manifest.json"])
    assert {f["path"] for f in man["files"]} == set(inner) - {"manifest.json"}
    assert all(hashlib.sha256(inner[f["path"]]).hexdigest() == f["sha256"] for f in man["files"])
    # the plain zip reader cannot get at the content either
    with zipfile.ZipFile(enc / f"{safe_name(school)}.zip") as zf, pytest.raises((RuntimeError, NotImplementedError)):
        zf.read("export.zip")


def test_passphrase_file_errors(batch, tmp_path, capsys):
    store, *_ = batch
    ws = str(store.workspace)
    missing = tmp_path / "nope.txt"
    assert main(["--workspace", ws, "export", "--out", str(tmp_path / "e"), "--encrypt-to", str(missing)]) == ExitCode.INPUT
    assert "passphrase file not found" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    assert main(["--workspace", ws, "export", "--out", str(tmp_path / "e"), "--encrypt-to", str(empty)]) == ExitCode.INPUT
    assert "passphrase file is empty" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"secret phrase 1\r\n")
    assert read_passphrase(crlf) == b"secret phrase 1"


def test_refuses_to_replace_a_folder_that_is_not_an_export(batch, tmp_path, capsys):
    store, *_ = batch
    target = tmp_path / "docs"
    target.mkdir()
    (target / "keep.txt").write_text("mine", encoding="utf-8")
    assert main(["--workspace", str(store.workspace), "export", "--out", str(target)]) == ExitCode.INPUT
    assert (target / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert "not empty" in capsys.readouterr().err


def test_bad_photo_is_a_warning_without_personal_data(tmp_path, caplog):
    store, info = _build(tmp_path)
    crop = tmp_path / "ws" / f"crops/{info['S0'].form_id}/card_photo.jpg"
    crop.write_bytes(b"not a jpeg")
    res = export(store, tmp_path / "out")
    card = {r[0]: r for r in _csv(tmp_path / "out" / "card_data.csv")[1:]}
    assert card[info["S0"].form_id][-1] == ""  # 照片文件 empty, the row is still there
    assert res.photos == 3 and len(res.warnings) == 1 and info["S0"].form_id in res.warnings[0]
    logged = caplog.text + " ".join(res.warnings)
    for person in (info[k] for k in ("K0", "P0", "P1", "M0", "S0", "S1")):
        assert person.id_number not in logged
    assert info["new_id"] not in logged and "13800000010" not in logged


def test_fit_card_pads_on_white():
    rgba = Image.new("RGBA", (100, 50), (0, 0, 0, 0))
    rgba.paste((10, 20, 30, 255), (25, 0, 75, 50))
    data = fit_card(rgba)
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == CARD_SIZE and im.format == "JPEG"
        px = np.asarray(im).astype(int)
    assert (px[5, 5] > 245).all() and (px[220, 5] > 245).all()  # padding and transparent part are white
    assert (px[220, 179] < 60).all()
    assert fit_card(rgba) == data
