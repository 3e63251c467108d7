"""Risk-coverage of the digit fields: for any confidence threshold, the share of fields it would
accept (coverage) against the share of those that are wrong (risk).

    .venv/bin/python bench/risk_coverage.py RUN_WS TRUTH [RUN_WS TRUTH ...] [--plot PNG] [--target 0.005]

RUN_WS: a station workspace a simulated campaign was ingested into (bench/campaign.py leaves it in
OUT/run-ws); TRUTH: that campaign's truth.jsonl. Fields counted: phone, guardian_phone,
guardian_id, corrected_id wherever written (or read as written), before any reviewer. Prints per
field the curve at a few thresholds and the lowest threshold at which at most --target of the
accepted fields are wrong (the value for station.toml). Measure on held-out writers and check the
picked thresholds on another seed and on `--writers other`: never pick on what you report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from formstation.store import Store  # noqa: E402
from simulate.evaluate import DIGIT_FIELDS, RISK_TARGET, field_scores, pick_threshold, risk_coverage  # noqa: E402

SHOW = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


def at(scores: list[tuple[float, bool]], t: float) -> tuple[float, float, int]:
    """(coverage, risk, wrong) when accepting fields read at least `t` sure."""
    acc = [right for conf, right in scores if conf >= t]
    wrong = sum(not r for r in acc)
    return len(acc) / max(len(scores), 1), wrong / max(len(acc), 1), wrong


def table(scores: dict[str, list[tuple[float, bool]]], target: float, picked: dict[str, float] | None = None) -> str:
    """Markdown: per field, coverage / risk at SHOW thresholds and at the picked one."""
    lines = ["| field | n | read right | " + " | ".join(f"t={t}" for t in SHOW) + " | picked (<= "
             f"{target:.1%} wrong) |", "|---" * (len(SHOW) + 4) + "|"]
    for name in DIGIT_FIELDS:
        s = scores.get(name) or []
        if not s:
            continue
        right = sum(r for _, r in s) / len(s)
        cells = []
        for t in SHOW:
            cov, risk, wrong = at(s, t)
            cells.append(f"{cov:.0%} / {risk:.2%}")
        t = (picked or {}).get(name, pick_threshold(s, target))
        cov, risk, wrong = at(s, t)
        lines.append(f"| {name} | {len(s)} | {right:.1%} | " + " | ".join(cells)
                     + f" | {t:.4f}: {cov:.0%} / {risk:.2%} ({wrong} wrong) |")
    lines.append("")
    lines.append("cells: coverage (share of the written fields accepted) / risk (share of those wrong)")
    return "\n".join(lines)


def plot(scores: dict[str, list[tuple[float, bool]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name in DIGIT_FIELDS:
        curve = risk_coverage(scores.get(name) or [])
        if curve:
            ax.plot([c for _, c, _ in curve], [r * 100 for _, _, r in curve], label=name, drawstyle="steps-post")
    ax.axhline(RISK_TARGET * 100, color="#a33", lw=0.8, ls="--", label=f"{RISK_TARGET:.1%} wrong")
    ax.set_xlabel("coverage: share of written fields accepted without a reviewer")
    ax.set_ylabel("risk: % of accepted fields wrong")
    ax.set_ylim(0, 5)
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def doubt_shares(ws: Path) -> list[float]:
    """Per form with at least UNUSUAL_MIN_BOXES inked comb boxes: the share of them the reader
    doubts (ocr.read.writing_doubt), for setting `unusual_writing_share`."""
    from sqlalchemy import select

    from formstation.store import fields
    from ocr.rules import UNUSUAL_MIN_BOXES, doubt_counts
    from ocr.types import WRITING_DOUBT

    with Store.open(ws).tx() as conn:
        values = [r.value for r in conn.execute(select(fields.c.value).where(fields.c.name == WRITING_DOUBT))]
    out = []
    for v in values:
        d, n = doubt_counts(v or "")
        if n >= UNUSUAL_MIN_BOXES:
            out.append(d / n)
    return out


def gather(pairs: list[tuple[Path, Path]]) -> dict[str, list[tuple[float, bool]]]:
    out: dict[str, list[tuple[float, bool]]] = {n: [] for n in DIGIT_FIELDS}
    for ws, truth in pairs:
        for name, s in field_scores(Store.open(ws), truth).items():
            out[name] += s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs", nargs="+", help="RUN_WS TRUTH, repeated")
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--target", type=float, default=RISK_TARGET)
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("expected RUN_WS TRUTH pairs")
    pairs = [(Path(a), Path(b)) for a, b in zip(args.pairs[::2], args.pairs[1::2], strict=True)]
    scores = gather(pairs)
    print(table(scores, args.target))
    print(f"\nstation.toml [thresholds] at <= {args.target:.1%} wrong:")
    for name in DIGIT_FIELDS:
        if scores[name]:
            print(f"{name} = {pick_threshold(scores[name], args.target):.4f}")
    shares = sorted(x for ws, _ in pairs for x in doubt_shares(ws))
    if shares:
        q = [shares[min(len(shares) - 1, int(p * len(shares)))] for p in (0.5, 0.9, 0.95, 0.99)]
        print(f"\ndoubtful share of inked boxes per form (n={len(shares)}): median {q[0]:.0%}, "
              f"90th {q[1]:.0%}, 95th {q[2]:.0%}, 99th {q[3]:.0%}")
    if args.plot:
        plot(scores, args.plot, "risk-coverage, digit fields")
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
