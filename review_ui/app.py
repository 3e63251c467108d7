"""Form Station review app (Streamlit entry point).

    streamlit run review_ui/app.py --server.address 127.0.0.1 -- --workspace W [--lease-minutes 15]

or `formstation review`. Login first; each role sees only its pages (review_ui.auth.PAGES).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import streamlit as st

from formstation.store import DEFAULT_WORKSPACE, Store
from review_ui import auth, sessions, ui_clerk, ui_queue, ui_supervisor, ui_views
from review_ui.ui_common import STYLE, Ctx, flash, show_flash

RENDER = {
    "Queue": ui_queue.render,
    "Group view": ui_views.group_view,
    "Unidentified": ui_views.unidentified,
    "Form lookup": ui_views.form_lookup,
    "Dashboard": ui_supervisor.dashboard,
    "Thresholds": ui_supervisor.thresholds,
    "Downloads": ui_supervisor.downloads,
    "Upload": ui_clerk.upload,
}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--workspace", default=None)
    ap.add_argument("--lease-minutes", type=float, default=15.0)
    return ap.parse_known_args(sys.argv[1:])[0]


@st.cache_resource
def _store(workspace: str, url: str | None) -> Store:
    return Store.open(workspace, url)


def _on_login(store: Store) -> None:
    ss = st.session_state
    name, password = ss.get("login_name", ""), ss.get("login_password", "")
    sid = sessions.new_sid()
    with store.tx() as conn:
        role, problem = auth.login(conn, name, password, sid)
    ss.login_password = ""
    if role is None:
        ss.login_error = problem
        return
    ss.user, ss.role, ss.sid, ss.login_error, ss.last_active = name.strip(), role, sid, None, time.time()


def _cookie(store: Store) -> None:
    """(Re)sign the session cookie in the browser: a reload within IDLE_S of activity keeps the login."""
    ss = st.session_state
    js = sessions.cookie_script(sessions.COOKIE, sessions.sign(store.workspace, ss.user, ss.sid), sessions.IDLE_S)
    st.html(f"<script>{js}</script>", unsafe_allow_javascript=True)


def _restore(store: Store) -> None:
    """A browser that reloaded the page brings the session cookie: the user stays logged in."""
    try:
        token = st.context.cookies.get(sessions.COOKIE)
    except Exception:  # noqa: BLE001 (no browser behind this run, e.g. AppTest)
        token = None
    if not token:
        return
    with store.tx() as conn:
        got = sessions.live_user(conn, store.workspace, token)
        role = auth.role_of(conn, got[0]) if got else None
    if got and role:
        ss = st.session_state
        ss.user, ss.role, ss.sid, ss.last_active = got[0], role, got[1], time.time()


def _login(store: Store) -> None:
    st.title("Form Station · review")
    if st.session_state.pop("clear_cookie", False):
        st.html(f"<script>{sessions.cookie_script(sessions.COOKIE, '', 0)}</script>", unsafe_allow_javascript=True)
    show_flash()
    with st.form("login"):
        st.text_input("User", key="login_name")
        st.text_input("Password", type="password", key="login_password")
        st.form_submit_button("Log in", on_click=_on_login, args=(store,), type="primary")
    if st.session_state.get("login_error"):
        st.error(st.session_state.login_error)


def _end_session(store: Store, why: str | None = None) -> None:
    """Release the user's form, revoke the session (its cookie and /media/ files stop working)."""
    from review_ui import review_queue

    ss = st.session_state
    with store.tx() as conn:
        if ss.get("q_form") and ss.get("user"):
            review_queue.release(conn, ss.q_form, ss.user)
        if ss.get("sid"):
            auth.logout(conn, ss.get("user") or "", ss.sid)
    for k in list(ss.keys()):
        del ss[k]
    ss.clear_cookie = True
    if why:
        flash("info", why)


def _logout(ctx: Ctx) -> None:
    _end_session(ctx.store)


def _check_session(store: Store) -> bool:
    """Every page run: the session is still live (not idle too long) and the user's role is the
    store's current one (a demoted user loses the pages at once). False: logged out."""
    ss = st.session_state
    if time.time() - ss.get("last_active", 0) > sessions.IDLE_S:
        _end_session(store, f"Logged out after {sessions.IDLE_S // 60} minutes without activity.")
        return False
    with store.tx() as conn:
        role = auth.role_of(conn, ss.user)
        gone = bool(ss.get("sid")) and sessions.revoked(conn, ss.sid)
    if role is None or gone:
        _end_session(store, "Your session ended (user removed or logged out elsewhere).")
        return False
    if role != ss.role:
        ss.role = role
        flash("warning", f"Your role is now {role}.")
    ss.last_active = time.time()
    return True


def _sidebar(ctx: Ctx) -> str:
    with st.sidebar:
        st.markdown(f"**{ctx.user}** · {ctx.role}")
        page = st.radio("Page", auth.PAGES[ctx.role], key="nav_page")
        st.button("Log out", on_click=_logout, args=(ctx,), key="logout")
    return page


def main() -> None:
    st.set_page_config(page_title="Form Station review", layout="wide")
    st.html(STYLE)
    args = _args()
    ws = Path(args.workspace or os.environ.get("FORMSTATION_WORKSPACE") or DEFAULT_WORKSPACE).resolve()
    store = _store(str(ws), os.environ.get("DATABASE_URL"))
    ss = st.session_state
    if not ss.get("user"):
        _restore(store)
    if not ss.get("user") or not _check_session(store):
        _login(store)
        return
    _cookie(store)
    ctx = Ctx(store, ss.user, ss.role, int(args.lease_minutes * 60))
    page = _sidebar(ctx)
    if not auth.can_see(ctx.role, page):  # the menu offers only the role's pages; this guards the state
        st.error("This page is not for your role.")
        return
    RENDER[page](ctx)


main()
