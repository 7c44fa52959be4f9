"""Training-serving skew: TFDV statistics of served examples against a version's training statistics.

The distances are TFDV's own (`tfdv.validate_statistics(..., serving_statistics=...)`): the
schema's `skew_comparator`s define them (L-infinity for the categorical `payment_type` and
`company`, Jensen-Shannon divergence for the numerical features) and their thresholds, which
`benchmarks/skew_variation.py` derives from real week-to-week variation. Statistics of served
examples are computed the way StatisticsGen computes the training ones: the tf.Examples are
decoded to Arrow by tfx_bsl's decoder and summarised by TFDV, in memory.

Shared by `python -m pipeline monitor` (over the prediction logs) and the model server (over
a rolling window of recent requests, exported on /metrics). Also the prediction-drift distance:
the Jensen-Shannon divergence of two sets of probabilities over ten equal bins of [0, 1].
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx_bsl.coders import example_coder

from models import features

log = logging.getLogger("taxi.skew")

MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon",
}

# Fewer served examples than this and the distances are noise (skew_variation.py's table).
MIN_SERVED_EXAMPLES = 800

# Prediction drift: bins of the probabilities, and the largest Jensen-Shannon divergence
# between the Evaluator's eval predictions and real served ones (skew_variation.py).
PREDICTION_BINS = 10
PREDICTION_DRIFT_THRESHOLD = 0.02


@dataclasses.dataclass(frozen=True)
class Distance:
    """One feature's distance between served and training data, and its threshold."""

    feature: str
    measure: str
    value: float
    threshold: float

    @property
    def skewed(self) -> bool:
        return self.value > self.threshold

    def describe(self) -> str:
        sign = ">" if self.skewed else "<="
        return f"{self.feature}: {self.measure} {self.value:.3f} {sign} {self.threshold:.3f}"


def examples_statistics(serialized: Sequence[bytes]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the raw serving features of serialized tf.Examples (as StatisticsGen's)."""
    if not serialized:
        raise ValueError("no examples to compute statistics of")
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(list(serialized))
    wanted = [name for name in features.serving_raw_features() if name in batch.schema.names]
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions(feature_allowlist=wanted))


def skew_distances(
    served: statistics_pb2.DatasetFeatureStatisticsList,
    training: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
) -> list[Distance]:
    """Every distance the schema's skew comparators define, served against training, by feature."""
    anomalies = tfdv.validate_statistics(training, schema, environment="TRAINING", serving_statistics=served)
    result = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.skew_measurements:
            measure = MEASURE_NAMES.get(measurement.type)
            if measure:
                result.append(Distance(name, measure, measurement.value, measurement.threshold))
    return sorted(result, key=lambda d: d.feature)


def skew_features(schema: schema_pb2.Schema) -> list[str]:
    """The features the schema gives a skew comparator."""
    return sorted(f.name for f in schema.feature if f.HasField("skew_comparator"))


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


# ------------------------------------------------------------------ live, in the model server


@dataclasses.dataclass(frozen=True)
class Reference:
    """What a served version's requests are compared with: its training statistics, eval mean."""

    statistics: statistics_pb2.DatasetFeatureStatisticsList
    mean_prediction: float | None = None


class RollingSkew:
    """Skew distances of the last `window` answered examples, exported as Prometheus gauges.

    The prediction log's writer thread hands every answered example to `observe` (off the
    request path); a thread of its own recomputes the distances every `interval_s` against the
    training statistics of the version that answered the newest example (`reference_for`,
    looked up once per version; None when the version's lineage is unknown, and then nothing is
    exported for it). Below MIN_SERVED_EXAMPLES examples of that version nothing is computed.
    """

    def __init__(
        self,
        reference_for,
        schema: schema_pb2.Schema,
        window: int = 1000,
        interval_s: float = 10.0,
    ):
        import collections

        from prometheus_client import Gauge

        self.reference_for = reference_for
        self.schema = schema
        self.interval_s = interval_s
        self.window = window
        self._items = collections.deque(maxlen=window)  # (version, serialized, prediction)
        self._references: dict[int, Reference | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self.last: list[Distance] = []
        self.gauges = _gauges(Gauge)

    def observe(self, records: list[bytes], predictions, versions) -> None:
        """Add answered examples (the prediction log's writer thread calls this)."""
        with self._lock:
            self._items.extend(zip(versions.tolist(), records, predictions.tolist()))

    def reference(self, version: int) -> Reference | None:
        if version not in self._references:
            try:
                self._references[version] = self.reference_for(version)
            except Exception as error:  # noqa: BLE001 - unknown lineage: no live skew, say why
                log.warning("no training statistics for version %s (%s): no live skew", version, error)
                self._references[version] = None
        return self._references[version]

    def update(self) -> list[Distance]:
        """Recompute the distances and the gauges now; the distances (empty: too few examples)."""
        with self._lock:
            items = list(self._items)
        if not items:
            return []
        version = items[-1][0]
        mine = [(record, prediction) for v, record, prediction in items if v == version]
        skew_gauge, threshold_gauge, count_gauge, mean_gauge, reference_gauge = self.gauges
        count_gauge.set(len(mine))
        mean_gauge.set(float(np.mean([p for _, p in mine])))
        reference = self.reference(version)
        if reference is None or len(mine) < MIN_SERVED_EXAMPLES:
            return []
        if reference.mean_prediction is not None:
            reference_gauge.set(reference.mean_prediction)
        found = skew_distances(examples_statistics([r for r, _ in mine]), reference.statistics, self.schema)
        for distance in found:
            skew_gauge.labels(distance.feature, distance.measure).set(distance.value)
            threshold_gauge.labels(distance.feature, distance.measure).set(distance.threshold)
        self.last = found
        return found

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.interval_s):
                try:
                    self.update()
                except Exception:  # noqa: BLE001 - the gauges must outlive one bad window
                    log.exception("live skew update failed")

        self._thread = threading.Thread(target=loop, name="live-skew", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


_GAUGES = None


def _gauges(gauge_type):
    """The live-skew gauges (created once per process: Prometheus names are global)."""
    global _GAUGES
    if _GAUGES is None:
        _GAUGES = (
            gauge_type(
                "taxi_serving_feature_skew",
                "Skew distance of recent requests from the served version's training data",
                ["feature", "measure"],
            ),
            gauge_type(
                "taxi_serving_feature_skew_threshold",
                "The schema's skew threshold of the feature",
                ["feature", "measure"],
            ),
            gauge_type(
                "taxi_serving_skew_window_examples", "Examples of the served version in the skew window"
            ),
            gauge_type("taxi_serving_prediction_mean", "Mean served probability over the skew window"),
            gauge_type(
                "taxi_serving_prediction_mean_reference",
                "The Evaluator's mean prediction on eval for the served version",
            ),
        )
    return _GAUGES
