"""Hardening of ingest and the hot folder (issue 18): odd file names, worker deaths, exit codes,
absurd pages, concurrent stations, a warm pool. Scans are the project's own printed forms."""

from __future__ import annotations

import os

from sqlalchemy import select

from formstation.store import scan_files
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
