"""Real browser (Debian's chromium driven by Playwright): a reviewer logs in, fixes a field with the
keyboard, rejects a form; the store shows both. Skips when /usr/bin/chromium is not installed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from formstation.store import audit, fields, forms, reasons
from review_ui import auth, sample, serve

CHROMIUM = os.environ.get("FORMSTATION_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.environ.get("FORMSTATION_SCREENSHOTS")  # a folder to keep screenshots in, for a look
FOCUSED_KEY = """() => { const a = document.activeElement; const c = a && a.closest('[class*="st-key-in_"]');
  const m = c && c.className.match(/st-key-(in_[^ ]+)/);
  return m && a.selectionStart === 0 && a.selectionEnd === a.value.length ? m[1] : ''; }"""

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                reason=f"{CHROMIUM} not installed (apt-get install chromium; CI installs it)")


@pytest.fixture
def server(tmp_path_factory, tmp_path):
    s = sample.cached(tmp_path_factory.mktemp("review-browser-sample"), tmp_path / "ws")
    with s.store.tx() as conn:
        auth.add_user(conn, "rita", "reviewer", "secret-pass-1")
    proc, url = serve.start(tmp_path / "ws", log=tmp_path / "server.log")
    yield s, url
    serve.stop(proc)
    s.store.engine.dispose()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def next_key(page, prev: str) -> str:
    page.wait_for_function(f"(prev) => {{ const k = ({FOCUSED_KEY})(); return k && k !== prev; }}", arg=prev,
                           timeout=20000)
    return page.evaluate(FOCUSED_KEY)


def test_reviewer_fixes_a_field_with_the_keyboard_and_rejects_a_form(server):
    from playwright.sync_api import sync_playwright

    s, url = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_label("User").fill("rita")
        page.get_by_label("Password", exact=True).fill("secret-pass-1")
        page.get_by_label("Password", exact=True).press("Enter")
        key = next_key(page, "")
        first = key.split("_")[1]
        assert key == f"in_{first}_phone" and s.scenario[first] == 1
        shot(page, "1-queue-field")
        page.keyboard.type(s.truth[first]["phone"])  # the box has the focus, its text selected
        t0 = time.perf_counter()
        page.keyboard.press("Enter")
        key = next_key(page, key)
        latency = time.perf_counter() - t0
        while key.startswith(f"in_{first}_"):  # form-level reasons: 'c' clears them
            shot(page, "2-queue-form-level")
            if key == f"in_{first}_form":
                page.keyboard.type("c")
            page.keyboard.press("Enter")
            key = next_key(page, key)
        second = key.split("_")[1]
        shot(page, "3-next-form")
        page.get_by_text("Reject…").click()
        page.get_by_label("Note").fill("guardian signature is a stamp")
        shot(page, "4-reject")
        page.get_by_role("button", name="Reject form").click()
        page.get_by_text(f"{second} rejected").wait_for(timeout=20000)
        shot(page, "5-after-reject")
        browser.close()
    print(f"Enter -> next field: {latency * 1000:.0f} ms")
    with s.store.tx() as conn:
        phone = conn.execute(select(fields).where(fields.c.form_id == first, fields.c.name == "phone")).first()
        status = {r.form_id: r.status for r in conn.execute(
            select(forms.c.form_id, forms.c.status).where(forms.c.form_id.in_([first, second])))}
        note = conn.execute(select(reasons.c.detail).where(reasons.c.form_id == second,
                                                           reasons.c.code == "REVIEWER_REJECTED")).scalar()
        who = {r.action for r in conn.execute(select(audit.c.action).where(audit.c.user_name == "rita"))}
    assert (phone.value, phone.source, phone.updated_by) == (s.truth[first]["phone"], "reviewer", "rita")
    assert status == {first: "accepted", second: "rejected"}
    assert note == "guardian signature is a stamp"
    assert {"edit", "reject", "decision"} <= who
