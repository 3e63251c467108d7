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
