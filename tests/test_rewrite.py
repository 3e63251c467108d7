"""A digit a parent rewrote above a struck-out comb box (ocr.rewrite, ocr.read): found above the right
box, read, and its field sent to review with the correction as the suggestion. Pages are the
blank form as the station prints it, written on with the scan simulator's pen and held-out digits."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pytest

from forms.layout import load_layout
from forms.printing import blank_form
from ocr.align import ALIGN_DPI
from ocr.digits import CLASSES, default_classifier
from ocr.rewrite import Printed, find_rewrites, printed_ink
from simulate import fill, ink

FIELDS = {"phone": "13907721845", "guardian_id": "450481198009120617", "guardian_phone": "18677290345"}


@lru_cache(maxsize=1)
def _blank() -> tuple[np.ndarray, Printed]:
    b = blank_form(load_layout(), ALIGN_DPI)
    return b, printed_ink(b, ALIGN_DPI)


def _page(seed: int, crossed: dict[str, int], touching: bool = False) -> np.ndarray:
    """The blank form with the three digit fields written in; `crossed`: field -> box struck out
    (a wrong digit, struck, the right one written above); `touching`: every digit overruns its box."""
    rng = np.random.default_rng(seed)
    page = cv2.cvtColor(_blank()[0], cv2.COLOR_GRAY2BGR)
    bank = ink.load_bank(seed)
    pen = fill.Pen(rng, "blue" if seed % 2 else "black", ALIGN_DPI)
    lay = load_layout()
    for name, value in FIELDS.items():
        marks = {"touching": {name: list(range(len(value)))} if touching else {},
                 "crossed_out": {name: {"cell": crossed[name], "wrong": str((int(value[crossed[name]]) + 3) % 10)}}
                 if name in crossed else {}}
        fill._digits(page, rng, pen, bank, lay.zone(name), value, marks, ALIGN_DPI)
    return cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)


def test_a_rewrite_is_found_above_its_box_and_read():
    """Never above the wrong box. Above the phone there is free space: nearly every rewrite is found
    and read. Above the guardian's ID's first six boxes the section title is printed and above the
    guardian's phone the ID comb's bottom line runs: strokes hidden under print are lost, so fewer
    are found there; still, at least half of those written over the title are."""
    lay = load_layout()
    model = default_classifier()
    found, right = {n: 0 for n in FIELDS}, {n: 0 for n in FIELDS}
    over_title = []
    for seed in range(12):
        crossed = {"phone": 2 + seed % 9, "guardian_id": seed % 18, "guardian_phone": 10 - seed % 9}
        page = _page(seed, crossed)
        for name, cell in crossed.items():
            rws = find_rewrites(page, lay.zone(name), _blank()[1], ALIGN_DPI)
            assert [r.cell for r in rws] in ([cell], []), (seed, name, [r.cell for r in rws])
            ok = bool(rws) and CLASSES[int(model.predict_proba(rws[0].glyph[None])[0].argmax())] == FIELDS[name][cell]
            found[name] += bool(rws)
            right[name] += ok
            if name == "guardian_id" and cell < 6:
                over_title.append(ok)
    assert found["phone"] >= 11 and right["phone"] >= 10, (found, right)
    assert sum(found.values()) >= 0.8 * 36 and sum(right.values()) >= 0.8 * sum(found.values()), (found, right)
    assert len(over_title) == 6 and sum(over_title) >= 3, over_title


@pytest.mark.parametrize("touching", [False, True])
def test_no_rewrite_without_one(touching):
    """Digits overrunning their boxes (up into the space above, down into the comb below), a scanner
    streak down the page: none of it is a rewrite."""
    lay = load_layout()
    for seed in range(12):
        page = _page(100 + seed, {}, touching)
        x = int(lay.zone("phone").box.to_px(ALIGN_DPI)[0] + 37 * seed)
        page[:, x:x + 2] = np.minimum(page[:, x:x + 2], 90)  # dust on the scanner glass
        for name in FIELDS:
            assert find_rewrites(page, lay.zone(name), _blank()[1], ALIGN_DPI) == [], (seed, name)


def test_a_page_aligned_a_millimetre_off_shows_no_printed_text_as_a_rewrite():
    """The guardian's ID comb has the section title printed right above it: on a page that aligned
    ~1 mm off (paper stretch, a warped sheet) the blank form is registered on the page's own print
    before it is masked, so the title is not read as handwriting, and real rewrites are still found."""
    lay = load_layout()
    found = 0
    for seed in range(8):
        crossed = {"phone": 3 + seed}
        page = _page(300 + seed, crossed)
        dx, dy = (7, 6) if seed % 2 else (-6, 8)  # px at 200 dpi: ~0.9 / 0.8 mm
        page = cv2.warpAffine(page, np.float32([[1, 0, dx], [0, 1, dy]]), page.shape[::-1], borderValue=255)
        for name in FIELDS:
            cells = [r.cell for r in find_rewrites(page, lay.zone(name), _blank()[1], ALIGN_DPI)]
            assert cells in (([crossed[name]], []) if name in crossed else ([],)), (seed, name, cells)
            found += bool(cells) and name in crossed
    assert found >= 7


def test_the_reader_suggests_the_correction_and_sends_it_to_review(tmp_path):
    from ocr.read import REWRITE_CONFIDENCE, PageReader

    reader = PageReader(load_layout())
    right = 0
    for seed in range(3):
        cell = 4 + seed
        page = _page(200 + seed, {"phone": cell})
        phone = next(r for r in reader.read(page, tmp_path, f"c{seed}") if r.name == "phone")
        struck = [d for d in phone.detail["doubt"] if "struck" in d]
        assert phone.confidence <= REWRITE_CONFIDENCE and [d["i"] for d in struck] == [cell]
        if len(phone.value) == 11:  # (a strike reaching into the next box can leave that box unread)
            assert struck[0]["read"] == phone.value[cell]
        x0, y0, x1, y1 = struck[0]["box"]
        assert y0 < 0.35 and y1 > 0.8  # the frame covers the rewrite and the box
        right += phone.value == FIELDS["phone"]
    assert right >= 2  # the corrected number is the suggestion


def test_without_a_cjk_font_rewrites_are_not_read_and_nothing_fails(tmp_path, monkeypatch):
    """A reading machine that cannot draw the blank form (no CJK font) reads every zone as before,
    without looking for rewrites."""
    import ocr.read
    from forms.printing import FontMissing

    def no_font(*a, **kw):
        raise FontMissing("no TrueType CJK font found")

    monkeypatch.setattr(ocr.read, "blank_form", no_font)
    reader = ocr.read.PageReader(load_layout())
    readings = {r.name: r for r in reader.read(_page(400, {"phone": 5}), tmp_path, "c")}
    assert {"phone", "guardian_id", "guardian_phone", "photo"} <= set(readings)
    assert not any("struck" in d for d in readings["phone"].detail["doubt"])


def test_a_note_written_above_a_comb_does_not_replace_what_the_boxes_read(tmp_path):
    """'同上' ("same as above") written over the guardian's phone: the boxes, read surely, keep their
    reading; the field goes to a reviewer, who is shown what is written above."""
    from ocr.read import REWRITE_CONFIDENCE, PageReader

    reader = PageReader(load_layout())
    z = load_layout().zone("guardian_phone")
    x0, y0, _, _ = z.box.to_px(ALIGN_DPI)
    kept = 0
    for seed in range(4):
        plain = _page(600 + seed, {})
        before = next(r for r in reader.read(plain, tmp_path, f"a{seed}") if r.name == "guardian_phone")
        page = cv2.cvtColor(plain, cv2.COLOR_GRAY2BGR)
        note = ink.cjk_alpha(np.random.default_rng(seed), "同上", 30, 3.0)
        ink.blend(page, note, x0 + 60 + 40 * seed, y0 - note.shape[0] - 2, (30, 30, 35))
        after = next(r for r in reader.read(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY), tmp_path, f"b{seed}")
                     if r.name == "guardian_phone")
        assert after.confidence <= REWRITE_CONFIDENCE
        assert not any("struck" in d and d["i"] not in {e["i"] for e in before.detail["doubt"]}
                       for d in after.detail["doubt"])  # only a box the reader already doubted can be replaced
        kept += after.value == before.value and any("above" in d for d in after.detail["doubt"])
    assert kept >= 3
