"""Bench: decide a simulated campaign's forms again with other thresholds, without reading again.

    .venv/bin/python bench/redecide.py RUN_WS TRUTH [--set phone=0.99 --set guardian_id=0.985 ...]

RUN_WS: a station workspace a simulated campaign was ingested into (bench/campaign.py leaves it in
OUT/run-ws; no reviewer has touched it); TRUTH: that campaign's truth.jsonl. The thresholds given
are written to the workspace's station.toml (the others keep their value), every form is decided
again from its stored readings, and the campaign's figures are printed: share of acceptable forms
accepted with no reviewer, wrong values among the accepted, expected vs decided. For checking a
threshold picked on one campaign (bench/risk_coverage.py) on another: never on the one it was
picked on.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select  # noqa: E402

from formstation.config import load_config, save_config  # noqa: E402
from formstation.store import Store, fields, forms  # noqa: E402
from ocr.rules import decide_forms  # noqa: E402
from simulate.evaluate import evaluate, markdown  # noqa: E402


def _thresholds(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--set {item!r}: expected FIELD=SHARE, e.g. phone=0.99") from None
        if not sep:
            raise SystemExit(f"--set {item!r}: expected FIELD=SHARE, e.g. phone=0.99")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workspace", type=Path)
    ap.add_argument("truth", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=SHARE")
    args = ap.parse_args()
    store = Store.open(args.workspace)
    with store.tx() as conn:
        reviewed = conn.execute(select(fields.c.form_id).where(fields.c.source == "reviewer").limit(1)).first()
    if reviewed is not None:
        raise SystemExit(f"{args.workspace}: a reviewer has worked in this workspace; this bench decides every "
                         "form again and rewrites station.toml: run it on a campaign's run-ws only")
    cfg = load_config(args.workspace)
    th = dict(cfg.thresholds)
    for k, v in _thresholds(args.set).items():
        if k not in th:
            raise SystemExit(f"--set {k}: not a threshold (one of {', '.join(th)})")
        th[k] = v
    save_config(args.workspace, replace(cfg, thresholds=th))
    load_config(args.workspace)  # the station's own check of what was written
    with store.tx() as conn:
        ids = {r[0] for r in conn.execute(select(forms.c.form_id).where(forms.c.status != "printed"))}
        conn.execute(forms.update().where(forms.c.status != "printed").values(status="received", decided_at=None))
    decide_forms(store, ids)
    print("thresholds: " + ", ".join(f"{k} {v:g}" for k, v in th.items()))
    print(markdown(evaluate(store, args.truth)))


if __name__ == "__main__":
    main()
