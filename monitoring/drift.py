"""Prediction drift: what a version answered in production against what it answered on eval.

The served probabilities of a version (from the prediction logs) against the version's own
probabilities on its eval split (what the Evaluator scored, recomputed through its
`serving_default` signature), as the Jensen-Shannon divergence of the two over
PREDICTION_BINS equal bins of [0, 1]. The threshold is the largest divergence between the
Evaluator's eval predictions and real served ones: see `benchmarks/studies/skew_variation.py`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitoring.lineage import LineageError, VersionLineage, served_model_dir
from monitoring.prediction_logs import LoggedExamples
from monitoring.report import CheckLog, VersionReport
from monitoring.skew import MIN_SERVED_EXAMPLES

PREDICTION_BINS = 10
PREDICTION_DRIFT_THRESHOLD = 0.02
# Eval examples scored per call of the signature.
SCORE_BATCH = 1024


def prediction_histogram(probabilities: np.ndarray) -> np.ndarray:
    """Fractions of `probabilities` in PREDICTION_BINS equal bins of [0, 1]."""
    values = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 0.0, 1.0)
    counts, _ = np.histogram(values, bins=PREDICTION_BINS, range=(0.0, 1.0))
    return counts / max(counts.sum(), 1)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two discrete distributions."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return max(0.0, (kl(p, m) + kl(q, m)) / 2)


def prediction_drift(served: np.ndarray, reference: np.ndarray) -> float:
    """Jensen-Shannon divergence of served probabilities against reference ones (binned)."""
    return jensen_shannon(prediction_histogram(served), prediction_histogram(reference))


def reference_predictions(model_dir: str, eval_files: list[str]) -> np.ndarray:
    """The version's own probabilities on its eval split (serving_default, as the Evaluator scores)."""
    import tensorflow as tf

    from data.tfrecords import read_tfrecords
    from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, SERVING_SIGNATURE

    examples = read_tfrecords(eval_files)
    serving_fn = tf.saved_model.load(model_dir).signatures[SERVING_SIGNATURE]
    batches = [
        serving_fn(**{EXAMPLES_INPUT: tf.constant(examples[i : i + SCORE_BATCH])})[PREDICTION_KEY]
        .numpy()
        .ravel()
        for i in range(0, len(examples), SCORE_BATCH)
    ]
    return np.concatenate(batches) if batches else np.zeros(0)


def check_prediction_drift(
    report: VersionReport,
    served: LoggedExamples,
    lineage: VersionLineage,
    serving_dir: Path,
    checks: CheckLog,
) -> None:
    """Drift of one version's served probabilities from its eval ones, into `report` and `checks`.

    Not checked (noted) when the version's model or eval split cannot be read; silently not
    checked below MIN_SERVED_EXAMPLES served examples or without eval examples.
    """
    version = report.version
    try:
        model_dir = served_model_dir(lineage, serving_dir)
        reference = reference_predictions(model_dir, lineage.eval_files())
    except (LineageError, OSError) as error:
        reference = np.zeros(0)
        report.notes.append(f"prediction drift not checked: {error}")
    if not len(reference) or len(served) < MIN_SERVED_EXAMPLES:
        return
    drift = prediction_drift(served.predictions, reference)
    report.prediction_drift, report.eval_mean = drift, float(reference.mean())
    text = (
        f"Jensen-Shannon {drift:.4f} {'>' if drift > PREDICTION_DRIFT_THRESHOLD else '<='} "
        f"{PREDICTION_DRIFT_THRESHOLD} (served mean {report.served_mean:.3f}, "
        f"eval mean {report.eval_mean:.3f})"
    )
    if drift > PREDICTION_DRIFT_THRESHOLD:
        checks.finding(
            "prediction_drift",
            version,
            text,
            distance=drift,
            threshold=PREDICTION_DRIFT_THRESHOLD,
            served_mean=report.served_mean,
            eval_mean=report.eval_mean,
        )
    else:
        checks.ok(version, "prediction drift", text)
