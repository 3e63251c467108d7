"""The program's exit codes and the one exception type that maps to them (in cli.py only).

A problem with one form or one roster row is data (a reason on the record), never an exception.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1          # the program's own failure (a bug): traceback in the log
    USAGE = 2            # bad invocation (argparse uses 2 as well)
    INPUT = 3            # missing/unreadable/wrong-format input file, unknown layout
    NOTHING_TO_DO = 4    # valid invocation that selects nothing (e.g. no form for that school)
    STORE = 5            # the store cannot be opened or is newer than this program
    QUARANTINED = 6      # ingest ran to the end, but some files were quarantined or failed (listed)
    CONFIG = 7           # the workspace's station.toml is not valid (formstation.config.ConfigError)


class StationError(Exception):
    """A user-facing error: one clear line, a non-zero exit code, nothing changed in the store."""

    def __init__(self, message: str, code: ExitCode = ExitCode.INPUT) -> None:
        super().__init__(message)
        self.code = code
