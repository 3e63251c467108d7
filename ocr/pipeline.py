"""A page a reviewer matched to its form (review_ui.matching): its readings join the form.

A page that aligned but whose barcode could not be read is read all the same (ocr.worker); its
readings wait beside its image as `<image>.readings.json` (`save_readings`, written at ingest).
When a reviewer says which form the page is, `reread_form` gives the form those readings, as if
the page had been identified at ingest (a reviewer's values are kept, ocr.persist), and decides
it. A page that could not even be aligned has none: the form is decided without them, so its
fields go to review as not read, to be typed from the page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import and_, case, select

from formstation.store import Store, forms, pages
from ocr import persist
from ocr.types import FieldReading, PageResult

READINGS_SUFFIX = ".readings.json"


def readings_path(workspace: Path, image_rel: str) -> Path:
    return (Path(workspace) / image_rel).with_suffix(READINGS_SUFFIX)


def save_readings(workspace: Path, image_rel: str, readings: Iterable[FieldReading]) -> None:
    """Keep an unidentified page's readings beside its image (what the store needs of each)."""
    rows = [{"name": r.name, "value": r.value, "confidence": r.confidence, "box": list(r.box),
             "source": r.source, "suggestion": r.suggestion,
             "detail": {k: r.detail[k] for k in ("crop", "doubt", "reader") if k in r.detail}} for r in readings]
    path = readings_path(workspace, image_rel)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(rows, ensure_ascii=False, default=float), encoding="utf-8")
    os.replace(tmp, path)


def load_readings(workspace: Path, image_rel: str | None) -> tuple[FieldReading, ...]:
    """The readings kept for a page image; () when there are none (or the file is unreadable)."""
    if not image_rel:
        return ()
    try:
        rows = json.loads(readings_path(workspace, image_rel).read_text(encoding="utf-8"))
        return tuple(FieldReading(r["name"], r["value"], float(r["confidence"]), tuple(r["box"]),
                                  r.get("source", "read"), r.get("suggestion", ""), r.get("detail", {}))
                     for r in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def reread_form(store: Store, form_id: str) -> tuple[str, int]:
    """Give the form the readings of the page a reviewer matched to it last (else its latest page)
    and decide it; (its status, fields read)."""
    from ocr.rules import decide_forms

    with store.tx() as conn:
        page = conn.execute(select(pages).where(and_(pages.c.form_id == form_id, pages.c.kind == "form"))
                            .order_by(case((pages.c.identified_by == "reviewer", 1), else_=0).desc(),
                                      pages.c.page_id.desc())
                            .limit(1)).first()
    readings = load_readings(store.workspace, page.image_path) if page is not None else ()
    if page is not None:
        res = PageResult(page.file_sha256, page.page_index, "form", form_id, readings=readings)
        with store.tx() as conn:
            persist.reopen_if_rejected_by_a_reviewer(conn, form_id)
            if readings:
                persist.upsert_fields(conn, form_id, res)
            conn.execute(forms.update().where(forms.c.form_id == form_id).values(status="received", decided_at=None))
    decide_forms(store, {form_id})
    with store.tx() as conn:
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == form_id)).scalar()
    return status or "", len(readings)
