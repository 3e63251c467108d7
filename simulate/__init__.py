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
    """Which half of its pool's glyphs a form's parent writes with, when a simulation splits them
    (`formstation simulate --glyph-halves`): 0 or 1 by a hash of the form id. A pool holds a
    fixed set of digit images (the `heldout` pool 100 per class), so a campaign of 1,000 forms
    writes each of them some 30 times; a reader that learned from reviewed forms of one half is
    measured on the other's forms, whose digit images it never saw (bench/adapt.py)."""
    import zlib

    return zlib.crc32(form_id.encode("utf-8")) % 2
