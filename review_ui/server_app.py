"""The review station as an ASGI app (Streamlit's st.App): review_ui/app.py behind a gate on `/media/`.

Streamlit serves page images and download buttons' files at /media/<id> to anyone who has the URL,
for as long as the server keeps them. Those are children's personal data: the gate answers 403
unless the request carries a live session cookie (review_ui.sessions), so a URL copied out of
the browser, or fetched after the user logged out or the session expired, gives nothing.

    streamlit run review_ui/server_app.py --server.port 8501 -- --workspace W

(`formstation review` and review_ui.serve do that.) The workspace comes from --workspace or
FORMSTATION_WORKSPACE, the store from DATABASE_URL, as for the app itself.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from http.cookies import SimpleCookie
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from formstation.store import DEFAULT_WORKSPACE, Store
from review_ui import sessions

log = logging.getLogger("formstation.review")
GATED = ("/media/",)


def _workspace() -> Path:
    argv = sys.argv
    ws = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--workspace"), None)
    return Path(ws or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE).resolve()


@functools.cache
def _store() -> Store:
    return Store.open(_workspace(), os.environ.get("DATABASE_URL"))


def session_of(headers: list[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(user, sid) of the request's live session cookie, else None."""
    raw = "; ".join(v.decode("latin-1") for k, v in headers if k == b"cookie")
    morsel = SimpleCookie(raw).get(sessions.COOKIE) if raw else None
    if morsel is None:
        return None
    store = _store()
    with store.tx() as conn:
        return sessions.live_user(conn, store.workspace, morsel.value)


class MediaGate:
    """Pure ASGI middleware: a gated path without a live session gets 403 and no body."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(GATED) and not session_of(scope["headers"]):
            log.warning("refused %s without a live session", scope.get("path", "")[:16])
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain"), (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b"log in first\n"})
            return
        await self.app(scope, receive, send)


app = st.App(str(Path(__file__).resolve().parent / "app.py"), middleware=[Middleware(MediaGate)])
