"""Realized quality: what the served versions answered, held to what really happened.

With `monitor --labels`, the logged predictions are joined by key to the trips' real outcomes
(`load_labels`: a CSV keyed by `trip_id`, or a span's CSVs keyed by file and line as a replay
sends them); accuracy and AUC of what was served, overall and per slice, are held to the
Evaluator's figures for that version (`check_realized`) and to the realized figures of the
version served before it, on the labelled trips each answered (`compare_versions`). Figures
are computed as the serving gate computes them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from monitoring.lineage import VersionLineage
from monitoring.prediction_logs import LoggedExamples
from monitoring.report import CheckLog, MonitorError, VersionReport

# Realized accuracy/AUC may sit this far below the Evaluator's (or the previous version's)
# before it is a finding: 1.5x the largest drop of a healthy model's next week from its
# Evaluator figures on a replay of the embedded weeks, rounded up (the drops:
# benchmarks/studies/realized_variation.py).
DEFAULT_QUALITY_TOLERANCE = {"accuracy": 0.055, "auc": 0.035}
# Fewer labelled trips than this and realized figures are not compared (AUC's standard error
# would be a large share of its tolerance); slices need MIN_SLICE trips to be reported.
MIN_LABELLED = 500
MIN_SLICE = 100


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

    from serving.gate_checks import accuracy, auc

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


def realized_quality(logged: LoggedExamples, labels: dict) -> dict | None:
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


# ------------------------------------------------------------------ the monitor's checks


def evaluator_figures(lineage: VersionLineage) -> dict | None:
    """The Evaluator's overall accuracy and AUC of the version (None: no evaluation recorded)."""
    from serving.eval_results import evaluation_metrics

    if not lineage.evaluation_uri:
        return None
    overall = evaluation_metrics(lineage.evaluation_uri)[0]
    return {"accuracy": overall.get("binary_accuracy"), "auc": overall.get("auc")}


def check_quality(
    report: VersionReport,
    served: LoggedExamples,
    lineage: VersionLineage,
    labels: dict | None,
    tolerance: dict[str, float],
    checks: CheckLog,
) -> None:
    """The Evaluator's figures of a version and, with labels, its realized ones, into `report`."""
    evaluator = evaluator_figures(lineage)
    if evaluator is not None:
        report.evaluator = evaluator
    if labels is not None:
        report.realized = realized_quality(served, labels)
        check_realized(report, tolerance, checks)


def check_realized(report: VersionReport, tolerance: dict[str, float], checks: CheckLog) -> None:
    """Hold a version's realized figures (already in `report`) to the Evaluator's, into `checks`."""
    version, realized = report.version, report.realized
    if realized is None:
        report.notes.append("realized quality: no logged prediction has a key with an outcome")
        checks.skipped(version, "realized quality", "no logged key found in the labels")
        return
    figures = (
        f"accuracy {realized['accuracy']:.4f}, AUC {_fmt(realized['auc'])} "
        f"on {realized['examples']:,} labelled trips"
    )
    if realized["examples"] < MIN_LABELLED:
        report.notes.append(
            f"realized quality not compared: {realized['examples']} labelled trips < {MIN_LABELLED}"
        )
        checks.skipped(version, "realized quality", f"{figures} (fewer than {MIN_LABELLED} to compare)")
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
        checks.finding(
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
        checks.ok(version, "realized quality", f"{figures} ({versus}; {tolerances})")


def compare_versions(reports: list[VersionReport], tolerance: dict[str, float], checks: CheckLog) -> None:
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
            checks.finding(
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
