"""Supervisor pages: dashboard, thresholds (station.toml), downloads of the exports (each logged)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy import func, insert, select

from formstation.config import KINDS, load_config, save_config
from formstation.store import audit, leases, now, pages
from review_ui import queue, stats, ui_reader
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
        waiting = queue.queue_size(conn)
        unident = conn.execute(select(func.count()).select_from(pages).where(pages.c.kind == "unidentified")).scalar()
        leased = conn.execute(select(func.count()).select_from(leases)).scalar()
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
    new = replace(old, thresholds={k: float(ss[f"t_{k}"]) for k in KINDS},
                  alignment_residual_mm=float(ss["t_align"]), unusual_writing_share=float(ss["t_writing"]),
                  campaign_date=ss["t_date"])
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
        st.number_input("alignment residual (mm)", 0.0, 10.0, float(cfg.alignment_residual_mm), 0.1, key="t_align")
        st.number_input("unusual handwriting: share of doubtful boxes on a form", 0.05, 1.0,
                        float(cfg.unusual_writing_share), 0.05, key="t_writing",
                        help="above it, even surely read numbers of the form go to a reviewer")
        st.date_input("campaign date (ages are computed on this day)", cfg.campaign_date, key="t_date")
        st.form_submit_button("Save thresholds", on_click=on_save_thresholds, args=(ctx,))
    ui_reader.versions(ctx)


def on_download(ctx: Ctx, name: str, school: str | None) -> None:
    _log(ctx, "download", None, school or "all schools", name)


def _run_export(ctx: Ctx, fn, school: str | None, passphrase: str) -> None:
    """Export into a fresh temp folder; offer its top-level files plus everything as one zip."""
    from formstation.errors import StationError

    out = Path(tempfile.mkdtemp(prefix="formstation-export-")) / "export"
    extra = {"passphrase": passphrase.encode("utf-8")} if passphrase else {}
    try:
        with st.spinner("Exporting…"):
            fn(ctx.store, out, school=school, **extra)
    except StationError as e:
        st.error(str(e))
        return
    files = sorted(str(p) for p in out.iterdir() if p.is_file())
    if any(p.is_dir() for p in out.iterdir()):
        files.append(shutil.make_archive(str(out.parent / "export-all"), "zip", out))
    st.session_state.d_files, st.session_state.d_school = files, school


def downloads(ctx: Ctx) -> None:
    st.header("Downloads")
    st.caption("Exports hold children's personal data: keep them on the encrypted medium only.")
    from output.export import export as fn
    from review_ui import data

    with ctx.store.tx() as conn:
        schools = sorted({s for s, _ in data.classes(conn)})
    school = st.selectbox("School", [None, *schools], format_func=lambda s: s or "all schools", key="d_pick")
    pw = st.text_input("Passphrase (optional: one AES-encrypted zip per school)", type="password", key="d_pw")
    if st.button("Prepare the export", key="d_run"):
        _run_export(ctx, fn, school, pw)
    for f in st.session_state.get("d_files", []):
        name = Path(f).name
        st.download_button(f"⬇ {name}", Path(f).read_bytes(), file_name=name, key=f"d_{name}",
                           on_click=on_download, args=(ctx, name, st.session_state.get("d_school")))
