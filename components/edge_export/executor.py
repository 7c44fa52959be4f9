"""EdgeExport executor: convert to int8 TFLite, run the edge gate, write model, verdict and metadata.

A refusal is not an error: the run completes and the SavedModel is pushed as ever; the
EdgeModel artifact keeps the flatbuffer and the verdict that says why, and the Pusher (which
reads its `blessed` property) leaves the edge folder alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import numpy as np
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.edge_export import spec
from components.serving_gate import spec as serving_gate_spec
from components.shared import releases_memory, split_files
from data.tfrecords import count_tfrecords, read_tfrecords_at
from models import edge, record_counts
from models.signatures import PREDICTION_KEY, RAW_SIGNATURE, missing_marker
from serving import edge_gate_checks as edge_checks
from serving.replay_data import examples_to_raw
from serving.replay_source import ReplaySource
from serving.request_checks import serving_raw_specs

log = logging.getLogger(__name__)


def _reference(input_dict, model_dir: str, count: int):
    """The SavedModel side of the agreement check: the serving gate's answers when it saved them."""
    if input_dict.get(spec.SERVING_BLESSING_KEY):
        blessing = artifact_utils.get_single_instance(input_dict[spec.SERVING_BLESSING_KEY])
        path = os.path.join(blessing.uri, serving_gate_spec.RAW_ANSWERS_FILE_NAME)
        if fileio.exists(path):
            with fileio.open(path, "rb") as handle:
                answers = np.load(handle)
            if answers.shape == (count,):
                return answers, path
            log.warning("ignoring %s: %s answers for %d examples", path, answers.shape, count)
    return model_dir, model_dir


def _marker_text(dtype):
    """The missing-value marker as JSON can hold it (NaN as the text "NaN")."""
    marker = missing_marker(dtype)
    if isinstance(marker, bytes):
        return marker.decode()
    return "NaN" if isinstance(marker, float) and np.isnan(marker) else marker


def edge_metadata(flatbuffer: bytes, verdict, **extra) -> dict:
    """What an app needs to call the model, and what the gate measured."""
    figures = {check.name: check.figures for check in verdict.checks if check.figures}
    agreement = figures.get("agreement", {})
    return {
        "signature": RAW_SIGNATURE,
        "inputs": [
            {
                "name": name,
                "dtype": s.dtype.name,
                "shape": [-1],
                "missing": _marker_text(s.dtype),
            }
            for name, s in sorted(serving_raw_specs().items())
        ],
        "output": {"name": PREDICTION_KEY, "dtype": "float32", "shape": [-1, 1]},
        "bytes": len(flatbuffer),
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "blessed": verdict.blessed,
        "gate": {
            "summary": verdict.summary(),
            "examples": verdict.examples,
            "edge": agreement.get("edge"),
            "saved_model": agreement.get("saved_model"),
            "max_abs_difference": agreement.get("max_abs_difference"),
            "mean_abs_difference": agreement.get("mean_abs_difference"),
        },
        **extra,
    }


class Executor(base_executor.BaseExecutor):
    """Calibrates on seeded training trips, converts, gates on the eval split."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        output = artifact_utils.get_single_instance(output_dict[spec.EDGE_MODEL_KEY])
        split = exec_properties[spec.SPLIT_KEY]
        calibration_split = exec_properties[spec.CALIBRATION_SPLIT_KEY]
        count = int(exec_properties[spec.REPRESENTATIVE_TRIPS_KEY])
        seed = int(exec_properties[spec.SEED_KEY])
        model_dir = path_utils.serving_model_path(model.uri)

        started = time.perf_counter()
        # The split's size and each file's from the counts ExampleGen recorded (else a
        # counting pass); then only the files holding a chosen row are read, each up to its
        # last one. Never all of it in memory (at 1,000x ten million trips, for 100 of them).
        calibration_files = split_files(examples, calibration_split)
        counts = record_counts.recorded_counts(calibration_files)
        total = sum(counts) if counts is not None else count_tfrecords(calibration_files)
        rows = edge.representative_rows(total, count, seed)
        calibration = np.array(read_tfrecords_at(calibration_files, rows, counts), dtype=object)
        raw = examples_to_raw(calibration, serving_raw_specs())
        samples = [{k: v[i : i + 1] for k, v in raw.items()} for i in range(count)]
        serialized = ReplaySource.from_files(split_files(examples, split))
        name = f"the int8 edge model of {model_dir}"
        tolerances = {
            "accuracy_tolerance": float(exec_properties[spec.ACCURACY_TOLERANCE_KEY]),
            "auc_tolerance": float(exec_properties[spec.AUC_TOLERANCE_KEY]),
        }
        try:
            flatbuffer = edge.convert(model_dir, "int8", samples)
        except edge.CONVERSION_ERRORS as error:
            # A model that does not convert is refused at the edge, not a failed run: the
            # SavedModel's push does not depend on it.
            flatbuffer = b""
            verdict = edge_checks.conversion_refusal(name, len(serialized), error, **tolerances)
        converted = time.perf_counter()
        reference_source = None
        if flatbuffer:
            reference, reference_source = _reference(input_dict, model_dir, len(serialized))
            verdict = edge_checks.run_edge_checks(
                flatbuffer, serialized, reference=reference, name=name, **tolerances
            )
        gated = time.perf_counter()

        fileio.makedirs(output.uri)
        if flatbuffer:
            with fileio.open(os.path.join(output.uri, spec.MODEL_FILE_NAME), "wb") as handle:
                handle.write(flatbuffer)
        with fileio.open(os.path.join(output.uri, spec.VERDICT_FILE_NAME), "w") as handle:
            handle.write(verdict.to_json())
        metadata = edge_metadata(
            flatbuffer,
            verdict,
            variant="int8",
            representative={"split": calibration_split, "trips": count, "seed": seed},
            gate_split=split,
            saved_model=model_dir,
            reference=reference_source,
            seconds={"convert": round(converted - started, 3), "gate": round(gated - converted, 3)},
        )
        with fileio.open(os.path.join(output.uri, spec.METADATA_FILE_NAME), "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        output.set_int_custom_property(spec.BLESSED_PROPERTY, int(verdict.blessed))
        output.set_string_custom_property(spec.VERDICT_PROPERTY, verdict.summary())
        output.set_int_custom_property(spec.BYTES_PROPERTY, len(flatbuffer))
        if verdict.blessed:
            log.info("EdgeExport %s (%d bytes)", verdict.summary(), len(flatbuffer))
        else:
            log.error(
                "Edge gate REFUSED the int8 model of %s (the SavedModel push is unaffected):\n%s",
                model_dir,
                verdict.format(),
            )
