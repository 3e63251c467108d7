"""English beside the reason codes' Chinese (ocr.reasons), for the reviewer's messages. No I/O."""

from __future__ import annotations

from ocr.reasons import REASONS

EN = {
    "PHONE_MISSING": "no contact phone written",
    "PHONE_INVALID": "the phone is not a valid mobile number",
    "PHONE_SHARED_BY_CLASS": "the whole class wrote one phone number",
    "PHOTO_MISSING": "no photo pasted (6 or older, none printed)",
    "PHOTO_NOT_LIGHT_BG": "the photo's background is not white",
    "PHOTO_GRAYSCALE": "the photo is a black-and-white copy",
    "PHOTO_NO_FACE": "no face seen in the photo",
    "SIGNATURE_MISSING": "the applicant did not sign",
    "GUARDIAN_ID_MISSING": "under 16: no guardian ID number",
    "GUARDIAN_ID_INVALID": "the guardian's ID number is not valid",
    "GUARDIAN_NOT_ADULT": "the guardian is under 18",
    "GUARDIAN_IS_APPLICANT": "the guardian's ID is the applicant's",
    "GUARDIAN_PHONE_MISSING": "under 16: no guardian phone",
    "GUARDIAN_PHONE_INVALID": "the guardian's phone is not a valid mobile number",
    "GUARDIAN_RELATION_MISSING": "no relationship ticked",
    "GUARDIAN_SIGNATURE_MISSING": "under 16: the guardian did not sign",
    "CORRECTION_WITHOUT_COPY": "name or ID corrected without a pasted ID copy",
    "CORRECTED_ID_INVALID": "the corrected ID number is not valid",
    "ID_COPY_MISMATCH": "the ID copy shows another number than the corrected one",
    "NAME_CORRECTED": "name corrected: check it",
    "DUPLICATE_ID": "the ID number is on another form of the batch too",
    "RARE_CHARACTER": "the name has a rare character (outside GB 2312): submitted separately",
    "LOW_CONFIDENCE": "read with low confidence",
    "UNUSUAL_HANDWRITING": "unusual handwriting: numbers need a person",
    "ALIGNMENT_POOR": "the page aligned poorly",
    "DUPLICATE_SCAN": "the form was scanned more than once",
    "SCANS_DIFFER": "a later scan reads the reviewer's value differently",
    "NOT_IN_ROSTER": "the form is not in the roster",
    "REOPENED": "a decided form reopened for a second review",
    "PHOTO_SCANNED_IN_GREY": "photo page scanned in grey: scan it again in colour",
    "REVIEWER_REJECTED": "rejected by a reviewer",
    "NO_PS_PHOTO": "no public-security photo",
    "PHOTO_QUALITY": "photo quality problem",
    "HAS_FINANCIAL_CARD": "already holds a financial card",
    "AGE_LIMIT": "age limit",
}
OUTCOME = {"accepted": "accepted: it goes into the card data file",
           "rejected": "rejected: it goes back to the school",
           "review": "still in review",
           "rescan": "waits for a colour rescan"}


def reason_line(code: str) -> str:
    """'CODE 中文 (English)'."""
    zh = REASONS[code].zh if code in REASONS else ""
    return f"{code} {zh} ({EN.get(code, code.lower())})"


def outcome(form_id: str, status: str, codes: list[str]) -> str:
    """What a save did to the form, and why: the reasons once each, in their order."""
    seen = list(dict.fromkeys(codes))
    text = f"{form_id} saved: {OUTCOME.get(status, status)}"
    return text + (" · " + " · ".join(reason_line(c) for c in seen) if seen and status != "accepted" else "")
