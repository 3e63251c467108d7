"""The review queue page: one leased form, its flagged fields one at a time, Enter saves and moves on.

State (st.session_state): q_form (leased form id), q_view (data.FormView), q_step, q_values (typed so
far), q_skipped (skipped this session), q_error. Widget callbacks do the work before the page is
drawn, so one rerun shows the next field.
"""

from __future__ import annotations

import time

import streamlit as st
from sqlalchemy import select

from formstation.store import reasons
from ocr.decode import one_box_apart
from ocr.reasons import REASONS
from review_ui import data, decisions, fieldinfo, review_queue, sessions, ui_keys, ui_panels, wording
from review_ui.ui_common import Ctx, esc, flash, html, image, show_flash
from review_ui.ui_panels import scans_html as _scans_html  # noqa: F401 (tests/test_golden.py reads it)

ACK_STEP = "__form__"


def _ss():
    return st.session_state


def _steps(view: data.FormView) -> list[str]:
    steps = [it.name for it in view.items]
    if view.form_reasons or not steps:
        steps.append(ACK_STEP)
    return steps


def _open(ctx: Ctx, form_id: str | None) -> None:
    ss = _ss()
    ss.q_form, ss.q_step, ss.q_values, ss.q_error = form_id, 0, {}, None
    ss.q_invalid, ss.q_as_written = None, {}
    ss.q_view = None
    if form_id:
        with ctx.store.tx() as conn:
            ss.q_view = data.load_form(conn, form_id)


def _next_form(ctx: Ctx) -> None:
    with ctx.store.tx() as conn:
        fid = review_queue.take_lease(conn, ctx.user, _ss().setdefault("q_skipped", set()), ctx.ttl_s)
    _open(ctx, fid)


def _outcome(ctx: Ctx, form_id: str, status: str) -> None:
    """Tell the reviewer what the decision did to the form, and why (codes in Chinese and English)."""
    with ctx.store.tx() as conn:
        codes = [r.code for r in conn.execute(select(reasons.c.code).where(reasons.c.form_id == form_id)
                                              .order_by(reasons.c.id))]
    kind = {"accepted": "success", "rejected": "warning"}.get(status, "info")
    flash(kind, wording.outcome(form_id, status, codes))


def _commit(ctx: Ctx, ack: bool = True) -> None:
    ss = _ss()
    view: data.FormView = ss.q_view
    codes = [c for c, _ in view.form_reasons] if ack else []
    try:
        with ctx.store.tx() as conn:
            status = decisions.save_form(conn, view.form_id, ctx.user, dict(ss.q_values), codes,
                                         ctx.store.workspace, as_written=dict(ss.get("q_as_written") or {}))
    except decisions.DecisionError as e:
        flash("error", str(e))
        _next_form(ctx)
        return
    _outcome(ctx, view.form_id, status)
    _next_form(ctx)  # a form still in review stays leased to this reviewer and comes back


def _field_value(step: str, typed: str) -> str | None:
    """The value to keep for a field step, or None (ss.q_error says why). A value of the right shape
    that the rules would object to (an ID's check character, a phone's pattern) needs a second,
    explicit keystroke: '!' then Enter keeps it as the parent wrote it, and the audit says so."""
    ss = _ss()
    pending = ss.get("q_invalid")
    if typed.strip() == "!" and pending and pending[0] == step:
        ss.setdefault("q_as_written", {})[step] = pending[2]
        return pending[1]
    lay = ss.q_view.layout  # the form's own layout: its fields' shapes and meanings
    value, problem = fieldinfo.normalize(step, typed, lay)
    if problem:
        ss.q_error = f"{fieldinfo.label(step, lay)}: {problem}"
        return None
    objection = (fieldinfo.check(step, value, lay) or _one_box_from_partner(step, value, lay)
                 or _one_box_from_other_forms(step, value))
    if objection:
        ss.q_invalid = (step, value, objection)
        ss.q_error = (f"{fieldinfo.label(step, lay)}: {value} is {objection}. Type the correction, or type ! and "
                      "Enter to save it as the parent wrote it.")
        return None
    (ss.get("q_as_written") or {}).pop(step, None)
    return value


def _one_box_from_partner(step: str, value: str, lay) -> str | None:
    """A number one box apart from the number the form pairs its field with (the applicant's and
    the guardian's phone: the reviewer's value for it, else the reading shown): most often one
    number with a box misread or mistyped, so Enter alone does not keep it (see ocr.read._one_box_apart)."""
    ss = _ss()
    try:
        partner = lay.zone(step).pair_with
    except KeyError:
        return None
    if not partner:
        return None
    other = ss.q_values.get(partner)
    if other is None:
        other = next((it.value for it in ss.q_view.items if it.name == partner), "")
    i = one_box_apart(value, other) if other.isdigit() else None
    if i is None:
        return None
    return f"one box from {fieldinfo.label(partner, lay)} {other} (box {i + 1} reads {other[i]} there)"


def _one_box_from_other_forms(step: str, value: str) -> str | None:
    """A value that still differs, in the box the station framed, from the number other forms of
    the school carry (`ocr.siblings`: their reading one box from it, capped for a reviewer): most
    often that number with the box misread, so Enter alone does not keep it."""
    item = next((it for it in _ss().q_view.items if it.name == step), None)
    for d in item.doubt if item is not None else ():
        i, theirs = d.get("i"), d.get("other_forms")
        if not theirs or not isinstance(i, int) or i >= len(item.value or ""):
            continue
        number = item.value[:i] + theirs + item.value[i + 1:]
        k = one_box_apart(value, number)
        if k is not None:
            return (f"one box from the number {d.get('n_other', 'other')} other forms of the school carry "
                    f"(box {k + 1} reads {number[k]} there)")
    return None


def _form_choice(ctx: Ctx, typed: str) -> bool:
    """The whole-form step: 'c' clears the form-level reasons, 'r' rejects (with the form-level code
    when it is a reject reason, else by opening the reasons). True: the step is done."""
    ss = _ss()
    view: data.FormView = ss.q_view
    choice = typed.strip().lower()
    if not view.form_reasons or choice.startswith("c"):
        return True
    if choice.startswith("r"):
        code = _form_reject_code(view)
        if code:
            _reject(ctx, code, "form-level doubt confirmed by the reviewer")
        else:
            ss.q_show_reject, ss.q_error = True, "Choose the reason to reject it (below), then Enter."
        return False
    ss.q_error = "Type c (clear: the form is fine as it is) or r (reject), then Enter."
    return False


def on_enter(ctx: Ctx, step: str, key: str) -> None:
    """Enter in the field box: check and keep the value, show the next field; after the last, save."""
    ss = _ss()
    ss.last_active = time.time()
    typed = ss.get(key, "")
    if step == ACK_STEP:
        if not _form_choice(ctx, typed):
            return
    else:
        value = _field_value(step, typed)
        if value is None:
            return
        ss.q_values[step] = value
    ss.q_error, ss.q_invalid = None, None
    ss.q_step += 1
    if ss.q_step >= len(_steps(ss.q_view)):
        _commit(ctx)
    else:
        with ctx.store.tx() as conn:
            review_queue.renew(conn, ss.q_form, ctx.user, ctx.ttl_s)


def on_skip(ctx: Ctx) -> None:
    ss = _ss()
    if not ss.get("q_form"):
        return
    ss.setdefault("q_skipped", set()).add(ss.q_form)
    with ctx.store.tx() as conn:
        review_queue.release(conn, ss.q_form, ctx.user)
    flash("info", f"{ss.q_form} skipped: back in the queue for the others")
    _next_form(ctx)


def _reject(ctx: Ctx, code: str, note: str) -> None:
    ss = _ss()
    fid = ss.q_form
    try:
        with ctx.store.tx() as conn:
            decisions.reject_form(conn, fid, ctx.user, code, note)
            review_queue.release(conn, fid, ctx.user)
    except decisions.DecisionError as e:
        flash("error", str(e))
        return
    _outcome(ctx, fid, "rejected")
    ss.q_reject_note, ss.q_show_reject, ss.q_reject_code = "", False, None
    _next_form(ctx)


def on_reject(ctx: Ctx) -> None:
    ss = _ss()
    if not ss.get("q_form"):
        return
    code = ss.get("q_reject_code")
    if not code:
        flash("error", "Choose a reason first: nothing was rejected.")
        return
    _reject(ctx, code, ss.get("q_reject_note", ""))


def on_undo(ctx: Ctx) -> None:
    ss = _ss()
    try:
        with ctx.store.tx() as conn:
            fid = decisions.undo_last(conn, ctx.user)
            if fid and ss.get("q_form") and ss.q_form != fid:
                review_queue.release(conn, ss.q_form, ctx.user)
            if fid:
                review_queue.lease_form(conn, fid, ctx.user, ctx.ttl_s)
    except decisions.DecisionError as e:
        flash("error", str(e))
        return
    if fid is None:
        flash("info", "nothing to undo")
        return
    ss.setdefault("q_skipped", set()).discard(fid)
    flash("info", f"{fid}: your last decision was undone")
    _open(ctx, fid)


def _header(view: data.FormView, n_steps: int, step: int) -> None:
    done = " · ".join(f"✓ {k} = {v or '(empty)'}" for k, v in (_ss().get("q_values") or {}).items())
    html(f"<h3>{esc(view.form_id)} · {esc(view.name)} · {esc(view.school)} {esc(view.class_name)}</h3>"
         f"<div class='fs-muted'>student no. {esc(view.student_no)} · ID {esc(view.id_number)} · "
         f"{esc(view.gender)} · step {min(step + 1, n_steps)} of {n_steps}</div>"
         + (f"<div class='fs-done'>{esc(done)}</div>" if done else ""))


def _item(view: data.FormView, name: str) -> data.Item:
    return next(it for it in view.items if it.name == name)


def _form_reject_code(view: data.FormView) -> str | None:
    """A form-level reason a reviewer can reject with directly from the whole-form step."""
    allowed = decisions.reject_codes()
    return next((c for c, _ in view.form_reasons if c in allowed), None)


def _ack_panel(ctx: Ctx, view: data.FormView) -> str:
    corrected = (_ss().get("q_values") or {}).get(view.layout.name_of("corrected_name"), "")
    html(ui_panels.ack_html(ctx, view, corrected, _form_reject_code(view)))
    return ""  # an explicit choice: never pre-filled


def _hint(step: str, view: data.FormView) -> str | None:
    if step == ACK_STEP:
        return "c = clear (the form is fine as it is), r = reject" if view.form_reasons else None
    return fieldinfo.hint(step, view.layout)


def _entry(ctx: Ctx, view: data.FormView, step: str) -> None:
    key = f"in_{view.form_id}_{'form' if step == ACK_STEP else step}"
    boxes: list[int] = []
    if step == ACK_STEP:
        default = _ack_panel(ctx, view)
    else:
        it = _item(view, step)
        default, copy_line = ui_panels.entry_default(view, it)
        body, boxes = ui_panels.field_panel(ctx, view, it, default, copy_line)
        html(body)
    with st.form(f"form_{key}", border=False):
        label = ("Your choice: c or r, then Enter" if step == ACK_STEP and view.form_reasons
                 else "Value (type or accept; Enter saves and moves on)")
        st.text_input(label, value=default, key=key, help=_hint(step, view))
        st.form_submit_button("Save ⏎", on_click=on_enter, args=(ctx, step, key), type="primary")
    if _ss().get("q_error"):
        st.error(_ss().q_error)
    ui_keys.focus(key, _ss().get(key, default), boxes, _cookie_js(ctx))


def _cookie_js(ctx: Ctx) -> str:
    """Re-sign the session cookie while the reviewer works inside the fragment (no page runs)."""
    ss = _ss()
    if not ss.get("sid"):
        return ""
    token = sessions.sign(ctx.store.workspace, ctx.user, ss.sid)
    return sessions.cookie_script(sessions.COOKIE, token, sessions.IDLE_S)


def _actions(ctx: Ctx) -> None:
    """Below the entry, outside its fragment: Enter does not redraw these."""
    with st.container(horizontal=True):
        st.button("Skip form", on_click=on_skip, args=(ctx,), key="q_skip")
        st.button("Undo my last decision", on_click=on_undo, args=(ctx,), key="q_undo")
        st.toggle("Reject…", key="q_show_reject")
        st.toggle("Whole page", key="q_show_page")
        st.toggle("History", key="q_show_history")
    st.caption(ui_keys.HOTKEY_HELP)
    ui_keys.hotkeys()
    if _ss().get("q_show_reject"):
        with st.form("q_reject_form"):
            codes = decisions.reject_codes()
            st.selectbox("Reason", codes, index=None, key="q_reject_code", placeholder="choose a reason (type to filter)",
                         format_func=lambda c: f"{c} · {REASONS[c].zh} · {wording.EN.get(c, '')}")
            st.text_input("Note (Enter rejects)", key="q_reject_note")
            st.form_submit_button("Reject form", on_click=on_reject, args=(ctx,))


def _page_and_history(ctx: Ctx, view: data.FormView) -> None:
    ss = _ss()
    if ss.get("q_show_page"):
        if len(view.scans) > 1:
            for i, sc in enumerate(reversed(view.scans)):
                image(ctx.store, sc["image"], caption=f"scan {len(view.scans) - i}: {sc['file']}, page {sc['page']}")
        else:
            image(ctx.store, view.page_image)
    if ss.get("q_show_history"):
        with ctx.store.tx() as conn:
            rows = data.audit_of(conn, view.form_id)
        if rows:
            st.dataframe(rows, hide_index=True)
        else:
            st.caption("no changes yet")


def _empty_queue(ctx: Ctx) -> None:
    with ctx.store.tx() as conn:
        waiting = review_queue.queue_size(conn)
    skipped = len(_ss().get("q_skipped") or ())
    if waiting:
        st.info(f"{waiting} forms still wait for review ({skipped} skipped by you, the others open with "
                "another reviewer): Look again offers the skipped ones.")
    else:
        st.success("The queue is empty. Nothing waits for review.")
    st.button("Undo my last decision", on_click=on_undo, args=(ctx,), key="q_undo_empty")
    ui_keys.hotkeys()
    if st.button("Look again", key="q_again"):
        _ss().q_skipped = set()
        _next_form(ctx)
        st.rerun()


@st.fragment
def _form_fragment(ctx: Ctx) -> None:
    """The leased form: Enter reruns only this fragment, not the page around it (faster)."""
    ss = _ss()
    if not ss.get("q_form"):
        st.rerun()  # the queue ran empty while working in the fragment: redraw the page
    show_flash()
    view: data.FormView = ss.q_view
    steps = _steps(view)
    _header(view, len(steps), ss.q_step)
    _entry(ctx, view, steps[min(ss.q_step, len(steps) - 1)])
    _page_and_history(ctx, view)


def render(ctx: Ctx) -> None:
    ss = _ss()
    if "q_form" not in ss or (ss.q_form and ss.q_view is None):
        _next_form(ctx)
    if not ss.q_form:
        show_flash()
        _empty_queue(ctx)
        return
    _form_fragment(ctx)
    _actions(ctx)
