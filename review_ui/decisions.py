"""A reviewer's decisions on a form: save values, acknowledge form-level reasons, reject, undo.

Each decision runs in the caller's transaction and leaves, in `audit`, one row per change (who,
when, old value, new value) plus a closing `decision` row whose old_value is a JSON snapshot of
what the decision replaced (status, reasons, field rows): undo restores exactly that snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from formstation.store import ACK_FIELD, audit, fields, forms, merged_acks, now, reasons, upsert_field
from ocr import labels
from ocr.reasons import REASONS
from review_ui import queue

FIELD_COLS = ("value", "confidence", "source", "box", "crop_path", "suggestion", "updated_by", "updated_at",
              "other_scan")


class DecisionError(Exception):
    """The decision cannot be made (lease lost, unknown code, conflicting later change)."""


def reject_codes() -> list[str]:
    """Codes a reviewer may give when rejecting: vendor-side, severity reject."""
    return [c for c, r in REASONS.items() if r.severity == "reject" and r.side == "vendor"
            and c != "REVIEWER_REJECTED"]


def _log(conn: Connection, user: str, action: str, form_id: str, field: str | None = None,
         old: str | None = None, new: str | None = None) -> int:
    res = conn.execute(insert(audit).values(at=now(), user_name=user, action=action, form_id=form_id,
                                            field=field, old_value=old, new_value=new))
    return res.inserted_primary_key[0]


def _field_row(conn: Connection, form_id: str, name: str) -> dict | None:
    r = conn.execute(select(fields).where(and_(fields.c.form_id == form_id, fields.c.name == name))).first()
    return {c: getattr(r, c) for c in FIELD_COLS} if r else None


def _status(conn: Connection, form_id: str):
    return conn.execute(select(forms.c.status, forms.c.decided_at).where(forms.c.form_id == form_id)).first()


def _snapshot(conn: Connection, form_id: str, names: Iterable[str]) -> dict:
    st = _status(conn, form_id)
    rs = conn.execute(select(reasons.c.code, reasons.c.field, reasons.c.detail)
                      .where(reasons.c.form_id == form_id).order_by(reasons.c.id))
    return {"status": st.status, "decided_at": st.decided_at,
            "reasons": [dict(r._mapping) for r in rs],
            "fields": {n: _field_row(conn, form_id, n) for n in names}}


def _write_field(conn: Connection, form_id: str, name: str, row: dict | None) -> None:
    key = and_(fields.c.form_id == form_id, fields.c.name == name)
    if row is None:
        conn.execute(delete(fields).where(key))
    else:
        upsert_field(conn, form_id, name, row)


def _check_lease(conn: Connection, form_id: str, user: str) -> None:
    if not queue.holds(conn, form_id, user):
        raise DecisionError(f"{form_id}: your lease on this form has expired; it went back to the queue")


def _redecide(conn: Connection, form_id: str, workspace: Path | None) -> str:
    from ocr.rules import redecide

    return redecide(conn, form_id, workspace=workspace)


def save_form(conn: Connection, form_id: str, user: str, values: dict[str, str],
              ack: Iterable[str] = (), workspace: Path | None = None, as_written: dict[str, str] | None = None) -> str:
    """Store the reviewer's values (source 'reviewer', confidence 1), acknowledge form-level codes,
    re-decide the form; returns its new status. `as_written`: fields whose value the reviewer
    confirmed although the rules object to it (name -> the objection), each recorded in the audit
    trail (action 'as_written': the parent wrote it so)."""
    _check_lease(conn, form_id, user)
    ack = sorted(set(ack))
    names = list(values) + ([ACK_FIELD] if ack else [])
    snap = _snapshot(conn, form_id, names)
    at = now()
    for name, value in values.items():
        old = snap["fields"][name]
        row = dict(old or dict.fromkeys(FIELD_COLS))
        row.update(value=value, source="reviewer", confidence=1.0, updated_by=user, updated_at=at, other_scan=None)
        _write_field(conn, form_id, name, row)
        old_value = (old or {}).get("value") or ""
        _log(conn, user, "edit" if old_value != value else "confirm", form_id, name, old_value, value)
        if name in (as_written or {}):
            _log(conn, user, "as_written", form_id, name, as_written[name], value)
    labels.keep_labelled(conn, workspace, form_id, user, values)  # the reader learns from them (ocr.adapt)
    if ack:
        old = (snap["fields"][ACK_FIELD] or {}).get("value") or ""
        merged = merged_acks(old, ack)
        _write_field(conn, form_id, ACK_FIELD, {**dict.fromkeys(FIELD_COLS), "value": merged, "source": "reviewer",
                                                "confidence": 1.0, "updated_by": user, "updated_at": at})
        _log(conn, user, "acknowledge", form_id, None, old, merged)
    status = _redecide(conn, form_id, workspace)
    _close(conn, user, form_id, "save", snap, status)
    if status != "review":  # the lease ends with the decision (a form still in review stays with its reviewer)
        queue.release(conn, form_id, user)
    return status


def reject_form(conn: Connection, form_id: str, user: str, code: str, note: str) -> str:
    """Reject with a reason code and note: status rejected, REVIEWER_REJECTED (detail = note) + code."""
    if code not in reject_codes():
        raise DecisionError(f"{code!r} is not a reason a reviewer can reject with")
    _check_lease(conn, form_id, user)
    snap = _snapshot(conn, form_id, ())
    note = note.strip()
    conn.execute(insert(reasons).values(form_id=form_id, code="REVIEWER_REJECTED", field=None, detail=note or None))
    conn.execute(insert(reasons).values(form_id=form_id, code=code, field=None, detail=None))
    conn.execute(update(forms).where(forms.c.form_id == form_id).values(status="rejected", decided_at=now()))
    _log(conn, user, "reject", form_id, code, snap["status"], note)
    _close(conn, user, form_id, "reject", snap, "rejected")
    return "rejected"


SHARED = "PHONE_SHARED_BY_CLASS"


def settle_shared_phone(conn: Connection, user: str, reject: Iterable[str], clear: Iterable[str],
                        ttl_s: int, workspace: Path | None = None) -> dict[str, str]:
    """The group view's decision on a suspected class-wide phone: reject the given forms with
    PHONE_SHARED_BY_CLASS, clear that doubt on the others (each leased for the moment of the
    decision). Returns form id -> new status, or why it was left alone."""
    out, reject = {}, set(reject)
    for fid in sorted(reject | set(clear)):
        if not queue.lease_form(conn, fid, user, ttl_s):
            out[fid] = "left alone: another reviewer has it open"
            continue
        try:
            if fid in reject:
                out[fid] = reject_form(conn, fid, user, SHARED, "group view: one phone for the whole class")
            else:
                out[fid] = save_form(conn, fid, user, {}, [SHARED], workspace)
        finally:
            queue.release(conn, fid, user)
    return out


def _close(conn: Connection, user: str, form_id: str, kind: str, snap: dict, status: str) -> None:
    if snap["status"] != status:
        _log(conn, user, "status", form_id, None, snap["status"], status)
    _log(conn, user, "decision", form_id, kind, json.dumps(snap, ensure_ascii=False), status)


def _undone(conn: Connection) -> set[str]:
    return {r.old_value for r in conn.execute(select(audit.c.old_value).where(audit.c.action == "undo"))}


def last_decision(conn: Connection, user: str):
    """The user's latest decision row not undone yet, or None."""
    undone = _undone(conn)
    q = (select(audit).where(and_(audit.c.action == "decision", audit.c.user_name == user))
         .order_by(audit.c.id.desc()).limit(200))
    return next((r for r in conn.execute(q) if str(r.id) not in undone), None)


def undo_last(conn: Connection, user: str) -> str | None:
    """Restore what the user's last decision replaced; returns its form id (None: nothing to undo)."""
    d = last_decision(conn, user)
    if d is None:
        return None
    undone = _undone(conn)
    later = next((r for r in conn.execute(select(audit.c.id, audit.c.user_name).where(and_(
        audit.c.form_id == d.form_id, audit.c.id > d.id, audit.c.action.in_(("decision", "match", "rescan", "reopen")))))
        if str(r.id) not in undone), None)
    if later is not None:
        raise DecisionError(f"{d.form_id}: changed by {later.user_name} after your decision; open it and fix it instead")
    snap = json.loads(d.old_value)
    labels.drop(conn, d.form_id, snap["fields"])  # the undone values label no cell
    for name, row in snap["fields"].items():
        cur = _field_row(conn, d.form_id, name)
        _write_field(conn, d.form_id, name, row)
        _log(conn, user, "undo_value", d.form_id, name, (cur or {}).get("value") or "", (row or {}).get("value") or "")
    conn.execute(delete(reasons).where(reasons.c.form_id == d.form_id))
    for r in snap["reasons"]:
        conn.execute(insert(reasons).values(form_id=d.form_id, **r))
    conn.execute(update(forms).where(forms.c.form_id == d.form_id)
                 .values(status=snap["status"], decided_at=snap["decided_at"]))
    _log(conn, user, "undo", d.form_id, d.field, str(d.id), snap["status"])
    return d.form_id
