"""What a run did, read back from ML Metadata (the record of every run), and its text summary.

The summary is built from the store, not from what the process happened to observe, so it
says the same thing for a run that just finished and for one inspected later.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.dsl.io import fileio
from tfx.orchestration import metadata

from components.drift_gate import spec as drift_spec
from components.edge_export import spec as edge_spec
from components.pusher import spec as pusher_spec
from components.serving_gate import spec as gate_spec
from components.web_export import spec as web_spec
from serving import web_gate_checks as web_checks
from serving.eval_results import evaluation_metrics, slice_name

RUN_CONTEXT_TYPE = "pipeline_run"
# Custom property of a run context: which gate stopped the run, and why (`record_stop`).
STOPPED_PROPERTY = "stopped"
NODE_CONTEXT_TYPE = "node"
STATE_NAMES = {
    metadata_store_pb2.Execution.COMPLETE: "ran",
    metadata_store_pb2.Execution.CACHED: "cached",
    metadata_store_pb2.Execution.FAILED: "failed",
    metadata_store_pb2.Execution.RUNNING: "running",
    metadata_store_pb2.Execution.CANCELED: "canceled",
}
# Metric names as TFMA writes them, and how the summary labels them.
HEADLINE_METRICS = (
    ("example_count", "trips"),
    ("auc", "AUC"),
    ("binary_accuracy", "accuracy"),
    ("auc_pr", "AUC-PR"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("calibration", "calibration"),
)
# A slice's AUC is only ranked when it has this many trips of each class: an AUC over three
# big tippers among 3,000 cash trips says nothing about the model.
MIN_CLASS_TRIPS = 20


@dataclasses.dataclass
class NodeRun:
    """One component's execution in a run."""

    node_id: str
    state: str
    seconds: float
    outputs: dict[str, list[metadata_store_pb2.Artifact]]
    inputs: dict[str, list[metadata_store_pb2.Artifact]] = dataclasses.field(default_factory=dict)
    properties: dict[str, object] = dataclasses.field(default_factory=dict)  # exec properties
    started: float = 0.0  # seconds since the epoch


@dataclasses.dataclass
class RunReport:
    """Everything the summary prints about one pipeline run."""

    run_id: str
    nodes: list[NodeRun]
    overall: dict[str, float]
    slices: list[tuple[str, dict[str, float]]]
    blessed: bool | None
    reasons: list[str]
    pushed_version: str | None
    pushed_path: str | None
    spans: str | None
    drift_summary: str | None = None
    drift_accepted: bool = False
    gate_blessed: bool | None = None
    gate_summary: str | None = None
    gate_checks: list[dict] = dataclasses.field(default_factory=list)
    stopped: str | None = None  # "data gate: <why>" when a gate stopped the run (see record_stop)
    edge_blessed: bool | None = None  # the edge gate's verdict on the int8 model (EdgeExport)
    edge_summary: str | None = None
    edge_bytes: int | None = None
    edge_checks: list[dict] = dataclasses.field(default_factory=list)
    edge_pushed: bool | None = None  # the Pusher wrote it to <serving>/edge/<version>/
    edge_path: str | None = None
    edge_reason: str | None = None  # why the Pusher did not push it
    web_blessed: bool | None = None  # the web gate's verdict on the TF.js model (WebExport)
    web_summary: str | None = None
    web_bytes: int | None = None
    web_checks: list[dict] = dataclasses.field(default_factory=list)
    web_pushed: bool | None = None  # the Pusher wrote it to <serving>/web/<version>/
    web_path: str | None = None
    web_reason: str | None = None

    @property
    def pushed_new_version(self) -> bool:
        """True when this run's Pusher actually ran and pushed (not a cached earlier push)."""
        pusher = self._pusher()
        return bool(self.pushed_version) and pusher is not None and pusher.state == "ran"

    def _pusher(self) -> NodeRun | None:
        return next((n for n in self.nodes if "pushed_model" in n.outputs), None)


def open_store(metadata_path: str | Path) -> metadata_store.MetadataStore:
    """The SQLite ML Metadata store of a run root (only `record_stop` writes to it)."""
    path = Path(metadata_path)
    if not path.is_file():
        raise FileNotFoundError(f"no ML Metadata store at {path}: has the pipeline run under this root?")
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))


def record_stop(metadata_path: str | Path, gate: str, reason: str, since: float) -> str | None:
    """Record which gate stopped the newest run, and why; return its run id (None: no such run).

    Only a run that started at or after `since` (epoch seconds) is marked, as the run
    context's `stopped` property. TFX records a failed execution without its error; this
    keeps "data gate: span 9 ... has a header but no rows" in the store, for `runs` and the
    summary, instead of "failed at SpanWindowCsvExampleGen".
    """
    store = open_store(metadata_path)
    run_id = latest_run_id(store)
    context = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_id) if run_id else None
    if context is None or context.create_time_since_epoch < since * 1000 - 1000:
        return None
    context.custom_properties[STOPPED_PROPERTY].string_value = f"{gate}: {reason}"[:4000]
    store.put_contexts([context])
    return run_id


def latest_run_id(store: metadata_store.MetadataStore) -> str | None:
    """Name of the newest pipeline_run context, or None when the store holds no run."""
    ids = run_ids(store)
    return ids[-1] if ids else None


def node_runs(store: metadata_store.MetadataStore, run_id: str) -> list[NodeRun]:
    """The executions of run `run_id`, in the order they started, with their output artifacts."""
    context = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_id)
    if context is None:
        raise KeyError(f"no pipeline run {run_id!r} in the metadata store")
    executions = sorted(
        store.get_executions_by_context(context.id), key=lambda e: (e.create_time_since_epoch, e.id)
    )
    events = store.get_events_by_execution_ids([e.id for e in executions])
    kinds = {metadata_store_pb2.Event.OUTPUT: "outputs", metadata_store_pb2.Event.INPUT: "inputs"}
    artifact_ids = {e.artifact_id for e in events if e.type in kinds}
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list(artifact_ids))} if artifact_ids else {}
    result = []
    for execution in executions:
        node_context = next(
            (c for c in store.get_contexts_by_execution(execution.id) if c.type == NODE_CONTEXT_TYPE), None
        )
        node_id = node_context.name.split(".", 1)[-1] if node_context else str(execution.id)
        linked: dict[str, dict[str, list]] = {"outputs": {}, "inputs": {}}
        for event in events:
            if event.execution_id == execution.id and event.type in kinds:
                key = event.path.steps[0].key if event.path.steps else "?"
                linked[kinds[event.type]].setdefault(key, []).append(artifacts[event.artifact_id])
        seconds = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000.0
        state = STATE_NAMES.get(execution.last_known_state, "unknown")
        properties = {
            key: getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
            for key, value in execution.custom_properties.items()
        }
        result.append(
            NodeRun(
                node_id=node_id,
                state=state,
                seconds=seconds,
                properties=properties,
                started=execution.create_time_since_epoch / 1000.0,
                **linked,
            )
        )
    return result


def blessing_reasons(evaluation_uri: str) -> list[str]:
    """One line per failed threshold (empty when validation passed)."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(evaluation_uri)
    reasons = []
    for per_slice in result.metric_validations_per_slice:
        for failure in per_slice.failures:
            reasons.append(
                f"{slice_name(per_slice.slice_key)}: {failure.metric_key.name}"
                f"{' change vs baseline' if failure.metric_key.is_diff else ''} = "
                f"{failure.metric_value.double_value.value:.4f} "
                f"fails {_threshold_text(failure.metric_threshold)}"
            )
    for missing in result.missing_slices:
        reasons.append(f"slice {missing} has no data")
    return reasons


def _threshold_text(threshold) -> str:
    if threshold.HasField("value_threshold"):
        bound = threshold.value_threshold
        parts = []
        if bound.HasField("lower_bound"):
            parts.append(f">= {bound.lower_bound.value}")
        if bound.HasField("upper_bound"):
            parts.append(f"<= {bound.upper_bound.value}")
        return "required " + " and ".join(parts)
    if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        return f"allowed change {change.absolute.value:+} (absolute)"
    return str(threshold).replace("\n", " ")


def load_report(metadata_path: str | Path, run_id: str | None = None, store=None) -> RunReport:
    """Read run `run_id` (default: the newest) from the store under a run root.

    `store`: an already open store of that root (callers reading many runs open it once).
    """
    store = store or open_store(metadata_path)
    run_id = run_id or latest_run_id(store)
    if run_id is None:
        raise KeyError(f"the metadata store {metadata_path} holds no pipeline run")
    nodes = node_runs(store, run_id)
    context = store.get_context_by_type_and_name(RUN_CONTEXT_TYPE, run_id)
    stopped = context.custom_properties.get(STOPPED_PROPERTY) if context else None
    report = RunReport(
        run_id=run_id,
        nodes=nodes,
        overall={},
        slices=[],
        blessed=None,
        reasons=[],
        pushed_version=None,
        pushed_path=None,
        spans=None,
        stopped=stopped.string_value if stopped is not None else None,
    )
    for node in nodes:
        for example in node.outputs.get("examples", []):
            if "spans" in example.custom_properties:
                report.spans = example.custom_properties["spans"].string_value
        for drift in node.outputs.get("drift", []):
            props = drift.custom_properties
            report.drift_summary = props[drift_spec.DRIFT_SUMMARY_PROPERTY].string_value
            report.drift_accepted = props[drift_spec.DRIFT_ACCEPTED_PROPERTY].int_value == 1
        for evaluation in node.outputs.get("evaluation", []):
            report.overall, report.slices = evaluation_metrics(evaluation.uri)
            report.reasons = blessing_reasons(evaluation.uri)
        for blessing in node.outputs.get("blessing", []):
            blessed = blessing.custom_properties["blessed"].int_value == 1
            if gate_spec.VERDICT_PROPERTY in blessing.custom_properties:
                report.gate_blessed = blessed
                report.gate_summary = blessing.custom_properties[gate_spec.VERDICT_PROPERTY].string_value
                report.gate_checks = _gate_checks(blessing.uri)
            else:
                report.blessed = blessed
        for edge_model in node.outputs.get("edge_model", []):
            props = edge_model.custom_properties
            if edge_spec.BLESSED_PROPERTY in props:
                report.edge_blessed = props[edge_spec.BLESSED_PROPERTY].int_value == 1
                report.edge_summary = props[edge_spec.VERDICT_PROPERTY].string_value
                report.edge_bytes = props[edge_spec.BYTES_PROPERTY].int_value
                report.edge_checks = _verdict_checks(f"{edge_model.uri}/{edge_spec.VERDICT_FILE_NAME}")
        for web_model in node.outputs.get("web_model", []):
            props = web_model.custom_properties
            if web_spec.BLESSED_PROPERTY in props:
                report.web_blessed = props[web_spec.BLESSED_PROPERTY].int_value == 1
                report.web_summary = props[web_spec.VERDICT_PROPERTY].string_value
                report.web_bytes = props[web_spec.BYTES_PROPERTY].int_value
                report.web_checks = _verdict_checks(f"{web_model.uri}/{web_spec.VERDICT_FILE_NAME}")
        for pushed in node.outputs.get("pushed_model", []):
            props = pushed.custom_properties
            if props.get("pushed") is not None and props["pushed"].int_value == 1:
                report.pushed_version = props["pushed_version"].string_value
                report.pushed_path = props["pushed_destination"].string_value
            if pusher_spec.EDGE_PUSHED_PROPERTY in props:
                report.edge_pushed = props[pusher_spec.EDGE_PUSHED_PROPERTY].int_value == 1
                if pusher_spec.EDGE_DESTINATION_PROPERTY in props:
                    report.edge_path = props[pusher_spec.EDGE_DESTINATION_PROPERTY].string_value
                if pusher_spec.EDGE_REASON_PROPERTY in props:
                    report.edge_reason = props[pusher_spec.EDGE_REASON_PROPERTY].string_value
            if pusher_spec.WEB_PUSHED_PROPERTY in props:
                report.web_pushed = props[pusher_spec.WEB_PUSHED_PROPERTY].int_value == 1
                if pusher_spec.WEB_DESTINATION_PROPERTY in props:
                    report.web_path = props[pusher_spec.WEB_DESTINATION_PROPERTY].string_value
                if pusher_spec.WEB_REASON_PROPERTY in props:
                    report.web_reason = props[pusher_spec.WEB_REASON_PROPERTY].string_value
    return report


def _rollback_pin(pushed_path: str | None) -> int | None:
    """The version a rollback pinned in the serving directory of `pushed_path`, if any."""
    from serving.versions import PIN_FILE  # written by `python -m pipeline rollback`

    if not pushed_path:
        return None
    try:
        pin = _read_json(f"{pushed_path.rstrip('/').rpartition('/')[0]}/{PIN_FILE}")
    except (OSError, ValueError):
        return None
    return pin.get("version") if pin else None


def _gate_checks(blessing_uri: str) -> list[dict]:
    return _verdict_checks(f"{blessing_uri}/{gate_spec.VERDICT_FILE_NAME}")


def _verdict_checks(path: str) -> list[dict]:
    verdict = _read_json(path)
    return verdict["checks"] if verdict else []


def _read_json(path: str) -> dict | None:
    """A JSON file of an artifact or the serving directory, through `fileio` (gs:// alike); None if absent."""
    if not fileio.exists(path) or fileio.isdir(path):
        return None
    with fileio.open(path, "r") as handle:
        return json.loads(handle.read())


def weakest_slices(report: RunReport, count: int = 5) -> list[tuple[str, dict[str, float]]]:
    """The `count` slices with the lowest AUC among those with MIN_CLASS_TRIPS of each class."""

    def ranked(metrics: dict[str, float]) -> bool:
        trips, mean_label = metrics.get("example_count", 0), metrics.get("mean_label", math.nan)
        positives = trips * mean_label
        return (
            not math.isnan(metrics.get("auc", math.nan))
            and min(positives, trips - positives) >= MIN_CLASS_TRIPS
        )

    return sorted((item for item in report.slices if ranked(item[1])), key=lambda item: item[1]["auc"])[
        :count
    ]


def _metrics_line(values: dict[str, float]) -> str:
    parts = []
    for name, label in HEADLINE_METRICS:
        if name in values:
            value = values[name]
            parts.append(f"{label} {int(value)}" if name == "example_count" else f"{label} {value:.4f}")
    return ", ".join(parts)


def format_report(report: RunReport) -> str:
    """The end-of-run summary: components, metrics, weakest slices, blessing, push."""
    lines = [f"Run {report.run_id}" + (f" on spans {report.spans}" if report.spans else "")]
    for node in report.nodes:
        lines.append(f"  {node.node_id:<32} {node.state:<7} {node.seconds:7.1f} s")
    if report.stopped:
        gate, _, reason = report.stopped.partition(": ")
        first, *rest = reason.splitlines() or [""]
        lines.append(f"Stopped by the {gate}: {first}")
        lines.extend(f"  {line.strip()}" for line in rest if line.strip())
    if report.drift_summary:
        accepted = "ACCEPTED by --accept-drift: " if report.drift_accepted else ""
        lines.append(f"Drift: {accepted}{report.drift_summary}")
    if report.overall:
        lines.append(f"Eval split, overall: {_metrics_line(report.overall)}")
        weakest = weakest_slices(report)
        if weakest:
            lines.append(f"Weakest slices by AUC (of those with >= {MIN_CLASS_TRIPS} trips of each class):")
            lines.extend(f"  {name:<28} {_metrics_line(values)}" for name, values in weakest)
    if report.blessed is not None:
        if report.blessed:
            lines.append("Blessed: yes (every threshold met)")
        else:
            lines.append("Blessed: no")
            lines.extend(f"  - {reason}" for reason in report.reasons or ["(no threshold failure recorded)"])
    if report.gate_blessed is not None:
        if report.gate_blessed:
            lines.append(f"Serving gate: {report.gate_summary}")
        else:
            lines.append("Serving gate: REFUSED the push")
            lines.extend(
                f"  - {check['name']}: {check['detail']}"
                for check in report.gate_checks
                if check["status"] == "fail"
            )
    lines.extend(_edge_gate_lines(report))
    lines.extend(_web_gate_lines(report))
    if report.pushed_version and report.pushed_new_version:
        lines.append(f"Pushed: version {report.pushed_version} -> {report.pushed_path}")
        if report.edge_pushed:
            lines.append(f"Edge model: int8, {report.edge_bytes:,} bytes -> {report.edge_path}")
        elif report.edge_pushed is False:
            lines.append(
                f"Edge model: not pushed ({report.edge_reason}); the SavedModel push above is unaffected"
            )
        if report.web_pushed:
            lines.append(f"Web model: TF.js, {report.web_bytes:,} bytes -> {report.web_path}")
        elif report.web_pushed is False:
            lines.append(
                f"Web model: not pushed ({report.web_reason}); the SavedModel push above is unaffected"
            )
        pin = _rollback_pin(report.pushed_path)
        if pin is not None and str(pin) != report.pushed_version:
            lines.append(
                f"  Note: a rollback pins version {pin}: `serve` keeps serving it until "
                "`python -m pipeline rollback --clear`"
            )
    elif report.pushed_version:
        lines.append(
            "Pushed: nothing new (cached run); serving version "
            f"{report.pushed_version} at {report.pushed_path}"
        )
    elif report.blessed is not None:
        why = [
            "the Evaluator did not bless the model" if not report.blessed else "",
            "the serving gate refused it" if report.gate_blessed is False else "",
        ]
        lines.append(f"Pushed: nothing ({' and '.join(w for w in why if w) or 'see above'})")
    return "\n".join(lines)


def _gate_lines(
    gate: str, blessed: bool | None, summary: str | None, checks: list[dict], model: str
) -> list[str]:
    """The edge or web gate's outcome: passed with its agreement figures, not run, or refused with reasons."""
    if blessed is None:
        return []
    if blessed:
        agreement = next((c for c in checks if c["name"] == "agreement"), None)
        figures = f": {agreement['detail']}" if agreement and agreement["status"] == "pass" else ""
        return [f"{gate}: {summary}{figures}"]
    failed = [c for c in checks if c["status"] == "fail"]
    if len(failed) == 1 and failed[0]["detail"].startswith(web_checks.NOT_RUN):
        return [f"{gate}: {failed[0]['detail']}"]
    return [f"{gate}: REFUSED the {model}"] + [f"  - {c['name']}: {c['detail']}" for c in failed]


def _edge_gate_lines(report: RunReport) -> list[str]:
    return _gate_lines(
        "Edge gate", report.edge_blessed, report.edge_summary, report.edge_checks, "int8 edge model"
    )


def _web_gate_lines(report: RunReport) -> list[str]:
    return _gate_lines(
        "Web gate", report.web_blessed, report.web_summary, report.web_checks, "TF.js web model"
    )


# Gates whose failure stops a run, and how the run's status names them.
STOPPING_GATES = {"AnomalyGate": "stopped by the data gate", "DriftGate": "stopped by the drift gate"}


def run_ids(store: metadata_store.MetadataStore) -> list[str]:
    """Every pipeline run in the store, oldest first."""
    runs = store.get_contexts_by_type(RUN_CONTEXT_TYPE)
    return [c.name for c in sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id))]


def run_status(report: RunReport) -> str:
    """Completed / stopped by which gate / failed at which component / refused by the serving gate."""
    if report.stopped:
        return f"stopped by the {report.stopped.split(':', 1)[0]}"
    failed = [n.node_id for n in report.nodes if n.state == "failed"]
    if failed:
        return STOPPING_GATES.get(failed[0], f"failed at {failed[0]}")
    if any(n.state == "running" for n in report.nodes):
        return "running or interrupted"
    if report.gate_blessed is False:
        return "completed, serving gate refused"
    return "completed"


def format_runs(metadata_path: str | Path) -> str:
    """One line per run: when, spans, status, eval AUC and accuracy, blessed, pushed version."""
    store = open_store(metadata_path)
    header = f"{'run':<28} {'spans':<10} {'status':<33} {'AUC':>6} {'acc':>6}  {'blessed':<7} pushed"
    lines = [header]
    for run_id in run_ids(store):
        report = load_report(metadata_path, run_id, store)
        auc, accuracy = report.overall.get("auc"), report.overall.get("binary_accuracy")
        blessed = {True: "yes", False: "no", None: "-"}[report.blessed]
        if report.pushed_new_version:
            pushed = report.pushed_version
        elif report.pushed_version:
            pushed = f"(cached: {report.pushed_version})"
        else:
            pushed = "-"
        figures = " ".join("     -" if value is None else f"{value:6.4f}" for value in (auc, accuracy))
        spans = report.spans or "-"
        lines.append(f"{run_id:<28} {spans:<10} {run_status(report):<33} {figures}  {blessed:<7} {pushed}")
    return "\n".join(lines)


def format_run_details(report: RunReport) -> str:
    """`runs show`: the summary, then every component's execution with its inputs and outputs."""
    lines = [format_report(report), "", f"Status: {run_status(report)}", "Executions:"]
    for node in report.nodes:
        lines.append(f"  {node.node_id} ({node.state}, {node.seconds:.1f} s)")
        for direction, artifacts in (("in", node.inputs), ("out", node.outputs)):
            for key, items in sorted(artifacts.items()):
                for artifact in items:
                    lines.append(f"    {direction:<3} {key}: {artifact.uri}")
    if report.slices:
        lines.append("Per-slice metrics:")
        lines.extend(f"  {name:<28} {_metrics_line(values)}" for name, values in sorted(report.slices))
    return "\n".join(lines)
