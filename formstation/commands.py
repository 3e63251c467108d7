"""Foundation subcommands: `roster import`, `print`, `demo-roster`."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from forms.layout import load_layout
from formstation import demo
from formstation.errors import ExitCode, StationError
from formstation.printjob import print_forms
from formstation.roster import import_roster
from formstation.store import Store


def open_store(args: argparse.Namespace) -> Store:
    try:
        return Store.open(args.workspace)
    except RuntimeError as e:
        raise StationError(str(e), ExitCode.STORE) from None


def cmd_roster_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    from formstation.roster import read_table

    read_table(path, args.sheet)  # fail fast on a bad file before the store is touched
    rep = import_roster(open_store(args), path, args.sheet)
    for p in rep.problems:
        print(f"{path.name}: row {p.row}: rejected: {p.reason}")
    for w in rep.warnings:
        print(f"{path.name}: row {w.row}: warning: {w.reason}")
    print(f"{path.name}: {rep.rows} rows: {rep.added} added, {rep.updated} updated, "
          f"{rep.unchanged} unchanged, {len(rep.problems)} rejected")
    return ExitCode.OK


def cmd_print(args: argparse.Namespace) -> int:
    layout = load_layout(args.layout)
    out = print_forms(open_store(args), layout, Path(args.out), args.school, args.class_name, args.campaign_date)
    for f in out:
        print(f"{f.path}: {f.pages} forms ({f.school} {f.class_name})")
    print(f"printed {sum(f.pages for f in out)} forms in {len(out)} files")
    return ExitCode.OK


def cmd_demo_roster(args: argparse.Namespace) -> int:
    path = demo.write_roster(Path(args.out), seed=args.seed, per_class=args.per_class)
    print(f"wrote {path} ({args.per_class * len(demo.DEMO_CLASSES)} students)")
    return ExitCode.OK


def iso_date(text: str) -> date:
    """argparse type for a YYYY-MM-DD date."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("roster", help="roster commands").add_subparsers(dest="roster_cmd", metavar="ACTION", required=True)
    imp = r.add_parser("import", help="import a roster (CSV or XLSX with headers 学校,班级,姓名,性别,身份证号码,学籍号,开户银行[,照片])")
    imp.add_argument("file")
    imp.add_argument("--sheet", default=None, help="XLSX sheet name (default: the first)")
    imp.set_defaults(func=cmd_roster_import)

    pr = sub.add_parser("print", help="print pre-filled forms, one PDF per school/class")
    pr.add_argument("--out", required=True, help="folder for the PDFs")
    pr.add_argument("--school", default=None)
    pr.add_argument("--class", dest="class_name", default=None)
    pr.add_argument("--campaign-date", type=iso_date, default=None, metavar="YYYY-MM-DD",
                    help="the day ages are computed on (under 6: no photo; under 16: a guardian); kept in "
                         "station.toml, shown on the supervisor's page; default: the day each form is printed")
    pr.set_defaults(func=cmd_print)

    dr = sub.add_parser("demo-roster", help="write a synthetic demo roster CSV")
    dr.add_argument("--out", required=True)
    dr.add_argument("--seed", type=int, default=1)
    dr.add_argument("--per-class", type=int, default=8)
    dr.set_defaults(func=cmd_demo_roster)
