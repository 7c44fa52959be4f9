"""WebExport executor: convert `serving_web` to TF.js, run the web gate in Chromium, write model and metadata.

A refusal is not an error: the run completes and the SavedModel is pushed as ever; the
WebModel artifact keeps the converted model (when there is one) and the verdict that says
why, and the Pusher (which reads its `blessed` property) leaves the web folder alone. A
machine without Chromium or the npm packages gets a refusal that names what is missing.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
import time

import numpy as np
import tensorflow as tf
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components.shared import releases_memory, split_files
from components.web_export import spec
from data.tfrecords import read_tfrecords_at
from models import record_counts, web, web_convert
from models.signatures import PREDICTION_KEY, RAW_SIGNATURE, missing_marker
from serving import web_browser
from serving import web_gate_checks as web_checks
from serving.replay_data import examples_to_raw, labels_of
from serving.request_checks import serving_raw_specs

log = logging.getLogger(__name__)

# Trips per TF.js call in the gate (the browser's batch), trips the gate also runs one at a
# time, and trips per raw feature set to its missing marker.
BATCH_SIZE = 512
SINGLE_TRIPS = 32
MARKER_TRIPS = 4
ENCODER = str(web_browser.WEB_DIR / spec.ENCODER_FILE_NAME)


def _not_pushed(input_dict) -> str | None:
    """Why the model will not be pushed (a blessing says no), or None."""
    for key, who in (
        (spec.MODEL_BLESSING_KEY, "the Evaluator"),
        (spec.INFRA_BLESSING_KEY, "the serving gate"),
    ):
        if input_dict.get(key):
            blessing = artifact_utils.get_single_instance(input_dict[key])
            if blessing.has_custom_property("blessed") and blessing.get_int_custom_property("blessed") != 1:
                return f"{who} did not bless the model, so it is not pushed"
    return None


def gate_rows(total: int, max_trips: int, seed: int) -> np.ndarray:
    """Every row when the split holds at most `max_trips`, else a seeded sample of that size (sorted)."""
    if total <= max_trips:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, max_trips, replace=False))


def with_markers(
    raw: dict[str, np.ndarray], count: int = MARKER_TRIPS
) -> tuple[dict[str, np.ndarray], list[str]]:
    """`raw` followed by, per feature, its first `count` trips with that feature set to its missing marker."""
    specs = serving_raw_specs()
    names = sorted(raw)
    columns = {k: [v] for k, v in raw.items()}
    marked = []
    for name in names:
        for key in names:
            head = raw[key][:count].copy()
            if key == name:
                head[:] = missing_marker(specs[key].dtype)
            columns[key].append(head)
        marked.extend([name] * min(count, len(raw[name])))
    return {k: np.concatenate(v) for k, v in columns.items()}, marked


def saved_model_answers(model_dir: str, raw: dict[str, np.ndarray], chunk: int = 4096) -> np.ndarray:
    """The SavedModel's `serving_raw` probabilities on `raw`, in chunks."""
    signature = tf.saved_model.load(model_dir).signatures[RAW_SIGNATURE]
    size = len(next(iter(raw.values())))
    answers = [
        signature(**{k: tf.constant(v[start : start + chunk]) for k, v in raw.items()})[
            PREDICTION_KEY
        ].numpy()
        for start in range(0, size, chunk)
    ]
    return np.concatenate(answers).reshape(-1).astype(np.float32)


def web_inputs(model_dir: str) -> list[dict]:
    """The web inputs' description the Trainer exported with the SavedModel."""
    path = os.path.join(model_dir, web.WEB_INPUTS_FILE)
    if not fileio.exists(path):
        raise web_convert.WebConversionError(
            f"{model_dir} carries no {web.WEB_INPUTS_FILE} (exported before the web signature)"
        )
    with fileio.open(path) as handle:
        return json.load(handle)["inputs"]


def model_files(folder: str) -> dict[str, dict]:
    """Name -> bytes, gzipped bytes and sha256 of each file of a converted model (model.json, shards)."""
    files = {}
    for name in sorted(fileio.listdir(folder)):
        with fileio.open(os.path.join(folder, name), "rb") as handle:
            data = handle.read()
        files[name] = {
            "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, mtime=0)),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return files


def web_metadata(files: dict[str, dict], inputs: list[dict], verdict, **extra) -> dict:
    """What a page needs to call the model, and what the gate measured."""
    figures = {check.name: check.figures for check in verdict.checks if check.figures}
    return {
        "signature": web.WEB_SIGNATURE,
        "format": "tfjs-graph-model",
        "model": spec.MODEL_JSON,
        "encoder": spec.ENCODER_FILE_NAME,
        "inputs": inputs,
        "output": {"name": PREDICTION_KEY, "dtype": "float32", "shape": [-1, 1]},
        "files": files,
        "bytes": sum(f["bytes"] for f in files.values()),
        "gzip_bytes": sum(f["gzip_bytes"] for f in files.values()),
        "sha256": hashlib.sha256("".join(f["sha256"] for f in files.values()).encode()).hexdigest(),
        "blessed": verdict.blessed,
        "gate": {"summary": verdict.summary(), "examples": verdict.examples, "figures": figures},
        **extra,
    }


class Executor(base_executor.BaseExecutor):
    """Converts, replays the eval split (or its sample) in Chromium on each backend, judges."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        examples = artifact_utils.get_single_instance(input_dict[spec.EXAMPLES_KEY])
        output = artifact_utils.get_single_instance(output_dict[spec.WEB_MODEL_KEY])
        split = exec_properties[spec.SPLIT_KEY]
        max_trips = int(exec_properties[spec.MAX_TRIPS_KEY])
        seed = int(exec_properties[spec.SEED_KEY])
        max_difference = float(exec_properties[spec.MAX_DIFFERENCE_KEY])
        backends = [b.strip() for b in exec_properties[spec.BACKENDS_KEY].split(",") if b.strip()]
        model_dir = path_utils.serving_model_path(model.uri)
        name = f"the TF.js model of {model_dir}"
        tolerances = {"max_difference": max_difference, "metrics_decimals": 4}

        started = time.perf_counter()
        not_pushed = _not_pushed(input_dict)
        files = split_files(examples, split)
        counts = record_counts.recorded_counts(files)
        total = sum(counts) if counts else None
        fileio.makedirs(output.uri)
        seconds: dict[str, float] = {}
        extra: dict = {"saved_model": model_dir, "gate_split": split}
        inputs: list[dict] = []
        with tempfile.TemporaryDirectory() as local:
            converted = os.path.join(local, "model")
            if not_pushed:
                converted = None
                verdict = web_checks.browser_refusal(
                    name, total or 0, f"{web_checks.NOT_RUN}{not_pushed}", tolerances
                )
            else:
                try:
                    inputs = web_inputs(model_dir)
                    extra["ops"] = web_convert.convert(model_dir, converted)
                except web_convert.WebConversionError as error:
                    converted = None
                    verdict = web_checks.browser_refusal(
                        name, total or 0, f"not converted: {error}", tolerances
                    )
            seconds["convert"] = round(time.perf_counter() - started, 3)
            reason = web_browser.unavailable() if converted else None
            if reason:
                verdict = web_checks.browser_refusal(
                    name, total or 0, f"the web gate cannot run here: {reason}", tolerances
                )
            elif converted:
                verdict, extra["browser"], extra["sample"] = self._gate(
                    converted,
                    model_dir,
                    files,
                    counts,
                    inputs,
                    backends,
                    max_trips,
                    seed,
                    max_difference,
                    name,
                )
            seconds["gate"] = round(time.perf_counter() - started - seconds["convert"], 3)
            written = {}
            if converted:
                for file_name in sorted(fileio.listdir(converted)):
                    fileio.copy(
                        os.path.join(converted, file_name),
                        os.path.join(output.uri, file_name),
                        overwrite=True,
                    )
                fileio.copy(ENCODER, os.path.join(output.uri, spec.ENCODER_FILE_NAME), overwrite=True)
                written = model_files(converted)
        with fileio.open(os.path.join(output.uri, spec.VERDICT_FILE_NAME), "w") as handle:
            handle.write(verdict.to_json())
        metadata = web_metadata(written, inputs, verdict, seconds=seconds, **extra)
        with fileio.open(os.path.join(output.uri, spec.METADATA_FILE_NAME), "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        output.set_int_custom_property(spec.BLESSED_PROPERTY, int(verdict.blessed))
        output.set_string_custom_property(spec.VERDICT_PROPERTY, verdict.summary())
        output.set_int_custom_property(spec.BYTES_PROPERTY, metadata["bytes"])
        if verdict.blessed:
            log.info("WebExport %s (%d bytes)", verdict.summary(), metadata["bytes"])
        else:
            log.error(
                "Web gate REFUSED the TF.js model of %s (the SavedModel push is unaffected):\n%s",
                model_dir,
                verdict.format(),
            )

    @staticmethod
    def _gate(converted, model_dir, files, counts, inputs, backends, max_trips, seed, max_difference, name):
        """Replay the gate's trips in Chromium; (verdict, per-backend timings, sample description).

        `counts`: each file's records as ExampleGen recorded them, or None (then counted).
        """
        if counts is None:
            from data.tfrecords import count_tfrecords

            total = count_tfrecords(files)
        else:
            total = sum(counts)
        rows = gate_rows(total, max_trips, seed)
        serialized = np.array(read_tfrecords_at(files, rows, counts), dtype=object)
        raw = examples_to_raw(serialized, serving_raw_specs())
        labels = labels_of(serialized)
        marked_raw, marked = with_markers(raw)
        reference = saved_model_answers(model_dir, marked_raw)
        single = min(SINGLE_TRIPS, len(rows))
        try:
            runs = web_browser.run_web_model(
                converted, inputs, marked_raw, backends=tuple(backends), batch_size=BATCH_SIZE, single=single
            )
        except web_browser.WebBrowserError as error:
            verdict = web_checks.browser_refusal(
                name,
                len(rows),
                f"the browser run failed: {error}",
                {"max_difference": max_difference, "metrics_decimals": 4},
            )
            return verdict, {}, {}
        verdict = web_checks.run_web_checks(
            runs, reference, labels, len(rows), marked, single, max_difference, name=name
        )
        timings = {
            b: {"backend": r.backend, "load_ms": r.load_ms, "run_ms": r.run_ms, "error": r.error}
            for b, r in runs.items()
        }
        sample = {"split_trips": total, "trips": len(rows), "whole_split": len(rows) == total, "seed": seed}
        return verdict, timings, sample
