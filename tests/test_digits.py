"""Tests of the comb-cell character reader (ocr.digits) and its data helpers (ocr.digitdata)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocr.digitdata import augment, comb_cell, heldout_mask, load_mnist, synth_x
from ocr.digits import CLASSES, CellResult, DigitClassifier, normalize_cell, read_cells


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist()
    mask = heldout_mask(data.labels)
    return data.images[mask], data.labels[mask]


@pytest.fixture(scope="module")
def model() -> DigitClassifier:
    return DigitClassifier.load()


def test_heldout_mask_is_last_100_per_class() -> None:
    labels = np.repeat(np.arange(10), 500)
    mask = heldout_mask(labels)
    assert mask.sum() == 1000
    assert not mask[:400].any() and mask[400:500].all()
    assert mask[4900:].all() and not mask[4500:4900].any()  # class 9: 4500..4999


def test_empty_cell_with_lines_and_noise_is_none(heldout) -> None:
    hx, _ = heldout
    rng = np.random.default_rng(7)
    for dpi, grey in ((300.0, 0), (200.0, 150), (300.0, 120)):
        crop = comb_cell((hx[0], None, hx[1]), rng, dpi, grey)
        assert normalize_cell(crop) is None
    blank = np.full((60, 45), 250, np.uint8)
    blank[5:7, :] = blank[53:55, :] = 0
    blank[:, 4:6] = blank[:, 39:41] = 0
    blank[30, 20] = 0  # a dust dot
    assert normalize_cell(blank) is None


def test_filled_cell_gives_mnist_image(heldout) -> None:
    hx, _ = heldout
    crop = comb_cell((None, hx[250], None), np.random.default_rng(3), 300.0, 0)
    img = normalize_cell(crop)
    assert img is not None and img.shape == (28, 28) and img.dtype == np.uint8
    assert img.max() == 255 and img[:2].max() < 40 and img[:, :2].max() < 40  # 20x20 box + margin


def test_shipped_model_reads_heldout_digits_in_comb_cells(heldout, model) -> None:
    hx, hy = heldout
    rng = np.random.default_rng(12345)
    idx = rng.choice(len(hx), 300, replace=False)
    styles = ((300.0, 0), (200.0, 150), (300.0, 150), (200.0, 0))
    crops = [comb_cell((hx[int(rng.integers(1000))], hx[i], None), rng, *styles[k % 4])
             for k, i in enumerate(idx)]
    results = read_cells(crops, model)
    correct = sum(r.best == CLASSES[hy[i]] for r, i in zip(results, idx, strict=True))
    assert correct / len(idx) >= 0.90


def test_probabilities_sum_to_one(heldout, model) -> None:
    hx, _ = heldout
    p = model.predict_proba(hx[:50])
    assert p.shape == (50, len(CLASSES))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (p >= 0).all()


def test_x_is_recognised(model) -> None:
    xs = synth_x(np.random.default_rng(4242), 60)
    hit = (model.predict_proba(xs).argmax(axis=1) == CLASSES.index("X")).mean()
    assert hit >= 0.9


def test_read_cells_results(heldout, model) -> None:
    hx, hy = heldout
    rng = np.random.default_rng(5)
    crops = [comb_cell((None, hx[i], None), rng, 300.0, 0) for i in (120, 620)]
    crops.append(comb_cell((None, None, None), rng, 300.0, 0))
    res = read_cells(crops, model)
    assert res[2] == CellResult(True, None, "", 0.0)
    for r in res[:2]:
        assert not r.empty and r.probs is not None and len(r.probs) == 11
        assert r.best in CLASSES and r.confidence == max(r.probs)
    with pytest.raises(AttributeError):
        res[0].best = "1"  # frozen


def test_augment_and_synth_x_are_deterministic(heldout) -> None:
    hx, _ = heldout
    a = augment(hx[3], np.random.default_rng(99))
    b = augment(hx[3], np.random.default_rng(99))
    c = augment(hx[3], np.random.default_rng(100))
    assert a.shape == (28, 28) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(synth_x(np.random.default_rng(1), 3), synth_x(np.random.default_rng(1), 3))


def test_blurred_box_line_fringe_is_not_a_character(heldout) -> None:
    # a scan blurs the printed lines: beside each line's dark core runs a lighter fringe that the
    # line finder does not take; on its own it must not read as a character
    cell = np.full((84, 60), 250, np.uint8)
    cell[5:8, :] = cell[76:79, :] = 90
    cell[:, 6:9] = cell[:, 52:55] = 90
    cell[8:10, 9:52] = 165   # fringe under the top line
    cell[9:74, 49:52] = 165  # fringe beside the right line
    assert normalize_cell(cell) is None
    # a real digit written in the same cell is still read
    hx, _ = heldout
    glyph = cv2.resize(255 - hx[3], (34, 48))
    cell[18:66, 13:47] = np.minimum(cell[18:66, 13:47], glyph)
    assert normalize_cell(cell) is not None
