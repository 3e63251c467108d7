"""Ingest on printed forms turned into scans: identification, orientation, blanks, damage, resume."""

from __future__ import annotations

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image
from sqlalchemy import func, select

from formstation.store import forms, pages, scan_files
from ocr import persist
from ocr.ingest import ingest_paths
from ocr.ingest_cli import watch


def _render(pdf, dpi=200):
    doc = pdfium.PdfDocument(str(pdf))
    out = [np.array(p.render(scale=dpi / 72, grayscale=True).to_pil()) for p in doc]
    doc.close()
    return out


def _save_tiff(path, imgs, compression="tiff_lzw"):
    ims = [Image.fromarray(i) for i in imgs]
    ims[0].save(path, save_all=True, append_images=ims[1:], compression=compression, dpi=(200, 200))
    return path


def _rows(store, table=pages):
    with store.tx() as conn:
        return list(conn.execute(select(table).order_by(table.c[list(table.c.keys())[0]])))


def _blank(shape, rng):
    img = np.full(shape, 250, np.uint8)
    ys, xs = rng.integers(0, shape[0], 40), rng.integers(0, shape[1], 40)
    img[ys, xs] = 90  # dust specks
    return img


def _foreign(shape):
    img = np.full(shape, 255, np.uint8)
    for i in range(40):
        cv2.putText(img, "Lorem ipsum dolor sit amet, invoice 2026", (120, 200 + i * 60),
                    cv2.FONT_HERSHEY_SIMPLEX, 1.4, 0, 3)
    return img


def test_printed_pdfs_identified_and_reingest_adds_nothing(printed):
    store, layout, pdfs = printed
    s = ingest_paths(store, layout, pdfs, workers=1, read_fields=False)
    assert (s.files, s.pages, s.forms, s.unidentified, s.quarantined) == (2, 6, 6, 0, 0)
    rows = _rows(store)
    with store.tx() as conn:
        printed_ids = {r.form_id for r in conn.execute(select(forms.c.form_id))}
    assert {r.form_id for r in rows} == printed_ids
    assert all(r.identified_by == "barcode" and r.rotation == 0 and r.residual_mm < 0.5 for r in rows)
    again = ingest_paths(store, layout, pdfs, workers=1, read_fields=False)
    assert again.already_ingested == 2 and again.pages == 0 and len(_rows(store)) == 6


def test_tiff_with_rotation_blank_back_foreign_page_and_no_barcode(printed, tmp_path):
    store, layout, pdfs = printed
    rng = np.random.default_rng(0)
    a, b, c = _render(pdfs[0])
    no_code = b.copy()
    x0, y0, x1, y1 = layout.barcode_box.to_px(200)
    no_code[y0 - 5:y1 + 5, x0 - 5:x1 + 5] = 255  # barcode torn off: identify by the printed ID
    tiff = _save_tiff(tmp_path / "batch.tif", [cv2.rotate(a, cv2.ROTATE_180), _blank(a.shape, rng),
                                               no_code, _foreign(a.shape)])
    s = ingest_paths(store, layout, [tiff], workers=2, read_fields=False)
    assert (s.pages, s.forms, s.blank_backs, s.unidentified) == (4, 2, 1, 1)
    kinds = [(r.page_index, r.kind, r.rotation, r.identified_by) for r in _rows(store)]
    assert kinds[0][1:] == ("form", 180, "barcode")
    assert kinds[1][1] == "blank"
    assert kinds[2][1:] == ("form", 0, "printed_text")
    assert kinds[3][1] == "unidentified"
    assert all(r.image_path for r in _rows(store) if r.kind != "blank")


def test_damaged_files_quarantined_batch_continues(printed, tmp_path):
    store, layout, pdfs = printed
    imgs = _render(pdfs[0])
    whole = _save_tiff(tmp_path / "whole.tif", imgs, compression="tiff_deflate")
    data = whole.read_bytes()
    broken = tmp_path / "a_truncated.tif"
    broken.write_bytes(data[: int(len(data) * 0.7)])
    junk = tmp_path / "b_junk.pdf"
    junk.write_bytes(b"%PDF-1.4 this is not really a pdf")
    empty = tmp_path / "c_empty.jpg"
    empty.write_bytes(b"")
    cut_jpeg = tmp_path / "d_truncated.jpg"
    cv2.imwrite(str(cut_jpeg), imgs[0])
    cut_jpeg.write_bytes(cut_jpeg.read_bytes()[: cut_jpeg.stat().st_size * 7 // 10])
    s = ingest_paths(store, layout, [broken, junk, empty, cut_jpeg, pdfs[1]], workers=1, read_fields=False)
    assert s.quarantined == 4
    reasons = dict(s.quarantine)
    assert "cannot be decoded" in reasons["a_truncated.tif"]
    assert "not a readable PDF" in reasons["b_junk.pdf"]
    assert "empty file" in reasons["c_empty.jpg"]
    assert reasons["d_truncated.jpg"].startswith("page 1: cannot be decoded") and "truncated" in reasons["d_truncated.jpg"]
    qdir = store.workspace / "quarantine"
    for name in reasons:
        assert (qdir / name).is_file() and (qdir / f"{name}.reason.txt").read_text().strip() == reasons[name]
    assert s.forms >= 3 + 1  # the good PDF's 3 forms, and what the truncated TIFF had before the break
    files = {r.name: r.status for r in _rows(store, scan_files)}
    assert files == {"a_truncated.tif": "quarantined", "b_junk.pdf": "quarantined",
                     "c_empty.jpg": "quarantined", "d_truncated.jpg": "quarantined", pdfs[1].name: "done"}


def test_tiff_frames_decoded_in_workers_a_damaged_frame_is_reported_and_the_rest_stored(printed, tmp_path):
    """A multi-page TIFF's frames are decoded by the pool's workers (the reading process only reads
    their headers): a frame whose pixels are damaged comes back as that page's reason, the frames
    before and after it (a colour one and a grey one) are stored."""
    store, layout, pdfs = printed
    imgs = _render(pdfs[0])
    frames = [Image.fromarray(imgs[0]).convert("RGB"), Image.fromarray(imgs[1]), Image.fromarray(imgs[2])]
    path = tmp_path / "scan.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate", dpi=(200, 200))
    with Image.open(path) as im:
        im.seek(1)
        offsets, counts = im.tag_v2[273], im.tag_v2[279]  # frame 2's strips
    data = bytearray(path.read_bytes())
    for off, n in zip(offsets, counts, strict=True):
        data[off:off + n] = bytes(range(256)) * (n // 256) + bytes(n % 256)  # not deflate data
    path.write_bytes(bytes(data))
    s = ingest_paths(store, layout, [path], workers=2, read_fields=False)
    assert s.quarantined == 1
    reason = dict(s.quarantine)["scan.tif"]
    assert reason.startswith("page 2: cannot be decoded"), reason
    rows = {r.page_index: r for r in _rows(store)}
    assert sorted(rows) == [0, 2] and all(r.kind == "form" and r.identified_by == "barcode" for r in rows.values())
    assert all(cv2.imread(str(store.workspace / r.image_path)) is not None for r in rows.values())


def test_batch_of_single_page_files_through_the_pool_each_file_accounted_for(printed, tmp_path):
    """Single-page scans go through the workers one after another without waiting for each file
    to finish: every page is stored against its own file, a damaged file among them is
    quarantined with its reason, and the same scan twice in the batch is stored once."""
    store, layout, pdfs = printed
    imgs = _render(pdfs[0]) + _render(pdfs[1])
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, img in enumerate(imgs):
        cv2.imwrite(str(folder / f"p{i}.jpg"), img)
    (folder / "p2_copy.jpg").write_bytes((folder / "p2.jpg").read_bytes())  # fed twice
    (folder / "p3x.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    s = ingest_paths(store, layout, [folder], workers=2, read_fields=False)
    assert (s.files, s.already_ingested, s.pages, s.forms, s.quarantined) == (7, 1, 6, 6, 1)
    assert "p3x.jpg" in dict(s.quarantine)
    files = {r.name: r for r in _rows(store, scan_files)}
    assert {n: r.status for n, r in files.items()} == {
        **{f"p{i}.jpg": "done" for i in range(6)}, "p3x.jpg": "quarantined"}
    by_sha = {r.sha256: r.name for r in files.values()}
    with store.tx() as conn:
        forms_of = {r.form_id: by_sha[r.file_sha256] for r in conn.execute(select(pages))}
    assert len(forms_of) == 6 and sorted(forms_of.values()) == [f"p{i}.jpg" for i in range(6)]


def test_crash_before_file_completes_loses_and_duplicates_nothing(printed, monkeypatch):
    store, layout, pdfs = printed
    real = persist.finish_file

    def crash(*a, **k):
        raise KeyboardInterrupt  # killed after the pages were stored, before the file was closed

    monkeypatch.setattr(persist, "finish_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ingest_paths(store, layout, [pdfs[0]], workers=1, read_fields=False)
    monkeypatch.setattr(persist, "finish_file", real)
    s = ingest_paths(store, layout, [pdfs[0]], workers=1, read_fields=False)
    assert s.already_ingested == 0 and s.pages == 0  # every page was already in
    with store.tx() as conn:
        assert conn.execute(select(func.count()).select_from(pages)).scalar() == 3
        assert conn.execute(select(scan_files.c.status)).scalar() == "done"
        # the forms the killed batch stored are decided by the next one, not left 'received'
        statuses = set(conn.execute(select(forms.c.status).where(forms.c.status != "printed")).scalars())
    assert statuses and "received" not in statuses, statuses


def test_duplicate_scan_flagged_and_unknown_form_not_in_roster(printed, tmp_path):
    import zxingcpp

    from forms.barcode import decode

    store, layout, pdfs = printed
    imgs = _render(pdfs[0])
    stranger = decode(zxingcpp.read_barcodes(imgs[1])[0].text).form_id
    with store.tx() as conn:  # as if that form had been printed by another station
        conn.execute(forms.delete().where(forms.c.form_id == stranger))
    first = _save_tiff(tmp_path / "first.tif", imgs[:1])
    again = _save_tiff(tmp_path / "again.tif", [imgs[0], imgs[1]], compression="tiff_deflate")
    s1 = ingest_paths(store, layout, [first], workers=1, read_fields=False)
    s2 = ingest_paths(store, layout, [again], workers=1, read_fields=False)
    assert (s1.duplicates, s2.duplicates, s2.not_in_roster) == (0, 1, 1)
    rows = _rows(store)
    assert [r.kind for r in rows] == ["form", "form", "not_in_roster"]
    assert rows[0].form_id == rows[1].form_id and rows[2].form_id == stranger
    from formstation.store import reasons

    with store.tx() as conn:
        status = conn.execute(select(forms.c.status).where(forms.c.form_id == rows[0].form_id)).scalar()
        codes = {r.code for r in conn.execute(select(reasons).where(reasons.c.form_id == rows[0].form_id))}
    assert status == "review" and "DUPLICATE_SCAN" in codes  # both scans kept, a reviewer decides
    from review_ui import stats

    with store.tx() as conn:  # the stranger's page is kept and shown to the supervisor
        (row,) = stats.not_in_roster(conn)
    assert (row["form id on the barcode"], row["scan file"], row["page"]) == (stranger, "again.tif", 2)


def test_hot_folder_moves_done_and_quarantined(printed, tmp_path):
    store, layout, pdfs = printed
    hot = tmp_path / "hot"
    hot.mkdir()
    good = hot / pdfs[0].name
    good.write_bytes(pdfs[0].read_bytes())
    (hot / "torn.pdf").write_bytes(b"%PDF-1.7 torn")
    (hot / "notes.txt").write_text("not a scan")
    handled = watch(store, layout, hot, workers=1, settle=0, once=True, poll=0, read_fields=False)
    assert handled == 2
    assert (hot / "done" / good.name).is_file() and not good.exists()
    assert (hot / "quarantine" / "torn.pdf").is_file()
    assert "not a readable PDF" in (hot / "quarantine" / "torn.pdf.reason.txt").read_text()
    assert (hot / "notes.txt").exists()


def test_database_restarted_mid_batch_loses_and_duplicates_nothing(printed, caplog):
    import os
    import subprocess
    import threading
    from pathlib import Path

    store, layout, pdfs = printed
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the database server restart is a PostgreSQL test")
    script = str(Path(__file__).resolve().parent.parent / "scripts" / "pg_test_server.sh")

    class RestartAfterSecondPage:
        pages = 0

        def start(self, total_pages: int) -> None: ...
        def finish(self) -> None: ...

        def advance(self, n: int = 1) -> None:
            self.pages += n
            if self.pages == 2:  # the server goes down between two pages and is back 2 s later
                subprocess.run(["bash", script, "stop"], check=True, env=os.environ)
                threading.Timer(2.0, lambda: subprocess.run(["bash", script, "start"], check=True,
                                                            capture_output=True)).start()

    s = ingest_paths(store, layout, pdfs, workers=1, read_fields=False, progress=RestartAfterSecondPage())
    assert any("store unreachable" in r.message for r in caplog.records)  # it did wait for the server
    assert (s.files, s.pages, s.forms, s.quarantined) == (2, 6, 6, 0)
    again = ingest_paths(store, layout, pdfs, workers=1, read_fields=False)
    assert again.already_ingested == 2 and again.pages == 0
    rows = _rows(store)
    assert len(rows) == 6 and len({(r.file_sha256, r.page_index) for r in rows}) == 6
    assert {r.status for r in _rows(store, scan_files)} == {"done"}


def test_a_fault_on_one_page_quarantines_its_file_and_the_batch_goes_on(printed, monkeypatch):
    """A bug of the station's own on one page (here: aligning it fails) does not stop the batch:
    that file is quarantined with the error as its reason, its other pages and the next file are in."""
    import ocr.worker

    store, layout, pdfs = printed
    real, calls = ocr.worker.warp, []

    def warp_failing_once(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise ValueError("max() arg is an empty sequence")
        return real(*a, **kw)

    monkeypatch.setattr(ocr.worker, "warp", warp_failing_once)
    s = ingest_paths(store, layout, pdfs, workers=1, read_fields=False)
    assert s.quarantined == 1 and s.forms == 5
    (name, reason), = s.quarantine
    assert name == pdfs[0].name and "page 2" in reason and "ValueError: max() arg is an empty sequence" in reason
    assert (store.workspace / "quarantine" / name).is_file()
    monkeypatch.setattr(ocr.worker, "warp", real)  # fixed: the quarantined file is ingested again
    again = ingest_paths(store, layout, [store.workspace / "quarantine" / name], workers=1, read_fields=False)
    assert (again.quarantined, again.forms) == (0, 1)


def _faded_and_written(gray, rng):
    """A sheet whose toner ran out (its print at ~30 % of its ink, with sensor noise) that a parent
    filled in with a dark pen."""
    faded = 255 - (255 - gray.astype(np.float32)) * 0.3 + rng.normal(0, 8, gray.shape)
    page = np.clip(faded, 0, 255).astype(np.uint8)
    for i in range(6):
        cv2.putText(page, "13912345678", (700, 900 + i * 180), cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, 2.2, 20, 5)
    return page


def test_a_faded_sheet_scanned_black_and_white_asks_the_clerk_for_a_grey_scan(printed, tmp_path, capsys):
    """A scanner's 1-bit threshold can wipe out a faded form's marks and barcode while the parent's
    pen stays: the page waits unidentified with the reason SCANNED_BLACK_AND_WHITE, and the ingest
    summary asks for the sheet in grey. The same sheet scanned in grey is identified by its barcode;
    a foreign page scanned in grey waits with no such reason."""
    from ocr.ingest_cli import print_summary
    from simulate.scanner import to_mode

    store, layout, pdfs = printed
    rng = np.random.default_rng(5)
    page = _faded_and_written(_render(pdfs[0])[0], rng)
    bw = to_mode(page, "bilevel")
    assert bw.mean() < 0.999  # the pen's ink is there: not a blank back
    g4 = tmp_path / "bw.tif"
    Image.fromarray(bw).convert("1").save(g4, compression="group4", dpi=(200, 200))
    s = ingest_paths(store, layout, [g4], workers=1, read_fields=False)
    assert (s.pages, s.forms, s.unidentified, s.black_and_white) == (1, 0, 1, 1)
    row = _rows(store)[-1]
    assert (row.kind, row.reason) == ("unidentified", "SCANNED_BLACK_AND_WHITE")
    print_summary(s)
    assert "scan those sheets again in grey" in capsys.readouterr().out

    foreign = cv2.GaussianBlur(_foreign(page.shape), (0, 0), 1.0) // 2 + 120  # a grey scan: paper, soft edges
    grey = _save_tiff(tmp_path / "grey.tif", [page, foreign])
    s = ingest_paths(store, layout, [grey], workers=1, read_fields=False)
    assert (s.forms, s.unidentified, s.black_and_white) == (1, 1, 0)
    kinds = [(r.kind, r.identified_by, r.reason) for r in _rows(store)[-2:]]
    assert kinds == [("form", "barcode", None), ("unidentified", None, None)]
