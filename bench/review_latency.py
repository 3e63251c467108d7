"""Bench: time from Enter in the review queue to the next field shown (and focused), in a real browser.

    .venv/bin/python bench/review_latency.py [--per-class 15] [--steps 40] [--chromium /usr/bin/chromium]

Builds a sample workspace in a temp folder (tests/review_sample.py), starts the review app, logs in as a
reviewer and presses Enter on each field, accepting the prefilled value (or typing the value on
the paper for the deliberately misread phone). Target: median < 300 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from formstation.store import Store  # noqa: E402
from review_ui import auth, serve  # noqa: E402
from tests import review_sample as sample  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
USER, PASSWORD = "bench", "bench-password"
VERBOSE = False
# the key of the focused field box, or '' (the page is between two fields); the next field is
# shown when a new box has the focus and its text selected (ready to type over or accept)
FOCUSED_KEY = """() => { const a = document.activeElement;
  const c = a && a.closest('[class*="st-key-in_"]');
  const m = c && c.className.match(/st-key-(in_[^ ]+)/); return m ? m[1] : ''; }"""
NEXT_SHOWN = """(prev) => { if (document.body.innerText.includes('The queue is empty')) return 'empty';
  const a = document.activeElement;
  const c = a && a.closest('[class*="st-key-in_"]');
  const m = c && c.className.match(/st-key-(in_[^ ]+)/);
  return !!m && m[1] !== prev && a.selectionStart === 0 && a.selectionEnd === a.value.length && 'next'; }"""


def login(page: Page, url: str, user: str, password: str) -> None:
    page.goto(url)
    page.get_by_label("User").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password", exact=True).press("Enter")


def field_key(page: Page, timeout_ms: float = 15000) -> str:
    page.wait_for_function(f"() => ({FOCUSED_KEY})() !== ''", timeout=timeout_ms)
    return page.evaluate(FOCUSED_KEY)


def measure(page: Page, steps: int, truth: dict[str, dict[str, str]]) -> list[float]:
    """Press Enter `steps` times; returns the seconds from each Enter to the next field focused."""
    out = []
    for _ in range(steps):
        key = field_key(page)
        _, form_id, name = key.split("_", 2)
        if name in truth.get(form_id, {}):  # type what is on the paper (the sample misreads some)
            page.keyboard.type(truth[form_id][name])
        t0 = time.perf_counter()
        page.keyboard.press("Enter")
        shown = page.wait_for_function(NEXT_SHOWN, arg=key, timeout=15000).json_value()
        if shown == "empty":
            break
        out.append(time.perf_counter() - t0)
        if VERBOSE:
            print(f"{key}: {out[-1] * 1000:.0f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--screenshot", default=None, help="save a screenshot of the last field here")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each step")
    args = ap.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    with tempfile.TemporaryDirectory() as tmp:
        s = sample.build(Path(tmp) / "ws", Path(tmp) / "work", per_class=args.per_class)
        with s.store.tx() as conn:
            auth.add_user(conn, USER, "reviewer", PASSWORD)
        proc, url = serve.start(Path(tmp) / "ws", log=Path(tmp) / "server.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                login(page, url, USER, PASSWORD)
                page.wait_for_timeout(300)  # first render done; the first field is warm
                times = measure(page, args.steps, s.truth)
                if args.screenshot:
                    page.screenshot(path=args.screenshot, full_page=True)
                browser.close()
        finally:
            serve.stop(proc)
        _report(times, Store.open(Path(tmp) / "ws"))
    return 0


def _report(times: list[float], store: Store) -> None:
    if not times:
        print("no steps measured")
        return
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print(f"Enter -> next field shown: {len(ms)} steps, median {statistics.median(ms):.0f} ms, "
          f"p90 {p90:.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms (target < 300 ms)")
    store.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
