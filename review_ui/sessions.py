"""Login sessions that survive a reload: a signed, expiring cookie naming the user and a session id.

The cookie (`fs_session`) is signed with a key kept in the workspace (`session.key`, mode 0600,
made on first use) and carries the time it was signed: it is valid for IDLE_S after the user's
last activity (each page run signs it afresh). A logout revokes its session id (an audit row
`logout`), so a copied cookie stops working too. The same check guards the server's `/media/`
files (review_ui.server_app): no page image or export is served without a live session.
No I/O beyond the key file and the caller's connection.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner
from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from formstation.store import audit

COOKIE = "fs_session"
KEY_FILE = "session.key"
IDLE_S = int(float(os.environ.get("FORMSTATION_SESSION_MINUTES", "30")) * 60)


def _key(workspace: Path) -> bytes:
    path = Path(workspace) / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    return path.read_bytes()


def _signer(workspace: Path) -> TimestampSigner:
    return TimestampSigner(_key(workspace), salt="formstation-session")


def new_sid() -> str:
    return secrets.token_urlsafe(16)


def sign(workspace: Path, user: str, sid: str) -> str:
    return _signer(workspace).sign(f"{sid}:{user}".encode()).decode("ascii")


def read(workspace: Path, token: str | None, max_age: int = IDLE_S) -> tuple[str, str] | None:
    """(user, sid) of a cookie signed by this station less than `max_age` seconds ago, else None."""
    if not token:
        return None
    try:
        raw = _signer(workspace).unsign(token.encode("ascii"), max_age=max_age).decode()
    except (BadSignature, SignatureExpired, UnicodeError, ValueError):
        return None
    sid, _, user = raw.partition(":")
    return (user, sid) if sid and user else None


def revoked(conn: Connection, sid: str) -> bool:
    q = select(audit.c.id).where(and_(audit.c.action == "logout", audit.c.new_value == sid)).limit(1)
    return conn.execute(q).first() is not None


def live_user(conn: Connection, workspace: Path, token: str | None, max_age: int = IDLE_S) -> tuple[str, str] | None:
    """(user, sid) of a valid, unrevoked session cookie, else None."""
    got = read(workspace, token, max_age)
    return got if got and not revoked(conn, got[1]) else None


def cookie_script(name: str, value: str, max_age: int) -> str:
    """JavaScript that sets (max_age > 0) or deletes the session cookie in the browser. SameSite
    Strict: another site's page cannot make the browser send it."""
    return (f"document.cookie={name!r}+'='+{value!r}+'; path=/; max-age={int(max_age)}; SameSite=Strict';")
