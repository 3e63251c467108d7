"""Hardening of ingest and the hot folder (issue 18): odd file names, worker deaths, exit codes,
absurd pages, concurrent stations, a warm pool. Scans are the project's own printed forms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from formstation.store import scan_files
from ocr.ingest import ingest_paths
from ocr.ingest_cli import watch


def _names(store) -> dict[str, str]:
    with store.tx() as conn:
        return {r.name: r.status for r in conn.execute(select(scan_files.c.name, scan_files.c.status))}


def test_any_file_name_is_stored_escaped_and_reason_files_fit(printed, tmp_path):
    """A name that is not UTF-8 and a 250-byte name: neither stops the hot folder or the next file."""
    store, layout, pdfs = printed
    hot = tmp_path / "hot"
    hot.mkdir()
    odd = hot / os.fsdecode(b"\xff\xfe-scan.pdf")  # Latin-1 / GBK bytes from a scanner share
    odd.write_bytes(pdfs[0].read_bytes())
    long_name = "扫" * 80 + "a" * 6 + ".pdf"  # 80 x 3 + 10 = 250 bytes
    assert len(long_name.encode()) == 250
    (hot / long_name).write_bytes(b"%PDF-1.7 torn")
    good = hot / "zz-good.pdf"
    good.write_bytes(pdfs[1].read_bytes())
    handled = watch(store, layout, hot, workers=1, settle=0, once=True, poll=0, read_fields=False)
    assert handled == 3
    assert (hot / "done" / odd.name).is_file() and (hot / "done" / good.name).is_file()
    q = hot / "quarantine"
    assert (q / long_name).is_file()
    (reason_file,) = q.glob("*.reason.txt")
    assert len(reason_file.name.encode()) <= 255 and "not a readable PDF" in reason_file.read_text()
    assert long_name in reason_file.read_text()  # the file it belongs to, named in full
    names = _names(store)
    assert names == {"\\xff\\xfe-scan.pdf": "done", long_name: "quarantined", "zz-good.pdf": "done"}


def test_hot_folder_never_overwrites_an_earlier_file_of_the_same_name(printed, tmp_path):
    store, layout, pdfs = printed
    hot = tmp_path / "hot"
    hot.mkdir()
    for pdf in pdfs:  # two batches, both saved by the scanner as scan.pdf, one after the other
        (hot / "scan.pdf").write_bytes(pdf.read_bytes())
        watch(store, layout, hot, workers=1, settle=0, once=True, poll=0, read_fields=False)
    kept = sorted(p.read_bytes() for p in (hot / "done").iterdir())
    assert kept == sorted(p.read_bytes() for p in pdfs)
    assert (hot / "done" / "scan.pdf").read_bytes() == pdfs[0].read_bytes()  # the first keeps its name


# ------------------------------------------------------------------ workers that die

def _dying_worker(raw):
    """Runs in a pool worker (spawned: found by module name): kills its own process on the page
    named by FS_TEST_KILL_PAGE, every time, or only once when FS_TEST_KILL_ONCE names a marker file."""
    import signal

    from ocr.worker import run_page

    if raw.page_index == int(os.environ["FS_TEST_KILL_PAGE"]):
        once = os.environ.get("FS_TEST_KILL_ONCE")
        if not once or not os.path.exists(once):
            if once:
                open(once, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer does
    return run_page(raw)


def _sqlite_only(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("worker processes do not depend on the store's backend")


def test_a_page_that_kills_its_worker_quarantines_its_file_and_the_batch_goes_on(printed, monkeypatch):
    import ocr.ingest

    store, layout, pdfs = printed
    _sqlite_only(store)
    monkeypatch.setenv("FS_TEST_KILL_PAGE", "1")
    monkeypatch.setattr(ocr.ingest, "run_page", _dying_worker)
    s = ingest_paths(store, layout, pdfs, workers=2, read_fields=False)
    assert s.forms == 4  # page 2 of each file killed its worker twice; the other pages are in
    assert s.quarantined == 2 and all("died on this page twice" in r for _n, r in s.quarantine)
    assert set(_names(store).values()) == {"failed"}  # ingesting them again retries those pages


def test_a_worker_killed_once_loses_no_page(printed, monkeypatch, tmp_path):
    import ocr.ingest

    store, layout, pdfs = printed
    _sqlite_only(store)
    monkeypatch.setenv("FS_TEST_KILL_PAGE", "2")
    monkeypatch.setenv("FS_TEST_KILL_ONCE", str(tmp_path / "killed"))
    monkeypatch.setattr(ocr.ingest, "run_page", _dying_worker)
    s = ingest_paths(store, layout, pdfs, workers=2, read_fields=False)
    assert (tmp_path / "killed").exists()
    assert (s.forms, s.quarantined) == (6, 0)


def test_a_worker_dead_before_the_next_page_is_sent_loses_no_page(printed):
    """A worker dies while the station is still handing out a file's pages: sending the next page to
    the broken pool must not end the batch; a new pool reads every page."""
    import signal
    import time

    from ocr.ingest import _Runner
    from ocr.pages import iter_pages, sha256_file

    store, layout, pdfs = printed
    _sqlite_only(store)
    runner = _Runner(layout, store.workspace, 2, False)
    try:
        first = next(iter(runner.map(iter_pages(pdfs[0], sha256_file(pdfs[0])))))  # the workers are up
        assert first.kind != "failed"
        for pid in list(runner.pool._processes):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not runner.pool._broken and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.pool._broken  # the next submit meets a broken pool
        raws = list(iter_pages(pdfs[1], sha256_file(pdfs[1])))
        results = list(runner.map(iter(raws)))
    finally:
        runner.pool.shutdown(wait=True, cancel_futures=True)
    assert [r.page_index for r in results] == [r.page_index for r in raws]
    assert all(r.kind != "failed" for r in results)


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out |= {int(k) for k in kids}
        todo += [int(k) for k in kids]
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_workers_exit_with_a_killed_main_process(printed):
    import signal
    import subprocess
    import sys
    import time

    store, layout, pdfs = printed
    _sqlite_only(store)
    main = subprocess.Popen([sys.executable, "-m", "formstation.cli", "ingest", "--quiet", "--workers", "2",
                             *map(str, pdfs)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, kids = time.monotonic() + 60, set()
    while time.monotonic() < deadline and len(kids) < 2:
        time.sleep(0.2)
        kids = _descendants(main.pid)
    assert len(kids) >= 2, "the pool's workers never started"
    kids = _descendants(main.pid)
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.2)
    left = [k for k in kids if _alive(k)]
    for k in left:
        os.kill(k, signal.SIGKILL)
    assert not left, f"{len(left)} worker process(es) outlived the killed ingest"


def test_ingest_exit_code_and_summary_say_what_was_quarantined_and_skipped(printed, tmp_path, capsys):
    from PIL import Image

    from formstation.cli import main
    from formstation.errors import ExitCode

    store, layout, pdfs = printed
    _sqlite_only(store)
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "a-torn.pdf").write_bytes(b"%PDF-1.7 torn")
    (batch / "b-good.pdf").write_bytes(pdfs[0].read_bytes())
    Image.new("L", (600, 850), 255).save(batch / "c-scan.bmp")
    (batch / "d-phone.jfif").write_bytes(b"\xff\xd8\xff\xe0 not read")
    assert main(["ingest", "--quiet", "--workers", "1", str(batch)]) == ExitCode.QUARANTINED == 6
    out = capsys.readouterr().out
    assert "quarantined: 1 (0 failed)" in out and "skipped: 2" in out
    assert f"skipped {batch / 'c-scan.bmp'}" in out and f"skipped {batch / 'd-phone.jfif'}" in out
    assert main(["ingest", "--quiet", "--workers", "1", str(pdfs[1])]) == ExitCode.OK


def test_pages_of_absurd_shape_are_refused_before_any_resize(printed, tmp_path):
    """A 2x20000 px PNG (a few hundred bytes) drove a worker to 3 GB in the blank check's resize."""
    import numpy as np
    from PIL import Image

    store, layout, pdfs = printed
    _sqlite_only(store)
    strip = tmp_path / "strip.png"
    Image.fromarray(np.full((20000, 2), 255, np.uint8)).save(strip, optimize=True)
    assert strip.stat().st_size < 1000
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(pdfs[0]))
    good = doc[0].render(scale=200 / 72, grayscale=True).to_pil()
    doc.close()
    tiff = tmp_path / "mixed.tif"
    good.save(tiff, save_all=True, append_images=[Image.new("L", (3, 3000), 255), good], compression="tiff_lzw")
    s = ingest_paths(store, layout, [strip, tiff], workers=1, read_fields=False)
    reasons = dict(s.quarantine)
    assert "not the shape of a form page" in reasons["strip.png"] and "2x20000 px" in reasons["strip.png"]
    assert reasons["mixed.tif"].startswith("page 2: 3x3000 px is not the shape of a form page")
    assert s.forms == 2  # the TIFF's good pages before and after the strip


def test_two_stations_ingesting_one_file_at_once_store_and_count_each_page_once(printed):
    """Station B stores the whole file exactly between station A's check for a page and A's insert
    of it (the narrowest race): A neither crashes (UniqueViolation on PostgreSQL) nor counts B's pages."""
    from sqlalchemy import event, func

    from formstation.store import Store, pages

    store_a, layout, pdfs = printed
    store_b = Store.open(store_a.workspace)
    other = []

    def station_b_first(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO PAGES") and not other:
            other.append(ingest_paths(store_b, layout, [pdfs[0]], workers=1, read_fields=False))

    event.listen(store_a.engine, "before_cursor_execute", station_b_first)
    a = ingest_paths(store_a, layout, [pdfs[0]], workers=1, read_fields=False)
    event.remove(store_a.engine, "before_cursor_execute", station_b_first)
    (b,) = other
    assert (b.files, b.pages, b.forms) == (1, 3, 3)
    assert (a.files, a.already_ingested, a.pages, a.forms, a.quarantined) == (0, 1, 0, 0, 0)
    with store_a.tx() as conn:
        assert conn.execute(select(func.count()).select_from(pages)).scalar() == 3
        assert list(conn.execute(select(scan_files.c.status)).scalars()) == ["done"]
    store_b.engine.dispose()


def test_hot_folder_keeps_one_warm_worker_pool_for_every_file(printed, tmp_path, monkeypatch):
    """Starting a pool per file made 18 one-page JPEGs take 19.3 s in `watch` against 5.0 s in `ingest`."""
    from concurrent.futures import ProcessPoolExecutor

    import ocr.ingest

    store, layout, pdfs = printed
    _sqlite_only(store)
    pools = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, *a, **kw):
            pools.append(1)
            super().__init__(*a, **kw)

    monkeypatch.setattr(ocr.ingest, "ProcessPoolExecutor", CountedPool)
    hot = tmp_path / "hot"
    hot.mkdir()
    for i, pdf in enumerate([*pdfs, pdfs[0]]):
        (hot / f"scan-{i}.pdf").write_bytes(pdf.read_bytes())
    assert watch(store, layout, hot, workers=2, settle=0, once=True, poll=0, read_fields=False) == 3
    assert len(pools) == 1
    assert len(list((hot / "done").iterdir())) == 3
