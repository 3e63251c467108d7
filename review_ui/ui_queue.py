"""The review queue page: one leased form, its flagged fields one at a time, Enter saves and moves on.

State (st.session_state): q_form (leased form id), q_view (data.FormView), q_step, q_values (typed so
far), q_skipped (skipped this session), q_error. Widget callbacks do the work before the page is
drawn, so one rerun shows the next field.
"""

from __future__ import annotations

import json

import streamlit as st

from ocr.reasons import REASONS
from review_ui import data, decisions, fieldinfo, queue
from review_ui.ui_common import Ctx, esc, flash, html, image, img_tag, reason_html, show_flash

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
    ss.q_view = None
    if form_id:
        with ctx.store.tx() as conn:
            ss.q_view = data.load_form(conn, form_id)


def _next_form(ctx: Ctx) -> None:
    with ctx.store.tx() as conn:
        fid = queue.take_lease(conn, ctx.user, _ss().setdefault("q_skipped", set()), ctx.ttl_s)
    _open(ctx, fid)


def _commit(ctx: Ctx) -> None:
    ss = _ss()
    view: data.FormView = ss.q_view
    ack = [c for c, _ in view.form_reasons]
    try:
        with ctx.store.tx() as conn:
            status = decisions.save_form(conn, view.form_id, ctx.user, dict(ss.q_values), ack, ctx.store.workspace)
    except decisions.DecisionError as e:
        flash("error", str(e))
        _next_form(ctx)
        return
    flash("success" if status == "accepted" else "info", f"{view.form_id} saved: {status}")
    _next_form(ctx)  # a form still in review stays leased to this reviewer and comes back


def on_enter(ctx: Ctx, step: str, key: str) -> None:
    """Enter in the field box: check and keep the value, show the next field; after the last, save."""
    ss = _ss()
    typed = ss.get(key, "")
    if step != ACK_STEP:
        value, problem = fieldinfo.normalize(step, typed)
        if problem:
            ss.q_error = f"{fieldinfo.label(step)}: {problem}"
            return
        ss.q_values[step] = value
    ss.q_error = None
    ss.q_step += 1
    if ss.q_step >= len(_steps(ss.q_view)):
        _commit(ctx)
    else:
        with ctx.store.tx() as conn:
            queue.renew(conn, ss.q_form, ctx.user, ctx.ttl_s)


def on_skip(ctx: Ctx) -> None:
    ss = _ss()
    if not ss.get("q_form"):
        return
    ss.setdefault("q_skipped", set()).add(ss.q_form)
    with ctx.store.tx() as conn:
        queue.release(conn, ss.q_form, ctx.user)
    flash("info", f"{ss.q_form} skipped: back in the queue for the others")
    _next_form(ctx)


def on_reject(ctx: Ctx) -> None:
    ss = _ss()
    if not ss.get("q_form"):
        return
    code, note = ss.get("q_reject_code"), ss.get("q_reject_note", "")
    try:
        with ctx.store.tx() as conn:
            decisions.reject_form(conn, ss.q_form, ctx.user, code, note)
            queue.release(conn, ss.q_form, ctx.user)
    except decisions.DecisionError as e:
        flash("error", str(e))
        return
    flash("warning", f"{ss.q_form} rejected: {code}")
    ss.q_reject_note, ss.q_show_reject = "", False
    _next_form(ctx)


def on_undo(ctx: Ctx) -> None:
    ss = _ss()
    try:
        with ctx.store.tx() as conn:
            fid = decisions.undo_last(conn, ctx.user)
            if fid and ss.get("q_form") and ss.q_form != fid:
                queue.release(conn, ss.q_form, ctx.user)
            if fid:
                queue.lease_form(conn, fid, ctx.user, ctx.ttl_s)
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


def _reasons_html(pairs) -> str:
    return "<ul>" + "".join(f"<li>{reason_html(code, detail)}</li>" for code, detail in pairs) + "</ul>"


def _doubt_word(d: dict) -> str:
    if "above" in d:
        return f"reads {d['read'] or '?'}; written above it: {d['above']}"
    if "struck" in d:
        sure = "" if float(d.get("p", 0)) >= 0.9 else ", unsure"
        return f"struck out, rewritten above as {d['read'] or '?'}{sure}"
    return f"{d['read']} or {d['alt']}" if d.get("read") else "empty"


def _doubt_tag(d: dict) -> str:
    if "above" in d:
        return f"{d['read'] or '?'}, ↑{d['above']}"
    if "struck" in d:
        return f"↑{d['read'] or '?'}"
    return f"{d['read']}/{d['alt']}" if d.get("read") else "?"


def _marks_html(it: data.Item) -> str:
    """A frame over each box the reader doubts, tagged with its two likeliest readings."""
    out = []
    for d in it.doubt:
        box = d.get("box")
        if not box or len(box) != 4:
            continue
        x0, y0, x1, y1 = (100 * float(v) for v in box)
        tag = _doubt_tag(d)
        out.append(f"<div class='fs-mark' style='left:{x0:.2f}%;top:{y0:.2f}%;width:{x1 - x0:.2f}%;"
                   f"height:{y1 - y0:.2f}%'><span>{esc(tag)}</span></div>")
    return "".join(out)


def _value_html(it: data.Item) -> str:
    """The reading, its doubted characters highlighted, and which boxes to look at."""
    value = it.value or ""
    shape = fieldinfo.digit_shape(it.name)
    doubted = {int(d["i"]) for d in it.doubt if d.get("read")}
    if shape and len(value) == shape[0] and doubted:
        text = "".join(f"<mark>{esc(c)}</mark>" if i in doubted else esc(c) for i, c in enumerate(value))
    else:
        text = esc(value or "(empty)")
    line = ""
    if it.doubt:
        boxes = ", ".join(f"{int(d['i']) + 1} ({esc(_doubt_word(d))})" for d in it.doubt)
        line = f"<div class='fs-doubt'>look at box {boxes}</div>"
    elif shape and value and it.source == "read":
        line = "<div class='fs-muted'>no single box is doubtful: check the whole number</div>"
    return f"read: <code>{text}</code>", line


def _field_panel(ctx: Ctx, view: data.FormView, name: str) -> str:
    """Crop beside the reading, as one HTML element (an image inlined): cheap to redraw on Enter."""
    it = _item(view, name)
    conf = f"{it.confidence:.2f}" if it.confidence is not None else "-"
    sug = (f" · suggestion <code>{esc(it.suggestion)}</code>"
           if it.suggestion and it.suggestion != it.value else "")
    read, doubt_line = _value_html(it)
    if it.other is not None:
        html(_other_scan_html(ctx, it))
        return it.value or ""
    copy_line, default = "", it.value or it.suggestion or ""
    if it.copy_number and it.copy_number == it.value:
        copy_line = "<div class='fs-muted'>the pasted ID copy reads the same number</div>"
    elif it.copy_number:
        if it.copy_number == view.id_number:  # the copy backs a name correction: the ID is as printed
            copy_line = (f"<div class='fs-doubt'>the pasted ID copy reads <code>{esc(it.copy_number)}</code>, "
                         "the printed ID: was the ID corrected at all?</div>")
        else:
            doubtful = any(code == "LOW_CONFIDENCE" for code, _ in it.reasons)
            copy_line = (f"<div class='fs-doubt'>the pasted ID copy reads <code>{esc(it.copy_number)}</code>"
                         + (" (offered below: check it against the handwriting)" if doubtful else "") + "</div>")
            default = it.copy_number if doubtful else default
    html(f"<div class='fs-panel'><div class='fs-crop'><div class='fs-cropbox'>{img_tag(ctx.store, it.crop_path)}"
         f"{_marks_html(it)}</div></div>"
         f"<div class='fs-info'><h4>{esc(fieldinfo.label(name))}</h4>{read}"
         f" · confidence <b>{conf}</b>{sug}{doubt_line}{copy_line}" + _reasons_html(it.reasons) + "</div></div>")
    return default


def _other_scan_html(ctx: Ctx, it: data.Item) -> str:
    """A reviewer's value that a later scan reads differently: both crops, one above the other."""
    o = it.other or {}
    conf = o.get("confidence")
    conf = f" · confidence <b>{float(conf):.2f}</b>" if isinstance(conf, int | float) else ""
    return (f"<div class='fs-panel'><div class='fs-crop'>"
            f"<div class='fs-muted'>earlier scan</div>{img_tag(ctx.store, it.crop_path)}"
            f"<div class='fs-muted'>later scan</div>{img_tag(ctx.store, o.get('crop'))}</div>"
            f"<div class='fs-info'><h4>{esc(fieldinfo.label(it.name))}</h4>"
            f"kept: <code>{esc(it.value or '(empty)')}</code> (a reviewer's value, from the earlier scan)<br>"
            f"the later scan reads: <code>{esc(o.get('value') or '(empty)')}</code>{conf}"
            "<div class='fs-doubt'>Enter keeps the reviewer's value; type the later reading to take it</div>"
            + _reasons_html(it.reasons) + "</div></div>")


def _scans_html(view: data.FormView) -> str:
    """For a form scanned more than once: its scans, what the later ones read differently, and a
    rejection the new paper lifted."""
    if len(view.scans) < 2:
        return ""
    reopened = "".join(f"<div class='fs-doubt'>Rejected before this scan came in: {esc(r['code'])} "
                       f"({esc(r['note'])}, {esc(r['at'])}). Reject it again below if the new paper "
                       "does not fix it.</div>" for r in view.reopened)
    rows = "".join(f"<li>scan {i}: {esc(s['file'])}, page {s['page']} · {esc(s['at'])}</li>"
                   for i, s in enumerate(view.scans, 1))
    diff = "".join(f"<li>{esc(fieldinfo.label(r['field']))}: <code>{esc(r['before'] or '(empty)')}</code> → "
                   f"<code>{esc(r['now'] or '(empty)')}</code></li>" for r in view.rescans)
    diff = (f"<div>Read differently by a later scan (earlier → later; a value a reviewer set is kept):</div><ul>{diff}</ul>"
            if diff else "<div class='fs-muted'>The scans read the same.</div>")
    return (f"{reopened}<div>Scanned {len(view.scans)} times (the whole pages: the <i>Whole page</i> toggle):</div>"
            f"<ul>{rows}</ul>{diff}")


def _ack_panel(view: data.FormView) -> str:
    if view.form_reasons:
        html("<h4>The whole form</h4>" + _reasons_html(view.form_reasons) + _scans_html(view)
             + "<div class='fs-muted'>Enter acknowledges these (the form is fine as it is); "
               "otherwise reject it below.</div>")
    else:
        html("<h4>Nothing flagged on a field: Enter accepts the form</h4>")
    return "ok"


def _focus(key: str, value: str) -> None:
    """Put the cursor in the field box with its text selected (typing replaces, Enter accepts), once
    the box shows this field's value (the browser reuses the input element between fields).
    No '<' in the script: the sanitiser drops a script whose text has '<' before a word character."""
    _ss().q_nonce = _ss().get("q_nonce", 0) + 1
    want = json.dumps(value).replace("<", "\\u003c")
    st.html(f"""<script>/*{_ss().q_nonce}*/(function(){{let n=0;function f(){{
const el=document.querySelector('.st-key-{key} input');
if(el&&el.value==={want}){{el.focus();el.select();}}else if(200>n++){{setTimeout(f,10);}}}}f();}})();</script>""",
            unsafe_allow_javascript=True)


def _entry(ctx: Ctx, view: data.FormView, step: str) -> None:
    default = _ack_panel(view) if step == ACK_STEP else _field_panel(ctx, view, step)
    key = f"in_{view.form_id}_{'form' if step == ACK_STEP else step}"
    with st.form(f"form_{key}", border=False):
        st.text_input("Value (type or accept; Enter saves and moves on)", value=default, key=key,
                      help=fieldinfo.hint(step) if step != ACK_STEP else None)
        st.form_submit_button("Save ⏎", on_click=on_enter, args=(ctx, step, key), type="primary")
    if _ss().get("q_error"):
        st.error(_ss().q_error)
    _focus(key, default)


def _actions(ctx: Ctx) -> None:
    """Below the entry, outside its fragment: Enter does not redraw these."""
    with st.container(horizontal=True):
        st.button("Skip form", on_click=on_skip, args=(ctx,), key="q_skip")
        st.button("Undo my last decision", on_click=on_undo, args=(ctx,), key="q_undo")
        st.toggle("Reject…", key="q_show_reject")
        st.toggle("Whole page", key="q_show_page")
        st.toggle("History", key="q_show_history")
    if _ss().get("q_show_reject"):
        with st.form("q_reject_form"):
            codes = decisions.reject_codes()
            st.selectbox("Reason", codes, key="q_reject_code", format_func=lambda c: f"{c} · {REASONS[c].zh}")
            st.text_input("Note", key="q_reject_note")
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
    st.success("The queue is empty. Nothing waits for review.")
    st.button("Undo my last decision", on_click=on_undo, args=(ctx,), key="q_undo_empty")
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
