"""`formstation ingest PATH...` and `formstation watch DIR` (hot folder)."""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

from forms.layout import load_layout
from formstation.commands import open_store
from formstation.errors import ExitCode
from formstation.safefs import free_target
from formstation.store import now
from ocr.ingest import Summary, ingest_paths, make_runner, quarantine_file
from ocr.pages import SCAN_SUFFIXES
from ocr.reader_cli import auto_argument

log = logging.getLogger("formstation.watch")


class TerminalProgress:
    """Pages done / total, pages per second and ETA on one self-rewriting stderr line."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream, self.total, self.done, self.t0, self.last = stream, 0, 0, 0.0, 0.0

    def start(self, total_pages: int) -> None:
        self.total, self.done, self.t0 = total_pages, 0, time.perf_counter()

    def advance(self, pages: int = 1) -> None:
        self.done += pages
        now = time.perf_counter()
        if now - self.last > 0.2 or self.done >= self.total:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.t0, 1e-6)
        left = max(self.total - self.done, 0) / rate if rate > 0 else 0
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        end = "" if self.stream.isatty() else "\n"
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} pages  {rate:5.1f} pages/s  ETA {left:4.0f}s{end}")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream.isatty():
            self.stream.write("\n")


def print_summary(s: Summary, stream=None) -> None:
    stream = stream or sys.stdout
    print(f"files: {s.files} new, {s.already_ingested} already ingested | pages: {s.pages} | forms: {s.forms} | "
          f"blank backs: {s.blank_backs} | unidentified: {s.unidentified} | duplicates: {s.duplicates} | "
          f"not in roster: {s.not_in_roster} | quarantined: {s.quarantined} ({s.failed} failed) | "
          f"skipped: {len(s.skipped)}", file=stream)
    if s.black_and_white:
        print(f"{s.black_and_white} unidentified pages were scanned black-and-white and show no alignment marks "
              "and no barcode (faint print can vanish at 1 bit): scan those sheets again in grey", file=stream)
    for name, reason in s.quarantine:
        print(f"quarantined {name}: {reason}", file=stream)
    for name in s.skipped:
        print(f"skipped {name}: not a scan file (PDF, TIFF, JPEG or PNG); convert it to ingest it", file=stream)


def exit_code(s: Summary) -> ExitCode:
    """OK when every file went in; QUARANTINED when some were quarantined or failed (listed)."""
    return ExitCode.QUARANTINED if s.quarantined else ExitCode.OK


def cmd_ingest(args: argparse.Namespace) -> int:
    store = open_store(args)
    layout = load_layout(args.layout)
    progress = None if args.quiet else TerminalProgress()
    s = ingest_paths(store, layout, [Path(p) for p in args.paths], workers=args.workers, progress=progress,
                     scheduler=args.scheduler)
    print_summary(s)
    _auto_adapt(store, args.auto)
    return exit_code(s)


def _auto_adapt(store, every: int | None) -> None:
    """`--auto N`: adapt the reader when N more forms were reviewed since the last fit (ocr.learning)."""
    from ocr.learning import auto

    out = auto(store, every)
    if out is not None:
        print(out.message)


def _ready(path: Path, seen: dict[Path, tuple[tuple[int, float], float]], settle: float) -> bool:
    """A file is ready once its size and mtime have not changed for `settle` seconds."""
    st = path.stat()
    sig = (st.st_size, st.st_mtime)
    first = seen.get(path)
    if first is None or first[0] != sig:
        seen[path] = (sig, time.monotonic())
        return False
    return time.monotonic() - first[1] >= settle and st.st_size > 0


def _candidates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SCAN_SUFFIXES)


def watch(store, layout, folder: Path, workers: int | None, settle: float, once: bool, poll: float = 1.0,
          read_fields: bool = True, auto: int | None = None) -> int:
    done_dir, q_dir = folder / "done", folder / "quarantine"
    done_dir.mkdir(exist_ok=True)
    q_dir.mkdir(exist_ok=True)
    runner = make_runner(store, layout, workers, read_fields)  # one warm pool for every file
    try:
        return _watch_loop(store, layout, folder, runner, settle, once, poll, auto)
    finally:
        runner.close()


def _watch_loop(store, layout, folder: Path, runner, settle: float, once: bool, poll: float,
                auto: int | None = None) -> int:
    done_dir, q_dir = folder / "done", folder / "quarantine"
    seen: dict = {}
    handled = 0
    while True:
        for p in _candidates(folder):
            if not (once and settle == 0) and not _ready(p, seen, settle):
                continue
            quarantined: list[Path] = []

            def to_quarantine(path: Path, reason: str, _q=quarantined) -> None:
                _q.append(quarantine_file(store, path, reason, q_dir, move=True))

            s = ingest_paths(store, layout, [p], on_quarantine=to_quarantine, runner=runner)
            if not quarantined and p.exists():  # never over an earlier file of the same name
                shutil.move(str(p), str(free_target(done_dir, p.name, now().replace(":", ""))))
            print_summary(s)
            _auto_adapt(store, auto)
            seen.pop(p, None)
            handled += 1
        if once and not any(_candidates(folder)):
            return handled
        time.sleep(poll)


def cmd_watch(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        from formstation.errors import StationError

        raise StationError(f"{folder}: not a folder")
    store = open_store(args)
    print(f"watching {folder} (done/ and quarantine/ beside the files); Ctrl-C stops", file=sys.stderr)
    watch(store, load_layout(args.layout), folder, args.workers, args.settle, args.once, auto=args.auto)
    return ExitCode.OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="ingest scan files or folders (PDF, TIFF, JPEG, PNG)")
    p.add_argument("paths", nargs="+")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--scheduler", default=None,
                   help="send pages to a Dask cluster, e.g. tcp://127.0.0.1:8786 (workers share the workspace)")
    auto_argument(p)
    p.set_defaults(func=cmd_ingest)
    w = sub.add_parser("watch", help="hot folder: ingest files a scanner writes, once they stop growing")
    w.add_argument("dir")
    w.add_argument("--workers", type=int, default=None)
    w.add_argument("--settle", type=float, default=3.0, help="seconds a file must stay unchanged (default 3)")
    w.add_argument("--once", action="store_true", help="process what is there, then exit")
    auto_argument(w)
    w.set_defaults(func=cmd_watch)
