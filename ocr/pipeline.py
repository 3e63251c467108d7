"""A page a reviewer matched to its form (review_ui.matching): its readings join the form.

A page that aligned but whose barcode could not be read is read all the same (ocr.worker); its
readings wait in the store with the page (`pages.readings`, written at ingest; never in a file:
they hold children's phones and ID numbers).
When a reviewer says which form the page is, `reread_form` gives the form those readings, as if
the page had been identified at ingest (a reviewer's values are kept, ocr.persist), and decides
it. A page that could not even be aligned has none: the form is decided without them, so its
fields go to review as not read, to be typed from the page.
"""

from __future__ import annotations

import json

from sqlalchemy import and_, case, select

from formstation.store import Store, forms, pages
from ocr import persist
from ocr.types import FieldReading, PageResult


def load_readings(column: str | None) -> tuple[FieldReading, ...]:
    """The readings kept for a page (`pages.readings`); () when there are none (or unreadable)."""
    if not column:
        return ()
    try:
        return tuple(FieldReading(r["name"], r["value"], float(r["confidence"]), tuple(r["box"]),
                                  r.get("source", "read"), r.get("suggestion", ""), r.get("detail", {}))
                     for r in json.loads(column))
    except (ValueError, KeyError, TypeError):
        return ()


def reread_form(store: Store, form_id: str) -> tuple[str, int]:
    """Give the form the readings of the page a reviewer matched to it last (else its latest page)
    and decide it, after the pass an ingest batch gets (`ocr.siblings`: a number other forms carry);
    (its status, fields read)."""
    from ocr import siblings
    from ocr.rules import decide_forms

    with store.tx() as conn:
        page = conn.execute(select(pages).where(and_(pages.c.form_id == form_id, pages.c.kind == "form"))
                            .order_by(case((pages.c.identified_by == "reviewer", 1), else_=0).desc(),
                                      pages.c.page_id.desc())
                            .limit(1)).first()
    readings = load_readings(page.readings) if page is not None else ()
    if page is not None:
        res = PageResult(page.file_sha256, page.page_index, "form", form_id, readings=readings)
        with store.tx() as conn:
            persist.reopen_if_rejected_by_a_reviewer(conn, form_id)
            if readings:
                persist.upsert_fields(conn, form_id, res)
            conn.execute(forms.update().where(forms.c.form_id == form_id).values(status="received", decided_at=None))
    decide_forms(store, {form_id} | siblings.pair(store, {form_id}))
    with store.tx() as conn:
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == form_id)).scalar()
    return status or "", len(readings)
