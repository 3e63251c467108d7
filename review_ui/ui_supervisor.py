"""Supervisor pages: dashboard, thresholds (station.toml), downloads of the exports (each logged)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy import func, insert, select

from formstation.config import FIELD_KEYS, KINDS, load_config, save_config
from formstation.store import audit, now, pages
from review_ui import auth, review_queue, stats, ui_reader
from review_ui.ui_common import Ctx, flash, show_flash

STATUS_COLS = ["accepted", "in review", "colour rescan", "rejected", "not returned"]


def _log(ctx: Ctx, action: str, field: str | None, old: str | None, new: str | None) -> None:
    with ctx.store.tx() as conn:
        conn.execute(insert(audit).values(at=now(), user_name=ctx.user, action=action, form_id=None,
                                          field=field, old_value=old, new_value=new))


def dashboard(ctx: Ctx) -> None:
    st.header("Dashboard")
    with ctx.store.tx() as conn:
        prog = stats.progress(conn)
        rates = stats.throughput(conn)
        waiting = review_queue.queue_size(conn)
        unident = conn.execute(select(func.count()).select_from(pages).where(pages.c.kind == "unidentified")).scalar()
        leased = review_queue.active_leases(conn)
        rescans = stats.rescans(conn)
        why = stats.review_reasons(conn)
        strangers = stats.not_in_roster(conn)
    if not prog:
        st.info("No forms printed yet.")
        return
    df = pd.DataFrame(prog)
    tot = df[["printed", "received", "accepted", "in review", "colour rescan", "rejected", "not returned"]].sum()
    cols = st.columns(8)
    for c, (k, v) in zip(cols, tot.items(), strict=False):
        c.metric(k, int(v))
    cols[7].metric("unidentified pages", int(unident or 0))
    st.caption(f"queue: {waiting} forms in review, {leased} leased right now")
    if rescans:
        st.warning(f"{len(rescans)} form(s) have a pasted photo but came in from a grey or black-and-white scan: "
                   "the card needs a colour photo. Scan these pages again in colour and ingest them; the "
                   "colour scan is read afresh and the form goes on.")
        st.dataframe(rescans, hide_index=True)
    if strangers:
        st.warning(f"{len(strangers)} scanned page(s) carry the barcode of a form this station did not print "
                   "(NOT_IN_ROSTER 表单不在名册中: printed by another station, or its class was removed from the "
                   "roster). They are kept but not read: find the paper, and import its roster or send it on.")
        st.dataframe(strangers, hide_index=True)
    if why:
        st.subheader("Why forms wait in review")
        st.dataframe(why, hide_index=True)
    df["class"] = df["school"] + " · " + df["class_name"]
    st.subheader("Per school and class")
    st.dataframe(df.drop(columns=["class"]), hide_index=True)
    st.bar_chart(df.set_index("class")[STATUS_COLS], horizontal=True, stack=True)
    st.subheader("Reviewers")
    if rates:
        st.dataframe(rates, hide_index=True)
        st.bar_chart(pd.DataFrame(rates).set_index("reviewer")[["forms/hour"]])
    else:
        st.caption("no review decisions yet")


def on_save_thresholds(ctx: Ctx) -> None:
    ss = st.session_state
    old = load_config(ctx.store.workspace)
    new = replace(old, thresholds={**old.thresholds, **{k: float(ss[f"t_{k}"]) for k in (*KINDS, *FIELD_KEYS)}},
                  alignment_residual_mm=float(ss["t_align"]), unusual_writing_share=float(ss["t_writing"]),
                  unusual_class_share=float(ss["t_class_writing"]), campaign_date=ss["t_date"],
                  adapt_every=int(ss["t_adapt_every"]))
    save_config(ctx.store.workspace, new)
    _log(ctx, "config", "thresholds", json.dumps(asdict(old), default=str), json.dumps(asdict(new), default=str))
    flash("success", "Thresholds saved; they apply to forms read from now on.")


def thresholds(ctx: Ctx) -> None:
    st.header("Thresholds")
    show_flash()
    cfg = load_config(ctx.store.workspace)
    st.caption("A reading below its kind's threshold sends the form to review (never straight to rejection).")
    with st.form("t_form"):
        for k in KINDS:
            st.number_input(k, 0.0, 1.0, float(cfg.thresholds[k]), 0.01, key=f"t_{k}")
        st.caption("Digit fields with a threshold of their own (picked from risk-coverage curves on held-out "
                   "writers: at most 0.5 % of the fields accepted wrong; bench/risk_coverage.py)")
        for k in FIELD_KEYS:
            st.number_input(k, 0.0, 1.0, float(cfg.thresholds[k]), 0.0001, format="%.4f", key=f"t_{k}")
        st.number_input("alignment residual (mm)", 0.0, 10.0, float(cfg.alignment_residual_mm), 0.1, key="t_align")
        st.number_input("unusual handwriting: share of doubtful boxes on a form", 0.05, 1.0,
                        float(cfg.unusual_writing_share), 0.05, key="t_writing",
                        help="above it, even surely read numbers of the form go to a reviewer")
        st.number_input("unusual handwriting: share of doubtful boxes over a class's forms", 0.05, 1.0,
                        float(cfg.unusual_class_share), 0.05, key="t_class_writing",
                        help="above it, surely read numbers of the class's forms go to a reviewer (a reader "
                             "adapted to the campaign lowers the share)")
        st.number_input("adapt the reader after every N newly reviewed forms (0: only with Adapt now)", 0, 100000,
                        int(cfg.adapt_every), 50, key="t_adapt_every",
                        help="ingest and watch fit a candidate on what reviewers confirmed; it becomes current only "
                             "when it reads held-out forms better and accepts at least as many fields")
        st.date_input("campaign date (ages are computed on this day)", cfg.campaign_date, key="t_date",
                      help="empty: the day each form was printed")
        st.form_submit_button("Save thresholds", on_click=on_save_thresholds, args=(ctx,))
    ui_reader.versions(ctx)


def on_download(ctx: Ctx, name: str, school: str | None) -> None:
    _log(ctx, "download", None, school or "all schools", name)


PASSFILE_ENV = "FORMSTATION_EXPORT_PASSFILE"  # the station's configured passphrase (a file), if any
EXPORT_STAGING = ".export-"  # the Downloads page's private folder in the workspace while it exports


def _passphrase(typed: str) -> bytes | None:
    """The passphrase typed on the page, else the station's configured one, else None."""
    if typed:
        return typed.encode("utf-8")
    path = os.environ.get(PASSFILE_ENV)
    if path:
        from output.export import read_passphrase

        return read_passphrase(Path(path))
    return None


def _run_export(ctx: Ctx, fn, school: str | None, passphrase: bytes) -> None:
    """Export encrypted into a private temporary folder inside the workspace (children's data never
    leaves it, even while the zips are made), keep the zips (and the plain manifest of the zips) in
    this session's memory only, and remove the folder: no plain copy stays on disk."""
    from formstation.errors import StationError

    tmp = Path(tempfile.mkdtemp(prefix=EXPORT_STAGING, dir=ctx.store.workspace))
    try:
        with st.spinner("Exporting…"):
            res = fn(ctx.store, tmp / "export", school=school, passphrase=passphrase)
        files = {e.path: (tmp / "export" / e.path).read_bytes() for e in res.files}
        files["manifest.json"] = (tmp / "export" / "manifest.json").read_bytes()
    except StationError as e:
        st.error(str(e))
        return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    st.session_state.d_files, st.session_state.d_school = files, school
    _log(ctx, "export", None, school or "all schools", ", ".join(files))


def downloads(ctx: Ctx) -> None:
    st.header("Downloads")
    st.caption("Exports hold children's personal data: each school comes as one AES-256 encrypted zip; "
               "keep them on the encrypted medium only. The files are served to this session alone.")
    from output.export import export as fn
    from review_ui import data

    with ctx.store.tx() as conn:
        schools = sorted({s for s, _ in data.classes(conn)})
    school = st.selectbox("School", [None, *schools], format_func=lambda s: s or "all schools", key="d_pick")
    configured = bool(os.environ.get(PASSFILE_ENV))
    pw = st.text_input("Passphrase for the zips" + (" (empty: the station's configured one)" if configured else ""),
                       type="password", key="d_pw")
    if st.button("Prepare the export", key="d_run"):
        with ctx.store.tx() as conn:  # the role as the store holds it right now, not as at login
            still = auth.role_of(conn, ctx.user) == "supervisor"
        phrase = _passphrase(pw) if still else None
        if not still:
            st.error("Only a supervisor can prepare exports.")
        elif phrase is None:
            st.error("Enter a passphrase: the export is only offered encrypted.")
        else:
            _run_export(ctx, fn, school, phrase)
    for name, body in (st.session_state.get("d_files") or {}).items():
        st.download_button(f"⬇ {name}", body, file_name=name, key=f"d_{name}",
                           on_click=on_download, args=(ctx, name, st.session_state.get("d_school")))
