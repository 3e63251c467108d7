"""A review workspace for the tests and the latency bench, built with the project's own tools (not shipped).

Demo roster -> import -> print; each printed page is rasterised at the alignment resolution,
"filled in" (digits in the comb boxes, a tick, signatures, a pasted photo), saved with its zone
crops the way the reading stage saves them, its readings stored, and the forms decided by the
domain rules. Scenarios cycle per class: 0 clean (accepted), 1 phone unsure (review), 2 guardian
signature and phone unsure (review), 3 invalid phone (rejected), 4 not returned; the first class's
not-returned page also lands as an unidentified page.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import insert, select, update

from forms.layout import Box, Layout, load_layout
from formstation import demo, idnumber
from formstation.printjob import print_forms
from formstation.roster import import_roster
from formstation.store import Store, fields, forms, now, pages, persons

DPI = 200  # ocr.align.ALIGN_DPI: the aligned page's resolution
FONT = "/usr/share/fonts/truetype/arphic/ukai.ttc"
PARENT = idnumber.make("450403", date(1984, 3, 9), 211)


@dataclass
class Sample:
    store: Store
    truth: dict[str, dict[str, str]] = field(default_factory=dict)  # form id -> what is on the paper
    scenario: dict[str, int] = field(default_factory=dict)
    unidentified_for: str = ""  # the form whose page came in unidentified


def _font(size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size)


def _px(b: Box) -> tuple[int, int, int, int]:
    return b.to_px(DPI)


def _write_digits(d: ImageDraw.ImageDraw, lay: Layout, name: str, text: str) -> None:
    cells = lay.zone(name).cell_boxes()
    for ch, cell in zip(text, cells, strict=False):
        x0, y0, x1, y1 = _px(cell)
        d.text(((x0 + x1) / 2, (y0 + y1) / 2), ch, fill=(20, 30, 60), font=_font(int((y1 - y0) * 0.8)), anchor="mm")


def _fill_page(img: Image.Image, lay: Layout, truth: dict[str, str], signer: str) -> None:
    d = ImageDraw.Draw(img)
    for name in ("phone", "guardian_id", "guardian_phone"):
        _write_digits(d, lay, name, truth.get(name, ""))
    opt = next(o for o in lay.zone("guardian_relation").options if o.name == truth["guardian_relation"])
    x0, y0, x1, y1 = _px(opt.box)
    d.line((x0, y0, x1, y1), fill=(20, 30, 60), width=4)
    d.line((x0, y1, x1, y0), fill=(20, 30, 60), width=4)
    if truth.get("guardian_signature") == "present":
        x0, y0, x1, y1 = _px(lay.zone("guardian_signature").box)
        d.text((x0 + 30, (y0 + y1) / 2), signer, fill=(10, 10, 10), font=_font(int((y1 - y0) * 0.7)), anchor="lm")
    x0, y0, x1, y1 = _px(lay.zone("photo").box)
    m = 14
    d.rectangle((x0 + m, y0 + m, x1 - m, y1 - m), fill=(246, 246, 250), outline=(200, 200, 200))
    cx, w = (x0 + x1) / 2, (x1 - x0)
    d.ellipse((cx - w * 0.18, y0 + 70, cx + w * 0.18, y0 + 70 + w * 0.45), fill=(236, 190, 160))
    d.chord((cx - w * 0.36, y1 - 110, cx + w * 0.36, y1 + 60), 180, 360, fill=(40, 70, 140))


def _readings(truth: dict[str, str], scenario: int) -> dict[str, tuple[str, float, str]]:
    """name -> (value, confidence, suggestion) as the reader would report them."""
    r = {"corrected_name": ("", 0.99, ""), "corrected_id": ("", 0.99, ""), "photo": ("pasted", 0.96, ""),
         "photo_face": ("yes", 0.93, ""), "photo_background": ("light", 0.96, ""),
         "photo_color": ("color", 0.95, ""), "id_copy": ("absent", 0.97, ""),
         "applicant_signature": ("absent", 0.95, ""), "guardian_relation": (truth["guardian_relation"], 0.97, "")}
    for name in ("phone", "guardian_id", "guardian_phone"):
        r[name] = (truth[name], 0.995, truth[name])
    r["guardian_signature"] = (truth["guardian_signature"], 0.96, "")
    if scenario == 1:
        wrong = truth["phone"][:-1] + str((int(truth["phone"][-1]) + 3) % 10)
        r["phone"] = (wrong, 0.52, wrong)
    elif scenario == 2:
        r["guardian_signature"] = ("absent", 0.61, "")
        gp = truth["guardian_phone"]
        r["guardian_phone"] = ("", 0.48, gp[:4] + "?" + gp[5:])
    return r


def _doubts(lay: Layout, truth: dict[str, str], readings: dict[str, tuple[str, float, str]]) -> dict[str, list[dict]]:
    """The reader's doubt where a digit reading differs from the paper: the box, its reading and the
    paper's digit as the runner-up, placed in the crop (the reader's review box) as
    ocr.read.doubt_marks does."""
    from review_ui.fieldinfo import cell_fracs

    out = {}
    for name in ("phone", "guardian_phone", "guardian_id"):
        value, paper = readings[name][0], truth[name]
        if len(value) != len(paper) or value == paper:
            continue
        out[name] = [{"i": i, "read": value[i], "p": 0.52, "alt": paper[i], "box": [round(f, 4) for f in cell_fracs(name)[i]]}
                     for i in range(len(value)) if value[i] != paper[i]]
    return out


def _render_pages(pdf: Path) -> list[Image.Image]:
    doc = pdfium.PdfDocument(str(pdf))
    try:
        return [doc[i].render(scale=DPI / 72).to_pil().convert("RGB") for i in range(len(doc))]
    finally:
        doc.close()


def _save_page(store: Store, img: Image.Image, key: str, lay: Layout) -> tuple[str, str, dict[str, str]]:
    sha = hashlib.sha256(key.encode()).hexdigest()
    rel = f"pages/{sha[:16]}/p0000.jpg"
    img.convert("L").save(store.path(rel), quality=80)
    from ocr.read import _review_box  # what the reader crops for the reviewer

    crops = {}
    for z in lay.zones:
        if z.kind != "printed":
            crel = f"crops/{sha[:16]}/p0000/{z.name}.png"
            img.crop(_px(_review_box(z))).save(store.path(crel))
            crops[z.name] = crel
    for derived in ("photo_face", "photo_background", "photo_color"):
        crops[derived] = crops["photo"]
    return sha, rel, crops


def _store_form(store: Store, form_id: str, sha: str, rel: str, crops: dict[str, str],
                readings: dict[str, tuple[str, float, str]], doubts: dict[str, list[dict]]) -> None:
    at = now()
    with store.tx() as conn:
        conn.execute(insert(pages).values(file_sha256=sha, page_index=0, form_id=form_id, kind="form", rotation=0,
                                          residual_mm=0.3, identified_by="barcode", image_path=rel, created_at=at))
        for name, (value, conf, sug) in readings.items():
            doubt = json.dumps(doubts[name]) if name in doubts else None
            conn.execute(insert(fields).values(form_id=form_id, name=name, value=value, confidence=conf,
                                               source="read", box=None, crop_path=crops.get(name),
                                               suggestion=sug or None, doubt=doubt, updated_at=at))
        conn.execute(update(forms).where(forms.c.form_id == form_id).values(status="received", received_at=at))


def _truth(i: int, k: int, name: str) -> dict[str, str]:
    # the two phones differ in box 3 and, as 6i + 1 is never 0 mod 10000, in another box too: a
    # family's two numbers one box apart would need '!' at review (ocr.read._one_box_apart)
    return {"phone": f"139{i:02d}{k:02d}{(i * 37 + k * 11) % 10000:04d}",
            "guardian_id": PARENT, "guardian_phone": f"137{k:02d}{i:02d}{(i * 53 + k + 1) % 10000:04d}",
            "guardian_relation": ("mother", "father", "other")[k % 3], "guardian_signature": "present",
            "signer": name[0] + "某"}


def build(workspace: Path, work_dir: Path, per_class: int = 5, classes=demo.DEMO_CLASSES[1:3],
          seed: int = 5) -> Sample:
    store = Store.open(workspace)
    lay = load_layout()
    import_roster(store, demo.write_roster(work_dir / "roster.csv", seed=seed, per_class=per_class, classes=classes))
    sample = Sample(store)
    received = set()
    for ci, pf in enumerate(print_forms(store, lay, work_dir / "print", campaign_date=demo.CAMPAIGN)):
        with store.tx() as conn:
            rows = list(conn.execute(select(forms.c.form_id, persons.c.name)
                                     .join(persons, forms.c.person_id == persons.c.person_id)
                                     .where(forms.c.print_file == pf.path.name)
                                     .order_by(persons.c.student_no, forms.c.form_id)))
        for k, (row, img) in enumerate(zip(rows, _render_pages(pf.path), strict=True)):
            scen = k % 5
            truth = _truth(ci, k, row.name)
            if scen == 3:
                truth["phone"] = "12345678901"
            sample.truth[row.form_id], sample.scenario[row.form_id] = truth, scen
            if scen == 4:
                if ci == 0:
                    _add_unidentified(store, img, row.form_id, lay)
                    sample.unidentified_for = row.form_id
                continue
            _fill_page(img, lay, truth, truth["signer"])
            sha, rel, crops = _save_page(store, img, row.form_id, lay)
            readings = _readings(truth, scen)
            _store_form(store, row.form_id, sha, rel, crops, readings, _doubts(lay, truth, readings))
            received.add(row.form_id)
    from ocr.rules import decide_forms

    decide_forms(store, received)
    return sample


def _add_unidentified(store: Store, img: Image.Image, form_id: str, lay: Layout) -> None:
    arr = np.asarray(img).copy()
    x0, y0, x1, y1 = _px(lay.barcode_box)
    arr[y0:y1, x0:x1] = 255  # the barcode got torn off
    sha, rel, _ = _save_page(store, Image.fromarray(arr), "unidentified-" + form_id, lay)
    with store.tx() as conn:
        conn.execute(insert(pages).values(file_sha256=sha, page_index=0, form_id=None, kind="unidentified",
                                          image_path=rel, created_at=now()))


def cached(base: Path, dest: Path, **kw) -> Sample:
    """Build the sample once under `base`, then give each caller a fresh copy at `dest` (fast)."""
    import pickle
    import shutil

    meta = base / "sample.pickle"
    if not meta.is_file():
        s = build(base / "ws", base / "work", **kw)
        s.store.engine.dispose()
        meta.write_bytes(pickle.dumps((s.truth, s.scenario, s.unidentified_for)))
    shutil.copytree(base / "ws", dest)
    truth, scenario, unident = pickle.loads(meta.read_bytes())
    return Sample(Store.open(dest), truth, scenario, unident)
