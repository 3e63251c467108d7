"""`formstation simulate`: fill printed forms the way parents do and scan them the way bulk scanners
do, writing the scans plus `truth.jsonl` and `pages.jsonl` (see simulate/)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from formstation import demo
from formstation.commands import iso_date, open_store
from formstation.errors import ExitCode, StationError
from simulate import WRITERS


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulate.profiles import RatesError, load_profile
    from simulate.runner import SimConfig, SimulationError, run

    pdfs = tuple(Path(p) for p in args.pdfs)
    for p in pdfs:
        if not p.is_file():
            raise StationError(f"{p}: no such file")
    formats = tuple(x.strip() for x in args.formats.split(",") if x.strip()) if args.formats else None
    try:
        profile = load_profile(args.profile, Path(args.rates) if args.rates else None, formats)
    except (RatesError, OSError) as e:
        raise StationError(str(e)) from None
    cfg = SimConfig(pdfs, Path(args.out), args.seed, profile, args.campaign_date, args.writers, args.glyph_halves)

    def progress(n: int) -> None:
        if not args.quiet:
            print(f"\r{n} pages ...", end="", file=sys.stderr, flush=True)

    try:
        s = run(cfg, open_store(args), progress)
    except SimulationError as e:
        raise StationError(str(e)) from None
    if not args.quiet:
        print(file=sys.stderr)
    print(f"simulated {s.forms} forms ({s.scanned} scanned): {s.pages} pages in {s.files} files under "
          f"{cfg.out / 'scans'}; truth in {cfg.out / 'truth.jsonl'} "
          f"({s.seconds:.1f} s, {s.seconds / max(1, s.pages):.2f} s/page)")
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("simulate", help="fill printed forms like parents and scan them like bulk scanners (test data)")
    sp.add_argument("pdfs", nargs="+", metavar="PRINTED_PDF",
                    help="PDFs written by `formstation print` (of any layouts: each page is filled with the "
                         "layout its barcode names)")
    sp.add_argument("--out", required=True, help="output folder: scans/, truth.jsonl, pages.jsonl")
    sp.add_argument("--seed", type=int, required=True, help="the same seed gives byte-identical output")
    sp.add_argument("--profile", choices=("clean", "typical", "harsh"), default="typical")
    sp.add_argument("--rates", default=None, help="YAML overriding rates: {fill: {...}, scan: {...}}")
    sp.add_argument("--formats", default=None,
                    help="comma-separated output formats to cycle through: pdf,tiff_g4,tiff_jpeg,jpeg_dir")
    sp.add_argument("--campaign-date", type=iso_date, default=demo.CAMPAIGN,
                    help=f"date ages are computed at (default {demo.CAMPAIGN.isoformat()})")
    sp.add_argument("--writers", choices=WRITERS, default="heldout",
                    help="whose digits: heldout (default; never trained on, for measuring), the digit "
                         "reader's train / val writers (to make page-style training cells), other "
                         "(scikit-learn's load_digits: writers unlike any the reader learned from), "
                         "calib (MNIST 60k's held-out block: for picking confidence thresholds) or "
                         "print (digits printed like type: unlike writers of another kind)")
    sp.add_argument("--glyph-halves", action="store_true",
                    help="each form's parent writes with one half of the pool's digit images (by a hash of "
                         "the form id), so that a reader learning from one half's reviewed forms can be "
                         "measured on the other half's, whose digit images it never saw; within the first "
                         "half, the reader's learning gate's training, calibration and hold-out forms write "
                         "with a third each (bench/adapt.py --glyph-halves)")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    sp.set_defaults(func=cmd_simulate)
