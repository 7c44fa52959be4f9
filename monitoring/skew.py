"""Training-serving skew: TFDV statistics of served examples against a version's training statistics.

The distances are TFDV's own (`tfdv.validate_statistics(..., serving_statistics=...)`): the
schema's `skew_comparator`s define them (L-infinity for the categorical `payment_type` and
`company`, Jensen-Shannon divergence for the numerical features) and their thresholds, which
`benchmarks/studies/skew_variation.py` derives from real week-to-week variation. Statistics of
served examples are computed the way StatisticsGen computes the training ones: the tf.Examples
are decoded to Arrow by tfx_bsl's decoder and summarised by TFDV, in memory.

Two users: `python -m pipeline monitor` (`check_skew`, over the prediction logs) and the model
server's live skew (`RollingSkew`, over a rolling window of recent requests, exported on
/metrics). The live tracker lives here, not in `serving/`, and the server never imports it:
`serving/server.py` takes a started-and-stopped tracker (`live_skew=`) and the prediction
logger takes observers of what it writes, both handed in by `pipeline/cli/serving.py`, which
builds a `RollingSkew` with `reference_for` (a version's training statistics, found through
ML Metadata lineage). So the model server needs neither TFDV's validation nor ML Metadata, and
the layering (monitoring above serving) holds.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx_bsl.coders import example_coder

from models import features
from monitoring.lineage import LineageError, VersionLineage, version_lineage
from monitoring.prediction_logs import LoggedExamples
from monitoring.report import CheckLog, VersionReport

log = logging.getLogger("taxi.skew")

MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon",
}

# Fewer served examples than this and the distances are noise (the sample-size table of
# benchmarks/studies/skew_variation.py). Prediction drift waits for as many.
MIN_SERVED_EXAMPLES = 800


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


# ------------------------------------------------------------------ the monitor's check


def check_skew(
    report: VersionReport,
    served: LoggedExamples,
    lineage: VersionLineage,
    schema: schema_pb2.Schema,
    checks: CheckLog,
) -> None:
    """Skew of one version's logged requests from its training statistics, into `report` and `checks`.

    A finding per feature beyond its threshold; skipped (and noted) without training
    statistics, below MIN_SERVED_EXAMPLES logged examples, or without skew comparators.
    """
    version = report.version
    stats_path = lineage.training_statistics_path()
    if stats_path is None:
        report.notes.append("skew not checked: no training statistics recorded")
        checks.skipped(version, "skew", "no training statistics recorded")
        return
    if len(served) < MIN_SERVED_EXAMPLES:
        report.notes.append(f"skew not checked: {len(served)} examples < {MIN_SERVED_EXAMPLES}")
        checks.skipped(
            version,
            "skew",
            f"{len(served)} logged examples, fewer than the {MIN_SERVED_EXAMPLES} a comparison needs",
        )
        return
    distances = skew_distances(
        examples_statistics(served.serialized), tfdv.load_stats_binary(stats_path), schema
    )
    report.skew = [dataclasses.asdict(d) for d in distances]
    skewed = [d for d in distances if d.skewed]
    for distance in skewed:
        checks.finding(
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
        checks.skipped(version, "skew", "the schema defines no skew comparator")
    elif not skewed:
        worst = max(distances, key=lambda d: d.value / d.threshold)
        checks.ok(
            version, "skew", f"{len(distances)} features within thresholds (closest: {worst.describe()})"
        )


# ------------------------------------------------------------------ live, in the model server


@dataclasses.dataclass(frozen=True)
class Reference:
    """What a served version's requests are compared with: its training statistics, eval mean."""

    statistics: statistics_pb2.DatasetFeatureStatisticsList
    mean_prediction: float | None = None


def reference_for(metadata_path: str | Path):
    """A function version -> Reference, for the model server's live skew (via ML Metadata lineage)."""

    def lookup(version: int) -> Reference:
        from serving.eval_results import evaluation_metrics

        lineage = version_lineage(metadata_path, version)
        path = lineage.training_statistics_path()
        if path is None:
            raise LineageError(f"version {version}: no training statistics recorded")
        mean = None
        if lineage.evaluation_uri:
            mean = evaluation_metrics(lineage.evaluation_uri)[0].get("mean_prediction")
        return Reference(tfdv.load_stats_binary(path), mean)

    return lookup


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
