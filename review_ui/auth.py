"""Station users: scrypt password hashes in the store, roles, and which pages each role sees."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, insert, select
from sqlalchemy.engine import Connection

from formstation.store import audit, now, users

log = logging.getLogger("formstation.review")

ROLES = ("clerk", "reviewer", "supervisor")
# page names per role, in menu order; a role sees only these
PAGES: dict[str, tuple[str, ...]] = {
    "clerk": ("Upload",),
    "reviewer": ("Queue", "Group view", "Unidentified", "Form lookup"),
    "supervisor": ("Dashboard", "Queue", "Group view", "Unidentified", "Form lookup", "Upload",
                   "Thresholds", "Downloads"),
}
MIN_PASSWORD = 8
_N, _R, _P = 2**14, 8, 1
# failed logins of one user name within WINDOW_S before further attempts are refused (not even checked)
MAX_FAILURES = 5
WINDOW_S = 15 * 60
# hashed once so that an unknown user name costs as much time as a wrong password
_DUMMY = None


def hash_password(password: str, n: int = _N, r: int = _R, p: int = _P) -> str:
    """'scrypt$n$r$p$salt_hex$hash_hex' with a random 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored 'scrypt$...' string."""
    try:
        algo, n, r, p, salt_hex, hash_hex = stored.split("$")
        if algo != "scrypt":
            return False
        want = bytes.fromhex(hash_hex)
        got = hashlib.scrypt(password.encode("utf-8"), salt=bytes.fromhex(salt_hex),
                             n=int(n), r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"the password must have at least {MIN_PASSWORD} characters"
    return None


def add_user(conn: Connection, name: str, role: str, password: str, replace: bool = False,
             by: str = "station") -> None:
    """Create (or with replace=True, update) a user. Raises ValueError on a bad role/password/duplicate."""
    name = name.strip()
    if not name:
        raise ValueError("the user name is empty")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    problem = password_problem(password)
    if problem:
        raise ValueError(problem)
    exists = conn.execute(select(users.c.name).where(users.c.name == name)).first() is not None
    if exists and not replace:
        raise ValueError(f"user {name!r} exists already (use --replace to set a new password or role)")
    values = {"role": role, "pw_hash": hash_password(password)}
    old = conn.execute(select(users.c.role).where(users.c.name == name)).scalar() if exists else None
    if exists:
        conn.execute(users.update().where(users.c.name == name).values(**values))
    else:
        conn.execute(users.insert().values(name=name, created_at=now(), **values))
    if old != role:  # a new user, or a role change: who may see what, on the record
        conn.execute(insert(audit).values(at=now(), user_name=by, action="role", form_id=None, field=name,
                                          old_value=old, new_value=role))


def authenticate(conn: Connection, name: str, password: str) -> str | None:
    """The user's role when name and password match, else None (same work either way)."""
    global _DUMMY
    row = conn.execute(select(users.c.role, users.c.pw_hash).where(users.c.name == name.strip())).first()
    if row is None:
        _DUMMY = _DUMMY or hash_password("not-a-user-password")
        verify_password(password, _DUMMY)
        return None
    return row.role if verify_password(password, row.pw_hash) else None


def role_of(conn: Connection, name: str) -> str | None:
    """The user's role as the store holds it now (None: no such user any more)."""
    return conn.execute(select(users.c.role).where(users.c.name == name)).scalar()


def _since(seconds: int) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def recent_failures(conn: Connection, name: str) -> int:
    q = (select(func.count()).select_from(audit)
         .where(and_(audit.c.action == "login_failed", audit.c.field == name.strip()[:32],
                     audit.c.at >= _since(WINDOW_S))))
    return conn.execute(q).scalar() or 0


def login(conn: Connection, name: str, password: str, sid: str = "") -> tuple[str | None, str | None]:
    """(role, None) on success; (None, message) otherwise. Every failure is logged and kept in the
    audit trail (action login_failed, the name tried); after MAX_FAILURES failures of one name
    within WINDOW_S, attempts are refused without checking the password until the window passes."""
    name = name.strip()
    if recent_failures(conn, name) >= MAX_FAILURES:
        log.warning("login refused for %r: %d failed attempts in %d min", name[:32], MAX_FAILURES, WINDOW_S // 60)
        return None, f"Too many failed attempts for this user: try again in {WINDOW_S // 60} minutes."
    role = authenticate(conn, name, password)
    if role is None:
        conn.execute(insert(audit).values(at=now(), user_name=None, action="login_failed", form_id=None,
                                          field=name[:32], old_value=None, new_value=None))
        log.warning("failed login for %r", name[:32])
        return None, "Unknown user or wrong password."
    conn.execute(insert(audit).values(at=now(), user_name=name, action="login", form_id=None, field=None,
                                      old_value=None, new_value=sid or None))
    return role, None


def logout(conn: Connection, name: str, sid: str) -> None:
    """End a session: its cookie no longer opens the app or its files (review_ui.sessions.revoked)."""
    conn.execute(insert(audit).values(at=now(), user_name=name, action="logout", form_id=None, field=None,
                                      old_value=None, new_value=sid))


def list_users(conn: Connection) -> list[tuple[str, str, str]]:
    q = select(users.c.name, users.c.role, users.c.created_at).order_by(users.c.name)
    return [(r.name, r.role, r.created_at or "") for r in conn.execute(q)]


def can_see(role: str | None, page: str) -> bool:
    return page in PAGES.get(role or "", ())
