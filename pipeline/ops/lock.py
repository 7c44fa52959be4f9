"""One pipeline run at a time per root.

An exclusive `flock` on `<root>/run.lock`, taken without waiting: a second run on the same
root fails at once, naming the holder. The kernel drops the lock when the holding process
exits, however it exits (a crash, `kill -9`), so a dead run never leaves the root locked; the
file's text (who held it last) is only informative.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
from pathlib import Path

LOCK_FILE_NAME = "run.lock"


class RunInProgressError(RuntimeError):
    """Another run holds the root's lock."""


@contextlib.contextmanager
def run_lock(root: str | os.PathLike):
    """Hold `<root>/run.lock` for the duration of the block.

    Raises:
        RunInProgressError: when another process holds it (the message names that process).
    """
    path = Path(root) / LOCK_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = path.read_text().strip() or "unknown process"
            raise RunInProgressError(
                f"another pipeline run is in progress on {path.parent} ({holder}); this run exits "
                f"without touching anything. The lock ({path}) frees itself when that process ends."
            ) from None
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {started}\n".encode(), 0)
        try:
            yield path
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
