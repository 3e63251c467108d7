"""Reviewer pages besides the queue: class group view, unidentified pages, form lookup with audit."""

from __future__ import annotations

import streamlit as st

from ocr.reasons import REASONS, zh
from review_ui import data, decisions, fieldinfo, matching, ui_panels
from review_ui.ui_common import Ctx, flash, image, reason_text, show_flash

PER_ROW = 4


def _pick_class(ctx: Ctx, key: str) -> tuple[str, str] | None:
    with ctx.store.tx() as conn:
        options = data.classes(conn)
    if not options:
        st.info("No roster imported yet.")
        return None
    labels = {f"{s} · {c}": (s, c) for s, c in options}
    return labels[st.selectbox("Class", list(labels), key=key)]


def group_view(ctx: Ctx) -> None:
    """All crops of one field for one class side by side: a copied number or a missing signature stands out."""
    st.header("Group view by class")
    show_flash()
    sc = _pick_class(ctx, "g_class")
    if sc is None:
        return
    with ctx.store.tx() as conn:
        offered = data.group_fields(conn, sc[0], sc[1])
    field = st.radio("Field", offered, key="g_field", horizontal=True, format_func=fieldinfo.label)
    with ctx.store.tx() as conn:
        rows = data.group_crops(conn, sc[0], sc[1], field)
    if not rows:
        st.info("No form of this class has been read yet.")
        return
    copied = sum(r["flag"] == "copied" for r in rows)
    missing = sum(r["flag"] == "missing" for r in rows)
    if copied:
        st.warning(f"{copied} forms share a value with another form of this class (marked ⚠).")
    if missing:
        st.warning(f"{missing} forms have nothing here (marked ⚠).")
    with ctx.store.tx() as conn:
        doubts = data.shared_phone_doubts(conn, sc[0], sc[1]) if field == "phone" else set()
    number = ui_panels.shared_number(rows)
    if doubts:
        st.warning(f"{len(doubts)} forms wait on a suspected class-wide phone (PHONE_SHARED_BY_CLASS "
                   f"{REASONS['PHONE_SHARED_BY_CLASS'].zh}): tick the forms to reject with it; the others are cleared.")
    for start in range(0, len(rows), PER_ROW):
        for col, r in zip(st.columns(PER_ROW), rows[start:start + PER_ROW], strict=False):
            with col:
                mark = f"⚠ {r['flag']} · " if r["flag"] else ""
                who = "✓" if r["source"] == "reviewer" else ""
                image(ctx.store, r["crop_path"])
                st.caption(f"{mark}{r['form_id']} {r['name']} · `{r['value'] or '(empty)'}` {who} · {r['status']}")
                if r["form_id"] in doubts:
                    st.checkbox("reject: shared phone", key=f"g_sel_{r['form_id']}",
                                value=ui_panels.carries(r["value"] or "", number))
    if doubts:
        st.button("Reject the ticked with PHONE_SHARED_BY_CLASS, clear the others", key="g_phone_apply",
                  on_click=_on_shared_phone, args=(ctx, sorted(doubts)), type="primary")


def _on_shared_phone(ctx: Ctx, doubts: list[str]) -> None:
    ss = st.session_state
    reject = [f for f in doubts if ss.get(f"g_sel_{f}")]
    with ctx.store.tx() as conn:
        out = decisions.settle_shared_phone(conn, ctx.user, reject, [f for f in doubts if f not in reject],
                                            ctx.ttl_s, ctx.store.workspace)
    flash("success", "; ".join(f"{fid}: {what}" for fid, what in out.items()))


def _match_controls(ctx: Ctx, page) -> None:
    q = st.text_input("Find the form: student name, ID number, student number or form id", key=f"u_q_{page.page_id}")
    with ctx.store.tx() as conn:
        hits = data.search_forms(conn, q)
    if q and not hits:
        st.caption("no form matches")
    for h in hits:
        c1, c2 = st.columns([4, 1])
        c1.markdown(f"`{h['form_id']}` {h['name']} · {h['id_number']} · {h['school']} {h['class_name']} · {h['status']}")
        c2.button("Match", key=f"u_m_{page.page_id}_{h['form_id']}", on_click=_on_match,
                  args=(ctx, page.page_id, h["form_id"]))
    st.button("Not one of our forms (foreign page)", key=f"u_f_{page.page_id}", on_click=_on_foreign,
              args=(ctx, page.page_id))


def _on_match(ctx: Ctx, page_id: int, form_id: str) -> None:
    try:
        with ctx.store.tx() as conn:
            matching.match_page(conn, page_id, form_id, ctx.user)
    except matching.MatchError as e:
        flash("error", str(e))
        return
    flash("success", matching.reread(ctx.store, form_id))


def _on_foreign(ctx: Ctx, page_id: int) -> None:
    try:
        with ctx.store.tx() as conn:
            matching.mark_foreign(conn, page_id, ctx.user)
    except matching.MatchError as e:
        flash("error", str(e))
        return
    flash("info", f"page {page_id} marked as foreign")


def _rotate(page_id: int) -> None:
    key = f"u_rot_{page_id}"
    st.session_state[key] = (st.session_state.get(key, 0) + 90) % 360


def _upright_image(ctx: Ctx, rel: str | None, turn: int) -> None:
    """The page as stored (turned upright by its marks when it aligned), turned further on request."""
    path = (ctx.store.workspace / rel) if rel else None
    if not turn or path is None or not path.is_file():
        image(ctx.store, rel)
        return
    from PIL import Image

    with Image.open(path) as im:
        st.image(im.rotate(-turn, expand=True), width="stretch")


def unidentified(ctx: Ctx) -> None:
    st.header("Unidentified pages")
    show_flash()
    with ctx.store.tx() as conn:
        rows = data.unidentified_pages(conn)
    if not rows:
        st.success("No unidentified pages.")
        return
    st.caption(f"{len(rows)} pages wait to be matched")
    page = rows[0]
    st.subheader(f"{page.file_name or 'scan file ' + page.file_sha256[:12] + '…'}, page {page.page_index + 1}")
    if page.reason:
        st.warning(f"`{page.reason}` {zh(page.reason)}")
    left, right = st.columns([3, 2])
    with left:
        turn = st.session_state.get(f"u_rot_{page.page_id}", 0)
        st.button("Rotate ↻ 90°", key=f"u_rotate_{page.page_id}", on_click=_rotate, args=(page.page_id,))
        _upright_image(ctx, page.image_path, turn)
    with right:
        _match_controls(ctx, page)


def _lookup_one(ctx: Ctx, form_id: str) -> None:
    with ctx.store.tx() as conn:
        view = data.load_form(conn, form_id)
        rows = data.all_fields(conn, form_id)
        trail = data.audit_of(conn, form_id)
    if view is None:
        st.error(f"no form {form_id}")
        return
    st.subheader(f"{view.form_id} · {view.name} · {view.school} {view.class_name} · status {view.status}")
    for code, detail in view.form_reasons + tuple(r for it in view.items for r in it.reasons):
        st.markdown("- " + reason_text(code, detail))
    st.dataframe([{"field": r.name, "value": r.value or "", "confidence": r.confidence, "source": r.source,
                   "by": r.updated_by or "", "at": r.updated_at or ""} for r in rows], hide_index=True)
    st.markdown("**Audit trail**")
    if trail:
        st.dataframe(trail, hide_index=True)
    else:
        st.caption("no changes yet")
    _reopen_controls(ctx, view)
    if len(view.scans) > 1:
        st.caption(" · ".join(f"scan {i}: {sc['file']}, page {sc['page']}, {sc['at']}"
                              for i, sc in enumerate(view.scans, 1)))
    if st.toggle("Show the whole page" if len(view.scans) < 2 else "Show every scan", key=f"l_page_{form_id}"):
        for i, sc in reversed(list(enumerate(view.scans, 1))):
            image(ctx.store, sc["image"], caption=f"scan {i}: {sc['file']}, page {sc['page']}")
        if not view.scans:
            image(ctx.store, view.page_image)


def _reopen_controls(ctx: Ctx, view: data.FormView) -> None:
    """A decided form goes back to review: for a supervisor, or the reviewer who decided it."""
    if view.status not in decisions.DECIDED:
        return
    with ctx.store.tx() as conn:
        who = decisions.decided_by(conn, view.form_id)
    if not decisions.may_reopen(ctx.role, ctx.user, who):
        st.caption(f"Decided by {who or 'the rules'}: a supervisor{' or ' + who if who else ''} can reopen it.")
        return
    with st.form(f"l_reopen_{view.form_id}", border=True):
        st.markdown(f"**Reopen** (decided by {who or 'the rules'}): the form leaves the "
                    f"{'card data' if view.status == 'accepted' else 'rejections'} and goes back to the queue, "
                    "every field a step, until a reviewer decides it again.")
        st.text_input("Why (kept in the audit trail)", key=f"l_why_{view.form_id}")
        st.form_submit_button("Reopen for review", on_click=_on_reopen, args=(ctx, view.form_id))


def _on_reopen(ctx: Ctx, form_id: str) -> None:
    why = st.session_state.get(f"l_why_{form_id}", "")
    try:
        with ctx.store.tx() as conn:
            status = decisions.reopen_form(conn, form_id, ctx.user, why, ctx.store.workspace)
    except decisions.DecisionError as e:
        flash("error", str(e))
        return
    flash("success", f"{form_id} reopened: {status}, first in the queue, every field a step")


def form_lookup(ctx: Ctx) -> None:
    st.header("Form lookup")
    show_flash()
    q = st.text_input("Student name, ID number, student number or form id", key="l_q")
    with ctx.store.tx() as conn:
        hits = data.search_forms(conn, q)
    if not hits:
        if q:
            st.caption("no form matches")
        return
    fid = st.selectbox("Form", [h["form_id"] for h in hits], key="l_pick",
                       # no status in the label: the browser keeps a keyed box's labels, a reopen changes it
                       format_func=lambda f: next(f"{h['form_id']} {h['name']} · {h['class_name']}"
                                                  for h in hits if h["form_id"] == f))
    _lookup_one(ctx, fid)
