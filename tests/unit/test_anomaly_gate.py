"""AnomalyGate executor on real ExampleAnomalies artifacts written to a temp folder."""

import os

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts

from components.anomaly_gate import spec
from components.anomaly_gate.executor import Executor
from components.shared import DataAnomalyError


def anomalies_artifact(tmp_path, by_split: dict[str, anomalies_pb2.Anomalies]):
    artifact = standard_artifacts.ExampleAnomalies()
    artifact.uri = str(tmp_path / "anomalies")
    artifact.split_names = artifact_utils.encode_split_names(sorted(by_split))
    for split, proto in by_split.items():
        folder = os.path.join(artifact.uri, f"Split-{split}")
        os.makedirs(folder)
        with open(os.path.join(folder, spec.ANOMALIES_FILE_NAME), "wb") as handle:
            handle.write(proto.SerializeToString())
    return artifact


def unexpected_payment_type() -> anomalies_pb2.Anomalies:
    proto = anomalies_pb2.Anomalies()
    info = proto.anomaly_info["payment_type"]
    info.description = "Examples contain values missing from the schema: Bitcoin (~50%)."
    reason = info.reason.add()
    reason.type = anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES
    reason.description = "Examples contain values missing from the schema: Bitcoin (~50%)."
    return proto


def test_clean_data_passes(tmp_path):
    artifact = anomalies_artifact(
        tmp_path, {"train": anomalies_pb2.Anomalies(), "eval": anomalies_pb2.Anomalies()}
    )
    Executor().Do({spec.ANOMALIES_KEY: [artifact]}, {}, {})


def test_each_anomaly_is_listed_with_split_feature_and_kind(tmp_path):
    missing_column = anomalies_pb2.Anomalies()
    reason = missing_column.anomaly_info["company"].reason.add()
    reason.type = anomalies_pb2.AnomalyInfo.SCHEMA_MISSING_COLUMN
    reason.description = "Column is completely missing"
    artifact = anomalies_artifact(tmp_path, {"train": unexpected_payment_type(), "eval": missing_column})
    with pytest.raises(DataAnomalyError) as error:
        Executor().Do({spec.ANOMALIES_KEY: [artifact]}, {}, {})
    message = str(error.value)
    assert "2 anomalies" in message
    assert "[train] feature 'payment_type': ENUM_TYPE_UNEXPECTED_STRING_VALUES: " in message
    assert "Bitcoin" in message
    assert "[eval] feature 'company': SCHEMA_MISSING_COLUMN: Column is completely missing" in message
