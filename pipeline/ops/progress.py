"""Live progress lines for a LocalDagRunner run, taken from the orchestrator's own log records.

LocalDagRunner logs "Component X is running." / "is finished." around each node, and the
launcher logs whether it reused a cached execution or started a new one. This handler turns
those records into one line per component: started, then cached or ran, with seconds.
"""

from __future__ import annotations

import logging
import sys
import time

from absl import logging as absl_logging

RUNNING = "Component %s is running."
FINISHED = "Component %s is finished."
CACHED = "A cached execution %d is used."
NEW_EXECUTION = "Going to run a new execution %d"
SKIPPED = "Skipping execution for %s"


class ProgressHandler(logging.Handler):
    """Logging handler that prints a progress line per component to `stream`."""

    def __init__(self, total: int, stream=None):
        super().__init__(level=logging.INFO)
        self.total = total
        self.stream = stream or sys.stdout
        self.done = 0
        self.current: str | None = None
        self.started = 0.0
        self.outcome = "ran"

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == RUNNING:
            self.current, self.started, self.outcome = str(record.args[0]), time.monotonic(), "ran"
            self._print(f"[{self.done + 1:>2}/{self.total}] {self.current:<32} started")
        elif record.msg == CACHED:
            self.outcome = "cached"
        elif record.msg == SKIPPED:
            self.outcome = "skipped"
        elif record.msg == FINISHED and self.current is not None:
            seconds = time.monotonic() - self.started
            self.done += 1
            self._print(
                f"[{self.done:>2}/{self.total}] {self.current:<32} {self.outcome:<7} {seconds:6.1f} s"
            )
            self.current = None

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)


class attach:  # noqa: N801 - used as a context manager, reads like a function.
    """Context manager: route absl INFO records to a ProgressHandler for the duration of a run.

    With `verbose` False, absl's other INFO chatter is dropped and only warnings pass through.
    """

    def __init__(self, total: int, verbose: bool = False, stream=None):
        self.handler = ProgressHandler(total, stream)
        self.verbose = verbose
        self.logger = logging.getLogger("absl")

    def __enter__(self) -> ProgressHandler:
        self._saved = (absl_logging.get_verbosity(), self.logger.propagate)
        # Through absl's verbosity flag, not Logger.setLevel: TensorFlow's SavedModel code sets
        # the flag to FATAL and back to its previous value while it saves, which would
        # otherwise restore WARNING in the middle of a run and silence the progress lines.
        absl_logging.set_verbosity(absl_logging.INFO)
        self.logger.addHandler(self.handler)
        if not self.verbose:
            self.logger.propagate = False
            self._warnings = logging.StreamHandler(sys.stderr)
            self._warnings.setLevel(logging.WARNING)
            self.logger.addHandler(self._warnings)
        return self.handler

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self.handler)
        if not self.verbose:
            self.logger.removeHandler(self._warnings)
        absl_logging.set_verbosity(self._saved[0])
        self.logger.propagate = self._saved[1]
