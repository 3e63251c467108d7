"""Clerk page: upload scan files in the browser, ingest them with a progress bar, see the results."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import select

from formstation.printjob import safe_name
from formstation.store import scan_files
from review_ui import stats
from review_ui.ui_common import Ctx

INBOX = "inbox"
UPLOAD_TYPES = ["pdf", "tif", "tiff", "jpg", "jpeg", "png"]


class BarProgress:
    """ocr.ingest.Progress drawn as a Streamlit progress bar."""

    def __init__(self, bar) -> None:
        self.bar, self.total, self.done = bar, 0, 0

    def start(self, total_pages: int) -> None:
        self.total, self.done = total_pages, 0
        self.bar.progress(0.0, text=f"0 / {total_pages} pages")

    def advance(self, pages: int = 1) -> None:
        self.done += pages
        self.bar.progress(min(1.0, self.done / max(self.total, 1)), text=f"{self.done} / {self.total} pages")

    def finish(self) -> None:
        self.bar.progress(1.0, text=f"{self.done} / {self.total} pages: done")


def _save_uploads(ctx: Ctx, files) -> list:
    saved = []
    for f in files:
        path = ctx.store.path(INBOX, safe_name(f.name))
        path.write_bytes(f.getvalue())
        saved.append(path)
    return saved


def _ingest(ctx: Ctx, paths: list) -> None:
    from forms.layout import load_layout
    from ocr.ingest import ingest_paths

    bar = st.progress(0.0, text="starting…")
    summary = ingest_paths(ctx.store, load_layout(), paths, workers=1, progress=BarProgress(bar))
    st.success(f"{summary.files} new files, {summary.already_ingested} already ingested · {summary.pages} pages · "
               f"{summary.forms} forms · {summary.blank_backs} blank backs · {summary.unidentified} unidentified · "
               f"{summary.duplicates} duplicates · {summary.not_in_roster} not in roster · "
               f"{summary.quarantined} quarantined")
    if summary.black_and_white:
        st.warning(f"{summary.black_and_white} unidentified pages were scanned black-and-white and show no alignment "
                   "marks and no barcode (faint print can vanish at 1 bit): scan those sheets again in grey. They "
                   "wait on the Unidentified page meanwhile.")
    for name, reason in summary.quarantine:
        st.error(f"{name}: quarantined: {reason}")


def _rescans(ctx: Ctx) -> None:
    """The pages the station asks the clerk to scan again in colour (grey scans of a pasted photo)."""
    with ctx.store.tx() as conn:
        rows = stats.rescans(conn)
    if rows:
        st.subheader("Scan again in colour")
        st.warning(f"{len(rows)} page(s) with a pasted photo came in from a grey or black-and-white scan; the card "
                   "needs a colour photo. Find them by school, class and student number, scan them in colour and "
                   "upload them here.")
        st.dataframe(rows, hide_index=True)


def upload(ctx: Ctx) -> None:
    st.header("Upload scans")
    files = st.file_uploader("Scan files (PDF, TIFF, JPEG, PNG)", type=UPLOAD_TYPES, accept_multiple_files=True,
                             key="up_files")
    if st.button("Ingest", type="primary", disabled=not files, key="up_go"):
        paths = _save_uploads(ctx, files)
        st.caption(f"saved {len(paths)} files to {INBOX}/")
        _ingest(ctx, paths)
    _rescans(ctx)
    st.subheader("Recent scan files")
    with ctx.store.tx() as conn:
        rows = conn.execute(select(scan_files).order_by(scan_files.c.received_at.desc()).limit(50))
        table = [{"received": r.received_at, "file": r.name, "pages": r.pages, "status": r.status,
                  "reason": r.reason or ""} for r in rows]
    if table:
        st.dataframe(table, hide_index=True)
    else:
        st.caption("nothing ingested yet")
