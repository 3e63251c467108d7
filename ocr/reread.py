"""Re-read what waits: after a new reader version becomes current, the forms still in review are read
again from their stored page images, comb fields only, for every field no reviewer has touched,
and decided again (some are then accepted without a reviewer).

A form leased to a reviewer right now is left alone (the reviewer is looking at it). The audit
trail gets one `reread` row per form (old_value: the versions that had read it, new_value: the
version now) and one `reread` row per field whose value changed (old and new value).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
from sqlalchemy import and_, case, select
from sqlalchemy.engine import Connection

from forms.layout import load_layout
from formstation.store import Store, audit, fields, forms, leases, now, pages
from ocr.persist import STATION
from ocr.types import FieldReading


@dataclass(frozen=True)
class Reread:
    version: str
    forms: int = 0  # forms re-read
    fields: int = 0  # fields whose reading was replaced
    changed: int = 0  # of those, with another value
    accepted: int = 0  # forms accepted once decided again


def waiting(conn: Connection) -> list[tuple[str, str]]:
    """(form id, layout key) of the forms in review that no reviewer holds a lease on now."""
    held = {r.form_id for r in conn.execute(select(leases.c.form_id).where(leases.c.expires_at > now()))}
    rows = conn.execute(select(forms.c.form_id, forms.c.layout_key).where(forms.c.status == "review")
                        .order_by(forms.c.form_id))
    return [(r.form_id, r.layout_key) for r in rows if r.form_id not in held]


def _page_of(conn: Connection, form_id: str):
    """The page the form's readings come from (a reviewer's match first, then the latest scan)."""
    return conn.execute(select(pages).where(and_(pages.c.form_id == form_id, pages.c.kind == "form"))
                        .order_by(case((pages.c.identified_by == "reviewer", 1), else_=0).desc(),
                                  pages.c.page_id.desc()).limit(1)).first()


def _crop_dir(conn: Connection, form_id: str, page) -> str:
    crop = conn.execute(select(fields.c.crop_path).where(and_(
        fields.c.form_id == form_id, fields.c.source == "read", fields.c.crop_path.is_not(None)))).scalar()
    if crop:
        return str(PurePosixPath(crop).parent)
    return f"crops/{page.file_sha256[:16]}/p{page.page_index:04d}"


def apply(conn: Connection, form_id: str, readings: tuple[FieldReading, ...], version: str) -> tuple[int, int]:
    """Replace the readings of the fields no reviewer touched; (fields replaced, values changed)."""
    import json

    at = now()
    old = {r.name: r for r in conn.execute(select(fields).where(fields.c.form_id == form_id))}
    n = changed = 0
    before: set[str] = set()
    for r in readings:
        was = old.get(r.name)
        if was is None or was.source != "read" or was.updated_by or was.other_scan:
            continue
        before.add(was.reader_version or "?")
        conn.execute(fields.update().where(and_(fields.c.form_id == form_id, fields.c.name == r.name)).values(
            value=r.value, confidence=r.confidence, suggestion=r.suggestion, updated_at=at, reader_version=version,
            doubt=json.dumps(r.detail["doubt"]) if r.detail.get("doubt") else None))
        n += 1
        if (was.value or "") != r.value and r.name != "writing_doubt":
            changed += 1
            conn.execute(audit.insert().values(at=at, user_name=STATION, action="reread", form_id=form_id,
                                               field=r.name, old_value=was.value or "", new_value=r.value))
    if n:
        conn.execute(audit.insert().values(at=at, user_name=STATION, action="reread", form_id=form_id, field=None,
                                           old_value=",".join(sorted(before)), new_value=version))
    return n, changed


def reread_waiting(store: Store) -> Reread:
    """Re-read every form waiting in review with the current reader version, then decide them."""
    with store.tx() as conn:
        todo = waiting(conn)
    return reread_forms(store, todo)


def reread_forms(store: Store, todo: list[tuple[str, str]]) -> Reread:
    """Re-read these forms ((form id, layout key)) with the current reader version, then decide them."""
    from ocr import siblings
    from ocr.read import PageReader
    from ocr.rules import decide_forms
    from ocr.versions import current_name, load_reader

    ws = Path(store.workspace)
    version = current_name(ws)
    reader = load_reader(ws, version)
    readers: dict[str, PageReader] = {}
    done: set[str] = set()
    n_fields = n_changed = 0
    for form_id, key in todo:
        with store.tx() as conn:
            page = _page_of(conn, form_id)
            crop_dir = _crop_dir(conn, form_id, page) if page is not None else ""
        img = cv2.imread(str(ws / page.image_path), cv2.IMREAD_GRAYSCALE) if page is not None and page.image_path else None
        if img is None:
            continue
        if key not in readers:
            readers[key] = PageReader(load_layout(key), digits=reader)
        readers[key].digits = reader
        readings = readers[key].read(img, ws, crop_dir, combs_only=True)
        with store.tx() as conn:
            nf, nc = apply(conn, form_id, readings, version)
        if nf:
            done.add(form_id)
            n_fields, n_changed = n_fields + nf, n_changed + nc
    # the new readings replaced any sibling's joint confidence: read those numbers from both forms again
    status = decide_forms(store, done | siblings.pair(store, done)) if done else {}
    accepted = sum(1 for f in done if status.get(f) == "accepted")
    return Reread(version, len(done), n_fields, n_changed, accepted)
