"""The queue's keyboard: focus in the entry box, ↓/↑ to a framed box, Alt hotkeys for the actions.

Scripts go through st.html(unsafe_allow_javascript=True); none has a '<' (the sanitiser drops a
script whose text has '<' before a word character).
"""

from __future__ import annotations

import json

import streamlit as st

# Alt + key -> the widget it presses (its st-key class)
HOTKEYS = {"KeyR": "q_show_reject", "KeyS": "q_skip", "KeyP": "q_show_page", "KeyU": "q_undo", "KeyH": "q_show_history"}
HOTKEY_HELP = "Alt+R reject · Alt+S skip · Alt+P whole page · Alt+U undo · Alt+H history · ↓/↑ framed box"


def _js(value) -> str:
    return json.dumps(value).replace("<", "\\u003c")


def focus(key: str, value: str, boxes: list[int], extra_js: str = "") -> None:
    """Put the cursor in the field box with its text selected (typing replaces, Enter accepts), once
    the box shows this value (the browser reuses the input element between fields). ↓ / ↑ select
    the next / previous framed box alone, so that one typed character replaces just it."""
    ss = st.session_state
    ss.q_nonce = ss.get("q_nonce", 0) + 1
    st.html(f"""<script>/*{ss.q_nonce}*/{extra_js}(function(){{let n=0;function f(){{
const el=document.querySelector('.st-key-{key} input');
if(el&&el.value==={_js(value)}){{el.__fsBoxes={_js(boxes)};el.focus();el.select();
if(!el.__fsJump){{el.__fsJump=1;el.addEventListener('keydown',function(e){{
const b=el.__fsBoxes||[];if((e.key!=='ArrowDown'&&e.key!=='ArrowUp')||!b.length||e.altKey)return;
e.preventDefault();const s=el.selectionStart,one=(el.selectionEnd-s)===1;let i;
if(e.key==='ArrowDown'){{i=b.find(x=>!one||x>s);if(i===undefined)i=b[0];}}
else{{const r=b.filter(x=>!one||s>x);i=r.length?r[r.length-1]:b[b.length-1];}}
el.setSelectionRange(i,i+1);}});}}}}else if(200>n++){{setTimeout(f,10);}}}}f();}})();</script>""",
            unsafe_allow_javascript=True)


def hotkeys() -> None:
    """Alt+letter presses an action's button or toggle (installed once per page). Alt+R opens the
    reject reasons and puts the focus in their list."""
    st.html(f"""<script>if(!window.__fsHot){{window.__fsHot=1;const map={_js(HOTKEYS)};
document.addEventListener('keydown',function(e){{if(!e.altKey||e.ctrlKey||e.metaKey)return;const k=map[e.code];
if(!k)return;const el=document.querySelector('.st-key-'+k+' button, .st-key-'+k+'_empty button, .st-key-'+k+' input');
if(!el)return;e.preventDefault();el.click();
if(k==='q_show_reject'){{let n=0;(function g(){{const s=document.querySelector('.st-key-q_reject_code input');
if(s){{s.focus();}}else if(100>n++){{setTimeout(g,20);}}}})();}}}},true);}}</script>""",
            unsafe_allow_javascript=True)
