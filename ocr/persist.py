"""Writing ingest results into the store: one page per call, inside the caller's transaction."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.engine import Connection

from formstation.safefs import shown
from formstation.store import (
    ACK_FIELD,
    Store,
    audit,
    fields,
    forms,
    merged_acks,
    now,
    pages,
    reasons,
    scan_files,
    upsert_field,
)
from ocr.types import SCAN_DPI, WRITING_DOUBT, PageResult

STATION = "station"  # the audit trail's user for what the station itself changed


def upsert_fields(conn: Connection, form_id: str, res: PageResult) -> None:
    """Write the page's readings. A value a reviewer set stays: when this (later) scan reads it
    differently, the reading waits beside it in `other_scan` for a reviewer (SCANS_DIFFER). A
    reading that replaces another reading leaves the old value in the audit trail (not the page's
    count of doubtful boxes, which is no value on the form)."""
    at = now()
    old = {r.name: r for r in conn.execute(select(fields.c.name, fields.c.value, fields.c.source)
                                           .where(fields.c.form_id == form_id))}
    inserts: dict[str, dict] = {}
    updates: dict[str, dict] = {}
    for r in res.readings:
        was = old.get(r.name)
        if was is not None and was.source == "reviewer":
            differs = r.value != (was.value or "")
            upsert_field(conn, form_id, r.name, {"other_scan": json.dumps(
                {"value": r.value, "confidence": r.confidence, "crop": r.detail.get("crop")}) if differs else None})
            if differs:
                _log_rescan(conn, form_id, r.name, was.value, r.value, at)
            continue
        if was is not None and was.source == "read" and (was.value or "") != r.value and r.name not in (WRITING_DOUBT, SCAN_DPI):
            _log_rescan(conn, form_id, r.name, was.value, r.value, at)
        row = {"value": r.value, "confidence": r.confidence, "source": r.source,
               "box": json.dumps(list(r.box)), "crop_path": r.detail.get("crop"),
               "suggestion": r.suggestion, "updated_by": None, "updated_at": at, "other_scan": None,
               "reader_version": r.detail.get("reader"),
               "doubt": json.dumps(r.detail["doubt"]) if r.detail.get("doubt") else None}
        (updates if was is not None else inserts)[r.name] = row
    # the page's rows in one statement each way (a select and a write per field cost the
    # process that stores every page about 1 ms of SQLAlchemy per field)
    if inserts:
        conn.execute(fields.insert(), [{"form_id": form_id, "name": n, **row} for n, row in inserts.items()])
    if updates:
        conn.execute(fields.update().where(and_(fields.c.form_id == bindparam("k_form"),
                                                fields.c.name == bindparam("k_name"))),
                     [{"k_form": form_id, "k_name": n, **row} for n, row in updates.items()])


def _log_rescan(conn: Connection, form_id: str, name: str, old: str | None, new: str, at: str) -> None:
    """Audit row 'rescan': a later scan of the form reads `new` where the store had `old`."""
    conn.execute(audit.insert().values(at=at, user_name=STATION, action="rescan", form_id=form_id,
                                       field=name, old_value=old or "", new_value=new))


def reopen_if_rejected_by_a_reviewer(conn: Connection, form_id: str) -> None:
    """A form a reviewer rejected stays rejected (ocr.rules) until paper comes in again: that is what
    the school sent back (corrected, or the same sheet fed twice). The rejection is lifted, so the
    form is decided afresh (the scan count sends it to review), and kept in the audit trail as a
    'reopen' row: the code, who rejected and the note."""
    rows = conn.execute(select(reasons).where(reasons.c.form_id == form_id)).all()
    if not any(r.code == "REVIEWER_REJECTED" for r in rows):
        return
    rej = conn.execute(select(audit).where(and_(audit.c.form_id == form_id, audit.c.action == "reject"))
                       .order_by(audit.c.id.desc()).limit(1)).first()
    note = next((r.detail or "" for r in rows if r.code == "REVIEWER_REJECTED"), "")
    code = rej.field if rej is not None else ",".join(r.code for r in rows if r.code != "REVIEWER_REJECTED")
    by = rej.user_name if rej is not None else ""
    conn.execute(reasons.delete().where(reasons.c.form_id == form_id))
    conn.execute(audit.insert().values(at=now(), user_name=STATION, action="reopen", form_id=form_id,
                                       field=code, old_value=f"rejected by {by}: {note}" if by else note,
                                       new_value="received"))


def _acknowledge(conn: Connection, form_id: str, code: str) -> None:
    """Clear a form-level code for this form as a reviewer's acknowledgement would (ocr.rules)."""
    old = conn.execute(select(fields.c.value).where(
        and_(fields.c.form_id == form_id, fields.c.name == ACK_FIELD))).scalar()
    merged = merged_acks(old, [code])
    if merged != old:
        upsert_field(conn, form_id, ACK_FIELD, {"value": merged, "confidence": 1.0, "source": "station",
                                                "updated_at": now()})


def readings_json(readings) -> str:
    """An unidentified page's readings as the store keeps them (pages.readings; what each needs)."""
    return json.dumps([{"name": r.name, "value": r.value, "confidence": r.confidence, "box": list(r.box),
                        "source": r.source, "suggestion": r.suggestion,
                        "detail": {k: r.detail[k] for k in ("crop", "doubt", "reader") if k in r.detail}} for r in readings],
                      ensure_ascii=False, default=float)


def page_reason(res: PageResult) -> str | None:
    """The reason code of a page the worker would not read (`reason:<CODE>: ...` in its note)."""
    if res.kind == "unidentified" and res.note.startswith("reason:"):
        return res.note.split(":", 2)[1]
    return None


def store_page(conn: Connection, res: PageResult) -> tuple[str, bool, bool]:
    """Insert the page (and its field readings); returns (kind as stored, is a duplicate scan, was
    stored by this call: False when it was in already, e.g. stored by another station). The colour
    rescan of a form waiting for one replaces its readings and is no duplicate."""
    key = and_(pages.c.file_sha256 == res.file_sha256, pages.c.page_index == res.page_index)
    old = conn.execute(select(pages.c.kind).where(key)).first()
    if old is not None:
        return old.kind, False, False
    kind = res.kind
    if kind == "form":
        row = conn.execute(select(forms.c.status).where(forms.c.form_id == res.form_id)).first()
        if row is None:
            kind = "not_in_roster"
    dup = requested = False
    if kind == "form":
        dup = conn.execute(select(pages.c.page_id).where(
            and_(pages.c.form_id == res.form_id, pages.c.kind == "form"))).first() is not None
        requested = dup and row.status == "rescan"  # the colour scan the station asked for
    conn.execute(pages.insert().values(
        file_sha256=res.file_sha256, page_index=res.page_index,
        form_id=res.form_id if kind in ("form", "not_in_roster") else None, kind=kind,
        rotation=res.rotation, residual_mm=res.residual_mm, identified_by=res.identified_by,
        image_path=res.image_path, created_at=now(), layout_key=res.layout_key, reason=page_reason(res),
        readings=readings_json(res.readings) if kind == "unidentified" and res.readings else None))
    if kind == "form":
        reopen_if_rejected_by_a_reviewer(conn, res.form_id)
        upsert_fields(conn, res.form_id, res)
        if requested:
            n = conn.execute(select(func.count()).select_from(pages).where(
                and_(pages.c.form_id == res.form_id, pages.c.kind == "form"))).scalar()
            _acknowledge(conn, res.form_id, f"DUPLICATE_SCAN@{n}")
        conn.execute(forms.update().where(forms.c.form_id == res.form_id).values(
            status="received", received_at=now(), decided_at=None))
    return kind, dup and not requested, True


def finish_file(store: Store, sha: str, path: Path, n_pages: int, reason: str, station_fault: bool = False) -> None:
    """Record a file as done, quarantined (damaged: the same bytes fail again, so ingesting them
    again skips them) or failed (the station failed on a page: ingesting it again retries)."""
    status = ("failed" if station_fault else "quarantined") if reason else "done"

    def write(conn: Connection) -> None:
        conn.execute(scan_files.delete().where(scan_files.c.sha256 == sha))
        conn.execute(scan_files.insert().values(sha256=sha, name=shown(path.name), size=path.stat().st_size,
                                                received_at=now(), status=status, pages=n_pages,
                                                reason=reason or None))
    store.run_racing(write)


def after_batch(store: Store, form_ids: set[str]) -> None:
    """Decide every form the batch touched (and its class, for class-wide rules), and any form an
    interrupted batch stored but never decided (left 'received'); first, a number two forms carry
    (siblings' forms) is read from both (`ocr.siblings`), and the other form is decided again too."""
    with store.tx() as conn:
        left = set(conn.execute(select(forms.c.form_id).where(forms.c.status == "received")).scalars())
    form_ids = set(form_ids) | left
    if not form_ids:
        return
    from ocr import siblings
    from ocr.rules import decide_forms

    decide_forms(store, form_ids | siblings.pair(store, form_ids))
