"""The scan simulator (`formstation simulate`). This module stays light: the CLI reads its names
without loading the simulator's image libraries."""

# whose digits a simulated parent writes: "heldout" (the default, for every measurement) the MNIST
# block the digit reader never trains on; "train" / "val" the reader's training and validation
# writers (`training.train_digits.make_split`), for making page-style training and calibration cells;
# "calib" the 60k set's held-out block (`training.digitdata.BLOCK_HELDOUT`: never trained on, other
# digits than "heldout"'s), for picking the confidence thresholds apart from every measurement;
# "other" and "print" writers unlike any the reader learned from (scikit-learn's load_digits; digits
# printed like type, `digitsets.print_writers`), for checking that its confidence carries over
WRITERS = ("heldout", "train", "val", "other", "calib", "print")


def glyph_half(form_id: str) -> int:
    """Which half of its pool's digit images a form's parent writes with, when a simulation splits
    them (`formstation simulate --glyph-halves`): 0 or 1 by a hash of the form id. A pool holds a
    fixed set of images (the `heldout` pool 100 per class), so a campaign of 1,000 forms writes
    each of them some 30 times; a reader that learned from reviewed forms of half 0 is measured
    on half 1's forms, whose digit images it never saw (bench/adapt.py --glyph-halves)."""
    import zlib

    return zlib.crc32(form_id.encode("utf-8")) % 2


def glyph_group(form_id: str) -> tuple[int, int]:
    """(start, step) of the digit images a form writes with under `--glyph-halves`: half 1's forms
    every other image from the second; half 0's forms a third of the rest, the one of the part the
    learning gate puts the form in (`ocr.adapt.part_of`: training, calibration, hold-out), so the
    gate's hold-out and calibration forms show it no image its training forms did, as forms of
    different parents would not."""
    if glyph_half(form_id):
        return 1, 2
    from ocr.adapt import PARTS, part_of

    return 2 * [name for name, _ in PARTS].index(part_of(form_id)), 6
