"""Tick boxes: a pen tick, cross or filling is a tick; a smudge or a faint speck is not surely one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocr.presence import PX_PER_MM, box_ink, pick_option
from simulate import ink

BOX_MM, PEN_MM = 5.0, 0.3  # the layout's tick box, a fine ballpoint


def _box(mark: np.ndarray | None = None) -> np.ndarray:
    """The crop of a printed 5 mm tick box at the reading resolution (its frame at the crop's
    edge, as the layout box gives it), with a pen mark (alpha 0..1) laid over it as black ink.
    Parents tick beyond the box: the mark's canvas is 30 % bigger and reaches above it."""
    side = int(round(BOX_MM * PX_PER_MM))
    grow = int(round(0.3 * side))
    page = np.full((side + 2 * grow, side + 2 * grow), 250, np.float32)
    cv2.rectangle(page, (grow, grow), (grow + side - 1, grow + side - 1), 60, 2)
    if mark is not None:
        y0, x0 = grow - int(0.8 * grow), grow - grow // 2
        h, w = mark.shape
        page[y0 : y0 + h, x0 : x0 + w] *= 1 - mark
    return page[grow : grow + side, grow : grow + side].astype(np.uint8)


@pytest.mark.parametrize("style", ["check", "cross", "fill"])
def test_a_pen_tick_is_read_surely(style: str) -> None:
    for seed in range(6):
        rng = np.random.default_rng(seed)
        size = int(round(BOX_MM * PX_PER_MM))
        tick = ink.tick_alpha(rng, style, int(1.3 * size), PEN_MM * PX_PER_MM)
        value, conf = pick_option({"father": box_ink(_box()), "mother": box_ink(_box(tick)),
                                   "other": box_ink(_box())})
        assert value == "mother" and conf >= 0.9, (style, seed, conf)


def test_empty_boxes_read_empty_surely() -> None:
    value, conf = pick_option({n: box_ink(_box()) for n in ("father", "mother", "other")})
    assert value == "" and conf >= 0.9


def test_a_smudge_is_doubt_not_a_sure_tick() -> None:
    smudge = np.zeros((39, 39), np.float32)
    cv2.circle(smudge, (20, 20), 4, 0.9, -1)
    value, conf = pick_option({"father": box_ink(_box(smudge)), "mother": 0.0, "other": 0.0})
    assert conf < 0.9  # whatever it says, a reviewer looks


def test_two_ticks_are_doubt() -> None:
    rng = np.random.default_rng(3)
    tick = ink.tick_alpha(rng, "check", int(round(BOX_MM * PX_PER_MM)), PEN_MM * PX_PER_MM)
    _, conf = pick_option({"father": box_ink(_box(tick)), "mother": box_ink(_box(tick)), "other": 0.0})
    assert conf < 0.5


def _pasted(background: str, angle: float, hair_corner: bool = False) -> np.ndarray:
    """The 30 x 40 mm photo box of the layout (BGR, white paper) with a 1-inch portrait pasted in it
    (the simulator's `portrait`, 25 x 32 mm) turned by `angle` degrees, as a colour scan shows it."""
    from simulate.fill import _paste
    from simulate.photos import portrait

    k = PX_PER_MM
    box = np.full((int(40 * k), int(30 * k), 3), 252, np.uint8)
    look = {"style": "grey_bg" if background != "white" else "color", "flip": False, "zoom": 0.9, "x": 0.5,
            "y": 0.5, "tint": [1.0, 1.0, 1.0], "brightness": 1.0, "background": background}
    pic = portrait(look["style"], int(25 * k), int(32 * k), look)
    if hair_corner:  # dark hair reaching the photo's top left corner
        pic[: pic.shape[0] // 6, : pic.shape[1] // 5] = (30, 35, 40)
    _paste(box, pic, box.shape[1] / 2, box.shape[0] / 2, angle)
    return box


@pytest.mark.parametrize("angle", [0.0, 5.0, -5.0])
def test_a_white_background_reads_light_however_the_photo_was_pasted(angle: float) -> None:
    from ocr.presence import photo

    found = photo(_pasted("white", angle))
    assert found is not None and found.light_background and found.background_confidence >= 0.9


@pytest.mark.parametrize("angle", [0.0, 5.0, -5.0])
def test_a_blue_background_pasted_askew_is_never_read_light_surely(angle: float) -> None:
    """Askew, paper shows in one top corner of the photo's box: the background is not light for that
    (it read light at 0.99, and the form went into the card file with a blue photo)."""
    from ocr.presence import photo

    found = photo(_pasted("blue", angle))
    assert found is not None
    assert not (found.light_background and found.background_confidence >= 0.9), found.background_confidence


def test_hair_in_one_corner_of_a_white_background_still_reads_light() -> None:
    from ocr.presence import photo

    for angle in (0.0, 4.0, -4.0):
        found = photo(_pasted("white", angle, hair_corner=True))
        assert found is not None and found.light_background and found.background_confidence >= 0.9


def _dim(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """A dim scan: every grey level at 81 % (the paper at about 205), with sensor noise."""
    rng = np.random.default_rng(seed)
    return np.clip(img.astype(np.float32) * 0.81 + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def test_on_a_dim_scan_empty_boxes_read_empty_and_pasted_ones_pasted() -> None:
    """A scan whose paper is grey 205 (harsh profile): an empty copy box and an empty photo box are
    empty, surely (a fixed grey 200 took 48 of 879 empty copy boxes for a pasted copy), a pasted
    copy is found, and a white background is as light as the paper, so light."""
    from datetime import date

    from ocr.presence import attachment, paper_level, photo
    from simulate.fill import _paste
    from simulate.photos import id_copy

    k = PX_PER_MM
    page = np.full((int(120 * k), int(100 * k)), 252, np.uint8)  # paper around the boxes
    copy_box = np.s_[int(5 * k):int(70 * k), int(2 * k):int(98 * k)]
    cv2.rectangle(page, (int(2 * k), int(5 * k)), (int(98 * k) - 1, int(70 * k) - 1), 60, 2)
    empty = _dim(page)
    paper = paper_level(empty)
    assert 195 < paper < 215
    present, conf = attachment(empty[copy_box], paper)
    assert not present and conf >= 0.9
    assert attachment(empty[copy_box])[0]  # measured against white paper, the grey is a copy
    pasted = page.copy()
    card = id_copy(np.random.default_rng(1), k, "张三", "男", date(1985, 3, 2), "450481198503021234")
    _paste(pasted, card, 50 * k, 37 * k, 1.0)
    pasted = _dim(pasted)
    present, conf = attachment(pasted[copy_box], paper_level(pasted))
    assert present and conf >= 0.9

    box = np.full((int(40 * k), int(30 * k), 3), 252, np.uint8)
    assert photo(_dim(box), paper) is None
    found = photo(_dim(_pasted("white", 2.0)), paper)
    assert found is not None and found.light_background and found.background_confidence >= 0.9
    blue = photo(_dim(_pasted("blue", 0.0)), paper)
    assert blue is not None and not (blue.light_background and blue.background_confidence >= 0.9)
