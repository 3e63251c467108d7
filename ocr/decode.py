"""Constraint decoding of comb-box strings from per-cell probabilities.

ID numbers: search the per-cell top-k for strings that pass the GB 11643 MOD 11-2 check and carry
a province that exists and a real, plausible birth date. Phones: `1[3-9]` + 9 digits. The
confidence is the decoded string's share of the probability of all strings that satisfy the
constraint (its posterior when the writer wrote a valid value), capped by `support`: when the
constraint had to move away from the best raw reading, either a cell was misread or the parent
wrote an invalid value, and the cells' own probabilities weigh the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from formstation.idnumber import WEIGHTS, birth_date
from ocr.types import CLASSES

TOP_K = 4
BEAM = 400
EPS = 1e-9
# Prior odds that a parent wrote the valid value rather than one specific invalid neighbour of it:
# (1 - e) / e with e = 4 % of values written invalid, times the typo variants of a value (17 x 9)
# over the valid values one typo away from a given string (~15): 24 x 10.
INVALID_PRIOR_ODDS = 240.0


def support(moved: float) -> float:
    """Probability that the decoded value, not the raw reading, is what was written, given
    `moved` = P(cells | decoded) / P(cells | raw) (1: the raw reading already satisfied the
    constraint). Scaled so that moved = 1 gives 1."""
    if moved >= 1.0:
        return 1.0
    odds = INVALID_PRIOR_ODDS * moved
    return min(1.0, odds / (1.0 + odds) * (1.0 + INVALID_PRIOR_ODDS) / INVALID_PRIOR_ODDS)


@dataclass(frozen=True)
class Decoded:
    value: str  # the decoded string ('' when every cell is empty)
    confidence: float
    raw: str  # the best reading cell by cell, ignoring constraints ('?' for an empty cell)
    valid: bool  # whether `value` satisfies the constraint


def _raw(probs: list[np.ndarray | None]) -> str:
    return "".join("?" if p is None else CLASSES[int(np.argmax(p))] for p in probs)


def _allowed_phone(pos: int) -> str:
    return "1" if pos == 0 else ("3456789" if pos == 1 else "0123456789")


def _allowed_id(pos: int) -> str:
    return CLASSES if pos == 17 else CLASSES[:10]


def _id_candidates(p: np.ndarray, pos: int) -> list[tuple[float, str]]:
    allowed = _allowed_id(pos)
    idx = [CLASSES.index(c) for c in allowed]
    sub = p[idx]
    order = np.argsort(-sub)[:TOP_K]
    return [(math.log(max(float(sub[i]), EPS)), allowed[i]) for i in order]


def _id_beam(probs: list[np.ndarray]) -> list[tuple[float, str]]:
    """Beam search over the first 17 digits, tracking the weighted sum mod 11 (the check state)."""
    lps, mods, strs = np.zeros(1), np.zeros(1, np.int64), [""]
    for pos in range(17):
        cands = _id_candidates(probs[pos], pos)
        clp = np.array([c[0] for c in cands])
        w = np.array([int(c) * WEIGHTS[pos] for _, c in cands], np.int64)
        # every beam entry extended by every candidate, beam-major; the BEAM likeliest kept, ties
        # in that order (what heapq.nlargest did on the same list, 4x faster)
        nxt = (lps[:, None] + clp[None, :]).ravel()
        keep = np.argsort(-nxt, kind="stable")[:BEAM]
        src, k = np.divmod(keep, len(cands))
        lps, mods = nxt[keep], (mods[src] + w[k]) % 11
        strs = [strs[i] + cands[j][1] for i, j in zip(src.tolist(), k.tolist(), strict=True)]
    last = probs[17]
    out = []
    for lp, s, m in zip(lps.tolist(), strs, mods.tolist(), strict=True):
        check = "10X98765432"[m]
        out.append((lp + math.log(max(float(last[CLASSES.index(check)]), EPS)), s + check))
    return out


# first two digits of the address code (GB/T 2260): provinces, Taiwan, Hong Kong, Macao; 91 abroad
PROVINCES = frozenset({"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
                       "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
                       "65", "71", "81", "82", "91"})


EARLIEST_BIRTH = 1920  # nobody older applies for a child's card or signs as a guardian


def _plausible(s: str) -> bool:
    """A province that exists and a real birth date from EARLIEST_BIRTH on."""
    b = birth_date(s)
    return s[:2] in PROVINCES and b is not None and EARLIEST_BIRTH <= b.year <= 2100


# Each box's probabilities are mixed with this much of every character before an ID is decoded: a
# box read surely can still be misread, and the check character then "repairs" a right box into
# another valid number (harsh scans, 1,000 forms, seed 43: a 1 read as 7 at 0.993 and the right 5
# two boxes on decoded as 3, at 0.9912). Without it the posterior counts only the doubtful boxes'
# alternatives. Guardian and corrected IDs from the kept cells of nine stored campaigns (5,320): 8
# wrong among those accepted at 0.99 before, 6 with it (harsh 3 -> 1), 70.9 -> 70.1 % accepted;
# 0.01-0.02 remove no more, 0.04 costs 7 points.
BOX_FLOOR = 0.005


def _floored(probs: list[np.ndarray]) -> list[np.ndarray]:
    return [p * (1.0 - BOX_FLOOR) + BOX_FLOOR / len(p) for p in probs]


def decode_id(probs: list[np.ndarray | None]) -> Decoded:
    """Decode an 18-cell ID field. Empty cells make the field partial (confidence 0)."""
    raw = _raw(probs)
    if all(p is None for p in probs):
        return Decoded("", 1.0, raw, True)
    if any(p is None for p in probs) or len(probs) != 18:
        return Decoded(raw.replace("?", ""), 0.0, raw, False)
    probs = _floored(probs)
    cands = [c for c in _id_beam(probs) if _plausible(c[1])]
    raw_lp = sum(math.log(max(float(np.max(p)), EPS)) for p in probs)
    if not cands:
        return Decoded(raw, 0.0, raw, False)
    best_lp, best = max(cands)
    total = sum(math.exp(lp - best_lp) for lp, _ in cands)
    posterior = 1.0 / total
    moved = math.exp(min(0.0, best_lp - raw_lp))  # 1 when the raw reading already satisfied it
    return Decoded(best, float(min(posterior, support(moved))), raw, True)


def decode_phone(probs: list[np.ndarray | None]) -> Decoded:
    """Decode an 11-cell mobile number: cell 1 is '1', cell 2 is 3-9, the rest digits."""
    raw = _raw(probs)
    if all(p is None for p in probs):
        return Decoded("", 1.0, raw, True)
    if any(p is None for p in probs):
        return Decoded(raw.replace("?", ""), 0.0, raw, False)
    value, conf, moved = "", 1.0, 1.0
    for pos, p in enumerate(probs):
        allowed = _allowed_phone(pos)
        idx = [CLASSES.index(c) for c in allowed]
        sub = p[idx]
        i = int(np.argmax(sub))
        value += allowed[i]
        conf *= float(sub[i] / max(float(sub.sum()), EPS))
        moved *= float(sub[i] / max(float(np.max(p)), EPS))
    return Decoded(value, float(min(conf, support(moved))), raw, True)


# a cell read at least this sure is not pointed out to the reviewer (reader_v2.1 on 500 forms of the
# calib / heldout writers: 16 / 19 % of the boxes framed, 96 / 93 % of the misread boxes among them;
# at 0.99: 11 / 13 % and 94 / 91 %)
CELL_SURE = 0.995


def is_checked(constraint: str) -> bool:
    """Whether a comb field is decoded under a check digit (an ID number)."""
    return constraint == "id_gb11643"


def decode_comb(probs: list[np.ndarray | None], constraint: str, alphabet: str) -> Decoded:
    """A comb field decoded by the constraint its layout gives it (forms.layout.Constraint): an
    ID number (`id_gb11643`), a mobile number (`mobile_cn`), or box by box (`none`)."""
    if constraint == "id_gb11643":
        return decode_id(probs)
    if constraint == "mobile_cn":
        return decode_phone(probs)
    return decode_plain(probs, alphabet)


def allowed_at(constraint: str, alphabet: str) -> Callable[[int], str]:
    """The characters each position of a comb field may hold, as `decode_comb` sees them."""
    if constraint == "id_gb11643":
        return _allowed_id
    if constraint == "mobile_cn":
        return _allowed_phone
    return lambda pos: alphabet


def cell_doubts(value: str, probs: list[np.ndarray | None], allowed: Callable[[int], str]) -> list[dict]:
    """The boxes a reviewer should look at, in order: each {"i": position, "read": the decoded
    character, "p": its share among the characters allowed there, "alt": the likeliest other
    allowed character}. A box read under CELL_SURE is listed; so is an empty box of a partly
    filled field (read '', p 0), and always a box whose decoded character differs from its best
    raw reading (`Decoded.raw`: the constraint moved it), with "raw" holding that reading, even
    where the position allows one character only (a phone's leading 1, whose share is always 1)."""
    if all(p is None for p in probs):
        return []
    raw = _raw(probs)
    chars = value if len(value) == len(probs) else raw
    out = []
    for pos, p in enumerate(probs):
        d = cell_doubt(pos, chars[pos], p, allowed(pos))
        if p is not None and d["read"] != raw[pos]:
            d["raw"] = raw[pos]
        if d["p"] < CELL_SURE or "raw" in d:
            out.append(d)
    return out


def cell_doubt(pos: int, ch: str, p: np.ndarray | None, allowed: str) -> dict:
    """One box as `cell_doubts` lists it: `ch` (the decoded character; the likeliest allowed one
    when `ch` is not allowed there), its share among the `allowed` characters, the runner-up."""
    if p is None:
        return {"i": pos, "read": "", "p": 0.0, "alt": ""}
    sub = np.array([p[CLASSES.index(c)] for c in allowed], dtype=float)
    sub = sub / max(float(sub.sum()), EPS)
    ch = ch if ch and ch in allowed else allowed[int(np.argmax(sub))]
    others = [(float(sub[k]), c) for k, c in enumerate(allowed) if c != ch]
    return {"i": pos, "read": ch, "p": round(float(sub[allowed.index(ch)]), 3), "alt": max(others)[1] if others else ""}


def decode_plain(probs: list[np.ndarray | None], alphabet: str) -> Decoded:
    """Best character per cell within `alphabet`, confidence the product of cell confidences."""
    raw = _raw(probs)
    if all(p is None for p in probs):
        return Decoded("", 1.0, raw, True)
    value, conf = "", 1.0
    for p in probs:
        if p is None:
            value += "?"
            conf = 0.0
            continue
        idx = [CLASSES.index(c) for c in alphabet]
        i = int(np.argmax(p[idx]))
        value += alphabet[i]
        conf *= float(p[idx][i])
    return Decoded(value.rstrip("?"), conf, raw, "?" not in value)


PAIR_HESITANT = 0.2  # where two renderings disagree, one must find the other's digit this plausible
# One parent writes both fields: a digit they write unlike the reader's training (a flagged '1', an
# '8' with a closed lower loop) is misread the same way twice. The two renderings count as one
# with this probability, as independent evidence otherwise. (On 1,000 simulated forms, where the
# two renderings do not even share a writer, treating them as independent let 0.8 % of the paired
# phones accepted at 0.98 be wrong, two digits read alike wrongly in both.)
PAIR_CORRELATION = 0.25


def one_box_apart(a: str, b: str) -> int | None:
    """The one box where two equally long numbers differ, or None (same number, other lengths, or
    two boxes or more apart). Two numbers a form pairs one box apart are most often one number with
    that box misread (`ocr.read._one_box_apart`) or mistyped (the review queue)."""
    if len(a) != len(b):
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    return diff[0] if len(diff) == 1 else None


def _pair_cells(a: list[np.ndarray | None], b: list[np.ndarray | None], n: int,
                allowed: Callable[[int], str]) -> list[np.ndarray] | None:
    """Each cell of a number of `n` cells written twice read from both renderings at once: per cell
    PAIR_CORRELATION x sqrt(pa pb) + (1 - PAIR_CORRELATION) x pa pb over the characters `allowed`
    there, renormalised (the others 0). None unless both readings are complete (`n` cells, none
    empty) and the two can be one number: their best characters agree everywhere but at most one
    cell, and there one of the two readings finds the other's character plausible (ratio >=
    PAIR_HESITANT to its own best)."""
    if len(a) != n or len(b) != n or any(p is None for p in a) or any(p is None for p in b):
        return None
    out, disagree = [], 0
    for pos, (pa, pb) in enumerate(zip(a, b, strict=True)):
        idx = [CLASSES.index(c) for c in allowed(pos)]
        sa, sb = pa[idx], pb[idx]
        ia, ib = int(np.argmax(sa)), int(np.argmax(sb))
        if ia != ib:
            disagree += 1
            hesitant = max(sa[ib] / max(float(sa[ia]), EPS), sb[ia] / max(float(sb[ib]), EPS))
            if disagree > 1 or hesitant < PAIR_HESITANT:
                return None
        joint = np.zeros(len(CLASSES))
        joint[idx] = PAIR_CORRELATION * np.sqrt(sa * sb) + (1.0 - PAIR_CORRELATION) * sa * sb
        out.append(joint / max(float(joint.sum()), EPS))
    return out


def decode_phone_pair(a: list[np.ndarray | None], b: list[np.ndarray | None]) -> Decoded | None:
    """One number written twice (the applicant's phone and the guardian's: a family often gives
    one number for both): each digit is read from both renderings at once (`_pair_cells`: errors of
    one hand repeat, so the two count partly as one). Returns None unless both fields are complete
    mobile-number readings that can be one number. Two confident, different digits mean two
    numbers; a doubtful disagreement lowers the joint confidence through the product."""
    joint = _pair_cells(a, b, 11, _allowed_phone)
    if joint is None:
        return None
    d = decode_phone(joint)
    moved = 1.0  # the chosen digit must be what at least one rendering shows (not forced by the pattern)
    for pos, (pa, pb) in enumerate(zip(a, b, strict=True)):
        i = CLASSES.index(d.value[pos])
        moved *= max(float(pa[i] / max(float(np.max(pa)), EPS)), float(pb[i] / max(float(np.max(pb)), EPS)))
    return Decoded(d.value, float(min(d.confidence, support(moved))), _raw(a) + "|" + _raw(b), True)


def decode_id_pair(a: list[np.ndarray | None],
                   b: list[np.ndarray | None]) -> tuple[Decoded, list[np.ndarray]] | None:
    """One ID number written on two forms (a guardian's, on each child's form): its boxes read from
    both renderings at once (`_pair_cells`), then decoded as one ID (`decode_id`: the check
    character and a real birth date). Returns the decoding and the joint cells (for
    `ocr.read.check_decided`), or None unless both are complete 18-box readings that can be one
    number."""
    joint = _pair_cells(a, b, 18, _allowed_id)
    if joint is None:
        return None
    d = decode_id(joint)
    return Decoded(d.value, d.confidence, _raw(a) + "|" + _raw(b), d.valid), joint
