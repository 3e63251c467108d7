"""Constraint decoding: a misread digit is repaired by the check character, doubt lowers confidence."""

import numpy as np

from formstation import idnumber
from formstation.idnumber import birth_date
from ocr.decode import CLASSES, decode_id, decode_phone


def _torn(read: dict[str, float], rest: float) -> np.ndarray:
    """One box's probabilities: the characters of `read` at theirs, every other character at `rest`."""
    p = np.full(11, rest)
    for c, v in read.items():
        p[CLASSES.index(c)] = v
    return p


def _probs(s: str, sure: float = 0.97) -> list[np.ndarray]:
    return [_torn({c: sure}, (1 - sure) / 10) for c in s]


def test_valid_id_read_cleanly_is_confident():
    idn = "45048120080327062X"
    d = decode_id(_probs(idn))
    assert d.value == idn and d.valid and d.confidence > 0.9


def test_one_ambiguous_digit_resolved_by_check_character():
    idn = "45048120080327062X"
    probs = _probs(idn)
    # cell 15 looks like a 2 (wrong) a bit more than a 6 (right)
    probs[14] = _torn({"2": 0.50, "6": 0.41}, 0.01)
    d = decode_id(probs)
    assert d.raw[14] == "2"
    assert d.value == idn and d.valid
    assert d.confidence < 0.9  # it had to move away from the raw reading


def test_unrepairable_id_has_low_confidence():
    probs = _probs("450481200803270621")  # check char wrong, every cell sure: the parent's typo
    d = decode_id(probs)
    assert idnumber.is_valid(d.value)
    assert d.confidence < 0.5


def test_a_likely_misread_is_repaired_surely_an_unlikely_one_is_not():
    idn = "450481198003270621"
    assert idnumber.is_valid(idn)
    probs = _probs(idn, 0.99)
    probs[6] = _torn({"7": 0.62, "1": 0.33}, 0.005)  # a '1' with a flag
    d = decode_id(probs)
    assert d.raw[6] == "7" and d.value == idn and d.confidence > 0.98
    probs[6][CLASSES.index("7")], probs[6][CLASSES.index("1")] = 0.94, 0.01  # a clear '7': a typo?
    d = decode_id(probs)
    assert d.value == idn and d.confidence < 0.9


def test_a_sure_misread_beside_a_torn_box_is_not_repaired_surely():
    """A guardian's ID from a harsh scan: box 15 a 1 read as 7 at 0.993, box 17 the right 5 torn
    with a 3. The check character fails as read, and a 3 in box 17 makes it pass: the search
    "repairs" the right box and keeps the misread one. Every box might be misread (`BOX_FLOOR`),
    so that valid number is one of many one sure box and the torn one away, and goes to a
    reviewer (0.9912 without the floor, the guardian ID's threshold being 0.99)."""
    truth, repaired = "31011319720525105X", "31011319720525703X"
    assert idnumber.is_valid(truth) and idnumber.is_valid(repaired)
    probs = _probs(truth, 0.999)
    probs[14] = _torn({"7": 0.993, "1": 0.006}, 0.0001)
    probs[16] = _torn({"5": 0.6, "3": 0.383}, 0.002)
    d = decode_id(probs)
    assert d.raw[14] == "7" and d.raw[16] == "5"
    assert d.value == repaired and d.confidence < 0.99
    probs[16] = _probs(truth, 0.999)[16]  # box 17 sure too: the check repairs the misread box,
    d = decode_id(probs)  # against a reading of 0.993, so a reviewer still sees it
    assert d.value == truth and d.confidence < 0.9


def test_partial_and_empty_fields():
    probs = _probs("45048120080327062X")
    probs[5] = None
    assert decode_id(probs).confidence == 0.0
    assert decode_id([None] * 18).value == "" and decode_id([None] * 18).confidence == 1.0


def test_phone_pattern():
    d = decode_phone(_probs("13812345678"))
    assert d.value == "13812345678" and d.confidence > 0.7
    probs = _probs("13812345678")
    probs[1] = _torn({"1": 0.6, "8": 0.3}, 0.01)  # '1' is not allowed in the second cell
    d = decode_phone(probs)
    assert d.value == "18812345678" and d.confidence < 0.9  # a reviewer looks


def test_phone_written_twice_is_read_from_both_renderings():
    from ocr.decode import decode_phone_pair

    number = "13812345678"
    a, b = _probs(number, 0.996), _probs(number, 0.996)
    alone = decode_phone(a)
    joint = decode_phone_pair(a, b)
    assert alone.value == number and alone.confidence < 0.98  # eleven cells at 0.996 each
    assert joint is not None and joint.value == number and joint.confidence > 0.98
    # one hand misreads alike twice: two renderings are not two independent readers
    doubtful = decode_phone_pair(_probs(number, 0.95), _probs(number, 0.95))
    assert doubtful is not None and doubtful.confidence < 0.9
    # one rendering misleading at a cell the other reads surely: the sure one wins, with doubt
    clean = joint.confidence
    a[6] = _torn({"1": 0.55, "4": 0.29}, 0.02)  # '4' written, looks like a '1'
    b[6] = _probs("4", 0.97)[0]
    joint = decode_phone_pair(a, b)
    assert decode_phone(a).value != number
    assert joint is not None and joint.value == number and joint.confidence < clean


def test_two_different_phones_are_not_merged():
    from ocr.decode import decode_phone_pair

    # the family wrote two numbers that differ in one digit, both read surely: two numbers
    assert decode_phone_pair(_probs("13812345678"), _probs("13812345679")) is None
    assert decode_phone_pair(_probs("13812345678"), _probs("15912345670")) is None
    empty = _probs("13812345678")
    empty[3] = None
    assert decode_phone_pair(empty, _probs("13812345678")) is None


def _phone_readings(values: dict[str, str], sure: float):
    from forms.layout import load_layout
    from ocr.read import _paired_phones, doubt_marks
    from ocr.types import FieldReading

    layout = load_layout()
    cells = {n: _probs(v, sure) for n, v in values.items()}
    readings = []
    for n, probs in cells.items():
        d = decode_phone(probs)
        readings.append(FieldReading(n, d.value, round(d.confidence, 4), (0, 0, 1, 1),
                                     detail={"doubt": doubt_marks(layout.zone(n), d.value, probs)}))
    return {r.name: r for r in _paired_phones(readings, cells, layout)}


def test_two_phones_one_box_apart_go_to_a_reviewer_with_the_box_framed():
    from ocr.read import ONE_BOX_APART_CONFIDENCE

    # the parent wrote one number twice, and one box of one rendering reads surely as another digit
    # (a flagged 1 read as 7): two numbers one digit apart, which one is right the reader cannot tell
    got = _phone_readings({"phone": "13812345678", "guardian_phone": "13812375678"}, 0.9995)
    for name, other in (("phone", "7"), ("guardian_phone", "4")):
        r = got[name]
        assert r.confidence <= ONE_BOX_APART_CONFIDENCE < 0.9  # under every threshold: a reviewer looks
        assert r.detail["one_box_apart"] == ({"phone", "guardian_phone"} - {name}).pop()
        marked = [d for d in r.detail["doubt"] if "other" in d]
        assert [(d["i"], d["other"]) for d in marked] == [(6, other)] and marked[0]["box"]
    # alone, each would have passed the phone threshold: the rule is what holds them
    assert min(decode_phone(_probs(v, 0.9995)).confidence for v in ("13812345678", "13812375678")) > 0.99
    # two numbers apart in more boxes are a family's two numbers: each keeps its own confidence
    apart = _phone_readings({"phone": "13812345678", "guardian_phone": "15912345670"}, 0.9995)
    assert all(r.confidence > 0.99 and "one_box_apart" not in r.detail for r in apart.values())
    # one number read alike in both: read from both, surer, nothing framed
    same = _phone_readings({"phone": "13812345678", "guardian_phone": "13812345678"}, 0.9995)
    assert all(r.value == "13812345678" and r.confidence > 0.99 and not r.detail["doubt"] for r in same.values())


def test_a_guardian_id_on_two_forms_is_read_from_both_unless_a_box_differs_surely():
    from ocr.decode import decode_id_pair
    from ocr.read import check_decided

    idn = "450481198003270621"
    assert idnumber.is_valid(idn)
    a, b = _probs(idn, 0.995), _probs(idn, 0.995)
    a[5] = _torn({"1": 0.52, "7": 0.39}, 0.01)
    a[11] = _torn({"3": 0.5, "8": 0.41}, 0.01)
    alone = decode_id(a)
    got = decode_id_pair(a, b)
    assert got is not None
    joint, cells = got
    # alone, two torn boxes rest on one check character: a reviewer's (ocr.read.check_decided)
    assert alone.value == idn and check_decided(alone.value, a)
    assert joint.value == idn and joint.confidence > 0.99 and not check_decided(joint.value, cells)
    # the guardian wrote one box otherwise on the other form (both read surely): two strings, and
    # the check character must not choose between them
    b2 = _probs(idn, 0.999)
    b2[12] = _probs("9", 0.999)[0]
    assert decode_id_pair(_probs(idn, 0.999), b2) is None
    assert decode_id_pair(a[:17], b[:17]) is None


def test_ids_keep_to_provinces_and_living_guardians():
    # a misread that makes a check-valid ID born in 1911 or in a province that does not exist
    # loses to the repair that gives a real one
    idn = "450481199111142496"
    assert idnumber.is_valid(idn)
    probs = _probs(idn, 0.98)
    probs[8] = _torn({"1": 0.6, "9": 0.31}, 0.01)
    probs[15] = _torn({"9": 0.6, "4": 0.31}, 0.01)
    d = decode_id(probs)
    assert birth_date(d.value).year >= 1920 and d.value == idn
    assert decode_id(_probs("960481199111142496")).value[:2] != "96"


def test_doubted_boxes_are_the_unsure_moved_and_empty_ones():
    from ocr.decode import allowed_at, cell_doubts

    phone = "13912345678"
    probs = _probs(phone, sure=0.999)
    probs[4] = _torn({"1": 0.55, "7": 0.37}, 0.01)  # a 1 that could be a 7
    d = decode_phone(probs)
    marks = cell_doubts(d.value, probs, allowed_at("mobile_cn", "0123456789"))
    assert [(m["i"], m["read"], m["alt"]) for m in marks] == [(4, "1", "7")]
    assert abs(marks[0]["p"] - 0.55) < 0.01  # its share among the digits

    probs[9] = None  # a box left empty: the reviewer is pointed at it too
    marks = cell_doubts(decode_phone(probs).value, probs, allowed_at("mobile_cn", "0123456789"))
    assert [(m["i"], m["read"]) for m in marks] == [(4, "1"), (9, "")]

    idn = "45048120080327062X"
    probs = _probs(idn, sure=0.999)
    probs[15] = _torn({"2": 0.52, "6": 0.43}, 0.005)  # the check character moves this box from 2 to 6
    d = decode_id(probs)
    marks = cell_doubts(d.value, probs, allowed_at("id_gb11643", "0123456789X"))
    assert d.value == idn and [(m["i"], m["read"], m["alt"]) for m in marks] == [(15, "6", "2")]
    assert cell_doubts(idn, _probs(idn, sure=0.999), allowed_at("id_gb11643", "0123456789X")) == []


def test_a_box_the_constraint_moved_is_listed_even_where_one_character_is_allowed():
    """The phone's first box may only be 1: a clear 0 there is made 1 by the pattern, its share
    among the allowed characters is 1, and still the reviewer is pointed at it (raw 0)."""
    from ocr.decode import allowed_at, cell_doubts

    probs = _probs("03912345678", sure=0.999)  # the parent (or the reader) wrote 0 first
    d = decode_phone(probs)
    assert d.value == "13912345678" and d.raw[0] == "0"
    marks = cell_doubts(d.value, probs, allowed_at(11, "0123456789"))
    assert [(m["i"], m["read"], m["raw"]) for m in marks] == [(0, "1", "0")]
    # a box the constraint left alone carries no "raw", and a sure unmoved number lists nothing
    probs[4] = _torn({"1": 0.55, "7": 0.37}, 0.01)
    marks = cell_doubts(decode_phone(probs).value, probs, allowed_at(11, "0123456789"))
    assert [(m["i"], "raw" in m) for m in marks] == [(0, True), (4, False)]
    phone = "13912345678"
    assert cell_doubts(phone, _probs(phone, sure=0.999), allowed_at(11, "0123456789")) == []
    # an ID box read X where only digits are allowed, made a digit: listed with its raw X
    idn = "45048120080327062X"
    probs = _probs(idn, sure=0.999)
    probs[3] = _torn({"X": 0.9, "4": 0.0999}, 0.0001)
    d = decode_id(probs)
    marks = cell_doubts(d.value, probs, allowed_at(18, "0123456789X"))
    assert d.value == idn and [(m["i"], m["read"], m["raw"]) for m in marks] == [(3, "4", "X")]


def test_the_id_number_on_a_copy_is_picked_out_of_the_text_read():
    """What RapidOCR reads off a pasted ID copy, joined: the 18 characters of the number, even when
    a neighbouring character was read as one more digit, and even when the copy's number itself
    has a wrong check digit (the rules compare it with the corrected ID)."""
    from ocr.read import copy_id_number

    assert copy_id_number("姓名李光艳公民身份号码45048120080327062X") == "45048120080327062X"
    assert copy_id_number("公民身份号码345048120080327062X") == "45048120080327062X"  # '码' read as 3
    assert copy_id_number("出生2021年1月31日公民身份号码3310113202101318546") == "310113202101318546"
    assert copy_id_number("住址广西梧州市长洲区新兴二路") == ""


def test_an_id_whose_check_digit_decided_a_box_the_reader_doubts_goes_to_review():
    """One torn box, every other box sure: the check character settles it and the ID keeps its
    confidence. A box the search decided against what the reader saw there (a parent's invalid
    number turned into another valid one), or two doubtful boxes (one check character cannot vouch
    for two), send the field to a reviewer."""
    from ocr.read import check_decided

    idn = "45048120080327062X"
    probs = _probs(idn, 0.999)
    assert not check_decided(idn, probs)
    probs[15] = _torn({"6": 0.36, "5": 0.55}, 0.01)
    d = decode_id(probs)
    assert d.value == idn  # the check character moved the torn box back to 6 ...
    assert d.confidence > 0.99 and not check_decided(d.value, probs)  # ... and may be trusted to
    probs[15][CLASSES.index("6")], probs[15][CLASSES.index("5")] = 0.04, 0.87
    d = decode_id(probs)
    assert d.value == idn  # the reader saw a 5: the search overruled it ...
    assert check_decided(d.value, probs)  # ... a reviewer looks
    probs[15][CLASSES.index("6")], probs[15][CLASSES.index("5")] = 0.36, 0.55
    probs[3] = _torn({"4": 0.67, "1": 0.24}, 0.01)
    d = decode_id(probs)
    assert d.value == idn  # the same number, but with a second doubtful box ...
    assert check_decided(d.value, probs)  # ... it rests on more than one check character carries
    assert not check_decided(idn[:-1], probs)  # a partial reading (confidence 0 anyway)


def test_id_beam_keeps_what_a_heap_over_every_extension_kept():
    """The vectorised beam is the list-and-heap one it replaced, ties and order included."""
    import heapq
    import math

    from formstation.idnumber import WEIGHTS
    from ocr import decode

    def heap_beam(probs):
        beam = [(0.0, "", 0)]
        for pos in range(17):
            cands = [(clp, c, int(c) * WEIGHTS[pos]) for clp, c in decode._id_candidates(probs[pos], pos)]
            nxt = [(lp + clp, s + c, (m + w) % 11) for lp, s, m in beam for clp, c, w in cands]
            beam = heapq.nlargest(decode.BEAM, nxt, key=lambda t: t[0])
        return [(lp + math.log(max(float(probs[17][CLASSES.index("10X98765432"[m])]), decode.EPS)), s + "10X98765432"[m])
                for lp, s, m in beam]

    rng = np.random.default_rng(3)
    for trial in range(6):
        probs = [rng.dirichlet(np.full(11, 0.3 if trial % 2 else 3.0)) for _ in range(18)]
        if trial == 5:  # exact ties between candidates
            probs = [np.round(p, 1) + 1e-3 for p in probs]
        assert decode._id_beam(probs) == heap_beam(probs)
