"""One pipeline run as a command: the run lock, progress lines, the summary, the exit status."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from pathlib import Path

from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import (
    EXIT_BUSY,
    EXIT_DATA_GATE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SERVING_GATE,
    EXIT_USAGE,
)

# Under the run root: one log per run, named by its ML Metadata run id.
LOG_FOLDER = "logs"


def run_command(
    config: PipelineConfig,
    verbose: bool = False,
    explicit_window: bool = False,
    alert_webhook: str | None = None,
) -> int:
    """Run the pipeline, print progress and the summary; return the exit status.

    Holds the root's run lock throughout: a second run on the same root exits at once. The
    console gets the progress lines, Keras's epoch lines and the summary; every library log
    line and warning goes to `<root>/logs/<run id>.log` (with `verbose`, to the console).

    Args:
        config: the run.
        verbose: library logs on the console instead of the log file.
        explicit_window: the window was asked for on the command line (see
            `local_runner.check_arguments`).
        alert_webhook: where to POST one alert when the run fails, is stopped by a gate, is
            not blessed or is refused by the serving gate (`monitoring.alerts`); a failed
            alert is logged and leaves the exit status as it is.
    """
    from pipeline.ops.lock import RunInProgressError, run_lock

    try:
        with run_lock(config.root):
            status, event = _run_locked(config, verbose, explicit_window)
    except RunInProgressError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY
    if event is not None:
        from monitoring.alerts import send_alert

        name, text, fields = event
        delivered = send_alert(
            alert_webhook, name, f"{config.pipeline_name} on {config.root}: {text}", **fields
        )
        if alert_webhook and not delivered and fields.get("log"):
            with contextlib.suppress(OSError), open(fields["log"], "a") as run_log:
                run_log.write(f"alert '{name}' not delivered to {alert_webhook} (see the console)\n")
    return status


@contextlib.contextmanager
def library_output_to(path: Path | None):
    """Send everything written to standard error (file descriptor 2 and `sys.stderr`) to `path`.

    TensorFlow's C++ logs, absl and Python logging, warnings and Beam all write there; our own
    lines go to standard output, or to standard error after this context ends. None: no change.
    """
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as log:
        sys.stderr.flush()
        saved_fd, saved_stream = os.dup(2), sys.stderr
        os.dup2(log.fileno(), 2)
        sys.stderr = log
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            sys.stderr = saved_stream


def _run_locked(
    config: PipelineConfig, verbose: bool, explicit_window: bool
) -> tuple[int, tuple[str, str, dict] | None]:
    """(exit status, the alert the outcome calls for: (event, text, fields), or None)."""
    started, started_at = time.monotonic(), time.time()
    log_path = None if verbose else config.root / LOG_FOLDER / f"run-{time.strftime('%Y%m%dT%H%M%S')}.log"
    failure: tuple[int, str] | None = None
    with library_output_to(log_path):
        try:
            failure = _build_and_run(config, verbose, explicit_window)
        except Exception as error:  # noqa: BLE001 - any failure ends the run the same way.
            traceback.print_exc()  # Into the log: the console gets the one-line cause.
            failure = (EXIT_FAILED, f"FAILED: {type(error).__name__}: {error}")
    if failure and failure[0] == EXIT_USAGE:
        print(f"error: {failure[1]}", file=sys.stderr)
        if log_path is not None:
            log_path.unlink(missing_ok=True)  # Only import noise: the refusal is the one line above.
        return EXIT_USAGE, (
            "run_failed",
            f"the run refused to start: {failure[1]}",
            {"exit_status": EXIT_USAGE},
        )
    status = failure[0] if failure else EXIT_OK
    if failure:
        print(f"\n{failure[1]}", file=sys.stderr)
    print()
    from pipeline.ops import run_history as history

    run_id, summary = None, None
    try:
        if failure and failure[0] == EXIT_DATA_GATE:
            gate, _, reason = failure[1].removeprefix("STOPPED by the ").partition(": ")
            history.record_stop(config.metadata_path, gate, reason, since=started_at)
        summary = history.load_report(config.metadata_path)
        run_id = summary.run_id
        print(history.format_report(summary))
        if status == EXIT_OK and summary.gate_blessed is False:
            status = EXIT_SERVING_GATE
    except (KeyError, FileNotFoundError) as error:
        print(f"(no run summary: {error})")
    named = log_path
    if log_path is not None and log_path.exists():
        named = log_path.with_name(f"{run_id}.log") if run_id else log_path
        log_path.rename(named)
        print(
            f"Library logs and warnings: {named}"
            + (" (the failure's traceback is there)" if status == EXIT_FAILED else "")
        )
    print(f"Wall time {time.monotonic() - started:.1f} s; exit status {status}")
    return status, _alert_event(status, failure, summary, run_id, named)


def _alert_event(status: int, failure, summary, run_id, log_path) -> tuple[str, str, dict] | None:
    """The alert a finished run calls for, or None (pushed, or nothing new to push)."""
    fields = {"exit_status": status, "run_id": run_id, "log": str(log_path) if log_path else None}
    if status == EXIT_FAILED:
        return "run_failed", f"run {run_id} failed: {failure[1] if failure else 'see the log'}", fields
    if status == EXIT_DATA_GATE:
        return "stopped_by_gate", f"run {run_id} {failure[1].removeprefix('STOPPED ')}", fields
    if status == EXIT_SERVING_GATE:
        why = summary.gate_summary if summary is not None else ""
        return "serving_gate_refused", f"run {run_id}: the serving gate refused the model: {why}", fields
    if summary is not None and summary.blessed is False:
        reasons = "; ".join(summary.reasons) or "below the thresholds"
        auc = summary.overall.get("auc")
        fields.update(auc=auc, reasons=summary.reasons)
        return "not_blessed", f"run {run_id}: the Evaluator did not bless the model ({reasons})", fields
    return None


def _build_and_run(config: PipelineConfig, verbose: bool, explicit_window: bool) -> tuple[int, str] | None:
    """Build and run the pipeline; (exit status, message) when it stops, None when it completes."""
    from components.drift_gate.executor import DriftError
    from components.shared import DataAnomalyError
    from data.embedded import DataError
    from pipeline import local_runner
    from pipeline.config import ConfigError
    from pipeline.ops import beam_portable, progress

    try:
        tfx_pipeline = local_runner.build(config, explicit_window=explicit_window)
    except (ConfigError, DataError, FileNotFoundError) as error:
        return EXIT_USAGE, str(error)
    print(f"Pipeline {config.pipeline_name}: root {config.root}, data {config.span_data_root}", flush=True)
    beam_dir = config.root / LOG_FOLDER / f"beam-{time.strftime('%Y%m%dT%H%M%S')}"
    with beam_portable.for_run(config, beam_dir) as beam:
        if beam is not None:
            print(
                f"Beam: job service {beam.job_endpoint}, worker pool {beam.worker_pool}, "
                f"{beam_portable.workers(config.beam_workers)} a stage (logs: {beam_dir})",
                flush=True,
            )
        try:
            with progress.attach(
                total=len(tfx_pipeline.components), verbose=verbose, stream=sys.stdout
            ) as stages:
                local_runner.run_pipeline(tfx_pipeline)
        except DataAnomalyError as error:
            return EXIT_DATA_GATE, f"STOPPED by the data gate: {error}"
        except DriftError as error:
            return EXIT_DATA_GATE, f"STOPPED by the drift gate: {error}"
        except Exception as error:
            if beam is not None and beam.failure:  # the cause, not the client's CANCELLED
                raise beam.failed(stages.current) from error
            raise
    return None
