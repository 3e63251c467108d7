"""Form Station review app (Streamlit entry point).

    streamlit run review_ui/app.py --server.address 127.0.0.1 -- --workspace W [--lease-minutes 15]

or `formstation review`. Login first; each role sees only its pages (review_ui.auth.PAGES).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# `streamlit run` puts this folder first on sys.path, where queue.py would shadow the standard
# library's queue: use the package from the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import streamlit as st  # noqa: E402

from formstation.store import DEFAULT_WORKSPACE, Store  # noqa: E402
from review_ui import auth, ui_clerk, ui_queue, ui_supervisor, ui_views  # noqa: E402
from review_ui.ui_common import STYLE, Ctx  # noqa: E402

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
    with store.tx() as conn:
        role = auth.authenticate(conn, name, password)
    ss.login_password = ""
    if role is None:
        ss.login_error = "Unknown user or wrong password."
        return
    ss.user, ss.role, ss.login_error = name.strip(), role, None


def _login(store: Store) -> None:
    st.title("Form Station · review")
    with st.form("login"):
        st.text_input("User", key="login_name")
        st.text_input("Password", type="password", key="login_password")
        st.form_submit_button("Log in", on_click=_on_login, args=(store,), type="primary")
    if st.session_state.get("login_error"):
        st.error(st.session_state.login_error)


def _logout(ctx: Ctx) -> None:
    from review_ui import queue

    fid = st.session_state.get("q_form")
    if fid:
        with ctx.store.tx() as conn:
            queue.release(conn, fid, ctx.user)
    for k in list(st.session_state.keys()):
        del st.session_state[k]


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
        _login(store)
        return
    ctx = Ctx(store, ss.user, ss.role, int(args.lease_minutes * 60))
    page = _sidebar(ctx)
    if not auth.can_see(ctx.role, page):  # the menu offers only the role's pages; this guards the state
        st.error("This page is not for your role.")
        return
    RENDER[page](ctx)


main()
