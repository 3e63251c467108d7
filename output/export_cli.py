"""`formstation export --out DIR [--school S] [--encrypt-to PASSPHRASE_FILE]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from formstation.commands import open_store
from formstation.errors import ExitCode, StationError
from output.export import export, read_passphrase


def cmd_export(args: argparse.Namespace) -> int:
    out = Path(args.out)
    passphrase = None
    if args.encrypt_to:
        pw_file = Path(args.encrypt_to).absolute()
        if pw_file.is_relative_to(out.absolute()):
            raise StationError(f"{args.encrypt_to}: the passphrase file must not be inside {out}"
                               " (the export replaces that folder)")
        passphrase = read_passphrase(pw_file)  # before the store is touched: fail fast
    res = export(open_store(args), out, args.school, passphrase)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    c = res.counts
    print(f"{res.out}: {c['accepted']} accepted, {c['rejected']} rejected, {c['review']} in review, "
          f"{c['rescan']} waiting for a colour rescan, {c['received']} received (not decided), "
          f"{c['printed']} not returned; {res.photos} photos")
    if res.encrypted:
        print(f"{len(res.files)} encrypted zip(s): {', '.join(f.path for f in res.files)}")
    if c["review"] or c["received"] or c["rescan"]:
        print(f"note: {c['review'] + c['received'] + c['rescan']} form(s) not decided yet are not in card_data"
              " (pending.csv lists them)")
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    ex = sub.add_parser("export", help="write the card data file, rejections, chase lists, photos and manifest")
    ex.add_argument("--out", required=True, help="export folder (replaced as a whole; built beside it first)")
    ex.add_argument("--school", default=None, help="only this school")
    ex.add_argument("--encrypt-to", default=None, metavar="PASSPHRASE_FILE",
                    help="write one AES-256 encrypted zip per school, passphrase read from this file")
    ex.set_defaults(func=cmd_export)
