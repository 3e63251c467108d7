"""Real browser (Debian's chromium driven by Playwright): a reviewer logs in, fixes a field with the
keyboard, rejects a form; the store shows both. Skips when /usr/bin/chromium is not installed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from formstation.store import audit, fields, forms, reasons
from review_ui import auth, serve
from tests import review_sample as sample

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


def login(page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("User").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password", exact=True).press("Enter")


def error_text(page) -> str:
    page.locator("[data-testid='stAlertContentError']").first.wait_for(timeout=20000)
    return page.locator("[data-testid='stAlertContentError']").first.inner_text()


def test_reviewer_clears_a_queue_with_the_keyboard(server):
    """Issue 17, points 1, 3, 5, 6 (and 9: F5 keeps the login): ↓ and one digit fix the framed box;
    the whole-form step waits for an explicit 'c'; an invalid phone stays with the focus and its text
    selected until '!' confirms it; Alt+R, ↓, Enter, Tab, Tab, Enter rejects (6 keys)."""
    from playwright.sync_api import sync_playwright

    s, url = server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        login(page, url, "rita", "secret-pass-1")
        key = next_key(page, "")
        first = key.split("_")[1]
        assert key == f"in_{first}_phone" and s.scenario[first] == 1
        page.reload()  # F5: still logged in, same form
        key = next_key(page, "")
        assert key == f"in_{first}_phone"
        shot(page, "1-queue-field")
        paper = s.truth[first]["phone"]
        page.keyboard.press("ArrowDown")  # point 5: the framed box (the last) alone is selected
        assert page.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]") == [10, 11]
        page.keyboard.type(paper[-1])
        t0 = time.perf_counter()
        page.keyboard.press("Enter")
        key = next_key(page, key)
        latency = time.perf_counter() - t0
        while key.startswith(f"in_{first}_"):
            if key == f"in_{first}_form":  # point 1: Enter alone does not clear the form's reasons
                shot(page, "2-queue-form-level")
                page.keyboard.press("Enter")
                assert "Type c" in error_text(page) and page.evaluate(FOCUSED_KEY) in (key, "")
                page.keyboard.type("c")
            page.keyboard.press("Enter")
            key = next_key(page, key)
        second = key.split("_")[1]
        field = key.split("_", 2)[2]
        page.keyboard.type("12345678901")  # point 3: not a mobile number
        page.keyboard.press("Enter")
        assert "not a mobile number" in error_text(page)
        page.wait_for_function(f"() => ({FOCUSED_KEY})() === {key!r}", timeout=20000)  # focus kept, text selected
        shot(page, "3-invalid-phone")
        page.keyboard.type("!")
        page.keyboard.press("Enter")
        key = next_key(page, key)
        while key.startswith(f"in_{second}_"):
            page.keyboard.type("c" if key == f"in_{second}_form" else "")
            page.keyboard.press("Enter")
            key = next_key(page, key)
        third = key.split("_")[1]
        page.keyboard.press("Alt+r")  # point 6: a reject in 6 keys; the focus goes to the reasons
        page.wait_for_function("() => document.activeElement.getAttribute('aria-label') === 'Reason'", timeout=20000)
        for k in ("ArrowDown", "Enter", "Tab", "Tab"):
            page.keyboard.press(k)
            page.wait_for_timeout(200)
        shot(page, "4-reject")
        page.keyboard.press("Enter")
        page.get_by_text(f"{third} saved: rejected").wait_for(timeout=20000)
        shot(page, "5-after-reject")
        browser.close()
    print(f"Enter -> next field: {latency * 1000:.0f} ms")
    with s.store.tx() as conn:
        phone = conn.execute(select(fields).where(fields.c.form_id == first, fields.c.name == "phone")).first()
        typed = conn.execute(select(fields).where(fields.c.form_id == second, fields.c.name == field)).first()
        status = {r.form_id: r.status for r in conn.execute(
            select(forms.c.form_id, forms.c.status).where(forms.c.form_id.in_([first, second, third])))}
        codes = {r.code for r in conn.execute(select(reasons.c.code).where(reasons.c.form_id == third))}
        who = {r.action for r in conn.execute(select(audit.c.action).where(audit.c.user_name == "rita"))}
    assert (phone.value, phone.source, phone.updated_by) == (paper, "reviewer", "rita")
    assert (typed.value, typed.source) == ("12345678901", "reviewer")
    assert status == {first: "accepted", second: "rejected", third: "rejected"}
    assert {"REVIEWER_REJECTED", "PHONE_MISSING"} <= codes
    assert {"edit", "as_written", "reject", "decision", "login"} <= who


def _fetch(url: str, cookie: str | None = None) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_a_download_url_gives_nothing_without_the_supervisors_session(server):
    """Issue 17, point 8: the export is offered as encrypted zips; its URL fetched without the
    session's cookie, or after logout, gets 403 and no data."""
    from playwright.sync_api import sync_playwright

    s, url = server
    with s.store.tx() as conn:
        auth.add_user(conn, "sam", "supervisor", "secret-pass-2")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        ctx = browser.new_context(accept_downloads=True)
        page = ctx.new_page()
        login(page, url, "sam", "secret-pass-2")
        page.get_by_text("Downloads").click()
        page.get_by_label("Passphrase for the zips").fill("a long passphrase 17")
        page.get_by_role("button", name="Prepare the export").click()
        button = page.get_by_role("button", name="manifest.json")
        button.wait_for(timeout=60000)
        shot(page, "6-downloads")
        with page.expect_download() as dl:
            button.click()
        link = dl.value.url
        body = Path(dl.value.path()).read_bytes()
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in ctx.cookies())
        assert "/media/" in link and b'"zips"' in body
        assert _fetch(link, cookie) == (200, body)  # the session's own cookie: served
        assert _fetch(link)[0] == 403 and b"zips" not in _fetch(link)[1]  # no session: nothing
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("User").wait_for(timeout=20000)
        code, data = _fetch(link, cookie)  # the cookie of a session that ended
        assert code == 403 and b"zips" not in data
        browser.close()


def test_a_supervisor_reopens_an_accepted_form_from_form_lookup(server):
    """Issue 17, point 7: in Form lookup a supervisor reopens an accepted form with a reason; it is
    in review at once (out of the card data), the audit says who and why."""
    from playwright.sync_api import sync_playwright

    s, url = server
    with s.store.tx() as conn:
        auth.add_user(conn, "sam", "supervisor", "secret-pass-2")
        fid = next(f for f, sc in sorted(s.scenario.items()) if sc == 0 and conn.execute(
            select(forms.c.status).where(forms.c.form_id == f)).scalar() == "accepted")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        login(page, url, "sam", "secret-pass-2")
        page.get_by_text("Form lookup").click()
        page.get_by_label("Student name, ID number, student number or form id").fill(fid)
        page.get_by_label("Student name, ID number, student number or form id").press("Enter")
        page.get_by_label("Why (kept in the audit trail)").fill("the school says the phone is wrong")
        shot(page, "7-form-lookup-reopen")
        page.get_by_role("button", name="Reopen for review").click()
        page.get_by_text(f"{fid} reopened").wait_for(timeout=20000)
        shot(page, "8-form-lookup-reopened")
        browser.close()
    with s.store.tx() as conn:
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == fid)).scalar()
        row = conn.execute(select(audit).where(audit.c.form_id == fid, audit.c.action == "reopen_by_reviewer")).first()
    assert status == "review" and (row.user_name, row.new_value) == ("sam", "the school says the phone is wrong")


def test_a_supervisor_sets_the_class_share_of_unusual_handwriting(server):
    """The Thresholds page holds the class-level share of doubtful boxes beside the form-level one;
    saved, it is in the workspace's station.toml and the audit trail."""
    from playwright.sync_api import sync_playwright

    from formstation.config import load_config

    s, url = server
    with s.store.tx() as conn:
        auth.add_user(conn, "sam", "supervisor", "secret-pass-2")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        login(page, url, "sam", "secret-pass-2")
        page.get_by_text("Thresholds").first.click()
        box = page.get_by_role("spinbutton", name="unusual handwriting: share of doubtful boxes over a class's forms")
        box.wait_for(timeout=20000)
        assert box.input_value() == "0.20"
        box.fill("0.25")
        box.press("Tab")
        shot(page, "9-thresholds-class-share")
        page.get_by_role("button", name="Save thresholds").click()
        page.get_by_text("Thresholds saved").wait_for(timeout=20000)
        browser.close()
    assert load_config(s.store.workspace).unusual_class_share == 0.25
    with s.store.tx() as conn:
        row = conn.execute(select(audit).where(audit.c.action == "config")).first()
    assert row is not None and '"unusual_class_share": 0.25' in row.new_value
