"""`python -m pipeline monitor`: what the served versions actually saw and answered.

Over the prediction logs (`serving/prediction_log.py`) since a time, per model version that
answered, found in ML Metadata through `pipeline/ops/lineage.py`:

- **skew**: TFDV statistics of the logged requests against the train split's statistics of
  the examples that version was trained on, with the schema's `skew_comparator`s (TFDV's
  L-infinity and Jensen-Shannon distances; thresholds from `benchmarks/skew_variation.py`);
- **prediction drift**: the served probabilities against the version's own on its eval split
  (what the Evaluator scored), as a Jensen-Shannon divergence over ten bins;
- **realized quality**, with `--labels`: the logged predictions joined by key to the trips'
  real outcomes; accuracy and AUC of what was served, overall and per slice, against the
  Evaluator's figures for that version, and against the realized figures of the version
  served before it (on the labelled trips each answered).

Each finding is one line naming the feature (or metric), the distance (or the figures) and the
threshold; the run writes `<root>/monitor/monitor-<UTC time>.json` (the HTML report's
Production section reads them) and alerts once per version and kind of finding.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from pipeline.ops.lineage import LineageError, VersionLineage, version_lineage

MONITOR_FOLDER = "monitor"
# Realized accuracy/AUC may sit this far below the Evaluator's (or the previous version's)
# before it is a finding: 1.5x the largest drop of a healthy model's next week from its
# Evaluator figures on a replay of the embedded weeks (benchmarks/realized_variation.py:
# accuracy 0.036, AUC 0.023), rounded up.
DEFAULT_QUALITY_TOLERANCE = {"accuracy": 0.055, "auc": 0.035}
# Fewer labelled trips than this and realized figures are not compared (AUC's standard error
# on 500 trips is about 0.01).
MIN_LABELLED = 500
MIN_SLICE = 100


class MonitorError(ValueError):
    """Nothing to monitor, or input that cannot be read (the message names it)."""


@dataclasses.dataclass
class Finding:
    """One thing `monitor` found wrong."""

    kind: str  # skew | prediction_drift | realized_quality
    version: int
    text: str
    fields: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VersionReport:
    """The figures of one served version."""

    version: int
    examples: int
    first_time: str
    last_time: str
    skew: list[dict] = dataclasses.field(default_factory=list)
    prediction_drift: float | None = None
    served_mean: float | None = None
    eval_mean: float | None = None
    realized: dict | None = None  # {"examples", "accuracy", "auc", "slices": {...}}
    evaluator: dict | None = None  # the Evaluator's overall accuracy and auc
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class MonitorReport:
    root: str
    since: str | None
    created: str
    examples: int
    versions: list[VersionReport]
    findings: list[Finding]
    lines: list[str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, default=float)


# ------------------------------------------------------------------ labels


def trip_key(csv_path: str | os.PathLike, line: int) -> str:
    """The key of the trip on `line` (1 = the header) of a span CSV: `<span folder>/<file>:<line>`."""
    path = Path(csv_path)
    return f"{path.parent.name}/{path.name}:{line}"


def load_labels(path: str | os.PathLike) -> dict[str, tuple[float, float | None]]:
    """Key -> (tips, fare or None) from a CSV (or a span folder of CSVs) of outcomes.

    A CSV with a `trip_id` column keys each row by it (`tips` required, `fare` optional);
    one without keys each row by `trip_key(file, line)`, as a replay of that span sends them.

    Raises:
        MonitorError: no such path, no CSV, or no `tips` column (named).
    """
    import pandas as pd

    from models import features
    from serving.prediction_log import KEY_FIELD

    path = Path(path)
    files = sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise MonitorError(f"--labels {path}: no CSV file there")
    labels: dict[str, tuple[float, float | None]] = {}
    for file in files:
        try:
            frame = pd.read_csv(file, dtype={KEY_FIELD: str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise MonitorError(f"--labels {file}: not a readable CSV ({str(error).strip()})") from None
        if features.TIPS_KEY not in frame.columns:
            raise MonitorError(
                f"--labels {file}: no '{features.TIPS_KEY}' column (columns: {list(frame.columns)})"
            )
        keys = (
            frame[KEY_FIELD].tolist()
            if KEY_FIELD in frame.columns
            else [trip_key(file, line) for line in range(2, len(frame) + 2)]
        )
        fares = (
            frame[features.FARE_KEY].tolist() if features.FARE_KEY in frame.columns else [None] * len(frame)
        )
        for key, tips, fare in zip(keys, frame[features.TIPS_KEY].tolist(), fares):
            labels[str(key)] = (
                tips,
                None if fare is None or (isinstance(fare, float) and np.isnan(fare)) else fare,
            )
    return labels


# ------------------------------------------------------------------ figures


def quality(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Examples, accuracy and AUC (None with one class only), as the serving gate computes them."""
    import math

    from serving.checks import accuracy, auc

    value = auc(labels, scores)
    return {
        "examples": int(len(labels)),
        "accuracy": float(accuracy(labels, scores)),
        "auc": None if math.isnan(value) else value,
    }


def _slice_values(serialized: list[bytes]) -> dict[str, list]:
    import tensorflow as tf

    from models import features

    columns: dict[str, list] = {name: [] for name in features.SLICE_FEATURES}
    for record in serialized:
        fields = tf.train.Example.FromString(record).features.feature
        for name in features.SLICE_FEATURES:
            feature = fields.get(name)
            values = (
                (feature.bytes_list.value or feature.int64_list.value or feature.float_list.value)
                if feature
                else []
            )
            value = values[0] if values else None
            columns[name].append(value.decode() if isinstance(value, bytes) else value)
    return columns


def _logged_fares(serialized: list[bytes]) -> np.ndarray:
    import tensorflow as tf

    from models import features

    fares = []
    for record in serialized:
        feature = tf.train.Example.FromString(record).features.feature.get(features.FARE_KEY)
        fares.append(
            feature.float_list.value[0] if feature is not None and feature.float_list.value else np.nan
        )
    return np.asarray(fares, dtype=np.float64)


def realized_quality(logged, labels: dict) -> dict | None:
    """Accuracy and AUC of the logged predictions whose keys have outcomes (None: none joined)."""
    from models import features

    joined = [i for i, key in enumerate(logged.keys) if key is not None and key in labels]
    if not joined:
        return None
    subset = logged.select(np.isin(np.arange(len(logged)), joined))
    tips = np.asarray([labels[k][0] for k in subset.keys], dtype=np.float64)
    label_fares = np.asarray([np.nan if labels[k][1] is None else labels[k][1] for k in subset.keys])
    fares = np.where(np.isnan(label_fares), _logged_fares(subset.serialized), label_fares)
    truth = features.big_tipper(tips, fares)
    figures = quality(truth, subset.predictions)
    slices = {}
    for name, values in _slice_values(subset.serialized).items():
        for value in sorted({v for v in values if v is not None}, key=str):
            mask = np.asarray([v == value for v in values])
            if mask.sum() >= MIN_SLICE:
                slices[f"{name}={value}"] = quality(truth[mask], subset.predictions[mask])
    figures["slices"] = slices
    return figures


def reference_predictions(model_dir: str, eval_files: list[str]) -> np.ndarray:
    """The version's own probabilities on its eval split (serving_default, as the Evaluator scores)."""
    import tensorflow as tf

    from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, SERVING_SIGNATURE
    from serving.requests import read_tfrecords

    examples = read_tfrecords(eval_files)
    serving_fn = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    batches = [
        serving_fn(**{EXAMPLES_INPUT: tf.constant(examples[i : i + 1024])})[PREDICTION_KEY].numpy().ravel()
        for i in range(0, len(examples), 1024)
    ]
    return np.concatenate(batches) if batches else np.zeros(0)


def _model_dir(lineage: VersionLineage, serving_dir: Path) -> str:
    from serving.requests import resolve_model_dir

    for candidate in (serving_dir / str(lineage.version), Path(lineage.pushed_path), Path(lineage.model_uri)):
        if candidate.is_dir():
            return str(resolve_model_dir(candidate))
    raise LineageError(f"version {lineage.version}: its model is gone ({lineage.pushed_path})")


def reference_for(metadata_path: Path):
    """A function version -> serving.skew.Reference, for the model server's live skew."""

    def lookup(version: int):
        import tensorflow_data_validation as tfdv

        from serving.evaluation import evaluation_metrics
        from serving.skew import Reference

        lineage = version_lineage(metadata_path, version)
        path = lineage.training_statistics_path()
        if path is None:
            raise LineageError(f"version {version}: no training statistics recorded")
        mean = None
        if lineage.evaluation_uri:
            mean = evaluation_metrics(lineage.evaluation_uri)[0].get("mean_prediction")
        return Reference(tfdv.load_stats_binary(path), mean)

    return lookup


# ------------------------------------------------------------------ the command


def _iso(time_us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_us / 1e6))


def monitor(
    root: Path,
    since_us: int | None = None,
    labels_path: str | None = None,
    tolerance: dict[str, float] | None = None,
    serving_dir: Path | None = None,
    log_dir: Path | None = None,
) -> MonitorReport:
    """Check every version that answered since `since_us`; the report (findings included).

    Raises:
        MonitorError: no logged predictions in that period, or unreadable labels.
        FileNotFoundError: no ML Metadata store under `root`.
    """
    import tensorflow_data_validation as tfdv

    from pipeline.config import PipelineConfig
    from schemas import load_schema
    from serving import skew
    from serving.evaluation import evaluation_metrics
    from serving.prediction_log import LOG_FOLDER, read_logs

    config = PipelineConfig(root=root)
    tolerance = dict(DEFAULT_QUALITY_TOLERANCE if tolerance is None else tolerance)
    serving_dir = serving_dir or config.serving_dir
    log_dir = log_dir or Path(root) / LOG_FOLDER
    labels = load_labels(labels_path) if labels_path else None
    logged = read_logs(log_dir, since_us)
    since_text = _iso(since_us) if since_us is not None else None
    if not len(logged):
        raise MonitorError(
            f"no logged predictions under {log_dir}"
            + (f" since {since_text}" if since_text else "")
            + ": serve the model (python -m pipeline serve) and send it requests first"
        )
    schema = load_schema()
    findings: list[Finding] = []
    lines = [
        f"Monitor of {root}: {len(logged):,} logged predictions"
        + (f" since {since_text}" if since_text else "")
        + f", versions {', '.join(str(v) for v in sorted(set(logged.versions.tolist())))}"
    ]
    reports: list[VersionReport] = []

    def finding(kind: str, version: int, text: str, **fields) -> None:
        findings.append(Finding(kind, version, text, fields))
        lines.append(f"[FINDING] version {version} {kind}: {text}")

    def ok(version: int, kind: str, text: str) -> None:
        lines.append(f"[OK     ] version {version} {kind}: {text}")

    for version in sorted(set(logged.versions.tolist())):
        mine = logged.select(logged.versions == version)
        report = VersionReport(
            version, len(mine), _iso(int(mine.times_us.min())), _iso(int(mine.times_us.max()))
        )
        reports.append(report)
        report.served_mean = float(mine.predictions.mean())
        try:
            lineage = version_lineage(config.metadata_path, version)
        except LineageError as error:
            report.notes.append(f"not checked: {error}")
            lines.append(f"[SKIPPED] version {version}: {error}")
            continue
        # Skew.
        stats_path = lineage.training_statistics_path()
        if stats_path is None:
            report.notes.append("skew not checked: no training statistics recorded")
            lines.append(f"[SKIPPED] version {version} skew: no training statistics recorded")
        elif len(mine) < skew.MIN_SERVED_EXAMPLES:
            report.notes.append(f"skew not checked: {len(mine)} examples < {skew.MIN_SERVED_EXAMPLES}")
            lines.append(
                f"[SKIPPED] version {version} skew: {len(mine)} logged examples, fewer than the "
                f"{skew.MIN_SERVED_EXAMPLES} a comparison needs"
            )
        else:
            distances = skew.skew_distances(
                skew.examples_statistics(mine.serialized), tfdv.load_stats_binary(stats_path), schema
            )
            report.skew = [dataclasses.asdict(d) for d in distances]
            skewed = [d for d in distances if d.skewed]
            for distance in skewed:
                finding(
                    "skew",
                    version,
                    distance.describe(),
                    feature=distance.feature,
                    measure=distance.measure,
                    distance=distance.value,
                    threshold=distance.threshold,
                )
            if not distances:
                report.notes.append("skew: the schema defines no skew comparator")
                lines.append(f"[SKIPPED] version {version} skew: the schema defines no skew comparator")
            elif not skewed:
                worst = max(distances, key=lambda d: d.value / d.threshold)
                ok(
                    version,
                    "skew",
                    f"{len(distances)} features within thresholds (closest: {worst.describe()})",
                )
        # Prediction drift.
        try:
            model_dir = _model_dir(lineage, serving_dir)
            reference = reference_predictions(model_dir, lineage.eval_files())
        except (LineageError, OSError) as error:
            reference = np.zeros(0)
            report.notes.append(f"prediction drift not checked: {error}")
        if len(reference) and len(mine) >= skew.MIN_SERVED_EXAMPLES:
            drift = skew.prediction_drift(mine.predictions, reference)
            report.prediction_drift, report.eval_mean = drift, float(reference.mean())
            text = (
                f"Jensen-Shannon {drift:.4f} {'>' if drift > skew.PREDICTION_DRIFT_THRESHOLD else '<='} "
                f"{skew.PREDICTION_DRIFT_THRESHOLD} (served mean {report.served_mean:.3f}, "
                f"eval mean {report.eval_mean:.3f})"
            )
            if drift > skew.PREDICTION_DRIFT_THRESHOLD:
                finding(
                    "prediction_drift",
                    version,
                    text,
                    distance=drift,
                    threshold=skew.PREDICTION_DRIFT_THRESHOLD,
                    served_mean=report.served_mean,
                    eval_mean=report.eval_mean,
                )
            else:
                ok(version, "prediction drift", text)
        # Realized quality.
        if lineage.evaluation_uri:
            overall = evaluation_metrics(lineage.evaluation_uri)[0]
            report.evaluator = {"accuracy": overall.get("binary_accuracy"), "auc": overall.get("auc")}
        if labels is not None:
            report.realized = realized_quality(mine, labels)
            _check_realized(report, tolerance, finding, ok, lines)
    if labels is not None:
        _compare_versions(reports, tolerance, finding)
    return MonitorReport(
        root=str(root),
        since=since_text,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        examples=len(logged),
        versions=reports,
        findings=findings,
        lines=lines,
    )


def _check_realized(report: VersionReport, tolerance: dict[str, float], finding, ok, lines) -> None:
    version, realized = report.version, report.realized
    if realized is None:
        report.notes.append("realized quality: no logged prediction has a key with an outcome")
        lines.append(f"[SKIPPED] version {version} realized quality: no logged key found in the labels")
        return
    figures = (
        f"accuracy {realized['accuracy']:.4f}, AUC {_fmt(realized['auc'])} "
        f"on {realized['examples']:,} labelled trips"
    )
    if realized["examples"] < MIN_LABELLED:
        report.notes.append(
            f"realized quality not compared: {realized['examples']} labelled trips < {MIN_LABELLED}"
        )
        lines.append(
            f"[SKIPPED] version {version} realized quality: {figures} (fewer than {MIN_LABELLED} to compare)"
        )
        return
    evaluator = report.evaluator or {}
    drops = [
        (metric, realized[metric], evaluator[metric])
        for metric in ("accuracy", "auc")
        if realized.get(metric) is not None
        and evaluator.get(metric) is not None
        and realized[metric] < evaluator[metric] - tolerance[metric]
    ]
    versus = f"Evaluator accuracy {_fmt(evaluator.get('accuracy'))}, AUC {_fmt(evaluator.get('auc'))}"
    if drops:
        finding(
            "realized_quality",
            version,
            f"{figures}: below the Evaluator's by more than the tolerance ("
            + "; ".join(f"{m} {r:.4f} < {e:.4f} - {tolerance[m]}" for m, r, e in drops)
            + ")",
            realized=realized,
            evaluator=evaluator,
            tolerance=tolerance,
        )
    else:
        tolerances = f"tolerance accuracy {tolerance['accuracy']}, AUC {tolerance['auc']}"
        ok(version, "realized quality", f"{figures} ({versus}; {tolerances})")


def _compare_versions(reports: list[VersionReport], tolerance: dict[str, float], finding) -> None:
    """A newer version whose realized figures fall below the previous served version's."""
    measured = [r for r in reports if r.realized and r.realized["examples"] >= MIN_LABELLED]
    for older, newer in zip(measured, measured[1:]):
        drops = [
            (metric, newer.realized[metric], older.realized[metric])
            for metric in ("accuracy", "auc")
            if newer.realized.get(metric) is not None
            and older.realized.get(metric) is not None
            and newer.realized[metric] < older.realized[metric] - tolerance[metric]
        ]
        if drops:
            finding(
                "realized_quality",
                newer.version,
                f"answers worse than version {older.version} served before it ("
                + "; ".join(f"{m} {n:.4f} < {o:.4f} - {tolerance[m]}" for m, n, o in drops)
                + ")",
                previous_version=older.version,
                realized=newer.realized,
                previous_realized=older.realized,
                tolerance=tolerance,
            )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def write_report(report: MonitorReport, path: Path | None = None) -> Path:
    """Write the report as JSON (default `<root>/monitor/monitor-<UTC time>.json`); its path."""
    if path is None:
        folder = Path(report.root) / MONITOR_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"monitor-{report.created.replace(':', '').replace('-', '')}.json"
    path.write_text(report.to_json())
    return path


def alert_findings(report: MonitorReport, url: str | None) -> int:
    """One alert per version and kind of finding; how many were delivered."""
    from pipeline.ops.alerts import send_alert

    grouped: dict[tuple[int, str], list[Finding]] = {}
    for item in report.findings:
        grouped.setdefault((item.version, item.kind), []).append(item)
    delivered = 0
    for (version, kind), items in grouped.items():
        text = f"monitor of {report.root}: version {version} {kind}: " + "; ".join(i.text for i in items)
        delivered += send_alert(
            url, kind, text, version=version, findings=[dataclasses.asdict(i) for i in items]
        )
    return delivered
