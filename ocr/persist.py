"""Writing ingest results into the store: one page per call, inside the caller's transaction."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Connection

from formstation.store import (
    ACK_FIELD,
    Store,
    fields,
    forms,
    merged_acks,
    now,
    pages,
    scan_files,
    upsert_field,
)
from ocr.types import PageResult


def _upsert_fields(conn: Connection, form_id: str, res: PageResult) -> None:
    at = now()
    for r in res.readings:
        upsert_field(conn, form_id, r.name, {
            "value": r.value, "confidence": r.confidence, "source": r.source,
            "box": json.dumps(list(r.box)), "crop_path": r.detail.get("crop"),
            "suggestion": r.suggestion, "updated_by": None, "updated_at": at,
            "doubt": json.dumps(r.detail["doubt"]) if r.detail.get("doubt") else None})


def _acknowledge(conn: Connection, form_id: str, code: str) -> None:
    """Clear a form-level code for this form as a reviewer's acknowledgement would (ocr.rules)."""
    old = conn.execute(select(fields.c.value).where(
        and_(fields.c.form_id == form_id, fields.c.name == ACK_FIELD))).scalar()
    merged = merged_acks(old, [code])
    if merged != old:
        upsert_field(conn, form_id, ACK_FIELD, {"value": merged, "confidence": 1.0, "source": "station",
                                                "updated_at": now()})


def store_page(conn: Connection, res: PageResult) -> tuple[str, bool]:
    """Insert the page (and its field readings); returns (kind as stored, is a duplicate scan). The
    colour rescan of a form waiting for one replaces its readings and is no duplicate."""
    key = and_(pages.c.file_sha256 == res.file_sha256, pages.c.page_index == res.page_index)
    old = conn.execute(select(pages.c.kind).where(key)).first()
    if old is not None:
        return old.kind, False
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
        image_path=res.image_path, created_at=now()))
    if kind == "form":
        _upsert_fields(conn, res.form_id, res)
        if requested:
            n = conn.execute(select(func.count()).select_from(pages).where(
                and_(pages.c.form_id == res.form_id, pages.c.kind == "form"))).scalar()
            _acknowledge(conn, res.form_id, f"DUPLICATE_SCAN@{n}")
        conn.execute(forms.update().where(forms.c.form_id == res.form_id).values(
            status="received", received_at=now(), decided_at=None))
    return kind, dup and not requested


def finish_file(store: Store, sha: str, path: Path, n_pages: int, reason: str, station_fault: bool = False) -> None:
    """Record a file as done, quarantined (damaged: the same bytes fail again, so ingesting them
    again skips them) or failed (the station failed on a page: ingesting it again retries)."""
    status = ("failed" if station_fault else "quarantined") if reason else "done"

    def write(conn: Connection) -> None:
        conn.execute(scan_files.delete().where(scan_files.c.sha256 == sha))
        conn.execute(scan_files.insert().values(sha256=sha, name=path.name, size=path.stat().st_size,
                                                received_at=now(), status=status, pages=n_pages,
                                                reason=reason or None))
    store.run(write)


def after_batch(store: Store, form_ids: set[str]) -> None:
    """Decide every form the batch touched (and its class, for class-wide rules)."""
    if not form_ids:
        return
    from ocr.rules import decide_forms

    decide_forms(store, form_ids)
