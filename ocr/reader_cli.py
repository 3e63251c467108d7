"""`formstation reader adapt | versions | use VERSION | forget`: the campaign's reader versions."""

from __future__ import annotations

import argparse
import json

from formstation.commands import open_store
from formstation.errors import ExitCode, StationError
from ocr import labels, learning, versions


def cmd_adapt(args: argparse.Namespace) -> int:
    out = learning.run_adapt(open_store(args), user="cli")
    print(out.message)
    return ExitCode.OK if out.version else ExitCode.NOTHING_TO_DO


def version_rows(workspace) -> list[dict]:
    """One row per kept version: name, current, created, figures on the held-out forms."""
    cur = versions.current_name(workspace)
    rows = []
    for v in versions.list_versions(workspace):
        f, cand = v.figures, v.figures.get("candidate") or {}
        rows.append({"version": v.name, "current": v.name == cur, "shipped": v.shipped,
                     "created": f.get("created_at", ""), "reviewed forms": f.get("reviewed_forms"),
                     "held-out forms": (f.get("forms") or {}).get("holdout"),
                     "cell accuracy": cand.get("cell_accuracy"), "field accuracy": cand.get("field_accuracy"),
                     "accepted": cand.get("accepted_share"), "wrong among accepted": cand.get("wrong_share"),
                     "compared with": f.get("current_version"),
                     "then": (f.get("current") or {}).get("cell_accuracy"),
                     # on forms no reviewer opened (ocr.adapt.load_unreviewed): fields it accepts, and the other's
                     "unreviewed fields accepted": (f.get("unreviewed") or {}).get("candidate_accepted"),
                     "then accepted": (f.get("unreviewed") or {}).get("current_accepted"),
                     # the held-out cells the two read differently (ocr.adapt.cell_changes: the sign test)
                     "cells fixed": (f.get("cell_changes") or {}).get("fixed"),
                     "cells broken": (f.get("cell_changes") or {}).get("broken"),
                     "forms better": (f.get("cell_changes") or {}).get("forms_better"),
                     "forms worse": (f.get("cell_changes") or {}).get("forms_worse"),
                     "chance": (f.get("cell_changes") or {}).get("p_value"),
                     "verdict": "" if v.shipped else ("promoted" if f.get("promoted") else
                                                      "; ".join(f.get("why_not") or [])),
                     "usable": v.usable})
    return rows


def cmd_versions(args: argparse.Namespace) -> int:
    rows = version_rows(open_store(args).workspace)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return ExitCode.OK
    for r in rows:
        mark = "*" if r["current"] else " "
        figs = ("" if r["cell accuracy"] is None else
                f" cells {r['cell accuracy']:.2%} fields {r['field accuracy']:.2%} accepted {r['accepted']:.2%}"
                f" wrong {r['wrong among accepted']:.2%} (then {r['compared with']}: cells {r['then']:.2%})"
                + ("" if r["unreviewed fields accepted"] is None else
                   f"; unreviewed forms: accepts {r['unreviewed fields accepted']} fields (then {r['then accepted']})")
                + ("" if r["cells fixed"] is None else
                   f"; held-out cells fixed {r['cells fixed']}, broken {r['cells broken']}, forms better "
                   f"{r['forms better']}, worse {r['forms worse']} (chance {r['chance']:.2%})"))
        verdict = f"; verdict: {r['verdict']}" if r["verdict"] else ""
        print(f"{mark} {r['version']}{' (shipped)' if r['shipped'] else ''} {r['created']}{figs}{verdict}".rstrip())
    return ExitCode.OK


def cmd_use(args: argparse.Namespace) -> int:
    store = open_store(args)
    try:
        rr = learning.use_version(store, args.version, user="cli")
    except (KeyError, ValueError) as e:
        raise StationError(str(e).strip("'\""), ExitCode.INPUT) from None
    print(f"{rr.version} is now the current reader; re-read {rr.forms} forms in review "
          f"({rr.changed} values changed), {rr.accepted} accepted without a reviewer")
    return ExitCode.OK


def cmd_forget(args: argparse.Namespace) -> int:
    with open_store(args).tx() as conn:
        n = labels.forget(conn)
    print(f"deleted {n} labelled cells")
    return ExitCode.OK


def auto_argument(p: argparse.ArgumentParser) -> None:
    """`--auto N` for ingest and watch."""
    p.add_argument("--auto", type=int, default=None, metavar="N",
                   help="adapt the reader to the campaign's handwriting after every N newly reviewed forms "
                        "(formstation reader adapt; default: station.toml [reader] adapt_every, 200; 0: never)")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reader", help="the digit reader's versions: adapt to the campaign, list, roll back")
    rs = r.add_subparsers(dest="reader_cmd", metavar="ACTION", required=True)
    a = rs.add_parser("adapt", help="fit a candidate on the reviewers' labelled cells; it becomes current only "
                                    "when it reads held-out forms better")
    a.set_defaults(func=cmd_adapt)
    v = rs.add_parser("versions", help="list the kept versions with their figures (* current)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_versions)
    u = rs.add_parser("use", help="make a kept version current (roll back) and re-read the forms in review")
    u.add_argument("version")
    u.set_defaults(func=cmd_use)
    f = rs.add_parser("forget", help="delete every labelled cell (children's handwriting) from the store")
    f.set_defaults(func=cmd_forget)
