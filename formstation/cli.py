"""`formstation` command line. The one place that maps exceptions to exit codes.

Subcommand names are a public contract. Each subcommand module exposes `register(sub)` adding its
parser with `set_defaults(func=...)`; func(args) returns an ExitCode.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from pathlib import Path

from sqlalchemy.exc import DatabaseError

from forms.layout import DEFAULT_LAYOUT, LayoutError
from formstation.config import ConfigError
from formstation.errors import ExitCode, StationError

log = logging.getLogger("formstation")

# modules that register subcommands (a missing optional one is skipped with a debug log)
COMMAND_MODULES = (
    "formstation.commands",
    "formstation.sim_cli",
    "ocr.ingest_cli",
    "ocr.reader_cli",
    "output.export_cli",
    "review_ui.cli",
)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="formstation", description="Form Station: scanned application forms -> card data file")
    ap.add_argument("--workspace", type=Path, default=None,
                    help="workspace folder with the store and page images (default ./station-data, env FORMSTATION_WORKSPACE)")
    ap.add_argument("--layout", default=DEFAULT_LAYOUT, help="layout key in layouts/ or a YAML path")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except StationError as e:
        print(f"formstation: error: {e}", file=sys.stderr)
        return int(e.code)
    except LayoutError as e:
        print(f"formstation: error: {e}", file=sys.stderr)
        return int(ExitCode.INPUT)
    except ConfigError as e:
        print(f"formstation: error: {e} (fix or remove the file)", file=sys.stderr)
        return int(ExitCode.CONFIG)
    except DatabaseError as e:  # unreachable server, locked or damaged database file
        print(f"formstation: error: {store_problem(e)}", file=sys.stderr)
        return int(ExitCode.STORE)
    except KeyboardInterrupt:
        print("formstation: interrupted; re-run the same command to continue", file=sys.stderr)
        return 130
    except Exception:  # the program's own failure: keep the traceback for the developers
        traceback.print_exc()
        return int(ExitCode.FAILURE)


def store_problem(e: DatabaseError) -> str:
    """One line naming what went wrong with the store, without the SQL (it may carry personal data)
    or the database URL (it may carry a password)."""
    first = (str(e.orig) if e.orig is not None else str(e)).strip().splitlines()
    return f"the store cannot be used: {type(e.orig or e).__name__}: {first[0] if first else 'no detail'}"


if __name__ == "__main__":
    sys.exit(main())
