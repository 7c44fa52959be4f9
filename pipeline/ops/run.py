"""One pipeline run as a command: the run lock, progress lines, the summary, the exit status."""

from __future__ import annotations

import sys
import time

from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import (
    EXIT_BUSY,
    EXIT_DATA_GATE,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_SERVING_GATE,
    EXIT_USAGE,
)


def run_command(config: PipelineConfig, verbose: bool = False) -> int:
    """Run the pipeline, print progress and the summary; return the exit status.

    Holds the root's run lock throughout: a second run on the same root exits at once.
    """
    from pipeline.ops.lock import RunInProgressError, run_lock

    try:
        with run_lock(config.root):
            return _run_locked(config, verbose)
    except RunInProgressError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY


def _run_locked(config: PipelineConfig, verbose: bool) -> int:
    from components.anomaly_gate.executor import DataAnomalyError
    from components.drift_gate.executor import DriftError
    from data.embedded import DataError
    from pipeline import local_runner
    from pipeline.ops import history as report
    from pipeline.ops import progress

    started = time.monotonic()
    try:
        tfx_pipeline = local_runner.build(config)
    except (DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Pipeline {config.pipeline_name}: root {config.root}, data {config.span_data_root}", flush=True)
    status = EXIT_OK
    try:
        with progress.attach(total=len(tfx_pipeline.components), verbose=verbose):
            local_runner.run_pipeline(tfx_pipeline)
    except DataAnomalyError as error:
        print(f"\nSTOPPED by the data gate: {error}", file=sys.stderr)
        status = EXIT_DATA_GATE
    except DriftError as error:
        print(f"\nSTOPPED by the drift gate: {error}", file=sys.stderr)
        status = EXIT_DATA_GATE
    except Exception as error:  # noqa: BLE001 - any component failure ends the run the same way.
        print(f"\nFAILED: {type(error).__name__}: {error}", file=sys.stderr)
        status = EXIT_FAILED
    print()
    try:
        summary = report.load_report(config.metadata_path)
        print(report.format_report(summary))
        if status == EXIT_OK and summary.gate_blessed is False:
            status = EXIT_SERVING_GATE
    except (KeyError, FileNotFoundError) as error:
        print(f"(no run summary: {error})")
    print(f"Wall time {time.monotonic() - started:.1f} s; exit status {status}")
    return status
