"""Span statistics and drift distances (TFDV), shared by the DriftGate and the threshold study.

Statistics come straight from a span's CSV files (pandas + TFDV, well under a second per span
here); the distances are TFDV's own: L-infinity for categorical features, Jensen-Shannon
divergence for numerical ones, as configured by the schema's `drift_comparator`s.
"""

from __future__ import annotations

import dataclasses
import io
import os

import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2
from tfx.dsl.io import fileio

from models import features

MEASURE_NAMES = {
    anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
    anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "Jensen-Shannon",
}


@dataclasses.dataclass(frozen=True)
class Distance:
    """One feature's distance between two spans, and the schema's threshold for it."""

    feature: str
    measure: str
    value: float
    threshold: float

    @property
    def drifted(self) -> bool:
        return self.value > self.threshold

    def describe(self) -> str:
        return f"{self.feature}: {self.measure} {self.value:.3f} > {self.threshold:.3f}"


def span_files(data_root: str, span_pattern: str, span: int) -> list[str]:
    """The files of one span (`span_pattern` with `{SPAN}` under `data_root`)."""
    return sorted(fileio.glob(os.path.join(data_root, span_pattern.replace("{SPAN}", str(span)))))


def span_statistics(files: list[str]) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the rows of `files` (CSV with the taxi columns)."""
    if not files:
        raise FileNotFoundError("no files for the span")
    frame = pd.concat([_read_csv(f) for f in files], ignore_index=True)
    return tfdv.generate_statistics_from_dataframe(frame)


def _read_csv(path: str) -> pd.DataFrame:
    # pandas opens a bucket URI only with gcsfs installed, and its parser wants a file object
    # that TensorFlow's GFile is not quite: the bytes are read through fileio and parsed here.
    with fileio.open(path, "rb") as handle:
        data = io.BytesIO(handle.read())
    return pd.read_csv(data, dtype={c: str for c in features.RAW_STRING_COLUMNS})


def distances(
    current: statistics_pb2.DatasetFeatureStatisticsList,
    previous: statistics_pb2.DatasetFeatureStatisticsList,
    schema: schema_pb2.Schema,
) -> list[Distance]:
    """Every distance the schema's drift comparators define, current span against previous."""
    anomalies = tfdv.validate_statistics(
        current, schema, previous_statistics=previous, environment="TRAINING"
    )
    result = []
    for info in anomalies.drift_skew_info:
        name = ".".join(info.path.step)
        for measurement in info.drift_measurements:
            measure = MEASURE_NAMES.get(measurement.type)
            if measure:
                result.append(Distance(name, measure, measurement.value, measurement.threshold))
    return sorted(result, key=lambda d: d.feature)
