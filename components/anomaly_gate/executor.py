"""AnomalyGate executor: fail with every anomaly spelled out, or pass silently."""

from __future__ import annotations

import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils

from components.anomaly_gate import spec
from components.shared import DataAnomalyError


def load_anomalies(anomalies_artifact) -> dict[str, anomalies_pb2.Anomalies]:
    """Split name -> Anomalies proto, read from an ExampleAnomalies artifact."""
    result = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(
            artifact_utils.get_split_uri([anomalies_artifact], split), spec.ANOMALIES_FILE_NAME
        )
        proto = anomalies_pb2.Anomalies()
        with fileio.open(path, "rb") as handle:
            proto.ParseFromString(handle.read())
        result[split] = proto
    return result


def describe_anomalies(anomalies_by_split: dict[str, anomalies_pb2.Anomalies]) -> list[str]:
    """One line per anomaly: split, feature, kind and TFDV's description."""
    lines = []
    for split, anomalies in sorted(anomalies_by_split.items()):
        for feature, info in sorted(anomalies.anomaly_info.items()):
            for reason in info.reason or [None]:
                kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type) if reason else "UNKNOWN_TYPE"
                description = (reason.description if reason else "") or info.description
                lines.append(f"[{split}] feature '{feature}': {kind}: {description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            for reason in info.reason:
                kind = anomalies_pb2.AnomalyInfo.Type.Name(reason.type)
                lines.append(f"[{split}] dataset: {kind}: {reason.description or info.description}")
    return lines


class Executor(base_executor.BaseExecutor):
    """Raises `DataAnomalyError` listing each anomaly, so nothing downstream runs."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        artifact = artifact_utils.get_single_instance(input_dict[spec.ANOMALIES_KEY])
        lines = describe_anomalies(load_anomalies(artifact))
        if lines:
            raise DataAnomalyError(
                f"ExampleValidator found {len(lines)} anomal{'y' if len(lines) == 1 else 'ies'}; "
                "the run stops before Transform and nothing is pushed:\n  " + "\n  ".join(lines)
            )
