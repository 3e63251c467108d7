"""What the reader made of every comb box of a campaign, split by scan mode and by boxes the
parent's digit touches or crosses (the simulator's `touching` mark): the A/B figures of a comb
print (grey boxes against drop-out boxes, issue 14).

    .venv/bin/python bench/comb_cells.py bench-out/campaign        # the --out of bench/campaign.py

Cells are the normalised 28x28 cells the station kept at ingest (`<field>.cells.npz` beside each
crop: what the reader saw, colour drop-out included), read again by the shipped reader; a box
the parent wrote in that the reader found empty counts as wrong. Struck-out boxes are left out.
Fields and forms: the store's values and statuses against the truth, per scan mode of the
form's page (a form scanned twice in two modes counts as 'mixed'). Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
from sqlalchemy import select

from forms.layout import load_layout
from formstation.store import Store, fields, forms
from ocr.digits import CLASSES, default_classifier
from ocr.labels import OWN, load_cells


def _sha(path: Path, cache: dict[Path, str]) -> str:
    if path not in cache:
        cache[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return cache[path]


def _pages(sim: Path) -> list[dict]:
    return [r for r in map(json.loads, (sim / "pages.jsonl").open(encoding="utf-8")) if r["kind"] == "form"]


def cell_rows(sim: Path, ws: Path) -> list[tuple[str, bool, int, bool]]:
    """(scan mode, touching, class index, cell or None) of every written, not struck-out comb box."""
    truth = {r["form_id"]: r for r in map(json.loads, (sim / "truth.jsonl").open(encoding="utf-8"))}
    combs = [z for z in load_layout().zones if z.kind == "digits"]
    shas: dict[Path, str] = {}
    rows, cells = [], []
    for p in _pages(sim):
        t = truth.get(p["form_id"])
        if t is None:
            continue
        crop_dir = ws / "crops" / _sha(sim / p["file"], shas)[:16] / f"p{p['page']:04d}"
        for z in combs:
            value = t["fields"].get(z.name) or ""
            got = load_cells(crop_dir / f"{z.name}.cells.npz") if value else None
            if got is None:
                continue
            crossed = (t["marks"].get("crossed_out") or {}).get(z.name) or {}
            touching = set((t["marks"].get("touching") or {}).get(z.name) or ())
            for i, ch in enumerate(value[: len(got[0])]):
                if crossed.get("cell") == i or ch not in CLASSES:
                    continue
                own = int(got[1][i]) == OWN
                rows.append((p["mode"], i in touching, CLASSES.index(ch), own))
                cells.append(got[0][i])
    probs = default_classifier().predict_proba(np.stack(cells)) if cells else np.zeros((0, len(CLASSES)))
    return [(m, touch, y, own and int(np.argmax(pr)) == y) for (m, touch, y, own), pr in zip(rows, probs, strict=True)]


def form_rows(sim: Path, ws: Path) -> list[tuple[str, dict, str, dict]]:
    """(scan mode, truth, decided status, stored values) of every scanned form."""
    modes: dict[str, set[str]] = {}
    for p in _pages(sim):
        modes.setdefault(p["form_id"], set()).add(p["mode"])
    store = Store.open(ws)
    with store.tx() as conn:
        status = {r.form_id: r.status for r in conn.execute(select(forms.c.form_id, forms.c.status))}
        vals: dict[str, dict[str, str]] = {}
        for r in conn.execute(select(fields.c.form_id, fields.c.name, fields.c.value)):
            vals.setdefault(r.form_id, {})[r.name] = r.value or ""
    out = []
    for t in map(json.loads, (sim / "truth.jsonl").open(encoding="utf-8")):
        if t.get("scanned") and t["form_id"] in modes:
            m = modes[t["form_id"]]
            out.append((next(iter(m)) if len(m) == 1 else "mixed", t, status.get(t["form_id"], "missing"),
                        vals.get(t["form_id"], {})))
    return out


def _pct(a: int, n: int) -> str:
    return f"{a / n:.1%} ({a}/{n})" if n else "-"


def report(out: Path) -> str:
    key = next(iter(sorted(out.glob("sim-*/sim"))))
    ws = out / "run-ws"
    cells = cell_rows(key, ws)
    combs = [z.name for z in load_layout().zones if z.kind == "digits"]
    lines = [f"# Comb boxes of {out}", "", f"layout comb ink: {load_layout().comb_ink}", "",
             "| cells (written boxes) | all | touching a line | not touching |", "|---|---|---|---|"]
    for mode in ("all", *sorted({c[0] for c in cells})):
        sel = [c for c in cells if mode in ("all", c[0])]
        parts = [[c for c in sel], [c for c in sel if c[1]], [c for c in sel if not c[1]]]
        lines.append(f"| {mode} | " + " | ".join(_pct(sum(c[3] for c in p), len(p)) for p in parts) + " |")
    rows = form_rows(key, ws)
    lines += ["", "| forms by scan mode | forms | straight-through (acceptable accepted) | wrong among accepted values | "
              + " | ".join(combs) + " |", "|---|---|---|---|" + "---|" * len(combs)]
    for mode in ("all", *sorted({r[0] for r in rows})):
        sel = [r for r in rows if mode in ("all", r[0])]
        ok = [r for r in sel if r[1]["expected_status"] == "accepted"]
        acc = [r for r in sel if r[2] == "accepted"]
        vals = Counter()
        for _, t, _, got in acc:
            for n in combs:
                vals["n"] += 1
                vals["wrong"] += got.get(n, "") != (t["fields"].get(n) or "")
        right = [_pct(sum(got.get(n, "") == (t["fields"].get(n) or "") for _, t, _, got in sel), len(sel)) for n in combs]
        lines.append(f"| {mode} | {len(sel)} | {_pct(sum(r[2] == 'accepted' for r in ok), len(ok))} | "
                     f"{_pct(vals['wrong'], vals['n'])} | " + " | ".join(right) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the --out folder of bench/campaign.py (after its run)")
    print(report(ap.parse_args().out))


if __name__ == "__main__":
    main()
