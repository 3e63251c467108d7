"""Compare what the station decided with the simulator's truth: accuracy, automation, detection.

Used by the golden round-trip test and by the benchmarks. Reads the store, never writes it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from forms.layout import DEFAULT_LAYOUT, load_layout
from formstation.store import Store, fields, forms, reasons

# the roles whose stored value must be the truth's value, and those compared as present or not
# (truth value -> present?); each form's fields are found by role in its own layout (truth "layout")
VALUE_ROLES = ("corrected_id", "applicant_phone", "guardian_id", "guardian_phone", "guardian_relation")
PRESENCE_ROLES = {
    "applicant_signature": lambda t: bool(t),
    "guardian_signature": lambda t: bool(t),
    "applicant_photo": lambda t: t not in ("", "none", None),
    "id_copy": lambda t: bool(t),
    "corrected_name": lambda t: bool(t),
}
STORED_PRESENT = {"present", "pasted"}


@dataclass
class Detection:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, truth: bool, seen: bool) -> None:
        if truth and seen:
            self.tp += 1
        elif seen:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


@dataclass
class Report:
    forms_scanned: int = 0
    status: Counter = field(default_factory=Counter)  # (expected, got) -> n
    field_total: Counter = field(default_factory=Counter)
    field_right: Counter = field(default_factory=Counter)
    accepted_values: int = 0
    accepted_wrong: int = 0
    wrong_examples: list[tuple[str, str, str, str]] = field(default_factory=list)
    detection: dict[str, Detection] = field(default_factory=dict)
    review_acceptable: int = 0  # acceptable forms sent to review
    review_all_right: int = 0  # ... whose every value is already read right: the reviewer only confirms
    acceptable: int = 0  # scanned forms whose truth is acceptable
    acceptable_all_right: int = 0  # ... whose every value is read right, whatever their status: no
    # confidence threshold can accept more forms without a reviewer unless it accepts wrong values
    held: Counter = field(default_factory=Counter)  # what keeps those in review: their reasons, as
    # "CODE field, CODE field" (the forms a better reader or threshold would accept)

    def _acceptable_share(self, *decided: str) -> float:
        """The share of the forms whose truth is acceptable that were decided as one of `decided`."""
        ok = sum(n for (exp, _), n in self.status.items() if exp == "accepted")
        return sum(self.status[("accepted", d)] for d in decided) / ok if ok else 0.0

    @property
    def auto_accept_share(self) -> float:
        """Forms accepted without a reviewer, among forms whose truth is acceptable."""
        return self._acceptable_share("accepted")

    @property
    def no_reviewer_share(self) -> float:
        """Acceptable forms no reviewer has to open: accepted, or waiting for the clerk to scan the
        photo page again in colour (what a vendor pays reviewers for is the rest)."""
        return self._acceptable_share("accepted", "rescan")

    @property
    def accepted_wrong_rate(self) -> float:
        return self.accepted_wrong / self.accepted_values if self.accepted_values else 0.0

    def field_accuracy(self) -> dict[str, float]:
        return {k: self.field_right[k] / n for k, n in sorted(self.field_total.items()) if n}


def _stored(store: Store) -> tuple[dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """Each form's status, its field values and its reasons (as `Report.held` names them)."""
    with store.tx() as conn:
        status = {r.form_id: r.status for r in conn.execute(select(forms.c.form_id, forms.c.status))}
        vals: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(fields.c.form_id, fields.c.name, fields.c.value, fields.c.source)):
            vals.setdefault(r.form_id, {})[r.name] = r.value or ""
        why: dict[str, set[str]] = {}
        for r in conn.execute(select(reasons.c.form_id, reasons.c.code, reasons.c.field)):
            why.setdefault(r.form_id, set()).add(f"{r.code} {r.field}" if r.field else r.code)
    return status, vals, {f: ", ".join(sorted(w)) for f, w in why.items()}


def _names(t: dict, roles) -> list[str]:
    """The names of the fields with these roles in the truth's layout (roles it lacks left out)."""
    layout = load_layout(t.get("layout", DEFAULT_LAYOUT))
    return [layout.name_of(r) for r in roles if layout.name_of(r)]


def _compare_form(rep: Report, t: dict, got_status: str, got: dict[str, str], why: str = "") -> None:
    tf = t["fields"]
    accepted = got_status == "accepted"
    all_right = True
    layout = load_layout(t.get("layout", DEFAULT_LAYOUT))
    for name in _names(t, VALUE_ROLES):
        right = (got.get(name, "") == (tf.get(name) or ""))
        all_right &= right
        rep.field_total[name] += 1
        rep.field_right[name] += right
        if accepted:
            rep.accepted_values += 1
            rep.accepted_wrong += not right
            if not right and len(rep.wrong_examples) < 20:
                rep.wrong_examples.append((t["form_id"], name, tf.get(name) or "", got.get(name, "")))
    for role, truth_fn in PRESENCE_ROLES.items():
        name = layout.name_of(role)
        if not name:
            continue
        seen = got.get(name, "") in STORED_PRESENT if role != "corrected_name" else bool(got.get(name))
        truth = truth_fn(tf.get(name))
        rep.detection.setdefault(name, Detection()).add(truth, seen)
        rep.field_total[name + " (present)"] += 1
        rep.field_right[name + " (present)"] += truth == seen
        all_right &= truth == seen
        if accepted:
            rep.accepted_values += 1
            rep.accepted_wrong += truth != seen
    copy, cname = layout.name_of("id_copy"), layout.name_of("corrected_name")
    if copy and tf.get(copy):  # the number printed on the pasted copy, read by OCR
        rep.field_total[f"{copy}_number (read right)"] += 1
        rep.field_right[f"{copy}_number (read right)"] += got.get(f"{copy}_number", "") == tf[copy]
    if cname and tf.get(cname):  # the OCR's reading of a handwritten name: the reviewer's suggestion
        rep.field_total[f"{cname} (read as written)"] += 1
        rep.field_right[f"{cname} (read as written)"] += got.get(cname, "") == tf[cname]
    if t["expected_status"] == "accepted":
        rep.acceptable += 1
        rep.acceptable_all_right += all_right
    if got_status == "review" and t["expected_status"] == "accepted":
        rep.review_acceptable += 1
        rep.review_all_right += all_right
        if all_right:
            rep.held[why or "(no reason)"] += 1
    if not layout.by_role("guardian_id"):
        return
    gid, gphone, gsign = (layout.name_of(r) for r in ("guardian_id", "guardian_phone", "guardian_signature"))
    guardian_truth = bool(tf.get(gid) or tf.get(gphone) or tf.get(gsign))
    guardian_seen = bool(got.get(gid) or got.get(gphone) or got.get(gsign) == "present")
    rep.detection.setdefault("guardian section", Detection()).add(guardian_truth, guardian_seen)


def evaluate(store: Store, truth_path: Path) -> Report:
    status, vals, why = _stored(store)
    rep = Report()
    for line in truth_path.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        if not t.get("scanned"):
            rep.status[("printed", status.get(t["form_id"], "?"))] += 1
            continue
        rep.forms_scanned += 1
        got_status = status.get(t["form_id"], "missing")
        rep.status[(t["expected_status"], got_status)] += 1
        _compare_form(rep, t, got_status, vals.get(t["form_id"], {}), why.get(t["form_id"], ""))
    return rep


def markdown(rep: Report) -> str:
    lines = [f"forms scanned: {rep.forms_scanned}",
             f"auto-accepted among acceptable forms: {rep.auto_accept_share:.1%}",
             f"acceptable forms no reviewer has to open now (accepted, or waiting for a colour rescan of the photo page): "
             f"{rep.no_reviewer_share:.1%}",
             f"wrong values among auto-accepted: {rep.accepted_wrong} / {rep.accepted_values} "
             f"({rep.accepted_wrong_rate:.2%})",
             f"acceptable forms in review whose every value is already read right (the reviewer only "
             f"confirms): {rep.review_all_right} / {rep.review_acceptable}",
             f"acceptable forms whose every value is read right, whatever their status (the most any "
             f"confidence threshold could accept without accepting a wrong value): {rep.acceptable_all_right} / "
             f"{rep.acceptable} ({rep.acceptable_all_right / max(rep.acceptable, 1):.1%})",
             "", "| field | read accuracy (all scanned forms) |", "|---|---|"]
    lines += [f"| {k} | {v:.1%} |" for k, v in rep.field_accuracy().items()]
    lines += ["", "| detection | precision | recall | tp | fp | fn |", "|---|---|---|---|---|---|"]
    lines += [f"| {k} | {d.precision:.1%} | {d.recall:.1%} | {d.tp} | {d.fp} | {d.fn} |"
              for k, d in rep.detection.items()]
    if rep.held:
        lines += ["", "| what keeps the acceptable forms read right in review (their reasons) | forms |", "|---|---|"]
        top = rep.held.most_common(10)
        lines += [f"| {k} | {n} |" for k, n in top]
        rest = sum(rep.held.values()) - sum(n for _, n in top)
        if rest:
            lines.append(f"| (other combinations) | {rest} |")
    lines += ["", "| expected \\ decided | n |", "|---|---|"]
    lines += [f"| {e} -> {g} | {n} |" for (e, g), n in sorted(rep.status.items())]
    return "\n".join(lines)


# ------------------------------------------------------------------ risk-coverage of the digit fields

DIGIT_FIELDS = ("phone", "guardian_phone", "guardian_id", "corrected_id")
RISK_TARGET = 0.005  # wrong among the fields a threshold accepts


def field_scores(store: Store, truth_path: Path) -> dict[str, list[tuple[float, bool]]]:
    """Per digit field: (the reader's confidence, read right) of every scanned form where the
    field is written or read as written (an empty field read empty says nothing)."""
    with store.tx() as conn:
        got = {(r.form_id, r.name): (r.value or "", float(r.confidence or 0.0))
               for r in conn.execute(select(fields.c.form_id, fields.c.name, fields.c.value, fields.c.confidence)
                                     .where(fields.c.name.in_(DIGIT_FIELDS)))}
    out: dict[str, list[tuple[float, bool]]] = {n: [] for n in DIGIT_FIELDS}
    for line in truth_path.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        if not t.get("scanned"):
            continue
        for name in DIGIT_FIELDS:
            truth = t["fields"].get(name) or ""
            value, conf = got.get((t["form_id"], name), ("", 0.0))
            if truth or value:
                out[name].append((conf, value == truth))
    return out


def risk_coverage(scores: list[tuple[float, bool]]) -> list[tuple[float, float, float]]:
    """(threshold, coverage, risk) at every distinct confidence, highest first: accepting the
    fields read at least that sure covers `coverage` of them, of which `risk` are wrong."""
    if not scores:
        return []
    ranked = sorted(scores, key=lambda s: -s[0])
    out, wrong = [], 0
    for i, (conf, right) in enumerate(ranked):
        wrong += not right
        if i + 1 == len(ranked) or ranked[i + 1][0] < conf:
            out.append((conf, (i + 1) / len(ranked), wrong / (i + 1)))
    return out


def pick_threshold(scores: list[tuple[float, bool]], target: float = RISK_TARGET, floor: float = 0.5) -> float:
    """The lowest threshold (not under `floor`) at which the accepted fields, and those of every
    higher threshold, are wrong at most `target` of the time; 1.0 when none is."""
    best = 1.0
    for t, _, risk in risk_coverage(scores):
        if risk > target or t < floor:
            break
        best = t
    return best


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="compare the store's decisions with a simulator truth.jsonl")
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--truth", required=True)
    a = ap.parse_args()
    print(markdown(evaluate(Store.open(a.workspace), Path(a.truth))))


if __name__ == "__main__":
    main()
