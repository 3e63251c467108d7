"""Station users: scrypt password hashes in the store, roles, and which pages each role sees."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.engine import Connection

from formstation.store import now, users

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


def add_user(conn: Connection, name: str, role: str, password: str, replace: bool = False) -> None:
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
    if exists:
        conn.execute(users.update().where(users.c.name == name).values(**values))
    else:
        conn.execute(users.insert().values(name=name, created_at=now(), **values))


def authenticate(conn: Connection, name: str, password: str) -> str | None:
    """The user's role when name and password match, else None (same work either way)."""
    global _DUMMY
    row = conn.execute(select(users.c.role, users.c.pw_hash).where(users.c.name == name.strip())).first()
    if row is None:
        _DUMMY = _DUMMY or hash_password("not-a-user-password")
        verify_password(password, _DUMMY)
        return None
    return row.role if verify_password(password, row.pw_hash) else None


def list_users(conn: Connection) -> list[tuple[str, str, str]]:
    q = select(users.c.name, users.c.role, users.c.created_at).order_by(users.c.name)
    return [(r.name, r.role, r.created_at or "") for r in conn.execute(q)]


def can_see(role: str | None, page: str) -> bool:
    return page in PAGES.get(role or "", ())
