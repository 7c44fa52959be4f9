"""`python -m pipeline replay`: simulate weeks of retraining, one span arriving per week.

Week k copies span k of the embedded data into the replay's data folder (as a weekly feed
would deliver it) and runs the pipeline exactly as the weekly schedule does: a rolling window
of the newest spans, the Evaluator comparing against the last blessed model, the gates, the
Pusher. Each week's full output goes to `<root>/replay/week-<k>.log`; one row per week is
printed, read back from ML Metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import sys
import time
from pathlib import Path

from pipeline.config import PipelineConfig

EVALUATOR_NODE = "Evaluator"
EXAMPLE_GEN_NODE = "SpanWindowCsvExampleGen"


class ReplayError(ValueError):
    """The replay cannot start (too many weeks, a root that already holds runs)."""


@dataclasses.dataclass
class WeekRow:
    """What one week's run did."""

    week: int
    run_id: str
    status: int
    spans: str | None
    span: int | None
    auc: float | None
    accuracy: float | None
    weakest: str | None
    blessed: bool | None
    outcome: str
    pushed_version: str | None
    candidate: str | None
    baseline: str | None
    cached: list[str]
    seconds: float


def _node_output(report, node_id: str, key: str):
    for node in report.nodes:
        if node.node_id == node_id and node.outputs.get(key):
            return node.outputs[key][0]
    return None


def _node_output_uri(report, node_id: str, key: str) -> str | None:
    artifact = _node_output(report, node_id, key)
    return artifact.uri if artifact is not None else None


def _baseline_uri(report) -> str | None:
    """The model the Evaluator compared against (the resolver's pick, an Evaluator input)."""
    for node in report.nodes:
        if node.node_id == EVALUATOR_NODE and node.inputs.get("baseline_model"):
            return node.inputs["baseline_model"][0].uri
    return None


def _span_property(examples) -> int | None:
    """ExampleGen's standard `span` property (the newest span of the window) in ML Metadata."""
    if examples is None:
        return None
    for properties in (examples.properties, examples.custom_properties):  # TFX 1.16: custom
        if "span" in properties:
            return properties["span"].int_value
    return None


def week_row(week: int, status: int, report, seconds: float) -> WeekRow:
    """Summarise one week's run (its RunReport from ML Metadata) as a row."""
    from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_OK, EXIT_SERVING_GATE
    from pipeline.ops.run_history import weakest_slices

    weakest = weakest_slices(report, count=1)
    if report.pushed_new_version:
        outcome = f"pushed {report.pushed_version}"
    elif status == EXIT_DATA_GATE:
        outcome = "stopped by the data/drift gate"
    elif report.blessed is False:
        outcome = "not pushed: not blessed (" + "; ".join(report.reasons or ["threshold failed"]) + ")"
    elif status == EXIT_SERVING_GATE or report.gate_blessed is False:
        outcome = "not pushed: serving gate refused (" + (report.gate_summary or "") + ")"
    elif status != EXIT_OK:
        outcome = f"failed (exit {status})"
    else:
        outcome = "not pushed"
    return WeekRow(
        week=week,
        run_id=report.run_id,
        status=status,
        spans=report.spans,
        span=_span_property(_node_output(report, EXAMPLE_GEN_NODE, "examples")),
        auc=report.overall.get("auc"),
        accuracy=report.overall.get("binary_accuracy"),
        weakest=f"{weakest[0][0]} (AUC {weakest[0][1]['auc']:.3f})" if weakest else None,
        blessed=report.blessed,
        outcome=outcome,
        pushed_version=report.pushed_version if report.pushed_new_version else None,
        candidate=_node_output_uri(report, "Trainer", "model"),
        baseline=_baseline_uri(report),
        cached=[n.node_id for n in report.nodes if n.state == "cached"],
        seconds=seconds,
    )


HEADER = (
    f"{'week':>4}  {'spans':<9} {'AUC':>6} {'acc':>6}  {'weakest slice':<34} {'blessed':<7} {'s':>5}  outcome"
)


def format_row(row: WeekRow) -> str:
    """One line per week; cached components on a second line when there are any."""

    def figure(value):
        return f"{value:6.4f}" if value is not None else f"{'-':>6}"

    blessed = {True: "yes", False: "no", None: "-"}[row.blessed]
    line = (
        f"{row.week:>4}  {row.spans or '-':<9} {figure(row.auc)} {figure(row.accuracy)}  "
        f"{row.weakest or '-':<34} {blessed:<7} {row.seconds:5.0f}  {row.outcome}"
    )
    if row.cached:
        line += f"\n{'':>6}cached: {', '.join(row.cached)}"
    return line


@contextlib.contextmanager
def _log_handlers_to(stream):
    """Point the root logger's console handlers at `stream` (they keep the stderr they started with)."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and h.stream in (sys.stderr, sys.__stderr__, sys.stdout)
    ]
    saved = [h.setStream(stream) for h in handlers]
    try:
        yield
    finally:
        for handler, original in zip(handlers, saved):
            handler.setStream(original)


def replay(
    base: PipelineConfig,
    weeks: int,
    week_train_steps: dict[int, int] | None = None,
    out=None,
    alert_webhook: str | None = None,
) -> list[WeekRow]:
    """Run `weeks` simulated weeks under `base.root`; print and return one row per week.

    Args:
        base: the run configuration (root, window, thresholds, ...); its data root is replaced
            by the replay's own weekly feed.
        weeks: how many weeks (at most the number of embedded spans).
        week_train_steps: week -> training steps for that week only (e.g. a deliberately
            undertrained week, which must not be pushed).
        out: where rows are printed (default stdout).
        alert_webhook: each week's run alerts here when it fails, stops, is not blessed or
            is refused by the serving gate.

    Raises:
        ReplayError: for more weeks than spans, or a root that already holds runs.
    """
    from data import embedded
    from pipeline.ops.run import run_command
    from pipeline.ops.run_history import load_report

    out = out or sys.stdout
    root = Path(base.root)
    if base.metadata_path.exists():
        raise ReplayError(
            f"{root} already holds pipeline runs ({base.metadata_path}); a replay starts from an "
            "empty root: choose another --root (nothing was changed)"
        )
    if not 1 <= weeks <= embedded.DEFAULT_NUM_SPANS:
        raise ReplayError(
            f"--weeks must be within 1..{embedded.DEFAULT_NUM_SPANS} (the embedded spans), got {weeks}"
        )
    feed, weekly, logs = root / "feed", root / "weekly-data", root / "replay"
    embedded.materialize_spans(feed)
    logs.mkdir(parents=True, exist_ok=True)
    print(HEADER, file=out, flush=True)
    rows = []
    for week in range(1, weeks + 1):
        shutil.copytree(feed / f"span-{week}", weekly / f"span-{week}")  # this week's data arrives
        if week in (week_train_steps or {}):
            config = dataclasses.replace(
                base, data_root=weekly, train_steps=week_train_steps[week], train_steps_from_data=False
            )
        else:
            config = dataclasses.replace(base, data_root=weekly)
        started = time.monotonic()
        with open(logs / f"week-{week}.log", "w") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _log_handlers_to(log):
                status = run_command(config, alert_webhook=alert_webhook)
        row = week_row(week, status, load_report(config.metadata_path), time.monotonic() - started)
        rows.append(row)
        print(format_row(row), file=out, flush=True)
    serving = base.serving_dir
    versions = sorted(p.name for p in serving.iterdir() if p.name.isdigit()) if serving.is_dir() else []
    print(f"Serving versions under {base.serving_dir}: {', '.join(versions) or 'none'}", file=out)
    print(f"Per-week logs: {logs}/week-<k>.log", file=out)
    return rows
