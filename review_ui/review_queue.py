"""The review queue: one form leased to one reviewer at a time. Plain functions over a connection.

The queue is the forms with status 'review', reopened ones first (a person sent them back: someone
waits for the second look), then by school, class, student number, form id.
A lease (table `leases`, form_id primary key) expires after `ttl` seconds without activity and the
form returns to the queue. Taking a lease runs in the caller's transaction: delete expired leases,
pick the first free form, insert the lease; the primary key makes a concurrent second insert fail,
and then the next form is tried. SQLite serialises the whole take (the first statement writes);
PostgreSQL locks the candidate rows with SELECT ... FOR UPDATE SKIP LOCKED.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from formstation.store import REOPEN_FIELD, fields, forms, leases, persons

DEFAULT_TTL_S = 15 * 60
CANDIDATES = 20  # free forms fetched per attempt


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _queue_order(q):
    reopened = select(fields.c.form_id).where(fields.c.name == REOPEN_FIELD)
    return q.order_by(case((forms.c.form_id.in_(reopened), 0), else_=1),
                      persons.c.school, persons.c.class_name, persons.c.student_no, forms.c.form_id)


def _free_forms(conn: Connection, skip: set[str], limit: int) -> list[str]:
    q = (select(forms.c.form_id)
         .join(persons, forms.c.person_id == persons.c.person_id)
         .outerjoin(leases, leases.c.form_id == forms.c.form_id)
         .where(and_(forms.c.status == "review", leases.c.form_id.is_(None))))
    if skip:
        q = q.where(forms.c.form_id.notin_(skip))
    q = _queue_order(q).limit(limit)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True, of=forms)
    return [r.form_id for r in conn.execute(q)]


def _insert_lease(conn: Connection, form_id: str, user: str, expires: str) -> bool:
    """Insert a lease; False when another reviewer holds that form already.

    Whether the row went in is read from RETURNING, not from the cursor's rowcount: psycopg
    reports -1 for an INSERT ... ON CONFLICT DO NOTHING run this way."""
    values = {"form_id": form_id, "user_name": user, "expires_at": expires}
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        if name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = (dialect_insert(leases).values(**values).on_conflict_do_nothing(index_elements=["form_id"])
                .returning(leases.c.form_id))
        return conn.execute(stmt).scalar() is not None
    try:
        with conn.begin_nested():
            conn.execute(insert(leases).values(**values))
        return True
    except IntegrityError:
        return False


def expire_leases(conn: Connection, at: datetime | None = None) -> int:
    return conn.execute(delete(leases).where(leases.c.expires_at < iso(at or utcnow()))).rowcount


def held_by(conn: Connection, user: str) -> str | None:
    """The review form this user holds a live lease on (e.g. after a page reload), if any."""
    q = (select(leases.c.form_id).join(forms, forms.c.form_id == leases.c.form_id)
         .where(and_(leases.c.user_name == user, forms.c.status == "review")).limit(1))
    return conn.execute(q).scalar()


def take_lease(conn: Connection, user: str, skip: Iterable[str] = (), ttl_s: int = DEFAULT_TTL_S,
               at: datetime | None = None) -> str | None:
    """Lease the next form for `user` (or the one they hold); None when the queue is empty."""
    at = at or utcnow()
    expire_leases(conn, at)
    skip = set(skip)
    mine = held_by(conn, user)
    if mine and mine not in skip:
        renew(conn, mine, user, ttl_s, at)
        return mine
    if mine:
        release(conn, mine, user)
    expires = iso(at + timedelta(seconds=ttl_s))
    while True:
        candidates = _free_forms(conn, skip, CANDIDATES)
        if not candidates:
            return None
        for fid in candidates:
            if _insert_lease(conn, fid, user, expires):
                return fid
        skip.update(candidates)


def lease_form(conn: Connection, form_id: str, user: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
    """Lease one given form (undo brings a decided form back); False if someone else holds it."""
    expire_leases(conn)
    owner = conn.execute(select(leases.c.user_name).where(leases.c.form_id == form_id)).scalar()
    if owner == user:
        return renew(conn, form_id, user, ttl_s)
    if owner is not None:
        return False
    return _insert_lease(conn, form_id, user, iso(utcnow() + timedelta(seconds=ttl_s)))


def renew(conn: Connection, form_id: str, user: str, ttl_s: int = DEFAULT_TTL_S,
          at: datetime | None = None) -> bool:
    """Push the expiry out (any activity on the form); False if the lease was lost."""
    expires = iso((at or utcnow()) + timedelta(seconds=ttl_s))
    res = conn.execute(update(leases).where(and_(leases.c.form_id == form_id, leases.c.user_name == user))
                       .values(expires_at=expires))
    return res.rowcount == 1


def holds(conn: Connection, form_id: str, user: str, at: datetime | None = None) -> bool:
    q = select(leases.c.expires_at).where(and_(leases.c.form_id == form_id, leases.c.user_name == user))
    exp = conn.execute(q).scalar()
    return exp is not None and exp >= iso(at or utcnow())


def release(conn: Connection, form_id: str, user: str) -> None:
    conn.execute(delete(leases).where(and_(leases.c.form_id == form_id, leases.c.user_name == user)))


def free(conn: Connection, form_id: str) -> None:
    """Drop whatever lease is left on a form (whoever holds it)."""
    conn.execute(delete(leases).where(leases.c.form_id == form_id))


def active_leases(conn: Connection, at: datetime | None = None) -> int:
    """Forms someone is on right now: a live lease on a form still in review."""
    q = (select(func.count()).select_from(leases).join(forms, forms.c.form_id == leases.c.form_id)
         .where(and_(forms.c.status == "review", leases.c.expires_at >= iso(at or utcnow()))))
    return conn.execute(q).scalar() or 0


def queue_size(conn: Connection) -> int:
    return conn.execute(select(func.count()).select_from(forms).where(forms.c.status == "review")).scalar() or 0
