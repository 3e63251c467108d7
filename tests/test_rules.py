"""Domain rules on FormFacts: each rule, and that doubt sends a form to review, not to rejection."""

from dataclasses import replace
from datetime import date

import pytest

from formstation import idnumber
from ocr.rules import FormFacts, Reading, RuleConfig, decide

CFG = RuleConfig(campaign_date=date(2026, 9, 1))
CHILD = idnumber.make("450481", date(2016, 5, 4), 123)  # 10 years old
TEEN = idnumber.make("450481", date(2009, 5, 4), 124)  # 17
TODDLER = idnumber.make("450481", date(2021, 5, 4), 125)  # 5
PARENT = idnumber.make("450481", date(1985, 1, 2), 201)


def R(v, c=0.99, s="read"):
    return Reading(v, c, s)


def facts(pid=CHILD, **over) -> FormFacts:
    base = {
        "corrected_name": R(""), "corrected_id": R(""), "phone": R("13800138000"), "photo": R("pasted"),
        "photo_face": R("yes"), "photo_background": R("light"), "photo_color": R("color"),
        "id_copy": R("absent"), "applicant_signature": R("absent"), "guardian_id": R(PARENT),
        "guardian_phone": R("13900139000"), "guardian_relation": R("mother"), "guardian_signature": R("present"),
    }
    base.update(over)
    return FormFacts("F1", "王小明", pid, False, {k: v for k, v in base.items() if v is not None})


def codes(f):
    status, found = decide(f, CFG)
    return status, sorted({x.code for x in found})


def test_complete_child_form_accepted():
    assert codes(facts()) == ("accepted", [])


@pytest.mark.parametrize("over,code", [
    ({"phone": R("")}, "PHONE_MISSING"),
    ({"phone": R("12345678901")}, "PHONE_INVALID"),
    ({"guardian_id": R("")}, "GUARDIAN_ID_MISSING"),
    ({"guardian_id": R(PARENT[:17] + ("0" if PARENT[17] != "0" else "1"))}, "GUARDIAN_ID_INVALID"),
    ({"guardian_id": R(CHILD)}, "GUARDIAN_IS_APPLICANT"),
    ({"guardian_id": R(TEEN)}, "GUARDIAN_NOT_ADULT"),
    ({"guardian_phone": R("")}, "GUARDIAN_PHONE_MISSING"),
    ({"guardian_relation": R("")}, "GUARDIAN_RELATION_MISSING"),
    ({"guardian_signature": R("absent")}, "GUARDIAN_SIGNATURE_MISSING"),
    ({"photo": R("absent")}, "PHOTO_MISSING"),
    ({"photo_background": R("dark")}, "PHOTO_NOT_LIGHT_BG"),
    ({"photo_color": R("grayscale")}, "PHOTO_GRAYSCALE"),
    ({"corrected_id": R(idnumber.make("450481", date(2016, 5, 4), 127))}, "CORRECTION_WITHOUT_COPY"),
])
def test_each_rule_rejects_on_confident_evidence(over, code):
    status, found = codes(facts(**over))
    assert status == "rejected" and code in found


def test_same_rule_on_doubtful_reading_goes_to_review():
    status, found = codes(facts(guardian_signature=R("absent", 0.6)))
    assert status == "review" and "GUARDIAN_SIGNATURE_MISSING" in found and "LOW_CONFIDENCE" in found


def test_age_rules():
    teen = facts(TEEN, applicant_signature=R("present"), guardian_id=R(""), guardian_phone=R(""),
                 guardian_relation=R(""), guardian_signature=R("absent"))
    assert codes(teen) == ("accepted", [])
    assert codes(replace(teen, readings={**teen.readings, "applicant_signature": R("absent")}))[1] == ["SIGNATURE_MISSING"]
    toddler = facts(TODDLER, photo=R("absent"))
    assert codes(toddler) == ("accepted", [])


def test_corrections_and_class_and_batch_rules():
    fixed = idnumber.make("450481", date(2016, 5, 4), 127)
    ok = facts(corrected_id=R(fixed), id_copy=R("present"), id_copy_number=R(fixed))
    assert codes(ok) == ("accepted", [])
    bad = facts(corrected_id=R(fixed[:17] + ("0" if fixed[17] != "0" else "1")), id_copy=R("present"))
    assert "CORRECTED_ID_INVALID" in codes(bad)[1]
    mism = facts(corrected_id=R(fixed), id_copy=R("present"), id_copy_number=R(CHILD))
    assert codes(mism) == ("review", ["ID_COPY_MISMATCH"])
    named = facts(corrected_name=R("王小敏", 0.4), id_copy=R("present"))
    assert codes(named)[0] == "review" and "NAME_CORRECTED" in codes(named)[1]
    assert codes(replace(facts(), phone_shared_by_class=True)) == ("rejected", ["PHONE_SHARED_BY_CLASS"])
    assert codes(replace(facts(), duplicate_id=True)) == ("review", ["DUPLICATE_ID"])
    assert codes(replace(facts(), form_pages=2)) == ("review", ["DUPLICATE_SCAN"])
    assert codes(replace(facts(), printed_name="王小堃")) == ("review", ["RARE_CHARACTER"])
    acked = facts(review_ack=R("RARE_CHARACTER", 1.0, "reviewer"))
    assert codes(replace(acked, printed_name="王小堃")) == ("accepted", [])


def test_unread_fields_send_the_form_to_review():
    f = facts()
    f = replace(f, readings={k: v for k, v in f.readings.items() if k not in ("phone", "guardian_signature")})
    status, found = decide(f, CFG)
    assert status == "review"
    assert {(x.code, x.field) for x in found} >= {("LOW_CONFIDENCE", "phone"), ("LOW_CONFIDENCE", "guardian_signature")}


def test_reviewer_values_are_never_low_confidence():
    f = facts(phone=R("13800138000", 1.0, "reviewer"), guardian_relation=R("father", 0.2))
    assert codes(f) == ("review", ["LOW_CONFIDENCE"])
    status, found = decide(f, CFG)
    assert [x.field for x in found] == ["guardian_relation"]


def test_a_reject_never_rests_on_a_doubtful_reading_it_depends_on():
    # a speck read as a one-digit correction (confidence 0) with no copy pasted: review, not reject
    speck = facts(corrected_id=R("5", 0.0))
    status, found = codes(speck)
    assert status == "review" and "CORRECTION_WITHOUT_COPY" in found
    # the same correction read confidently: the missing copy rejects the form
    fixed = idnumber.make("450481", date(2016, 5, 4), 127)
    assert codes(facts(corrected_id=R(fixed)))[0] == "rejected"
    # a doubtful corrected ID that makes the applicant a teenager: the guardian rules it removes and
    # the signature rule it adds rest on that reading, so the form goes to review
    teen_fix = facts(corrected_id=R(TEEN, 0.3), id_copy=R("present"), id_copy_number=R("", 0.0))
    status, found = codes(teen_fix)
    assert status == "review" and "SIGNATURE_MISSING" in found
    # ... unless the number printed on the pasted copy reads the same: then the evidence is sure
    assert codes(facts(corrected_id=R(TEEN, 0.3), id_copy=R("present"), id_copy_number=R(TEEN)))[0] == "rejected"


def test_a_partial_correction_is_no_duplicate_id():
    from ocr.rules import _id_for_duplicates

    assert _id_for_duplicates("5", CHILD) == CHILD
    assert _id_for_duplicates(TEEN, CHILD) == TEEN
    assert _id_for_duplicates("", CHILD) == CHILD


def test_a_class_wide_number_is_rejected_only_on_confident_readings():
    from ocr.rules import _class_sharing

    n = "13812345678"
    assert _class_sharing([R(n), R(n), R(n), R(n)], 0.9) == (True, False)
    # one reading a digit away and doubtful: still the class number, and three forms carry it surely
    assert _class_sharing([R(n), R(n), R(n), R("13812345670", 0.3)], 0.9) == (True, False)
    # only two confident carriers: a doubt for a reviewer, not a rejection
    assert _class_sharing([R(n), R(n), R(n, 0.4), R("13812345670", 0.3)], 0.9) == (False, True)
    # a family may share a number: another confident number in the class clears it
    assert _class_sharing([R(n), R(n), R(n), R("13998765432")], 0.9) == (False, False)
    # a doubtful reading that lost a box says nothing of which number was written: it does not
    # hide the pattern (before, one such reading let a class of 39 sharing one number through)
    assert _class_sharing([R(n), R(n), R(n), R(n[:2] + n[3:], 0.0)], 0.9) == (True, False)
    assert _class_sharing([R(n), R(n), R(n), R(n[:2] + n[3:], 0.95)], 0.9) == (False, False)  # read sure
    assert _class_sharing([R(n), R(n)], 0.9) == (False, False)
    # a phone left blank, or on a page not read (no reading: a blank one), is no other number;
    # three blanks beside two carriers are still two carriers
    assert _class_sharing([R(n), R(n), R(n), R(""), R("", 1.0)], 0.9) == (True, False)
    assert _class_sharing([R(n), R(n), R(""), R(""), R("")], 0.9) == (False, False)
    suspected = replace(facts(), phone_shared_suspected=True)
    assert codes(suspected) == ("review", ["PHONE_SHARED_BY_CLASS"])
    cleared = replace(facts(review_ack=R("PHONE_SHARED_BY_CLASS", 1.0, "reviewer")), phone_shared_suspected=True)
    assert codes(cleared) == ("accepted", [])


def test_a_photo_scanned_in_grey_waits_for_a_colour_rescan():
    """The card needs a colour photo: a pasted photo from a grey scan holds the form until the page
    is scanned again in colour, whatever else would need review; a confident rejection still goes
    back to the school; no photo needed (under 6) or none pasted: nothing to rescan."""
    grey = {"photo_scan": R("gray", 1.0), "photo_color": R("unknown", 0.0)}
    status, found = codes(facts(**grey))
    assert (status, found) == ("rescan", ["PHOTO_SCANNED_IN_GREY"])  # not a doubt on photo_color
    assert codes(facts(**grey, phone=R("13800138000", 0.5)))[0] == "rescan"
    assert codes(facts(**grey, guardian_signature=R("absent")))[0] == "rejected"
    assert codes(facts(**grey, photo_background=R("dark")))[0] == "rejected"  # a grey scan shows that
    assert codes(facts(TODDLER, **grey)) == ("accepted", [])
    assert codes(facts(**grey, photo=R("absent")))[0] == "rejected"  # PHOTO_MISSING, as before
    assert codes(facts(photo_scan=R("color", 1.0))) == ("accepted", [])


def test_a_second_scan_is_a_duplicate_unless_it_was_the_rescan_asked_for():
    two = replace(facts(), form_pages=2)
    assert codes(two) == ("review", ["DUPLICATE_SCAN"])
    asked = replace(two, readings={**two.readings, "review_ack": R("DUPLICATE_SCAN@2", 1.0, "station")})
    assert codes(asked) == ("accepted", [])
    assert codes(replace(asked, form_pages=3)) == ("review", ["DUPLICATE_SCAN"])  # one more nobody asked for
    seen = replace(two, form_pages=3, readings={**two.readings, "review_ack": R("DUPLICATE_SCAN", 1.0, "reviewer")})
    assert codes(seen) == ("accepted", [])


def test_a_reviewers_value_read_differently_by_a_later_scan_goes_back_to_a_reviewer():
    kept = replace(facts(), readings={**facts().readings, "phone": Reading("13912345678", 1.0, "reviewer", "")})
    status, found = decide(kept, RuleConfig())
    assert status == "review" and [(x.code, x.field, x.detail) for x in found] == [
        ("SCANS_DIFFER", "phone", "later scan: (empty)")]
    other = replace(facts(), readings={**facts().readings, "phone": Reading("13912345678", 1.0, "reviewer", "13912345670")})
    assert [x.detail for x in decide(other, RuleConfig())[1]] == ["later scan: 1391***5670"]
    settled = replace(facts(), readings={**facts().readings, "phone": Reading("13912345678", 1.0, "reviewer")})
    assert codes(settled) == ("accepted", [])


def test_sure_numbers_on_unusual_handwriting_go_to_a_reviewer():
    """Most boxes of the form doubtful: the writer is unlike those the reader was measured on, so its
    sure readings are not to be trusted alone; nor is a rejection resting on them."""
    unusual = {"writing_doubt": R("20/40", 1.0)}
    status, found = decide(facts(**unusual), CFG)
    assert status == "review"
    assert {(x.code, x.field, x.detail) for x in found} == {
        ("UNUSUAL_HANDWRITING", n, "20 of 40 boxes doubtful") for n in ("phone", "guardian_id", "guardian_phone")}
    assert codes(facts(writing_doubt=R("8/40", 1.0))) == ("accepted", [])  # as on most measured forms
    assert codes(facts(writing_doubt=R("6/10", 1.0))) == ("accepted", [])  # too few boxes to tell
    bad_id = PARENT[:17] + ("0" if PARENT[17] != "0" else "1")
    assert codes(facts(guardian_id=R(bad_id), **unusual)) == ("review", ["GUARDIAN_ID_INVALID", "UNUSUAL_HANDWRITING"])
    assert codes(facts(guardian_id=R(bad_id)))[0] == "rejected"
    reviewed = facts(**unusual, phone=R("13800138000", 1.0, "reviewer"), guardian_id=R(PARENT, 1.0, "reviewer"),
                     guardian_phone=R("13900139000", 1.0, "reviewer"))
    assert codes(reviewed) == ("accepted", [])
    loose = RuleConfig(unusual_writing_share=0.6)
    assert decide(facts(**unusual), loose)[0] == "accepted"


def test_sure_numbers_of_a_class_written_unlike_the_measured_writers_go_to_a_reviewer():
    """A form holding one phone has 11 boxes, too few to tell its writer from the measured ones; its
    class's forms pooled tell: a class whose boxes are doubtful twice as often as any class of the
    writers the thresholds were picked on sends even a sure number to a reviewer."""
    from dataclasses import replace as with_

    few = facts(writing_doubt=R("0/11", 1.0))
    assert codes(few) == ("accepted", [])
    odd_class = with_(few, class_doubt=(87, 300))  # 29 %: a class of writers who print their digits
    status, found = decide(odd_class, CFG)
    assert status == "review" and {x.code for x in found} == {"UNUSUAL_HANDWRITING"}
    assert all(x.detail == "class: 87 of 300 boxes doubtful" for x in found)
    assert codes(with_(few, class_doubt=(30, 300))) == ("accepted", [])  # 10 %: as the measured writers' classes
    assert codes(with_(few, class_doubt=(60, 150))) == ("accepted", [])  # too few boxes in the class yet
    assert decide(odd_class, RuleConfig(unusual_class_share=0.3))[0] == "accepted"


def test_a_doubtful_corrected_id_that_the_pasted_copy_confirms_needs_no_reviewer():
    fixed = idnumber.make("450481", date(2014, 6, 1), 33)
    base = {"corrected_id": R(fixed, 0.6), "id_copy": R("present"), "id_copy_number": R(fixed, 0.9)}
    assert codes(facts(**base)) == ("accepted", [])
    other = idnumber.make("450481", date(2014, 6, 1), 35)
    assert codes(facts(**{**base, "id_copy_number": R(other, 0.9)})) == ("review", ["ID_COPY_MISMATCH", "LOW_CONFIDENCE"])
    assert codes(facts(**{**base, "id_copy_number": R(fixed, 0.5)})) == ("review", ["LOW_CONFIDENCE"])  # copy unsure
    bad = fixed[:17] + ("0" if fixed[17] != "0" else "1")  # both read alike, but no valid number
    assert codes(facts(**{**base, "corrected_id": R(bad, 0.6), "id_copy_number": R(bad, 0.9)}))[0] == "review"
