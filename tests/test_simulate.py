"""The scan simulator: a demo roster imported and printed by the project's tools, then simulated
twice with one seed. Output is byte-identical, truth and pages agree with the files, and the images
agree with the truth after a simple ArUco alignment (independent of ocr/align.py)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from forms.barcode import decode
from forms.layout import Box, load_layout
from formstation import demo
from formstation.cli import main
from ocr.reasons import REASONS, status_for
from simulate.truth import FormTruth, Person, expected_reasons

DPI = 200  # alignment target
RATES = """
scan:
  duplex: 1.0
  upside_down: 0.3
  streak: 0.0
  batch_forms: 2
  foreign_pages: 0.01
  duplicate_scans: 0.01
  missing_forms: 0.01
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sim")
    ws = tmp / "ws"
    roster = demo.write_roster(tmp / "roster.csv", seed=5, per_class=3)
    assert main(["--workspace", str(ws), "roster", "import", str(roster)]) == 0
    assert main(["--workspace", str(ws), "print", "--out", str(tmp / "print")]) == 0
    (tmp / "rates.yaml").write_text(RATES)
    pdfs = sorted(str(p) for p in (tmp / "print").glob("*.pdf"))
    outs = []
    for run in ("a", "b"):
        out = tmp / run
        args = ["--workspace", str(ws), "simulate", *pdfs, "--out", str(out), "--seed", "7", "--profile",
                "typical", "--rates", str(tmp / "rates.yaml"), "--formats", "pdf,tiff_g4,tiff_jpeg,jpeg_dir", "-q"]
        assert main(args) == 0
        outs.append(out)
    return outs


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(out: Path, rec: dict) -> np.ndarray:
    """One output page as a gray image."""
    f = out / rec["file"]
    if f.suffix == ".pdf":
        doc = pdfium.PdfDocument(str(f))
        img = doc[rec["page"]].render(scale=rec["dpi"] / 72, grayscale=True).to_numpy()
        doc.close()
        return img[:, :, 0] if img.ndim == 3 else img
    with Image.open(f) as im:
        im.seek(rec["page"])
        return np.asarray(im.convert("L"))


def _align(gray: np.ndarray, layout) -> np.ndarray | None:
    dic = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, layout.marks.dictionary))
    corners, ids, _ = cv2.aruco.ArucoDetector(dic, cv2.aruco.DetectorParameters()).detectMarkers(gray)
    if ids is None or len(ids) < 3:
        return None
    k = Box(0, 0, 1000, 1000).to_px(DPI)[2] / 1000
    src = np.concatenate([c.reshape(4, 2) for c in corners])
    dst = np.concatenate([np.array(layout.marks.corners_mm(int(i))) * k for i in ids.ravel()])
    m, _ = cv2.findHomography(np.float32(src), np.float32(dst), 0)
    w, h = layout.page_px(DPI)
    return cv2.warpPerspective(gray, m, (w, h), borderValue=255)


def _ink(page: np.ndarray, box: Box, inset: float = 1.5) -> float:
    x0, y0, x1, y1 = Box(box.x + inset, box.y + inset, box.w - 2 * inset, box.h - 2 * inset).to_px(DPI)
    return float((page[y0:y1, x0:x1] < 110).mean())


def test_same_seed_gives_byte_identical_output(sim):
    a, b = _files(sim[0]), _files(sim[1])
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    assert {Path(k).suffix for k in a} >= {".pdf", ".tif", ".jpg", ".jsonl"}


def test_truth_and_pages_agree_with_the_files(sim):
    out = sim[0]
    truth, pages = _jsonl(out / "truth.jsonl"), _jsonl(out / "pages.jsonl")
    assert len(truth) == 12
    per_form = Counter(p["form_id"] for p in pages if p["kind"] == "form")
    for t in truth:
        assert per_form[t["form_id"]] == t["scan_count"]
        assert t["scanned"] == (t["scan_count"] > 0)
        if t["scanned"]:
            assert all(c in REASONS for c in t["expected_reasons"])
            assert t["expected_status"] == status_for(t["expected_reasons"])
            assert ("DUPLICATE_SCAN" in t["expected_reasons"]) == (t["scan_count"] > 1)
    assert {t["scan_count"] for t in truth} == {0, 1, 2}
    kinds = Counter(p["kind"] for p in pages)
    assert kinds["foreign"] >= 1 and kinds["blank_back"] == kinds["form"] + kinds["foreign"]
    per_file = Counter(p["file"] for p in pages)
    for name, n in per_file.items():
        f = out / name
        if f.suffix == ".pdf":
            assert len(pdfium.PdfDocument(str(f))) == n
        elif f.suffix == ".tif":
            with Image.open(f) as im:
                assert im.n_frames == n
        else:
            assert n == 1
    assert {p["format"] for p in pages} == {"pdf", "tiff_g4", "tiff_jpeg", "jpeg_dir"}


def test_images_agree_with_truth(sim):
    out = sim[0]
    layout = load_layout()
    truth = {t["form_id"]: t for t in _jsonl(out / "truth.jsonl")}
    checked = Counter()
    for rec in _jsonl(out / "pages.jsonl"):
        if rec["kind"] != "form":
            continue
        page = _align(_load(out, rec), layout)
        assert page is not None, rec
        f = truth[rec["form_id"]]["fields"]
        for name in ("applicant_signature", "guardian_signature"):
            ink = _ink(page, layout.zone(name).box)
            assert (ink > 0.004) if f[name] else (ink < 0.001), (rec, name, ink)
            checked[name, f[name]] += 1
        for name in ("phone", "guardian_phone", "corrected_id"):
            cells = layout.zone(name).cell_boxes()
            inks = [_ink(page, c, 1.0) for c in cells]
            if f[name]:
                assert sum(i > 0.03 for i in inks[: len(f[name])]) >= len(f[name]) - 1, (rec, name, inks)
            else:  # a scanner dust speck may land in a cell: far below a written digit
                assert max(inks) < 0.015, (rec, name, inks)
            checked[name, bool(f[name])] += 1
        photo = _ink(page, layout.zone("photo").box, 2.0)
        assert (photo > 0.05) if f["photo"] != "none" else (photo < 0.001), (rec, photo)
    assert checked[("applicant_signature", True)] and checked[("applicant_signature", False)]
    assert checked[("phone", True)] and checked[("corrected_id", False)]


def test_blank_backs_are_near_empty_and_upside_down_pages_decode(sim):
    out = sim[0]
    pages = _jsonl(out / "pages.jsonl")
    for rec in [p for p in pages if p["kind"] == "blank_back"][:6]:
        small = cv2.resize(_load(out, rec), (400, 566), interpolation=cv2.INTER_AREA)[20:-20, 20:-20]
        assert float((small < np.percentile(small, 90) - 70).mean()) < 0.003, rec
    flipped = [p for p in pages if p["kind"] == "form" and p["rotation"] == 180]
    assert flipped
    for rec in flipped[:3]:
        img = cv2.rotate(_load(out, rec), cv2.ROTATE_180)
        layout = load_layout()
        b = layout.barcode_box
        x0, y0, x1, y1 = Box(b.x - 8, b.y - 8, b.w + 16, b.h + 16).to_px(rec["dpi"])
        codes = [decode(r.text) for r in zxingcpp.read_barcodes(img[y0:y1, x0:x1])]
        assert rec["form_id"] in {c.form_id for c in codes if c}, rec


def test_expected_reasons_follow_the_domain_rules():
    p = Person("F1", "S", "C", "张伟", "男", "45048120080327062X", False, "x.pdf", 0)
    base = {"corrected_name": "", "corrected_id": "", "phone": "13812345678", "photo": "color", "id_copy": "",
            "applicant_signature": True, "guardian_id": "", "guardian_phone": "", "guardian_relation": "",
            "guardian_signature": False}
    day = date(2026, 9, 1)
    t = FormTruth(p, 18, base, {})
    assert expected_reasons(t, day) == []
    t = replace(t, fields={**base, "corrected_name": "张堃", "photo": "grey_bg"})
    assert expected_reasons(t, day) == ["CORRECTION_WITHOUT_COPY", "NAME_CORRECTED", "PHOTO_NOT_LIGHT_BG",
                                        "RARE_CHARACTER"]
    child = replace(t, age=10, fields={**base, "photo": "none"}, shared_phone_class=True, scan_count=2)
    assert expected_reasons(child, day) == [
        "DUPLICATE_SCAN", "GUARDIAN_ID_MISSING", "GUARDIAN_PHONE_MISSING", "GUARDIAN_RELATION_MISSING",
        "GUARDIAN_SIGNATURE_MISSING", "PHONE_SHARED_BY_CLASS", "PHOTO_MISSING"]


def test_writer_pools_are_disjoint():
    """Measurements use the held-out writers (and "other": scikit-learn's writers); the train / val
    pools (for page-style training cells) never share a digit image with them or with each other."""
    from simulate.ink import load_bank

    pools = {w: load_bank(5, w) for w in ("heldout", "train", "val", "other")}
    keys = {w: {d.tobytes() for c in "0123456789" for d in b.by_char[c]} for w, b in pools.items()}
    assert len(keys["heldout"]) > 900 and len(keys["train"]) > 3000 and len(keys["val"]) > 300
    assert not keys["heldout"] & keys["train"] and not keys["heldout"] & keys["val"]
    assert not keys["train"] & keys["val"]
    assert len(keys["other"]) > 1700 and pools["other"].by_char["7"][0].shape == (28, 28)  # load_digits
    printed = load_bank(5, "print")  # digits printed like type: ten classes, 28x28, none MNIST's
    assert all(len(printed.by_char[c]) >= 90 and printed.by_char[c][0].shape == (28, 28) for c in "0123456789")
    assert not {d.tobytes() for c in "0123456789" for d in printed.by_char[c]} & (keys["heldout"] | keys["train"])
    with pytest.raises(ValueError, match="writers"):
        load_bank(5, "everyone")


def test_glyph_halves_split_a_pool_so_two_halves_share_no_digit_image():
    """`formstation simulate --glyph-halves`: a form writes with one half of the pool's digit images,
    chosen by its id, so a reader that learned from one half's reviewed forms is measured on forms
    whose digit images it never saw (bench/adapt.py --glyph-halves); within half 0, the learning
    gate's training, calibration and hold-out forms write with images of their own."""
    from ocr.adapt import part_of
    from simulate import glyph_group, glyph_half
    from simulate.ink import load_bank

    bank = load_bank(5, "heldout")
    ids = [f"F{n:06d}" for n in range(1000)]
    halves = [glyph_half(f) for f in ids]
    assert 400 < sum(halves) < 600 and halves == [glyph_half(f) for f in ids]  # balanced, stable
    rng = np.random.default_rng(0)

    def images(form_id: str) -> set[bytes]:
        g = bank.group(*glyph_group(form_id))
        return {g.pick(rng, c).tobytes() for c in "0123456789" for _ in range(150)}

    one = next(f for f in ids if glyph_half(f))
    zero = {part_of(f): f for f in ids if not glyph_half(f)}
    assert sorted(zero) == ["calib", "holdout", "train"]
    groups = [images(one)] + [images(f) for f in zero.values()]
    assert len(groups[0]) > 400 and all(len(g) > 120 for g in groups[1:])  # most of each group drawn
    assert all(not a & b for i, a in enumerate(groups) for b in groups[i + 1:])


def test_simulate_with_glyph_halves_draws_the_same_forms_with_other_digit_images(sim, tmp_path):
    """`--glyph-halves` changes whose digit images are drawn, nothing else: the truth (what each parent
    wrote, which pages were scanned) is the run's without it, and the choice is recorded."""
    a = sim[0]
    meta = json.loads((a / "simulation.json").read_text(encoding="utf-8"))
    ws = a.parent / "ws"
    pdfs = sorted(str(p) for p in (a.parent / "print").glob("*.pdf"))
    out = tmp_path / "halves"
    assert main(["--workspace", str(ws), "simulate", *pdfs, "--out", str(out), "--seed", "7", "--profile", "typical",
                 "--rates", str(a.parent / "rates.yaml"), "--formats", "pdf,tiff_g4,tiff_jpeg,jpeg_dir", "-q",
                 "--glyph-halves"]) == 0
    assert meta["glyph_halves"] is False and json.loads((out / "simulation.json").read_text())["glyph_halves"] is True
    assert (out / "truth.jsonl").read_bytes() == (a / "truth.jsonl").read_bytes()
    assert (out / "pages.jsonl").read_bytes() == (a / "pages.jsonl").read_bytes()
    before, after = _files(a / "scans"), _files(out / "scans")
    assert before.keys() == after.keys() and any(before[k] != after[k] for k in before)


def test_a_digit_whose_pen_filled_its_loop_keeps_the_filled_ink():
    """A 6 written with a loop so small the pen filled it is an arc ending in a blob; redrawn with
    the simulator's pen it must still show the blob (before, the skeleton left an arc with a thin
    tail, a "(" labelled 6), while a plain stroke is redrawn with the nib alone."""
    from simulate.ink import restroke

    g = np.zeros((112, 112), np.float32)
    cv2.ellipse(g, (62, 60), (30, 40), 0, 100, 260, 255, 8)  # the 6's back, 8 px strokes
    cv2.circle(g, (62, 82), 16, 255, -1)  # its loop, filled
    out = restroke(g, 2.0, 1.0)  # a nib of 2 px at the target scale, (56, 56)
    disk = np.zeros((56, 56), np.uint8)
    cv2.circle(disk, (31, 41), 6, 1, -1)
    assert (out[disk > 0] > 0.5).mean() > 0.9
    line = np.zeros((112, 112), np.float32)
    cv2.line(line, (56, 10), (56, 100), 255, 8)
    thin = restroke(line, 1.0, 1.0)
    assert (thin > 0.5).sum(axis=1).max() <= 3  # the nib's width, not the glyph's 4 px (8 at 2x)


def test_where_two_thick_strokes_cross_the_pen_leaves_no_dot(monkeypatch):
    """A crossing is wider than either stroke but is not a filled loop: it is redrawn with the nib
    alone, as a ballpoint draws a 4 or an X (a dot there joined digits to their neighbours)."""
    import simulate.ink as ink

    g = np.zeros((112, 112), np.float32)
    cv2.line(g, (20, 56), (92, 56), 255, 7)
    cv2.line(g, (56, 20), (56, 92), 255, 7)
    cv2.circle(g, (56, 56), 8, 255, -1)  # the writer's pen paused there: a little thicker
    out = ink.restroke(g, 1.5, 1.0)
    monkeypatch.setattr(ink, "BLOB_AREA", 1e9)  # no filled area kept anywhere: the nib alone
    assert np.array_equal(out, ink.restroke(g, 1.5, 1.0))


def test_the_benchmark_rate_files_load_and_change_what_they_name(tmp_path):
    """`bench/rates/*.yaml` (the README's probes: `bench/campaign.py --rates ...`) are accepted by
    `formstation simulate --rates` and set the rates they name; a misspelt rate is refused by name."""
    from pathlib import Path

    import yaml

    from simulate.profiles import RatesError, load_profile

    files = sorted((Path(__file__).resolve().parent.parent / "bench" / "rates").glob("*.yaml"))
    assert {f.stem for f in files} >= {"dpi150", "dpi600", "jpeg", "rules", "skew", "stress"}
    for f in files:
        p, raw = load_profile("typical", f), yaml.safe_load(f.read_text(encoding="utf-8"))
        for part in ("fill", "scan"):
            for k, v in (raw.get(part) or {}).items():
                got = getattr(getattr(p, part), k)
                assert got == (tuple(v) if isinstance(v, list) else v), (f.name, k)
    bad = tmp_path / "bad.yaml"
    bad.write_text("scan:\n  skew_max_degs: 6\n", encoding="utf-8")
    with pytest.raises(RatesError, match="skew_max_degs"):
        load_profile("typical", bad)
