"""An advisory inter-process file lock (fcntl.flock), e.g. around a trained-weight cache entry."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import HarnessError

POLL_SECONDS = 0.05


class LockTimeout(HarnessError):
    """Another process held the lock for longer than the timeout."""


def lock_path_for(path: Path) -> Path:
    """The lock file that guards `path` (a sibling named '<name>.lock')."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 600.0) -> Iterator[Path]:
    """Hold an exclusive flock on `path` (created if missing) for the block; LockTimeout after `timeout` s.

    The lock is released when the block ends or the process dies; the lock file itself is left in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, timeout)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float) -> None:
    """Poll a non-blocking flock until it is granted or `timeout` seconds pass."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(f"timed out after {timeout:g} s waiting for the lock {path} "
                                  "(another harness run is using it)") from None
            time.sleep(POLL_SECONDS)


def is_held(path: Path) -> bool:
    """Whether a process (this one included, through another handle) holds the lock on `path` now; False when the
    lock file does not exist. Opens the file read-only, so it works on a read-only copy too."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
