"""File names and files as the station handles them: any name shown and stored safely, names that
fit the file system, nothing overwritten, personal data owner-only (folders 700, files 600).

A scanner share may hand over names that are not UTF-8 (Latin-1 or GBK bytes) or are near the
file system's 255-byte limit; neither may stop a batch. Children's data never lands world-readable.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

NAME_MAX = 255  # bytes per path component on Linux file systems
PRIVATE_UMASK = 0o077
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# a cell starting with one of these may be run as a formula by a spreadsheet (OWASP, CSV injection):
# the roster refuses such cells, every CSV the station writes neutralises them (output.writers)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def shown(name: str) -> str:
    """A file name as valid, printable UTF-8: bytes that are not UTF-8 (held as surrogates by
    Python) become `\\xNN`, control characters too. Stored in the store, printed and logged."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def fitting(name: str, extra: str = "", limit: int = NAME_MAX) -> str:
    """`name` shortened (its suffix kept, a hash of the full name added) so that `name + extra`
    fits in `limit` bytes; unchanged when it already fits."""
    if len(os.fsencode(name + extra)) <= limit:
        return name
    stem, suffix = os.path.splitext(name)
    if len(os.fsencode(suffix)) > 16:
        stem, suffix = name, ""
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:10]
    raw = os.fsencode(stem)[:max(limit - len(os.fsencode(tag + suffix + extra)), 0)]
    for cut in range(len(raw), max(len(raw) - 4, 0) - 1, -1):  # not in the middle of a character
        try:
            return raw[:cut].decode("utf-8") + tag + suffix
        except UnicodeDecodeError:
            continue
    return os.fsdecode(raw) + tag + suffix


def free_target(folder: Path, name: str, stamp: str, extra: str = "") -> Path:
    """A path in `folder` for a file called `name` that exists nowhere yet (an earlier file of the
    same name is never overwritten): `name`, else `stem.<stamp>.suffix`, else `stem.<stamp>-2.suffix`...
    Every candidate, plus `extra` (e.g. ".reason.txt"), fits the file system's name limit."""
    stem, suffix = os.path.splitext(name)
    for i in range(1, 10_000):
        cand = name if i == 1 else f"{stem}.{stamp}{suffix}" if i == 2 else f"{stem}.{stamp}-{i - 1}{suffix}"
        target = folder / fitting(cand, extra)
        if not target.exists() and not target.is_symlink():
            return target
    raise FileExistsError(f"{folder}: no free name for {shown(name)}")


def private_umask() -> None:
    """Files and folders this process creates from now on are its owner's only (600 / 700)."""
    os.umask(PRIVATE_UMASK)


def make_private_dir(path: Path) -> Path:
    """Create `path` (and parents) as 700; an existing folder of ours is narrowed to 700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    narrow(path, 0o700)
    return path


def narrow(path: Path, mode: int = 0o600) -> None:
    """An existing file or folder of ours made owner-only (made before files were created 600)."""
    try:
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            path.chmod(mode)
    except OSError:
        pass
