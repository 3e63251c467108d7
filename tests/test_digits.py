"""Tests of the comb-cell character reader (ocr.digits) and its data helpers (training.digitdata)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from forms.layout import mm_to_px
from ocr.digits import (
    CLASSES,
    ONNX_MODEL,
    CellResult,
    OnnxReader,
    default_classifier,
    normalize_cell,
    read_cells,
)
from training.digitdata import BLOCK_HELDOUT, augment, comb_cell, heldout_mask, load_mnist, split60, synth_x


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    data = load_mnist()
    mask = heldout_mask(data.labels)
    return data.images[mask], data.labels[mask]


@pytest.fixture(scope="module")
def model():
    return default_classifier()


def test_60k_split_keeps_every_heldout_digit_out_of_training() -> None:
    s = split60()
    assert not set(s.train) & set(s.val) and not set(s.train) & set(s.heldout) and not set(s.val) & set(s.heldout)
    assert len(s.train) + len(s.val) + len(s.heldout) == 60000
    assert set(range(*BLOCK_HELDOUT)) <= set(s.heldout)
    train_bytes = {s.data.images[i].tobytes() for i in s.train}
    small = load_mnist()
    ho = small.images[heldout_mask(small.labels)]
    assert not any(im.tobytes() in train_bytes for im in ho)  # the simulator's held-out writers


def test_station_reads_with_the_v2_ensemble(heldout) -> None:
    assert ONNX_MODEL.is_file(), "the v2 reader ships with the repository (scripts/train_digits.sh rebuilds it)"
    reader = default_classifier()
    assert isinstance(reader, OnnxReader)
    hx, hy = heldout
    members = reader.member_probs(hx[:200])
    assert members.shape[1] >= 3  # an ensemble
    np.testing.assert_allclose(members.sum(axis=2), 1.0, atol=1e-6)
    np.testing.assert_allclose(reader.predict_proba(hx[:200]), members.mean(axis=1), atol=1e-9)
    assert (reader.predict_proba(hx[:200]).argmax(axis=1) == hy[:200]).mean() >= 0.97


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


def _strip(glyphs: list[tuple[np.ndarray | None, float, float]], dpi: float = 200.0):
    """A printed comb strip (6 x 9 mm cells) with 3 mm margin and ink-high glyphs written at
    (dx, dy) offsets, as fractions of a cell, from their cell's centre. Returns the crop, the
    cell bounds and the comb rows as `normalize_strip` takes them."""
    k = mm_to_px(1.0, dpi)
    cw, ch, m = 6 * k, 9 * k, int(round(3 * k))
    n = len(glyphs)
    img = np.full((int(ch + 2 * m), int(n * cw + 2 * m)), 250, np.uint8)
    xs = [int(round(m + i * cw)) for i in range(n + 1)]
    y0, y1 = m, int(round(m + ch))
    for i, (g, dx, dy) in enumerate(glyphs):
        if g is None:
            continue
        gh = int(0.7 * ch)
        glyph = cv2.resize(g, (int(gh * 0.8), gh), interpolation=cv2.INTER_CUBIC)
        cx, cy = int((xs[i] + xs[i + 1]) / 2 + dx * cw), int((y0 + y1) / 2 + dy * ch)
        x, y = cx - glyph.shape[1] // 2, cy - glyph.shape[0] // 2
        region = img[y : y + glyph.shape[0], x : x + glyph.shape[1]]
        img[y : y + glyph.shape[0], x : x + glyph.shape[1]] = np.minimum(region, 255 - glyph[: region.shape[0], : region.shape[1]])
    img[y0 : y0 + 2, xs[0] : xs[-1] + 2] = img[y1 : y1 + 2, xs[0] : xs[-1] + 2] = 40
    for x in xs:
        img[y0 : y1 + 2, x : x + 2] = 40
    return img, [(xs[i], xs[i + 1]) for i in range(n)], (y0, y1)


def test_strip_reads_a_digit_overrunning_its_box_whole(heldout, model) -> None:
    from ocr.digits import read_strip

    hx, hy = heldout
    picks = [int(np.flatnonzero(hy == d)[5]) for d in (2, 0, 3, 5)]
    # the third digit sits 40 % of a cell to the right: a third of it lies in the next box
    crop, bounds, rows = _strip([(hx[picks[0]], 0, 0), (hx[picks[1]], 0, 0), (hx[picks[2]], 0.4, 0), (None, 0, 0)])
    res = read_strip(crop, bounds, rows, model)
    assert [r.best for r in res[:3]] == ["2", "0", "3"]
    assert res[3].empty  # the overrun belongs to the third cell, not the empty fourth


def test_strip_ignores_a_digit_rewritten_above_the_comb(heldout, model) -> None:
    from ocr.digits import read_strip

    hx, hy = heldout
    seven = int(np.flatnonzero(hy == 7)[3])
    crop, bounds, rows = _strip([(hx[seven], 0, -0.62), (None, 0, 0)])
    res = read_strip(crop, bounds, rows, model)
    assert res[0].empty and res[1].empty


def test_strip_follows_the_printed_lines_of_a_page_aligned_off(heldout, model) -> None:
    from ocr.digits import read_strip

    hx, hy = heldout
    rng = np.random.default_rng(8)
    right = total = 0
    for _ in range(20):
        picks = rng.choice(len(hx), 6, replace=False)
        crop, bounds, rows = _strip([(hx[i], float(rng.uniform(-0.3, 0.3)), 0.0) for i in picks])
        # the page sits 1.5 mm (12 px at 200 dpi) right of where the layout expects it
        res = read_strip(crop, [(a + 14, b + 14) for a, b in bounds], rows, model)
        right += sum(r.best == CLASSES[hy[i]] for r, i in zip(res, picks, strict=True))
        total += len(picks)
    assert right / total >= 0.95


def test_fast_percentile_is_numpys_to_the_bit() -> None:
    from ocr.digits import fast_percentile

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 100, 353, 1000, 60_001):
        u8 = rng.integers(0, 256, n).astype(np.uint8)
        if n > 50:
            u8[: n // 3] = 250  # ties, as paper makes them
        g = u8.astype(np.float32)
        dark = np.clip((200.0 - g) / np.float32(200.0), 0.0, 1.0)
        for q in (0, 50, 80, 90, 99.5, 99.8, 100):
            assert fast_percentile(g, q, u8) == float(np.percentile(g, q))
            assert fast_percentile(g, q) == float(np.percentile(g, q))
            assert fast_percentile(dark, q) == float(np.percentile(dark, q))
    assert fast_percentile(np.zeros((5, 3), np.float32) + 3, 80) == 3.0
