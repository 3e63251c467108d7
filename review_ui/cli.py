"""`formstation review` (serve the review app) and `formstation users add|list`."""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from pathlib import Path

from formstation.commands import open_store
from formstation.errors import ExitCode, StationError
from formstation.store import DEFAULT_WORKSPACE
from review_ui import auth
from review_ui.serve import streamlit_command

PASSWORD_ENV = "FORMSTATION_PASSWORD"


def cmd_review(args: argparse.Namespace) -> int:
    ws = Path(args.workspace or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE).resolve()
    with open_store(args).tx() as conn:
        if not auth.list_users(conn):
            raise StationError("no users yet: add one first with `formstation users add NAME --role supervisor`",
                               ExitCode.USAGE)
    cmd = streamlit_command(ws, args.port, args.address, args.lease_minutes)
    print(f"review app on http://{args.address}:{args.port} (workspace {ws}); Ctrl+C stops it", flush=True)
    return subprocess.call(cmd)


def _password() -> str:
    pw = os.environ.get(PASSWORD_ENV)
    if pw is not None:
        return pw
    if not sys.stdin.isatty():
        raise StationError(f"no terminal to ask for the password: set {PASSWORD_ENV}", ExitCode.USAGE)
    first = getpass.getpass("Password: ")
    if getpass.getpass("Password again: ") != first:
        raise StationError("the two passwords differ; nothing changed", ExitCode.USAGE)
    return first


def cmd_users_add(args: argparse.Namespace) -> int:
    store = open_store(args)
    pw = _password()
    try:
        with store.tx() as conn:
            auth.add_user(conn, args.name, args.role, pw, replace=args.replace)
    except ValueError as e:
        raise StationError(str(e), ExitCode.USAGE) from None
    print(f"user {args.name.strip()} ({args.role}) {'updated' if args.replace else 'added'}")
    return ExitCode.OK


def cmd_users_list(args: argparse.Namespace) -> int:
    with open_store(args).tx() as conn:
        for name, role, created in auth.list_users(conn):
            print(f"{name}\t{role}\t{created}")
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    rv = sub.add_parser("review", help="serve the review app in the browser (Streamlit)")
    rv.add_argument("--port", type=int, default=8501)
    rv.add_argument("--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    rv.add_argument("--lease-minutes", type=float, default=15.0,
                    help="a form leased to a reviewer returns to the queue after this much inactivity")
    rv.set_defaults(func=cmd_review)

    us = sub.add_parser("users", help="station users (login for the review app)").add_subparsers(
        dest="users_cmd", metavar="ACTION", required=True)
    add = us.add_parser("add", help=f"add a user; the password comes from ${PASSWORD_ENV} or is asked twice")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=auth.ROLES)
    add.add_argument("--replace", action="store_true", help="set a new password/role for an existing user")
    add.set_defaults(func=cmd_users_add)
    ls = us.add_parser("list", help="list users and roles")
    ls.set_defaults(func=cmd_users_list)
