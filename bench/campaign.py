"""Simulate a campaign and run the station on it: throughput per stage, memory, accuracy.

    .venv/bin/python bench/campaign.py --forms 1000 --workers 2 --out bench-out/campaign
    .venv/bin/python bench/campaign.py --forms 200 --dask-workers 2   # recognition on a local Dask cluster

Steps: demo roster (classes of 40) -> import -> print -> simulate (typical, held-out writers) ->
ingest (align + read) -> decide -> export; then compare the store with the simulator's truth.
Writes report.md and PNG plots in --out and prints the report. Figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from forms.layout import load_layout
from formstation import demo
from formstation.config import load_config
from formstation.printjob import print_forms
from formstation.roster import import_roster
from formstation.store import Store
from ocr.ingest import ingest_paths
from simulate import WRITERS
from simulate.evaluate import DIGIT_FIELDS, RISK_TARGET, evaluate, field_scores, markdown

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import risk_coverage  # noqa: E402

STAGES = ("decode", "blank", "marks", "warp", "barcode", "save", "read")


def _prepare(out: Path, n_forms: int, seed: int, profile: str, writers: str = "heldout",
             glyph_halves: bool = False, rates: Path | None = None, layout: str | None = None) -> tuple[Store, Path]:
    """Workspace with roster, printed PDFs and simulated scans (cached by parameters; `rates`: a
    `formstation simulate --rates` file, named in the cache key by its file name; `layout`: the
    layout every form is printed with, the station's default when None)."""
    key = out / (f"sim-{n_forms}-{seed}-{profile}" + ("" if writers == "heldout" else f"-{writers}")
                 + ("-halves" if glyph_halves else "") + (f"-{rates.stem}" if rates else "")
                 + (f"-{layout}" if layout else ""))
    ws = key / "ws"
    if not (key / "sim" / "truth.jsonl").is_file():
        shutil.rmtree(key, ignore_errors=True)
        store = Store.open(ws)
        per_class = 40
        classes = demo.campaign_classes(max(1, -(-n_forms // per_class)))
        rows = demo.roster_rows(seed, per_class, classes)[:n_forms]
        roster = key / "roster.csv"
        demo.write_roster(roster, seed, per_class, classes)
        _truncate_csv(roster, len(rows))
        import_roster(store, roster)
        print_forms(store, load_layout(layout) if layout else load_layout(), key / "print", campaign_date=demo.CAMPAIGN)
        pdfs = sorted(str(p) for p in (key / "print").glob("*.pdf"))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "formstation.cli", "--workspace", str(ws), "simulate", *pdfs,
                        "--out", str(key / "sim"), "--seed", str(seed), "--profile", profile, "--writers", writers,
                        "-q", *(["--glyph-halves"] if glyph_halves else []),
                        *(["--rates", str(rates)] if rates else [])], check=True)
        print(f"simulated in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        shutil.copytree(ws, key / "ws-pristine")
    work = out / "run-ws"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(key / "ws-pristine", work)
    return Store.open(work), key / "sim"


def _truncate_csv(path: Path, n_rows: int) -> None:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    path.write_text("\ufeff" + "\n".join(lines[: n_rows + 1]) + "\n", encoding="utf-8")


def _plot(out: Path, per_stage: dict[str, float], field_acc: dict[str, float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(list(per_stage), [v * 1000 for v in per_stage.values()], color="#4a7")
    ax.set_xlabel("ms per page (worker time)")
    ax.set_title("ingest time per stage")
    fig.tight_layout()
    fig.savefig(out / "stages.png", dpi=110)
    names.append("stages.png")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.barh(list(field_acc), [v * 100 for v in field_acc.values()], color="#47a")
    ax.set_xlim(0, 100)
    ax.set_xlabel("% read right (all scanned forms, before review)")
    fig.tight_layout()
    fig.savefig(out / "fields.png", dpi=110)
    names.append("fields.png")
    plt.close("all")
    return names


@contextmanager
def _dask_scheduler(n_workers: int):
    """None, or the address of a local Dask cluster of `n_workers` single-threaded processes."""
    if not n_workers:
        yield None
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster:
        yield cluster.scheduler_address


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(args: argparse.Namespace) -> str:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store, sim = _prepare(out, args.forms, args.seed, args.profile, args.writers, rates=args.rates,
                          layout=args.layout)
    n_pages = sum(1 for _ in (sim / "pages.jsonl").open())
    with _dask_scheduler(args.dask_workers) as scheduler:
        t, cpu, kids = time.perf_counter(), time.process_time(), _children_cpu()
        s = ingest_paths(store, load_layout(), [sim / "scans"], workers=args.workers, scheduler=scheduler)
        wall = time.perf_counter() - t
        # CPU of the process that stores pages and decides forms, and of the pool's workers (counted
        # once they have ended, at the end of the batch; Dask's workers are not children)
        cpu, kids = time.process_time() - cpu, _children_cpu() - kids
    t = time.perf_counter()
    from output.export import export

    export(store, out / "export")
    t_export = time.perf_counter() - t
    rep = evaluate(store, sim / "truth.jsonl")
    form_pages = max(1, s.forms + s.unidentified)
    per_stage = {k: s.timings.get(k, 0.0) / (s.pages if k in ("decode", "blank") else form_pages)
                 for k in STAGES if k in s.timings}
    peak_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    plots = _plot(out, per_stage, rep.field_accuracy())
    scores = field_scores(store, sim / "truth.jsonl")
    risk_coverage.plot(scores, out / "risk_coverage.png", f"risk-coverage, {args.writers} writers, seed {args.seed}")
    plots.append("risk_coverage.png")
    thresholds = load_config(store.workspace).thresholds
    lines = [
        f"# Campaign bench: {args.forms} forms, profile {args.profile}, "
        + (f"layout {args.layout}, " if args.layout else "")
        + (f"{args.dask_workers} Dask worker(s)" if args.dask_workers else f"{args.workers} worker(s)"),
        "", f"machine: {os.cpu_count()} cores; pages in batch: {n_pages} ({s.forms} form pages, "
        f"{s.blank_backs} blank backs, {s.unidentified} unidentified, {s.quarantined} quarantined files)",
        "", "| measure | value |", "|---|---|",
        f"| ingest wall time (decode, align, identify, read, store, decide) | {wall:.1f} s |",
        f"| pages per second, end to end | {s.pages / wall:.2f} |",
        f"| pages per second per worker | {s.pages / wall / (args.dask_workers or args.workers):.2f} |",
        f"| CPU per page: reading process (store, decide) / workers | {1000 * cpu / s.pages:.0f} ms / "
        f"{1000 * kids / s.pages:.0f} ms |",
        f"| export | {t_export:.1f} s |",
        f"| peak memory main / largest worker | {peak_main:.0f} MB / {peak_child:.0f} MB |",
        "", "| stage | ms per page (worker CPU) |", "|---|---|",
        *[f"| {k} | {v * 1000:.1f} |" for k, v in per_stage.items()],
        "", markdown(rep), "",
        "## Risk-coverage of the digit fields (before any reviewer)", "",
        risk_coverage.table(scores, RISK_TARGET, {k: thresholds[k] for k in DIGIT_FIELDS if k in thresholds}),
        "(picked: the station's threshold for that field)", "",
        *[f"![{p}]({p})" for p in plots],
    ]
    if rep.wrong_examples:
        lines += ["", "wrong auto-accepted values (form, field, truth, read):",
                  *[f"- {a} {b}: {c!r} read as {d!r}" for a, b, c, d in rep.wrong_examples]]
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.json").write_text(json.dumps({
        "forms": args.forms, "workers": args.workers, "pages": s.pages, "wall_s": wall,
        "pages_per_s": s.pages / wall, "main_cpu_ms_per_page": 1000 * cpu / s.pages,
        "worker_cpu_ms_per_page": 1000 * kids / s.pages, "auto_accept": rep.auto_accept_share,
        "no_reviewer": rep.no_reviewer_share,
        "accepted_wrong_rate": rep.accepted_wrong_rate, "peak_main_mb": peak_main,
        "peak_worker_mb": peak_child, "per_stage_ms": {k: v * 1000 for k, v in per_stage.items()}}, indent=1))
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forms", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--dask-workers", type=int, default=0,
                    help="run recognition on a local Dask cluster of this many worker processes")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--profile", default="typical")
    ap.add_argument("--writers", default="heldout", choices=WRITERS,
                    help="whose digits the parents write: heldout (default; every figure in the README), "
                         "the reader's train / val writers (to make page-style cells for training.pagecells) or "
                         "other: scikit-learn's load_digits, writers unlike any the reader learned from")
    ap.add_argument("--rates", type=Path, default=None,
                    help="a YAML file of fill / scan rates over the profile's (formstation simulate --rates)")
    ap.add_argument("--layout", default=None,
                    help="print every form with this layout (layouts/<key>.yaml); the station's default otherwise")
    ap.add_argument("--out", default=str(REPO / "bench-out" / "campaign"))
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    print(run(ap.parse_args()))


if __name__ == "__main__":
    main()
