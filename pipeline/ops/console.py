"""A quiet console for every command: library output to a log file, our own lines to the console.

TensorFlow's C++ runtime writes to file descriptor 2 at import (CUDA factories, oneDNN), absl
and Python's warnings write to `sys.stderr`: without this a `monitor` printed two dozen lines
of that before its own first line. `library_output` sends file descriptor 2 to the log, and
replaces `sys.stderr` with a stream that tells the two apart by who writes: a `print` from this
project's own modules reaches the console, anything written from a library's frame (logging,
warnings, absl, TensorFlow's Python side) goes to the log. `pipeline.cli.main` wraps every
command in it; `--verbose` leaves the console as it is.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Top-level packages whose `print(..., file=sys.stderr)` is a message for the person at the console.
OWN_PACKAGES = ("pipeline", "monitoring", "serving", "components", "models", "data", "schemas", "__main__")


def _is_own(module: str) -> bool:
    return module.split(".")[0] in OWN_PACKAGES


class _SortingStderr(io.TextIOBase):
    """`sys.stderr` that writes our own lines to the console and every library's to the log."""

    def __init__(self, console, log, after):
        self.console, self.log, self.after = console, log, after

    def close_into(self) -> None:
        """After the command: a library that kept this stream writes to `after` instead."""
        self.console = self.log = None

    def write(self, text: str) -> int:
        if self.log is None:
            return self.after.write(text)
        # print() is C code: the frame that called it is the one above this write.
        caller = sys._getframe(1).f_globals.get("__name__", "")
        (self.console if _is_own(caller) else self.log).write(text)
        return len(text)

    def flush(self) -> None:
        for stream in (self.console, self.log) if self.log is not None else (self.after,):
            stream.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self):
        return "utf-8"


def log_path(root: Path, command: str) -> Path:
    """`<root>/logs/cli-<command>-<local time>.log`."""
    return Path(root) / "logs" / f"cli-{command}-{time.strftime('%Y%m%dT%H%M%S')}.log"


@contextlib.contextmanager
def library_output(path: Path | None):
    """Library output to `path` while the block runs; None: no change (`--verbose`).

    Yields the path. The output is written to a temporary file first and moved to `path` (its
    folders made then) only when something was written: a quiet command leaves no trace under
    the root, and a command that makes the same folders itself keeps them.
    """
    if path is None:
        yield None
        return
    if path == Path(os.devnull):
        target = path
    else:
        handle, name = tempfile.mkstemp(prefix="pipeline-cli-", suffix=".log")
        os.close(handle)
        target = Path(name)
    saved_stream = sys.stderr
    sys.stderr.flush()
    saved_fd = os.dup(2)
    # The console for our own lines: the caller's stream, unless that stream is file
    # descriptor 2 itself (then a copy of the descriptor, which the redirect leaves alone).
    try:
        own_fd = saved_stream.fileno() == 2
    except (AttributeError, OSError, io.UnsupportedOperation):
        own_fd = False
    console = os.fdopen(os.dup(saved_fd), "w", buffering=1) if own_fd else saved_stream
    with open(target, "a", buffering=1) as log:
        os.dup2(log.fileno(), 2)
        sorting = sys.stderr = _SortingStderr(console, log, saved_stream)
        try:
            yield path
        finally:
            sorting.flush()
            sorting.close_into()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr = saved_stream
            if own_fd:
                console.close()
    if target == path:
        return
    if target.stat().st_size == 0:
        target.unlink()
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(target), path)
    except OSError:
        pass  # the root is not writable: the output stays in the temporary file
