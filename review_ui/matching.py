"""Unidentified pages: a reviewer matches a page to its form, or marks it foreign."""

from __future__ import annotations

import logging

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from formstation.store import Store, audit, forms, now, pages

log = logging.getLogger("formstation.review")


class MatchError(Exception):
    pass


def _unidentified(conn: Connection, page_id: int):
    row = conn.execute(select(pages.c.kind, pages.c.form_id).where(pages.c.page_id == page_id)).first()
    if row is None or row.kind != "unidentified" or row.form_id is not None:
        raise MatchError(f"page {page_id} is no longer unidentified (someone else handled it)")
    return row


def match_page(conn: Connection, page_id: int, form_id: str, user: str) -> None:
    """Attach the page to the form (kind 'form', identified_by 'reviewer'); the form counts as received."""
    _unidentified(conn, page_id)
    st = conn.execute(select(forms.c.status).where(forms.c.form_id == form_id)).scalar()
    if st is None:
        raise MatchError(f"no form {form_id}")
    conn.execute(update(pages).where(pages.c.page_id == page_id)
                 .values(form_id=form_id, kind="form", identified_by="reviewer"))
    if st == "printed":
        conn.execute(update(forms).where(forms.c.form_id == form_id).values(status="received", received_at=now()))
    conn.execute(insert(audit).values(at=now(), user_name=user, action="match", form_id=form_id,
                                      field=f"page {page_id}", old_value="unidentified", new_value=form_id))


def mark_foreign(conn: Connection, page_id: int, user: str) -> None:
    _unidentified(conn, page_id)
    conn.execute(update(pages).where(and_(pages.c.page_id == page_id)).values(kind="foreign"))
    conn.execute(insert(audit).values(at=now(), user_name=user, action="foreign", form_id=None,
                                      field=f"page {page_id}", old_value="unidentified", new_value="foreign"))


def reread(store: Store, form_id: str) -> str:
    """Give the form the matched page's readings and decide it (ocr.pipeline.reread_form); returns
    a message for the reviewer."""
    from ocr import pipeline

    status, n = pipeline.reread_form(store, form_id)
    if n:
        return f"{form_id}: matched; its {n} readings from the page joined the form; status {status}"
    return (f"{form_id}: matched; the page could not be aligned, so its fields were not read: "
            f"status {status}, type them from the page in review")
