"""Files written whole or not at all: a temp file in the target's folder, renamed over it.

Index files, run files, summaries and contact sheets all go through :func:`atomic_write`,
so an interrupted run never leaves a half-written file that looks complete, and a reader
(an image viewer, a scorer) sees the old file or the new one. The new file gets the mode a
plain ``open(path, "w")`` would give it (the old file's, else 0o666 less the umask), read
without changing the process's umask: ``os.umask`` can only be read by setting it, which
races with every other thread creating files (the server writes from worker threads).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from convir.errors import InputError


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "w", *, durable: bool = False
) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` (``mode`` "w" for text in UTF-8, "wb" for bytes);
    on a clean exit it replaces ``path``, on an exception it is removed. ``durable``
    fsyncs the file and its folder (an index that must survive a power cut)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target} is a folder; pass a file name inside it")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_folder(target.parent)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, making parent folders."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, making parent folders."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode_for(target: Path) -> int:
    """The permission bits ``open(target, "w")`` would leave: the existing file's, else
    0o666 less the umask."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read from /proc where the kernel shows it (Linux 4.7+), else the
    common 0o022; never set, so no other thread sees it change."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
