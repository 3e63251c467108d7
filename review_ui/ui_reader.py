"""Supervisor: the digit reader's versions (shipped, adapted to the campaign), their figures, which
is current; adapt now, or make another version current (a rollback). ocr.learning does the work."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ocr import labels, learning
from ocr.reader_cli import version_rows
from review_ui.ui_common import Ctx, flash


def on_use(ctx: Ctx) -> None:
    name = st.session_state["rv_pick"]
    try:
        rr = learning.use_version(ctx.store, name, user=ctx.user)
    except (KeyError, ValueError) as e:
        flash("error", str(e))
        return
    flash("success", f"{rr.version} is now the current reader: {rr.forms} forms in review re-read, "
                     f"{rr.accepted} accepted without a reviewer.")


def on_adapt(ctx: Ctx) -> None:
    with st.spinner("Fitting the reader to the reviewers' labelled cells…"):
        out = learning.run_adapt(ctx.store, user=ctx.user)
    flash("success" if out.promoted else "info", out.message.replace("\n", "  \n"))


def versions(ctx: Ctx) -> None:
    """The Reader section (on the Thresholds page)."""
    st.subheader("Digit reader versions")
    with ctx.store.tx() as conn:
        n = labels.reviewed_forms(conn)
    rows = version_rows(ctx.store.workspace)
    st.caption(f"The reader learns this campaign's handwriting from the digit fields reviewers saved ({n} forms "
               "so far); a candidate is fitted on some forms and compared with the current reader on others, and "
               "becomes current only when it reads them better by more than chance (forms it reads better against "
               "forms it reads worse) and accepts as many fields of the forms no reviewer opened. Labelled cells are children's "
               "handwriting: they stay in the store, are never exported and go with the workspace.")
    st.dataframe(pd.DataFrame(rows).drop(columns=["usable"]), hide_index=True, key="rv_table")
    newest = next((r for r in reversed(rows) if not r["shipped"]), None)
    if newest is not None:  # the table is wide: the newest candidate's verdict in words
        st.caption(f"Newest candidate {newest['version']}: "
                   + ("promoted." if newest["verdict"] == "promoted" else f"kept but not used: {newest['verdict']}."))
    names = [r["version"] for r in rows if r["usable"]]
    cur = next((r["version"] for r in rows if r["current"]), names[0])
    c1, c2 = st.columns(2)
    c1.selectbox("Version", names, index=names.index(cur) if cur in names else 0, key="rv_pick")
    c1.button("Make current (re-reads the forms in review)", key="rv_use", on_click=on_use, args=(ctx,))
    c2.button("Adapt now", key="rv_adapt", on_click=on_adapt, args=(ctx,))
