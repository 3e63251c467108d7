"""A reviewer's decisions on a form: save values, acknowledge form-level reasons, reject, undo,
reopen a decided form.

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

from formstation.store import (
    ACK_FIELD,
    REOPEN_FIELD,
    audit,
    fields,
    forms,
    merged_acks,
    now,
    reasons,
    upsert_field,
)
from ocr import labels
from ocr.reasons import REASONS
from review_ui import auth, review_queue

FIELD_COLS = ("value", "confidence", "source", "box", "crop_path", "suggestion", "updated_by", "updated_at",
              "other_scan")
REOPENED = "REOPENED"  # the form-level code of a reopened form (ocr.rules): cleared by the reviewer's save
DECIDED = ("accepted", "rejected")  # the statuses a form can be reopened from
# audit actions that change a form after a reviewer's decision: that decision is no longer undone
# ('reread': a new reader version read its other fields again and the rules decided it again, so
# the decision's snapshot holds readings and reasons of the reader before)
LATER_CHANGES = ("decision", "match", "rescan", "reopen", "reopen_by_reviewer", "reread")


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
    if not review_queue.holds(conn, form_id, user):
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
    ack = set(ack)
    reviewed = REOPENED in ack and _field_row(conn, form_id, REOPEN_FIELD) is not None
    ack = sorted(ack - {REOPENED})
    names = list(values) + ([ACK_FIELD] if ack else []) + ([REOPEN_FIELD] if reviewed else [])
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
    if reviewed:  # gone through again: the rules decide it now (undo brings the marker back)
        _write_field(conn, form_id, REOPEN_FIELD, None)
        _log(conn, user, "acknowledge", form_id, REOPEN_FIELD, snap["fields"][REOPEN_FIELD]["value"], "")
    status = _redecide(conn, form_id, workspace)
    _close(conn, user, form_id, "save", snap, status)
    if status != "review":  # the lease ends with the decision (a form still in review stays with its reviewer)
        review_queue.release(conn, form_id, user)
    return status


def reject_form(conn: Connection, form_id: str, user: str, code: str, note: str) -> str:
    """Reject with a reason code and note: status rejected, REVIEWER_REJECTED (detail = note) + code."""
    if code not in reject_codes():
        raise DecisionError(f"{code!r} is not a reason a reviewer can reject with")
    _check_lease(conn, form_id, user)
    reopened = _field_row(conn, form_id, REOPEN_FIELD) is not None
    snap = _snapshot(conn, form_id, [REOPEN_FIELD] if reopened else [])
    if reopened:  # decided again (undo brings the marker back)
        _write_field(conn, form_id, REOPEN_FIELD, None)
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
        if not review_queue.lease_form(conn, fid, user, ttl_s):
            out[fid] = "left alone: another reviewer has it open"
            continue
        try:
            if fid in reject:
                out[fid] = reject_form(conn, fid, user, SHARED, "group view: one phone for the whole class")
            else:
                out[fid] = save_form(conn, fid, user, {}, [SHARED], workspace)
        finally:
            review_queue.release(conn, fid, user)
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


def _changed_after(conn: Connection, d):
    """The first audit row (not undone) that changed decision `d`'s form after it, or None."""
    undone = _undone(conn)
    return next((r for r in conn.execute(select(audit.c.id, audit.c.user_name, audit.c.action).where(and_(
        audit.c.form_id == d.form_id, audit.c.id > d.id, audit.c.action.in_(LATER_CHANGES))).order_by(audit.c.id))
        if str(r.id) not in undone), None)


def undo_last(conn: Connection, user: str) -> str | None:
    """Restore what the user's last decision replaced; returns its form id (None: nothing to undo)."""
    d = last_decision(conn, user)
    if d is None:
        return None
    later = _changed_after(conn, d)
    if later is not None and later.action == "reread":
        raise DecisionError(f"{d.form_id}: read again by a new reader version after your decision; "
                            "open it and fix it instead")
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


# ------------------------------------------------------------------ reopening a decided form

def decided_by(conn: Connection, form_id: str) -> str | None:
    """The person whose decision gave the form its status now: the latest decision on it (not
    undone, nothing changed the form since) when it left the form as it is; None when the rules
    decided it (a clean form accepted on reading, a class re-decided around it)."""
    st = _status(conn, form_id)
    undone = _undone(conn)
    q = (select(audit).where(and_(audit.c.action == "decision", audit.c.form_id == form_id))
         .order_by(audit.c.id.desc()).limit(50))
    d = next((r for r in conn.execute(q) if str(r.id) not in undone), None)
    if st is None or d is None or d.new_value != st.status or _changed_after(conn, d) is not None:
        return None
    return d.user_name


def may_reopen(role: str | None, user: str, decider: str | None) -> bool:
    """A supervisor may reopen any decided form; a reviewer the forms she decided herself."""
    return role == "supervisor" or (role == "reviewer" and decider is not None and decider == user)


def _rejected_for(conn: Connection, form_id: str) -> str:
    """': CODE,CODE (the reviewer's note)' of the reject reasons a form carries, '' for none."""
    rows = conn.execute(select(reasons.c.code, reasons.c.detail).where(reasons.c.form_id == form_id)
                        .order_by(reasons.c.id)).all()
    codes = dict.fromkeys(r.code for r in rows if r.code != "REVIEWER_REJECTED"
                          and r.code in REASONS and REASONS[r.code].severity == "reject")
    note = next((r.detail for r in rows if r.code == "REVIEWER_REJECTED" and r.detail), "")
    return (f": {','.join(codes)}" if codes else "") + (f" ({note})" if note else "")


def reopen_form(conn: Connection, form_id: str, user: str, why: str, workspace: Path | None = None) -> str:
    """Send a decided (accepted or rejected) form back to review: it leaves the card data and the
    rejections until it is decided again. The marker REOPEN_FIELD ("who: why") keeps it in review
    whatever the rules find (REOPENED) and makes every field a step in the queue; a reviewer's
    rejection is lifted. Audited as 'reopen_by_reviewer' (old value: what it was, new value: why)
    and 'status'. Returns the new status ('review')."""
    why = why.strip()
    st = _status(conn, form_id)
    if st is None or st.status not in DECIDED:
        raise DecisionError(f"{form_id}: only an accepted or rejected form can be reopened "
                            f"(it is {st.status if st else 'unknown'})")
    decider = decided_by(conn, form_id)
    if not may_reopen(auth.role_of(conn, user), user, decider):
        raise DecisionError(f"{form_id}: only a supervisor or the reviewer who decided it "
                            f"({decider or 'nobody: the rules did'}) can reopen it")
    if not why:
        raise DecisionError(f"{form_id}: say why it is reopened (kept in the audit trail)")
    was = f"{st.status} by {decider or 'the rules'}{_rejected_for(conn, form_id)}"
    conn.execute(delete(reasons).where(reasons.c.form_id == form_id))  # lifts a reviewer's rejection
    review_queue.free(conn, form_id)  # a lease left on the decided form would hide it from the queue
    _write_field(conn, form_id, REOPEN_FIELD, {**dict.fromkeys(FIELD_COLS), "value": f"{user}: {why}",
                                               "source": "reviewer", "confidence": 1.0, "updated_by": user,
                                               "updated_at": now()})
    _log(conn, user, "reopen_by_reviewer", form_id, None, was, why)
    status = _redecide(conn, form_id, workspace)
    _log(conn, user, "status", form_id, None, st.status, status)
    return status
