"""Adapt the reader to the campaign's handwriting: refit the ensemble's heads on the labelled cells.

The shipped reader's feature extractors stay frozen (`ocr.digits.OnnxReader`); each member's
output layer is refitted by softmax regression on the campaign's labelled cells (`ocr.labels`),
regularised toward the shipped layer (numpy + scipy, no torch). Guard rails against a reviewer
who typed a wrong value, and against figures that flatter:

* Whole forms (one writer each) go to one of three parts by a hash of their id, the same part as
  the campaign grows: training (55 %), calibration (20 %) and the hold-out (25 %). No cell of a
  held-out or calibration form is ever trained on.
* No single form holds more than FORM_SHARE of the training cells, no single reviewer more than
  REVIEWER_SHARE (when more than one reviewer labelled): the excess is left out at random.
* The regularisation strength and each member's temperature are chosen on the calibration forms,
  never on the training cells.
* The candidate is compared with the current reader on the held-out forms: cell accuracy, field
  accuracy and the share of fields accepted without a reviewer, with at most MAX_WRONG of those
  wrong, each form's fields read and decided as the station does them (`measure`: the constraint
  decoder, a number written twice read from both renderings, each field's own threshold, no
  number accepted on a form of unusual writing). It becomes current only when
  it is at least as good on every figure and better on one (`Comparison.verdict`), and when it
  reads more of the held-out cells right than chance alone would give a reader no better than the
  current one (`cell_changes`: counting the held-out forms, one writer each, on which it fixes more
  cells than it breaks against those where it breaks more, a fair coin would do as well less than
  SIGNIFICANCE of the time). The
  held-out fields are the doubtful ones, where the current reader accepts nothing, so a
  candidate that accepts a few of them and reads one more cell right looked "better": learning
  from 141 forms of MNIST-like writers, such a candidate read 95.25 % of 968 held-out cells right
  against 95.14 %, was promoted, and on forms of other parents (digit images no reviewed form
  showed) read 98.54 % against 98.66 % and cut straight-through from 25.5 to 20.2 %.
* The reviewed forms are the doubtful ones: on them the current reader accepts next to nothing,
  so they cannot show what a candidate does to the readings the station accepts today. Both
  readers therefore also read the digit fields of up to UNREVIEWED_FORMS forms no reviewer opened
  (`load_unreviewed`, from the cells kept at ingest; no truth): the candidate must accept at least
  as many of them. A temperature fitted by likelihood on the few calibration forms is dominated by
  their hardest boxes and can leave the candidate too shy to accept what the current reader
  accepts (a candidate reading 99.1 % of the cells right accepted 13 % of the unreviewed fields
  against the current reader's 50 %); its temperatures are then scaled down to the least
  sure-footed candidate that accepts as many (`fit_candidate`'s `accepted`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from sqlalchemy import select
from sqlalchemy.engine import Connection

from forms.layout import load_layout
from formstation.store import fields, forms, labelled_cells, now
from ocr import decode, labels
from ocr.digits import CLASSES, OnnxReader

PARTS = (("holdout", 25), ("calib", 20), ("train", 55))  # share of forms (percent) in each part
FORM_SHARE = 0.05
REVIEWER_SHARE = 0.5
MAX_WRONG = 0.005
MIN_TRAIN_CELLS = 300
MAX_FIT_CELLS = 60_000  # a random subset of the training cells beyond this (the fit's time grows with it)
MIN_HOLDOUT_FORMS = 10
LAMBDAS = (3e-4, 3e-3, 3e-2)  # pull toward the shipped heads, per unit of mean cross-entropy
SEED = 15
UNREVIEWED_FORMS = 300  # forms no reviewer opened, read by both readers at the gate
SCALE_STEPS = 8  # bisection steps for the candidate's temperature scale
UNUSUAL_SHARE = 0.30  # the station's default (formstation.config.Config.unusual_writing_share)
SIGNIFICANCE = 0.05  # one-sided sign test on the held-out cells the two readers read differently


def part_of(form_id: str) -> str:
    """The part of the split a form belongs to, fixed by its id."""
    h = int(hashlib.sha256(form_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    for name, share in PARTS:
        if h < share:
            return name
        h -= share
    return PARTS[-1][0]


@dataclass(frozen=True)
class Cells:
    """Labelled cells as arrays, one entry per cell."""

    x: np.ndarray  # (n, 28, 28) uint8
    y: np.ndarray  # (n,) index into CLASSES
    form: np.ndarray
    field: np.ndarray
    box: np.ndarray
    value: np.ndarray
    rewrite: np.ndarray
    reviewer: np.ndarray
    layout: dict[str, str]  # form id -> layout key

    def take(self, idx: np.ndarray) -> Cells:
        return Cells(self.x[idx], self.y[idx], self.form[idx], self.field[idx], self.box[idx], self.value[idx],
                     self.rewrite[idx], self.reviewer[idx], self.layout)


def load_cells(conn: Connection) -> Cells:
    rows = conn.execute(select(labelled_cells).order_by(labelled_cells.c.id)).all()
    ids = {r.form_id for r in rows}
    lay = {r.form_id: r.layout_key for r in conn.execute(select(forms.c.form_id, forms.c.layout_key))
           if r.form_id in ids}
    x = np.frombuffer(b"".join(r.cell for r in rows), np.uint8).reshape(-1, 28, 28)
    return Cells(x, np.array([CLASSES.index(r.label) for r in rows], np.int64),
                 np.array([r.form_id for r in rows], object), np.array([r.field for r in rows], object),
                 np.array([r.box for r in rows], np.int64), np.array([r.value for r in rows], object),
                 np.array([bool(r.rewrite) for r in rows]), np.array([r.reviewer for r in rows], object), lay)


def load_unreviewed(conn: Connection, workspace: Path, limit: int = UNREVIEWED_FORMS) -> Cells:
    """The cells the station kept at ingest (`ocr.labels`) of the digit fields of forms no reviewer
    saved a digit field of, fields the station read whose every box holds its own ink (no empty,
    struck-out or noted box): at most `limit` forms, taken by a hash of their id (the same ones as
    the campaign grows). No truth: `y` is -1 and `value` empty."""
    reviewed = set(conn.execute(select(labelled_cells.c.form_id).distinct()).scalars())
    keys = {r.form_id: r.layout_key for r in conn.execute(select(forms.c.form_id, forms.c.layout_key))
            if r.form_id not in reviewed}
    chosen = sorted(keys, key=lambda f: hashlib.sha256(f.encode("utf-8")).hexdigest())[:limit]
    combs = {k: {z.name for z in load_layout(k).zones_of("digits")} for k in set(keys[f] for f in chosen)}
    rows = conn.execute(select(fields.c.form_id, fields.c.name, fields.c.crop_path).where(
        fields.c.form_id.in_(chosen), fields.c.source == "read", fields.c.crop_path.is_not(None))
        .order_by(fields.c.form_id, fields.c.name)).all() if chosen else []
    xs, form, field, box = [], [], [], []
    for r in rows:
        if r.name not in combs[keys[r.form_id]]:
            continue
        x = labels.own_cells(workspace, r.crop_path)
        if x is None:
            continue
        xs.append(x)
        form += [r.form_id] * len(x)
        field += [r.name] * len(x)
        box += list(range(len(x)))
    n = len(form)
    return Cells(np.concatenate(xs) if xs else np.zeros((0, 28, 28), np.uint8), np.full(n, -1, np.int64),
                 np.array(form, object), np.array(field, object), np.array(box, np.int64),
                 np.array([""] * n, object), np.zeros(n, bool), np.array([""] * n, object),
                 {f: keys[f] for f in set(form)})


def cap_shares(groups: np.ndarray, idx: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """`idx` with each group holding at most max(share, 1 / groups) of them (excess dropped at random)."""
    names, counts = np.unique(groups[idx], return_counts=True)
    if len(names) == 0:
        return idx
    limit = int(np.ceil(max(share, 1.0 / len(names)) * len(idx)))
    over = names[counts > limit]
    if not len(over):
        return idx
    out = idx[~np.isin(groups[idx], over)]
    for n in over:
        mine = idx[groups[idx] == n]
        out = np.concatenate([out, rng.choice(mine, limit, replace=False)])
    return np.sort(out)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_head(f: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression on features `f` (n, H): mean cross-entropy + lam/2 * ||(W, b) - (w0, b0)||^2,
    started at the shipped layer (w0, b0), by L-BFGS."""
    n, h = f.shape
    k = w0.shape[1]
    onehot = np.eye(k)[y]
    f64 = f.astype(np.float64)
    ref = np.concatenate([w0.ravel(), b0.ravel()]).astype(np.float64)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[: h * k].reshape(h, k), theta[h * k:]
        z = f64 @ w + b
        z -= z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        ce = float((lse - (z * onehot).sum(axis=1)).mean())
        g = (np.exp(z - lse[:, None]) - onehot) / n
        d = theta - ref
        grad = np.concatenate([(f64.T @ g).ravel(), g.sum(axis=0)]) + lam * d
        return ce + 0.5 * lam * float(d @ d), grad

    res = minimize(loss, ref.copy(), jac=True, method="L-BFGS-B", options={"maxiter": 200})
    return res.x[: h * k].reshape(h, k).astype(np.float32), res.x[h * k:].astype(np.float32)


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of logits `z` (grid over log T)."""
    def nll(t: float) -> float:
        p = _softmax(z / t)
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    grid = np.exp(np.linspace(np.log(0.25), np.log(8.0), 61))
    best = min(grid, key=nll)
    return float(min(best * np.exp(np.linspace(-0.06, 0.06, 25)), key=nll))


def member_logits(feats: list[np.ndarray], heads: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Each member's uncalibrated logits (before its temperature)."""
    return [(f @ heads[f"W{k}"] + heads[f"b{k}"]).astype(np.float64) for k, f in enumerate(feats)]


def member_probs(feats: list[np.ndarray], heads: dict[str, np.ndarray]) -> np.ndarray:
    """(n, members, 11) calibrated probabilities, as `OnnxReader.member_probs` computes them."""
    return np.stack([_softmax(z / float(heads[f"T{k}"])) for k, z in enumerate(member_logits(feats, heads))], axis=1)


def fit_candidate(feats: list[np.ndarray], cells: Cells, train: np.ndarray, calib: np.ndarray,
                  shipped: dict[str, np.ndarray], accepted: Callable[[dict[str, np.ndarray]], int] | None = None,
                  floor: int = 0) -> tuple[dict[str, np.ndarray], dict]:
    """Heads refitted on the training cells; the pull toward the shipped heads and each member's
    temperature chosen on the calibration cells. When `accepted(heads)` (how many of the unreviewed
    forms' fields the station would accept with these heads) falls below `floor` (what the current
    reader accepts there), the temperatures are scaled down together to the largest scale that
    reaches it (bisection over [1/4, 1]), or to 1/4."""
    best: tuple[float, dict, float] | None = None
    for lam in LAMBDAS:
        heads: dict[str, np.ndarray] = {}
        for k, f in enumerate(feats):
            t0 = float(shipped[f"T{k}"])
            w, b = fit_head(f[train], cells.y[train], shipped[f"W{k}"] / t0, shipped[f"b{k}"] / t0, lam)
            heads[f"W{k}"], heads[f"b{k}"] = w, b
            zc = (f[calib] @ w + b).astype(np.float64)
            heads[f"T{k}"] = np.float32(fit_temperature(zc, cells.y[calib]))
        p = member_probs([f[calib] for f in feats], heads).mean(axis=1)
        nll = float(-np.log(np.clip(p[np.arange(len(calib)), cells.y[calib]], 1e-12, None)).mean())
        if best is None or nll < best[0]:
            best = (nll, heads, lam)
    assert best is not None
    nll, heads, lam = best
    scale = 1.0
    if accepted is not None and floor > 0 and accepted(heads) < floor:
        heads, scale = _scaled_to(heads, len(feats), accepted, floor)
    return heads, {"lambda": lam, "calib_nll": round(nll, 5), "temperature_scale": round(scale, 4),
                   "temperatures": [round(float(heads[f"T{k}"]), 4) for k in range(len(feats))]}


def _with_scale(heads: dict[str, np.ndarray], members: int, scale: float) -> dict[str, np.ndarray]:
    out = dict(heads)
    for k in range(members):
        out[f"T{k}"] = np.float32(float(heads[f"T{k}"]) * scale)
    return out


def _scaled_to(heads: dict[str, np.ndarray], members: int, accepted: Callable[[dict[str, np.ndarray]], int],
               floor: int) -> tuple[dict[str, np.ndarray], float]:
    """The heads with their temperatures times the largest scale in [1/4, 1] at which `accepted`
    reaches `floor` (log-bisection), and that scale; 1/4 when none does."""
    lo, hi = np.log(0.25), 0.0  # accepted(lo) is taken to reach the floor, accepted(hi) does not
    if accepted(_with_scale(heads, members, np.exp(lo))) < floor:
        return _with_scale(heads, members, 0.25), 0.25
    for _ in range(SCALE_STEPS):
        mid = (lo + hi) / 2
        if accepted(_with_scale(heads, members, float(np.exp(mid)))) >= floor:
            lo = mid
        else:
            hi = mid
    return _with_scale(heads, members, float(np.exp(lo))), float(np.exp(lo))


@dataclass(frozen=True)
class Figures:
    """A reader's figures on the held-out forms."""

    cells: int = 0
    cell_accuracy: float = 0.0
    fields: int = 0
    field_accuracy: float = 0.0
    accepted: int = 0
    accepted_share: float = 0.0
    accepted_wrong: int = 0
    wrong_share: float = 0.0  # of the accepted fields


def _reading(z, order: list[int], mean: np.ndarray, cells: Cells):
    """One held-out field as the station's reader reports it (`ocr.read.PageReader._read_digits`):
    decoded by its constraint, capped when a box was struck out and rewritten above, or when an ID
    number rests on its check character more than it can carry (`ocr.read.check_decided`);
    its doubt marks as the reader makes them."""
    from ocr.read import DOUBTED_ID_CONFIDENCE, REWRITE_CONFIDENCE, check_decided, doubt_marks
    from ocr.types import FieldReading

    p = [mean[i] for i in order]
    d = decode.decode_comb(p, z.constraint, z.alphabet)
    conf = d.confidence
    struck = {j: ("", (0, 0, 0, 0)) for j, i in enumerate(order) if cells.rewrite[i]}
    if struck:
        conf = min(conf, REWRITE_CONFIDENCE)
    if decode.is_checked(z.constraint) and check_decided(d.value, p):
        conf = min(conf, DOUBTED_ID_CONFIDENCE)
    detail = {"doubt": doubt_marks(z, d.value, p, struck)}
    if struck:
        detail["rewritten"] = sorted(struck)
    return FieldReading(z.name, d.value, round(conf, 4), (0, 0, 0, 0), detail=detail), p


def _form_fields(lay, groups: dict[str, list[int]], mean: np.ndarray, cells: Cells,
                 thresholds: dict[str, float], unusual_share: float) -> list[tuple[str, str, bool]]:
    """(field, value read, accepted without a reviewer) for one held-out form's fields whose every
    box is labelled, decided as the station decides them: the two renderings of a number written
    twice (`pair_with`) read together (`ocr.read`'s own pairing), each field at its own threshold
    (`rules.threshold_for`), and nothing accepted on a form whose writing is unusual
    (`UNUSUAL_HANDWRITING`, counted over its labelled boxes)."""
    from ocr.read import _paired_phones, writing_doubt
    from ocr.rules import UNUSUAL_MIN_BOXES, doubt_counts, threshold_for

    readings, per_box = [], {}
    for name, idx in groups.items():
        z = lay.zone(name)
        if len(idx) != z.cells:
            continue  # a box is empty or ambiguous: the field is not measured
        r, per_box[name] = _reading(z, sorted(idx, key=lambda i: cells.box[i]), mean, cells)
        readings.append(r)
    readings = _paired_phones(readings, per_box, lay)
    doubtful, inked = doubt_counts(writing_doubt(readings, per_box).value)
    unusual = inked >= UNUSUAL_MIN_BOXES and doubtful > unusual_share * inked
    return [(r.name, r.value, not unusual and r.confidence >= threshold_for(thresholds, r.name, lay))
            for r in readings]


def field_decisions(probs: np.ndarray, cells: Cells, thresholds: dict[str, float],
                    unusual_share: float = UNUSUAL_SHARE) -> dict[tuple[str, str], tuple[str, bool]]:
    """(form, field) -> (value read, accepted without a reviewer) for every field whose every box
    is among `cells`, read and decided as the station does (`_form_fields`)."""
    mean = probs.mean(axis=1)
    by_form: dict[str, dict[str, list[int]]] = {}
    for i in range(len(cells.form)):
        by_form.setdefault(cells.form[i], {}).setdefault(cells.field[i], []).append(i)
    layouts: dict[str, object] = {}
    out: dict[tuple[str, str], tuple[str, bool]] = {}
    for fid, groups in by_form.items():
        key = cells.layout.get(fid)
        if key is None:
            continue
        lay = layouts.setdefault(key, load_layout(key))
        for name, value, ok in _form_fields(lay, groups, mean, cells, thresholds, unusual_share):
            out[(fid, name)] = (value, ok)
    return out


def measure(probs: np.ndarray, cells: Cells, thresholds: dict[str, float],
            unusual_share: float = UNUSUAL_SHARE) -> Figures:
    """Cell accuracy, and per field whose every box is labelled: read and decided as the station
    does (`field_decisions`), right or not, accepted or not."""
    n = len(cells.y)
    right_cells = int((probs.mean(axis=1).argmax(axis=1) == cells.y).sum())
    truth = {(cells.form[i], cells.field[i]): cells.value[i] for i in range(n)}
    n_fields = right = accepted = wrong = 0
    for key, (value, ok_alone) in field_decisions(probs, cells, thresholds, unusual_share).items():
        ok = value == truth[key]
        n_fields += 1
        right += ok
        accepted += ok_alone
        wrong += ok_alone and not ok
    return Figures(n, round(right_cells / max(n, 1), 5), n_fields, round(right / max(n_fields, 1), 5),
                   accepted, round(accepted / max(n_fields, 1), 5), wrong, round(wrong / max(accepted, 1), 5))


@dataclass(frozen=True)
class Unreviewed:
    """Both readers on the digit fields of the forms no reviewer opened (no truth there)."""

    forms: int = 0
    fields: int = 0
    current_accepted: int = 0
    candidate_accepted: int = 0
    changed: int = 0  # fields the current reader accepts that the candidate reads otherwise


def compare_unreviewed(cur: dict[tuple[str, str], tuple[str, bool]],
                       cand: dict[tuple[str, str], tuple[str, bool]]) -> Unreviewed:
    """`field_decisions` of the current reader and of the candidate on the same unreviewed cells."""
    changed = sum(1 for k, (v, ok) in cur.items() if ok and cand.get(k, ("", False))[0] != v)
    return Unreviewed(len({f for f, _ in cur}), len(cur), sum(ok for _, ok in cur.values()),
                      sum(ok for _, ok in cand.values()), changed)


@dataclass(frozen=True)
class CellChanges:
    """The held-out cells the two readers read differently (right for one, wrong for the other), and
    the held-out forms (one writer each) on which the candidate reads more of them right / fewer."""

    fixed: int = 0  # cells read right by the candidate only
    broken: int = 0  # cells read right by the current reader only
    p_value: float = 1.0  # chance that a reader no better is better on at least `forms_better` forms
    forms_better: int = 0
    forms_worse: int = 0


def cell_changes(cur: np.ndarray, cand: np.ndarray, y: np.ndarray, form: np.ndarray | None = None) -> CellChanges:
    """Sign test of the candidate's gain on the held-out cells: probabilities (n, members, 11) of
    each reader, `y` the labels, `form` each cell's form. Cells both read right (or both wrong) say
    nothing of which is better. A writer's cells are not independent (one parent's flagged 1
    recurs in each of their numbers), so the unit is the form: on each form the candidate fixes
    more cells than it breaks, or fewer; a reader no better than the current one would be better on
    each such form half the time, and p is the chance of at least `forms_better` of them. Without
    `form`, each cell counts as its own form."""
    from scipy.stats import binom

    a = cur.mean(axis=1).argmax(axis=1) == y
    b = cand.mean(axis=1).argmax(axis=1) == y
    fixed, broken = (b & ~a), (a & ~b)
    groups = np.arange(len(y)) if form is None else form
    net: dict = {}
    for g, d in zip(groups[fixed | broken], fixed[fixed | broken].astype(int) * 2 - 1, strict=True):
        net[g] = net.get(g, 0) + int(d)
    better, worse = sum(v > 0 for v in net.values()), sum(v < 0 for v in net.values())
    p = float(binom.sf(better - 1, better + worse, 0.5)) if better + worse else 1.0
    return CellChanges(int(fixed.sum()), int(broken.sum()), round(p, 6), better, worse)


@dataclass(frozen=True)
class Comparison:
    current: Figures
    candidate: Figures
    promoted: bool
    reasons: tuple[str, ...]  # why not (empty when promoted)
    unreviewed: Unreviewed | None = None
    changes: CellChanges | None = None


def verdict(cur: Figures, cand: Figures, unreviewed: Unreviewed | None = None,
            changes: CellChanges | None = None) -> Comparison:
    """The candidate is better when it is no worse on cell accuracy, field accuracy and share
    accepted, keeps the wrong among accepted within MAX_WRONG (or the current's, if above), and
    gains on one of the first three; and, on the forms no reviewer opened (`unreviewed`), accepts
    at least as many fields as the current reader. Where the two read a field the current reader
    accepts otherwise (`Unreviewed.changed`, reported), nothing says which is right: on unlike
    writers the candidate corrected 2 of the 10 guardian IDs the shipped reader accepted there,
    both wrong; the held-out forms' truth judges the candidate's readings. With `changes` (the held-out
    cells the two read differently, `cell_changes`), the candidate's gain there must be more than
    chance: under SIGNIFICANCE."""
    why = []
    if unreviewed is not None and unreviewed.fields:
        u = unreviewed
        if u.candidate_accepted < u.current_accepted:
            why.append(f"it accepts {u.candidate_accepted} of the {u.fields} digit fields of {u.forms} forms no "
                       f"reviewer opened, the current reader {u.current_accepted}: more forms would wait for a reviewer")
    for name in ("cell_accuracy", "field_accuracy", "accepted_share"):
        a, b = getattr(cur, name), getattr(cand, name)
        if b < a:
            why.append(f"{name.replace('_', ' ')} {b:.2%} is below the current reader's {a:.2%}")
    if changes is not None and changes.p_value >= SIGNIFICANCE:
        c = changes
        why.append(f"of the held-out cells the two read differently, it reads {c.fixed} right and the current reader "
                   f"{c.broken}, better on {c.forms_better} forms and worse on {c.forms_worse}: no clear gain (a "
                   f"reader no better would do as well {c.p_value:.0%} of the time; under {SIGNIFICANCE:.0%} is needed)")
    limit = max(MAX_WRONG, cur.wrong_share)
    if cand.wrong_share > limit:
        why.append(f"{cand.accepted_wrong} of {cand.accepted} fields it accepts are wrong "
                   f"({cand.wrong_share:.2%}, more than {limit:.2%})")
    if not why and (cand.cell_accuracy, cand.field_accuracy, cand.accepted_share) == (
            cur.cell_accuracy, cur.field_accuracy, cur.accepted_share):
        why.append("it reads the held-out forms no better than the current reader")
    return Comparison(cur, cand, not why, tuple(why), unreviewed, changes)


def features_of(reader: OnnxReader, x: np.ndarray, chunk: int = 4096) -> list[np.ndarray]:
    parts = [reader.features(x[i:i + chunk]) for i in range(0, len(x), chunk)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))] if parts else []


def split(cells: Cells, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict]:
    """Indices of the training (capped), calibration and held-out cells, and what the caps left out."""
    part = np.array([part_of(f) for f in cells.form], object)
    idx = {p: np.flatnonzero(part == p) for p, _ in PARTS}
    train = idx["train"]
    n0 = len(train)
    train = cap_shares(cells.form, train, FORM_SHARE, rng)
    n1 = len(train)
    train = cap_shares(cells.reviewer, train, REVIEWER_SHARE, rng)
    idx["train"] = train
    return idx, {"left_out_by_form_cap": n0 - n1, "left_out_by_reviewer_cap": n1 - len(train)}


def adapt(conn: Connection, workspace: Path, thresholds: dict[str, float], current: OnnxReader,
          shipped: OnnxReader, unusual_share: float = UNUSUAL_SHARE
          ) -> tuple[dict[str, np.ndarray] | None, dict, Comparison | None]:
    """Fit a candidate and compare it with `current` on the held-out forms, decided with the
    station's `thresholds` and `unusual_share` (station.toml): (candidate heads or None when there
    is too little to learn from, figures, comparison)."""
    t0 = time.perf_counter()
    cells = load_cells(conn)
    idx, capped = split(cells, np.random.default_rng(SEED))
    forms_in = {p: len(set(cells.form[i])) for p, i in idx.items()}
    figs = {"created_at": now(), "reviewed_forms": len(set(cells.form)), "labelled_cells": len(cells.y),
            "forms": forms_in, "cells": {p: len(i) for p, i in idx.items()}, **capped,
            "base": shipped.version}
    short = []
    if len(idx["train"]) < MIN_TRAIN_CELLS:
        short.append(f"{len(idx['train'])} training cells (needs {MIN_TRAIN_CELLS})")
    if forms_in["holdout"] < MIN_HOLDOUT_FORMS:
        short.append(f"{forms_in['holdout']} held-out forms (needs {MIN_HOLDOUT_FORMS})")
    if not len(idx["calib"]):
        short.append("no calibration forms")
    if short:
        return None, {**figs, "too_little": short}, None
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # small matrices: BLAS threads only fight (18x slower on 2 busy cores)
        feats = features_of(shipped, cells.x)
        fit_idx = idx["train"]
        if len(fit_idx) > MAX_FIT_CELLS:
            fit_idx = np.sort(np.random.default_rng(SEED).choice(fit_idx, MAX_FIT_CELLS, replace=False))
        unrev = load_unreviewed(conn, workspace)
        uf = features_of(shipped, unrev.x)

        decided: dict[tuple, tuple[list, dict[tuple[str, str], tuple[str, bool]]]] = {}

        def decide_u(h: dict[str, np.ndarray]) -> dict[tuple[str, str], tuple[str, bool]]:
            # the same heads (output layers and temperatures) are decided once: the scale's bisection
            # has already decided the candidate it settles on (the layers are kept beside their
            # decisions, so that their ids stay theirs)
            key = tuple((id(h[f"W{k}"]), float(h[f"T{k}"])) for k in range(len(uf)))
            if key not in decided:
                decided[key] = ([h[f"W{k}"] for k in range(len(uf))],
                                field_decisions(member_probs(uf, h), unrev, thresholds, unusual_share)
                                if len(unrev.form) else {})
            return decided[key][1]

        cur_u = decide_u(current.heads_dict())
        heads, fit = fit_candidate(feats, cells, fit_idx, idx["calib"], shipped.heads_dict(),
                                   lambda h: sum(ok for _, ok in decide_u(h).values()),
                                   sum(ok for _, ok in cur_u.values()))
        hold = cells.take(idx["holdout"])
        hf = [f[idx["holdout"]] for f in feats]
        cur_p, cand_p = member_probs(hf, current.heads_dict()), member_probs(hf, heads)
        cmp = verdict(measure(cur_p, hold, thresholds, unusual_share), measure(cand_p, hold, thresholds, unusual_share),
                      compare_unreviewed(cur_u, decide_u(heads)), cell_changes(cur_p, cand_p, hold.y, hold.form))
    figs.update(fit=fit, current_version=current.version, current=asdict(cmp.current),
                candidate=asdict(cmp.candidate), unreviewed=asdict(cmp.unreviewed) if cmp.unreviewed else None,
                cell_changes=asdict(cmp.changes) if cmp.changes else None,
                promoted=cmp.promoted, why_not=list(cmp.reasons), seconds=round(time.perf_counter() - t0, 1))
    return heads, figs, cmp
