"""The ingest pipeline: scan files -> pages -> workers -> store. The only stage module doing I/O.

One transaction per page; a file is marked done only after all its pages are stored, so a killed
run re-run later loses nothing and duplicates nothing. Damaged files are quarantined with their
reason, never dropped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from forms.layout import Layout
from formstation.safefs import fitting, free_target, make_private_dir, shown
from formstation.store import Store, forms, now, pages, persons, scan_files
from ocr import persist
from ocr.identify import match_id
from ocr.pages import (
    UnreadableFile,
    close_frames,
    iter_pages,
    materialized,
    page_count,
    sha256_file,
    split_inputs,
)
from ocr.types import PageResult, RawPage
from ocr.worker import Engines, init_worker, process_page, run_page, run_page_lazy

log = logging.getLogger("formstation.ingest")
REASON_SUFFIX = ".reason.txt"


class Progress(Protocol):
    def start(self, total_pages: int) -> None: ...
    def advance(self, pages: int = 1) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    def start(self, total_pages: int) -> None: ...
    def advance(self, pages: int = 1) -> None: ...
    def finish(self) -> None: ...


@dataclass
class Summary:
    files: int = 0
    already_ingested: int = 0
    pages: int = 0
    forms: int = 0
    blank_backs: int = 0
    unidentified: int = 0
    black_and_white: int = 0  # of those, pages scanned 1-bit that showed no marks and no barcode
    duplicates: int = 0
    not_in_roster: int = 0
    quarantined: int = 0  # files quarantined: damaged, or failed (below)
    failed: int = 0  # of those, files on which the station itself failed (ingesting them again retries)
    quarantine: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files in the folders given that are no scans
    touched_forms: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)

    def add_timings(self, t: dict[str, float]) -> None:
        for k, v in t.items():
            self.timings[k] = self.timings.get(k, 0.0) + v


class _Runner:
    """Runs pages inline (workers=1) or in a process pool, with a bounded number in flight.

    A worker that dies (killed, out of memory) breaks the pool: a new pool takes over and the pages
    that were in flight are tried again one by one, so the page that kills a worker again is known
    for sure; it becomes a 'failed' result (its file is quarantined with the reason), the batch goes on.
    """

    def __init__(self, layout: Layout, workspace: Path, workers: int, read_fields: bool) -> None:
        self.pool = None
        self.workers, self.initargs = workers, (layout.key, str(workspace), read_fields, os.getpid())
        self.inflight = max(2, workers * 3)
        if workers > 1:
            self.pool = self._new_pool()
        else:
            self.engines = Engines(layout, workspace, read_fields)

    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: forking a process whose OpenCV/ONNX thread pools already run can deadlock
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=self.initargs)

    def _restart(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new_pool()

    def map(self, raws: Iterable[RawPage | object]) -> Iterable[PageResult | object]:
        """Results in page order; at most `inflight` pages decoded and waiting at once. Anything
        else in `raws` (a file's start or end, `_ingest_files`) comes back as is, in its place."""
        if self.pool is None:
            for raw in raws:
                yield (raw if not isinstance(raw, RawPage) else _error_result(raw) if raw.error
                       else process_page(self.engines, raw))
            return
        q: deque[tuple[RawPage | None, Future | PageResult | object]] = deque()
        for raw in raws:
            if not isinstance(raw, RawPage):
                q.append((None, raw))
                continue
            q.append((raw, _error_result(raw) if raw.error else self._submit(raw)))
            while len(q) >= self.inflight:
                yield from self._next(q)
        while q:
            yield from self._next(q)

    def _submit(self, raw: RawPage) -> Future:
        """The page sent to the pool; when a worker died before it could be sent (the pool is
        broken), a future holding that death, which `_next` recovers from like any other."""
        try:
            return self.pool.submit(run_page, raw)
        except BrokenProcessPool as e:
            dead: Future = Future()
            dead.set_exception(e)
            return dead

    def _next(self, q: deque) -> Iterable[PageResult | object]:
        raw, f = q.popleft()
        if not isinstance(f, Future):
            yield f
            return
        try:
            yield f.result()
            return
        except BrokenProcessPool:
            pending = [(raw, f), *q]
            q.clear()
        log.warning("a worker process died; a new one takes over, %d page(s) in flight are tried again",
                    len(pending))
        self._restart()
        for raw, f in pending:
            if not isinstance(f, Future):
                yield f
            elif f.done() and not f.cancelled() and f.exception() is None:
                yield f.result()
            else:
                yield self._alone(raw)

    def _alone(self, raw: RawPage) -> PageResult:
        """One page in the pool on its own: a second death is this page's doing."""
        try:
            return self.pool.submit(run_page, raw).result()
        except BrokenProcessPool:
            self._restart()
            log.error("page %d of %s: the worker died on it twice", raw.page_index + 1, raw.file_sha256[:16])
            return PageResult(raw.file_sha256, raw.page_index, "failed", note=(
                f"page {raw.page_index + 1}: the worker process died on this page twice (killed or out of "
                "memory); the file is kept in quarantine: please report it, then ingest it again"))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _DaskRunner:
    """Sends pages to a Dask cluster (`--scheduler tcp://HOST:PORT`); same contract as _Runner.

    Workers must see the same workspace folder (one machine, or a shared mount). A task whose
    worker dies is retried on another worker, so a killed worker loses no page.
    """

    def __init__(self, layout: Layout, workspace: Path, scheduler: str, read_fields: bool) -> None:
        from distributed import Client

        self.client = Client(scheduler, timeout="30s")
        n = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.inflight = n * 4
        self.args = (layout.key, str(workspace.resolve()), read_fields)

    def map(self, raws: Iterable[RawPage | object]) -> Iterable[PageResult | object]:
        from distributed import Future as DaskFuture

        q: deque = deque()
        for raw in raws:
            if not isinstance(raw, RawPage):
                q.append(raw)  # a file's start or end: back as is, in its place
                continue
            raw = materialized(raw)  # a Dask worker may not see the scan file
            q.append(_error_result(raw) if raw.error
                     else self.client.submit(run_page_lazy, raw, *self.args, pure=False, retries=3))
            while len(q) >= self.inflight:
                f = q.popleft()
                yield f.result() if isinstance(f, DaskFuture) else f
        while q:
            f = q.popleft()
            yield f.result() if isinstance(f, DaskFuture) else f

    def close(self) -> None:
        self.client.close()


def _error_result(raw: RawPage) -> PageResult:
    return PageResult(raw.file_sha256, raw.page_index, "unreadable", note=raw.error)


def quarantine_file(store: Store, path: Path, reason: str, dest: Path | None = None, move: bool = False) -> Path:
    """Keep a damaged file with its reason beside it: `<dest>/<name>` + `<name>.reason.txt`. An
    earlier file of that name is never overwritten; a name too long for its reason file is
    shortened (the reason file then names the original)."""
    dest = make_private_dir(dest or store.workspace / "quarantine")
    target = path if path.parent.resolve() == dest.resolve() else None  # ingested from quarantine again
    if target is None:
        target = free_target(dest, path.name, now().replace(":", ""))
        (shutil.move if move else shutil.copy2)(str(path), str(target))
    why = target.with_name(fitting(target.name, REASON_SUFFIX) + REASON_SUFFIX)
    note = reason if why.name == path.name + REASON_SUFFIX else f"{reason}\nfile: {shown(target.name)}"
    why.write_text(note + "\n", encoding="utf-8")
    return target


def _roster_ids(store: Store) -> dict[str, str]:
    with store.tx() as conn:
        q = select(persons.c.id_number, forms.c.form_id).join(forms, forms.c.person_id == persons.c.person_id)
        return {r.id_number: r.form_id for r in conn.execute(q)}


def _identify_by_text(res: PageResult, roster_ids: dict[str, str]) -> PageResult:
    if res.kind != "unidentified" or not res.note.startswith("printed_id:"):
        return res
    fid = match_id(res.note.split(":", 1)[1], roster_ids)
    if fid is None:
        return res
    from dataclasses import replace

    return replace(res, kind="form", form_id=fid, page_no=1, identified_by="printed_text")


def _file_pages_done(store: Store, sha: str) -> set[int]:
    with store.tx() as conn:
        return {r.page_index for r in conn.execute(select(pages.c.page_index).where(pages.c.file_sha256 == sha))}


def _already_done(store: Store, sha: str) -> bool:
    with store.tx() as conn:
        row = conn.execute(select(scan_files.c.status).where(scan_files.c.sha256 == sha)).first()
    return row is not None and row.status in ("done", "quarantined")


def _count(summary: Summary, kind: str, duplicate: bool) -> None:
    summary.pages += 1
    attr = {"form": "forms", "blank": "blank_backs", "unidentified": "unidentified",
            "not_in_roster": "not_in_roster"}.get(kind)
    if attr:
        setattr(summary, attr, getattr(summary, attr) + 1)
    summary.duplicates += int(duplicate)


@dataclass
class _File:
    """One scan file of a batch while its pages are in flight."""

    path: Path
    sha: str
    done: set[int]  # pages stored by an earlier, interrupted ingest of it
    errors: list[str] = field(default_factory=list)
    fault: bool = False
    n: int = 0  # pages of it that came back
    new: int = 0  # of those, stored by this station


@dataclass(frozen=True)
class _Start:
    file: _File


@dataclass(frozen=True)
class _End:
    file: _File


@dataclass(frozen=True)
class _Again:
    """A file whose content came earlier in the same batch: looked at once that one is stored."""

    path: Path


def _batch_items(store: Store, paths: list[Path], summary: Summary) -> Iterator[RawPage | _Start | _End | _Again]:
    """Every file's pages in order, each file's between its _Start and _End: the workers go on
    with the next file's pages while the last ones of a file are read (a batch of single-page
    JPEGs kept one worker of two waiting on each page). A file read before, or whose content is
    already in the store, yields nothing; one whose content came earlier in this batch, an _Again."""
    seen: set[str] = set()
    for path in paths:
        sha = sha256_file(path)
        if sha in seen:
            yield _Again(path)
            continue
        seen.add(sha)
        if _already_done(store, sha):
            summary.already_ingested += 1
            log.info("%s: already ingested (same content), skipped", shown(path.name))
            continue
        summary.files += 1
        f = _File(path, sha, _file_pages_done(store, sha))
        yield _Start(f)
        try:
            yield from (r for r in iter_pages(path, sha) if r.page_index not in f.done)
        except UnreadableFile as e:
            f.errors.append(str(e))
        finally:
            close_frames()  # a TIFF this process decoded frames of (one worker, or for Dask) is not kept open
        yield _End(f)


def _take(store: Store, f: _File, res: PageResult, summary: Summary, roster_ids: dict[str, str]) -> None:
    """One page's result, stored (or its problem noted against its file)."""
    res = _identify_by_text(res, roster_ids)
    if res.kind in ("unreadable", "failed"):
        f.errors.append(res.note)
        f.fault |= res.kind == "failed"
    else:  # a page another station stored meanwhile (same file, same time) is not counted
        kind, dup, fresh = store.run_racing(lambda conn, res=res: persist.store_page(conn, res))
        if fresh:
            f.new += 1
            _count(summary, kind, dup)
            summary.black_and_white += int(kind == "unidentified" and persist.page_reason(res) == "SCANNED_BLACK_AND_WHITE")
        if res.form_id and kind == "form":
            summary.touched_forms.add(res.form_id)
        summary.add_timings(res.timings)
    f.n += 1


def _end(store: Store, f: _File, summary: Summary, on_quarantine: Callable[[Path, str], None]) -> None:
    """A file whose every page came back: marked done, or quarantined with its reasons."""
    if f.n and not f.new and not f.errors:  # every page was stored by another station meanwhile
        summary.files -= 1
        summary.already_ingested += 1
    reason = "; ".join(f.errors)
    persist.finish_file(store, f.sha, f.path, len(f.done) + f.n, reason, f.fault)
    if reason:
        summary.quarantined += 1
        summary.failed += int(f.fault)
        summary.quarantine.append((shown(f.path.name), reason))
        on_quarantine(f.path, reason)


def _ingest_files(store: Store, runner: _Runner | _DaskRunner, paths: list[Path], summary: Summary,
                  progress: Progress, roster_ids: dict[str, str],
                  on_quarantine: Callable[[Path, str], None]) -> None:
    current: _File | None = None
    for item in runner.map(_batch_items(store, paths, summary)):
        if isinstance(item, _Start):
            current = item.file
        elif isinstance(item, _End):
            _end(store, item.file, summary, on_quarantine)
        elif isinstance(item, _Again):  # its twin is stored by now: skipped, or its missing pages read
            _ingest_files(store, runner, [item.path], summary, progress, roster_ids, on_quarantine)
        else:
            assert current is not None
            _take(store, current, item, summary, roster_ids)
            progress.advance(1)


def make_runner(store: Store, layout: Layout, workers: int | None = None, read_fields: bool = True,
                scheduler: str | None = None) -> _Runner | _DaskRunner:
    """The pages' runner (worker pool or Dask client); one may serve many batches (`watch` keeps
    one warm instead of starting a pool for every file). Close it when done."""
    if scheduler:
        return _DaskRunner(layout, store.workspace, scheduler, read_fields)
    return _Runner(layout, store.workspace, workers or os.cpu_count() or 1, read_fields)


def ingest_paths(store: Store, layout: Layout, paths: list[Path], workers: int | None = None,
                 progress: Progress | None = None, read_fields: bool = True,
                 on_quarantine: Callable[[Path, str], None] | None = None,
                 scheduler: str | None = None, runner: _Runner | _DaskRunner | None = None) -> Summary:
    """Ingest files/folders; returns the summary. Forms touched are decided afterwards. With
    `runner` (make_runner), its pool is used and left open; otherwise one is made for this call."""
    progress = progress or NoProgress()
    files, skipped = split_inputs(paths)
    for p in files:
        if not p.exists():
            from formstation.errors import StationError

            raise StationError(f"{p}: no such file or folder")
    summary = Summary(skipped=[shown(str(p)) for p in skipped])
    progress.start(sum(page_count(p) for p in files))
    own = runner is None
    runner = runner or make_runner(store, layout, workers, read_fields, scheduler)
    quarantine = on_quarantine or (lambda p, r: quarantine_file(store, p, r))
    roster_ids = _roster_ids(store)
    try:
        _ingest_files(store, runner, files, summary, progress, roster_ids, quarantine)
    finally:
        if own:
            runner.close()
        progress.finish()
    persist.after_batch(store, summary.touched_forms)
    return summary
