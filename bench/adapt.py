"""The reader learns the campaign's handwriting from its reviewers: before and after, on forms it
never learned from.

    .venv/bin/python bench/adapt.py --forms 1000 --reviewed 300 --writers other --workers 2
    .venv/bin/python bench/adapt.py --forms 1000 --reviewed 300 --writers heldout --workers 2

`--ingest-only` stops once the campaign is simulated and ingested (the long part); a later run
with `--reuse` starts from that ingested store, its forms decided again by today's rules.

Steps: a campaign simulated by the project's tools (bench/campaign.py's cached scans) is ingested
with the shipped reader; a simulated reviewer (the truth, simulate.reviewer) clears the queue of
the first --reviewed forms (by form id); `ocr.learning.run_adapt` fits a candidate and gates it;
then, in a copy of the workspace as ingested (before any reviewer), the candidate is made current
(forced, whatever the gate said: the figures show what it would do) and the other forms' comb
fields are read again from their page images and the forms decided again (`ocr.reread`; the
other zones do not depend on the digit reader); the other forms are compared before and after: cell accuracy (the cells the reader saw, against the truth), digit
fields read right, forms accepted without a reviewer (straight-through, among acceptable forms)
and wrong values among accepted. Also: what re-reading the forms waiting in review did in place.
Figures, not pass/fail; report.md and report.json in --out.

A writer pool is a fixed set of digit images, so without `--glyph-halves` the other forms write the
very images the reviewed forms showed (the `heldout` pool's 100 per class some 30 times each in
1,000 forms): the figures then flatter what was learned. With it (`formstation simulate
--glyph-halves`), the reviewed forms are the first --reviewed of glyph half 0 and the figures are
half 1's forms, whose digit images no reviewed form showed, as another parent's would be.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select

from forms.layout import load_layout
from formstation.store import Store, fields, forms
from ocr import labels, learning, versions
from ocr.digits import CLASSES
from ocr.ingest import ingest_paths
from ocr.reread import reread_forms
from ocr.rules import decide_forms
from simulate import glyph_half
from simulate.evaluate import evaluate
from simulate.reviewer import clear_queue, load_truth

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import campaign  # noqa: E402

DIGITS = ("corrected_id", "phone", "guardian_id", "guardian_phone")


def cell_accuracy(store: Store, truth: dict[str, dict], form_ids: set[str], reader) -> tuple[float, int]:
    """Top-1 of `reader` on the cells the station cut from these forms' digit fields (boxes whose
    written character is known: the truth has one per box), against the truth."""
    xs, ys = [], []
    with store.tx() as conn:
        rows = conn.execute(select(fields.c.form_id, fields.c.name, fields.c.crop_path)
                            .where(fields.c.name.in_(DIGITS), fields.c.form_id.in_(form_ids))).all()
    for r in rows:
        value = truth[r.form_id]["fields"].get(r.name) or ""
        got = labels.load_cells(store.workspace / labels.cells_rel(r.crop_path)) if r.crop_path else None
        if not value or got is None:
            continue
        cells, kinds = got
        for i in labels.labelled_boxes(value, kinds, CLASSES):
            xs.append(cells[i])
            ys.append(CLASSES.index(value[i]))
    if not xs:
        return float("nan"), 0
    p = reader.predict_proba(np.stack(xs)).argmax(axis=1)
    return float((p == np.array(ys)).mean()), len(ys)


def figures(store: Store, truth_path: Path, truth: dict[str, dict], rest: set[str], reader) -> dict:
    """The figures of the forms in `rest`, as the store has them."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8") as f:
        for line in truth_path.read_text(encoding="utf-8").splitlines():
            if json.loads(line)["form_id"] in rest:
                f.write(line + "\n")
    rep = evaluate(store, Path(f.name))
    os.unlink(f.name)
    acc, n = cell_accuracy(store, truth, rest, reader)
    fa = rep.field_accuracy()
    return {"cell_accuracy": round(acc, 4), "cells": n,
            "field_accuracy": {k: round(fa[k], 4) for k in DIGITS if k in fa},
            "straight_through": round(rep.auto_accept_share, 4),
            "accepted_values": rep.accepted_values, "accepted_wrong": rep.accepted_wrong,
            "wrong_among_accepted": round(rep.accepted_wrong_rate, 4)}


def run(args: argparse.Namespace) -> dict:
    out = Path(args.out)
    store, sim = campaign._prepare(out, args.forms, args.seed, args.profile, args.writers, args.glyph_halves)
    truth = load_truth(sim / "truth.jsonl")
    scanned = sorted(f for f, t in truth.items() if t["scanned"])
    if args.glyph_halves:  # reviewers see half 0's forms; the figures are half 1's, none of whose digit images were seen
        first = set([f for f in scanned if glyph_half(f) == 0][: args.reviewed])
        rest = {f for f in scanned if glyph_half(f) == 1}
    else:
        first, rest = set(scanned[: args.reviewed]), set(scanned[args.reviewed:])
    t = time.perf_counter()
    if args.reuse and (out / "ingested").is_dir():  # the same scans ingested by an earlier run
        ws = store.workspace
        store.engine.dispose()
        shutil.rmtree(ws)
        shutil.copytree(out / "ingested", ws)
        store = Store.open(ws)
        with store.tx() as conn:  # decided by today's rules, as the forms read again below will be
            decide_forms(store, set(conn.execute(select(forms.c.form_id)).scalars()))
    else:
        ingest_paths(store, load_layout(), [sim / "scans"], workers=args.workers)
        shutil.rmtree(out / "ingested", ignore_errors=True)
        shutil.copytree(store.workspace, out / "ingested")
    t_ingest = time.perf_counter() - t
    if args.ingest_only:
        return {"forms": args.forms, "writers": args.writers, "seed": args.seed, "ingest_s": round(t_ingest, 1)}
    shipped = versions.load_reader(store.workspace, versions.shipped_version())
    before = figures(store, sim / "truth.jsonl", truth, rest, shipped)
    reviewed = clear_queue(store, truth, "rita", only=first)
    t = time.perf_counter()
    outcome = learning.run_adapt(store, user="bench")
    t_adapt = time.perf_counter() - t
    res = {"forms": args.forms, "reviewed_forms": args.reviewed, "queue_cleared": reviewed, "writers": args.writers,
           "glyph_halves": args.glyph_halves, "measured_forms": len(rest),
           "seed": args.seed, "ingest_s": round(t_ingest, 1), "adapt_s": round(t_adapt, 1),
           "gate": outcome.message, "promoted": outcome.promoted, "adapt_figures": outcome.figures,
           "before": before}
    if outcome.reread is not None:
        rr = outcome.reread
        res["reread_in_place"] = {"forms": rr.forms, "changed_values": rr.changed, "accepted": rr.accepted}
    if outcome.version:  # the other forms as read by the candidate: the ingested store, combs read again
        after_ws = out / "after-ws"
        shutil.rmtree(after_ws, ignore_errors=True)
        shutil.copytree(out / "ingested", after_ws)
        shutil.copytree(store.workspace / versions.READERS_DIR, after_ws / versions.READERS_DIR)
        versions.set_current(after_ws, outcome.version)
        after = Store.open(after_ws)
        with after.tx() as conn:
            todo = [(f, k) for f, k in conn.execute(select(forms.c.form_id, forms.c.layout_key)) if f in rest]
        t = time.perf_counter()
        rr = reread_forms(after, todo)
        res["reread_other_s"] = round(time.perf_counter() - t, 1)
        res["after"] = figures(after, sim / "truth.jsonl", truth, rest, versions.load_reader(after_ws))
        res["after"]["reread_forms"] = rr.forms
    return res


def markdown(r: dict) -> str:
    b, a = r["before"], r.get("after")
    rows = [("cell accuracy", "cell_accuracy", "{:.2%}"), ("straight-through (acceptable forms accepted)",
             "straight_through", "{:.2%}"), ("wrong among accepted values", "wrong_among_accepted", "{:.2%}")]
    halves = r.get("glyph_halves")
    lines = [f"# Adapting the reader: {r['forms']} forms by `{r['writers']}` writers, first {r['reviewed_forms']} "
             + ("of glyph half 0 " if halves else "")
             + f"reviewed ({r['queue_cleared']} from the queue)", "",
             (f"Measured on the {r.get('measured_forms')} forms of glyph half 1 (digit images no reviewed form has)."
              if halves else "Measured on the other forms (the pool's digit images repeat across forms)."), "",
             "| measure (other forms) | before | after |", "|---|---|---|"]
    for label, key, fmt in rows:
        lines.append(f"| {label} | {fmt.format(b[key])} | {fmt.format(a[key]) if a else '-'} |")
    for k in DIGITS:
        if k in b["field_accuracy"]:
            after = a["field_accuracy"].get(k) if a else None
            lines.append(f"| {k} read right | {b['field_accuracy'][k]:.2%} | "
                         f"{'-' if after is None else f'{after:.2%}'} |")
    lines.append(f"| accepted values (wrong) | {b['accepted_values']} ({b['accepted_wrong']}) | "
                 + (f"{a['accepted_values']} ({a['accepted_wrong']}) |" if a else "- |"))
    lines += ["", f"gate (held-out reviewed forms), promoted: {r['promoted']}", "", "```", r["gate"], "```",
              "", f"adapt: {r['adapt_s']} s; ingest: {r['ingest_s']} s"]
    if "reread_in_place" in r:
        rr = r["reread_in_place"]
        lines.append(f"re-read in place: {rr['forms']} forms in review, {rr['changed_values']} values changed, "
                     f"{rr['accepted']} accepted without a reviewer")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forms", type=int, default=1000)
    ap.add_argument("--reviewed", type=int, default=300)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=23)
    ap.add_argument("--profile", default="typical")
    ap.add_argument("--writers", default="other")
    ap.add_argument("--out", default=str(REPO / "bench-out" / "adapt"))
    ap.add_argument("--glyph-halves", action="store_true",
                    help="simulate with `--glyph-halves`: review forms of glyph half 0 only and measure on half 1's, "
                         "whose digit images the reviewed forms never showed (otherwise a pool's images repeat)")
    ap.add_argument("--reuse", action="store_true", help="start from the store an earlier run ingested")
    ap.add_argument("--ingest-only", action="store_true", help="simulate and ingest, then stop (for a later --reuse)")
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    args = ap.parse_args()
    args.out = str(Path(args.out) / (args.writers + ("-halves" if args.glyph_halves else "")))
    r = run(args)
    if args.ingest_only:
        print(json.dumps(r))
        return
    (Path(args.out) / "report.json").write_text(json.dumps(r, indent=1, ensure_ascii=False), encoding="utf-8")
    text = markdown(r)
    (Path(args.out) / "report.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
