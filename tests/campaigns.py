"""A small campaign made with the project's own tools, for tests that need ingested forms: a demo
roster imported, its forms printed, filled in and scanned by the simulator, ingested by the station
(real engines)."""

from __future__ import annotations

from pathlib import Path

from formstation import demo
from formstation.cli import main
from formstation.store import Store
from simulate.reviewer import load_truth


def ingested(tmp: Path, seed: int, per_class: int, *simulate_args: str) -> dict[str, dict]:
    """Roster, print, simulate (`--seed seed --profile typical`, then `simulate_args`), ingest into
    `tmp / "ws"`; the simulation in `tmp / "sim"`. Returns the truth by form id."""
    fs = ["--workspace", str(tmp / "ws")]
    roster = demo.write_roster(tmp / "roster.csv", seed=seed, per_class=per_class)
    assert main([*fs, "roster", "import", str(roster)]) == 0
    assert main([*fs, "print", "--out", str(tmp / "print")]) == 0
    pdfs = sorted(str(p) for p in (tmp / "print").glob("*.pdf"))
    assert main([*fs, "simulate", *pdfs, "--out", str(tmp / "sim"), "--seed", str(seed), "--profile", "typical",
                 *simulate_args, "-q"]) == 0
    assert main([*fs, "ingest", str(tmp / "sim" / "scans"), "--workers", "2", "--quiet"]) == 0
    Store.open(tmp / "ws").engine.dispose()
    return load_truth(tmp / "sim" / "truth.jsonl")
