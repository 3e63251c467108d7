"""Helpers shared by the Streamlit pages: the session context, flash messages, workspace images."""

from __future__ import annotations

import base64
import functools
from dataclasses import dataclass
from html import escape as esc
from pathlib import Path

import streamlit as st

from formstation.store import Store
from ocr.reasons import REASONS


@dataclass(frozen=True)
class Ctx:
    store: Store
    user: str
    role: str
    ttl_s: int


def flash(kind: str, text: str) -> None:
    """Queue a message for the next render (callbacks run before the page is drawn)."""
    st.session_state.setdefault("flash", []).append((kind, text))


def show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


def image(store: Store, rel: str | None, caption: str | None = None, width: int | str = "stretch") -> None:
    """An image from the workspace (paths in the store are relative to it), or a note when missing."""
    path = _resolve(store, rel)
    if path is None:
        st.caption(f"(no image: {rel or 'none stored'})")
        return
    st.image(str(path), caption=caption, width=width)


def reason_text(code: str, detail: str = "") -> str:
    r = REASONS.get(code)
    text = f"**{code}** {r.zh}" if r else f"**{code}**"
    return f"{text} ({detail})" if detail else text


def reason_html(code: str, detail: str = "") -> str:
    r = REASONS.get(code)
    text = f"<b>{esc(code)}</b> {esc(r.zh)}" if r else f"<b>{esc(code)}</b>"
    return f"{text} ({esc(detail)})" if detail else text


STYLE = ("<style>.fs-muted{color:#6b6f76;font-size:0.9em}.fs-done{color:#1a7f37;font-size:0.9em}"
         ".fs-panel{display:flex;gap:1.5rem;align-items:flex-start}.fs-crop{flex:3}.fs-info{flex:2}"
         ".fs-crop img{max-width:100%;max-height:420px;border:1px solid #ccc;display:block}"
         ".fs-cropbox{position:relative;display:inline-block;max-width:100%}"
         ".fs-mark{position:absolute;border:2px solid #d1242f;border-radius:3px;box-sizing:border-box}"
         ".fs-mark span{position:absolute;bottom:100%;left:-2px;background:#d1242f;color:#fff;"
         "font:600 11px/1.3 monospace;padding:0 3px;border-radius:3px 3px 0 0;white-space:nowrap}"
         ".fs-doubt{color:#d1242f;margin-top:0.3rem}.fs-info mark{background:#ffd8d3;color:#d1242f}"
         ".fs-phones{display:flex;flex-wrap:wrap;gap:0.5rem;margin:0.4rem 0}.fs-phone{flex:0 0 23%;margin:0;"
         "border:2px solid #d0d7de;border-radius:4px;padding:2px}.fs-phone img{width:100%;display:block}"
         ".fs-phone figcaption{font-size:0.8em}.fs-carrier{border-color:#d1242f}.fs-this{outline:3px solid #0969da}"
         "</style>")
MAX_INLINE = 2_000_000  # bytes: crops are small; anything bigger is shown as a link-free note


def _resolve(store: Store, rel: str | None) -> Path | None:
    if not rel:
        return None
    path = (store.workspace / rel).resolve()
    return path if path.is_relative_to(store.workspace.resolve()) and path.is_file() else None


@functools.lru_cache(maxsize=512)
def _data_uri(path: Path, mtime: float) -> str:
    mime = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def img_tag(store: Store, rel: str | None) -> str:
    """An <img> with the workspace image inlined (one element, no second request), or a note."""
    path = _resolve(store, rel)
    if path is None or path.stat().st_size > MAX_INLINE:
        return f"<span class='fs-muted'>(no image: {esc(rel or 'none stored')})</span>"
    return f"<img alt='crop' src='{_data_uri(path, path.stat().st_mtime)}'>"


def html(body: str) -> None:
    """Plain HTML (no Markdown parsing: much cheaper for the browser to draw on every Enter)."""
    st.html(body)


__all__ = ["esc"]
