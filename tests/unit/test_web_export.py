"""The WebExport executor end to end on small real models: convert, run in Chromium, judge, write.

The models are `tf.Module`s with the project's `serving_raw` and `serving_web` signatures (the
web one taking the encoded inputs of `models.web`): P = sigmoid(3 * credit card + 0.8 *
log1p(fare) + 0.01 * tract hash id - 3.5). The correct one answers alike on both signatures;
the faulty ones are the failures this gate exists for: a web path that skews from the raw one,
and a NaN missing marker that reaches the arithmetic. Data: the first trips of the embedded
sample, as ExampleGen writes them. Nothing is mocked; browser runs skip, saying why, only when
`serving.web_browser.unavailable()` finds node, the npm packages or Chromium missing.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from model_zoo import SERVING_SPEC, _dense
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.shared import WebModel
from components.web_export import spec
from components.web_export.executor import Executor, gate_rows, with_markers
from data import embedded
from data.tfrecords import write_tfrecords
from models import features, transform, web
from models.signatures import PREDICTION_KEY, RAW_SIGNATURE, raw_features_as_parsed, raw_tensor_specs
from serving import replay_data, web_browser

TRIPS = 500
PAYMENTS = ["Cash", "Credit Card", "No Charge", "__missing__"]
needs_browser = pytest.mark.skipif(
    web_browser.unavailable() is not None, reason=f"web gate cannot run: {web_browser.unavailable()}"
)


def _described() -> list[dict]:
    codes = {
        "payment_type": {"values": PAYMENTS},
        "company": {"values": ["Flash Cab", "__missing__"]},
    }
    return web.web_inputs_description(SERVING_SPEC, codes)


class WebZoo(tf.Module):
    """The same probability from raw and from web inputs (or, with a fault, not)."""

    def __init__(self, fault: str | None = None):
        super().__init__()
        self.fault = fault
        self.serve_raw = tf.function(self._raw, input_signature=[raw_tensor_specs(SERVING_SPEC)])
        self.serve_web = tf.function(self._web, input_signature=[web.web_input_specs(SERVING_SPEC)])

    def _raw(self, inputs):
        raw = _dense(raw_features_as_parsed(dict(inputs), SERVING_SPEC))  # credit card as 1.0
        fare = tf.where(tf.math.is_nan(raw["fare"]), 0.0, raw["fare"])
        tract = tf.cast(transform.hashed_ids(inputs["dropoff_census_tract"], 256), tf.float32)
        return {PREDICTION_KEY: self._probability(raw["payment_type"], fare, tract, 0.8)}

    def _web(self, inputs):
        credit = tf.cast(tf.equal(inputs["payment_type"], PAYMENTS.index("Credit Card")), tf.float32)
        fare = inputs["fare"]
        if self.fault != "nan_marker":  # the fault lets NaN reach the arithmetic
            fare = tf.where(tf.math.is_nan(fare), 0.0, fare)
        tract = tf.cast(web.exact_hashed_ids(inputs["dropoff_census_tract"], 256), tf.float32)
        return {PREDICTION_KEY: self._probability(credit, fare, tract, 0.7 if self.fault == "skew" else 0.8)}

    @staticmethod
    def _probability(credit, fare, tract, weight):
        logit = 3.0 * credit + weight * tf.math.log1p(tf.maximum(fare, 0.0)) + 0.01 * tract - 3.5
        return tf.reshape(tf.sigmoid(logit), [-1, 1])


def save_web_zoo(path: str, fault: str | None = None) -> str:
    model = WebZoo(fault)
    tf.saved_model.save(
        model,
        path,
        signatures={
            RAW_SIGNATURE: model.serve_raw.get_concrete_function(),
            web.WEB_SIGNATURE: model.serve_web.get_concrete_function(),
        },
    )
    with open(os.path.join(path, web.WEB_INPUTS_FILE), "w") as handle:
        handle.write(web.dumps_description(_described()))
    return path


def _examples_artifact(tmp_path):
    frame = pd.read_csv(embedded.taxi_sample_path(), dtype=str, keep_default_na=False).head(TRIPS)
    csv = tmp_path / "trips.csv"
    frame.to_csv(csv, index=False)
    records = replay_data.csv_to_examples(csv)
    artifact = standard_artifacts.Examples()
    artifact.uri = str(tmp_path / "examples")
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split, part in (("train", records[:200]), ("eval", records[200:])):
        os.makedirs(os.path.join(artifact.uri, f"Split-{split}"))
        write_tfrecords(os.path.join(artifact.uri, f"Split-{split}", "data_tfrecord-00000-of-00001.gz"), part)
    return artifact


PROPERTIES = {
    spec.SPLIT_KEY: "eval",
    spec.MAX_TRIPS_KEY: spec.DEFAULT_MAX_TRIPS,
    spec.SEED_KEY: 0,
    spec.MAX_DIFFERENCE_KEY: spec.DEFAULT_MAX_DIFFERENCE,
    spec.BACKENDS_KEY: spec.DEFAULT_BACKENDS,
}


def run_export(tmp_path, fault=None, **properties) -> WebModel:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    save_web_zoo(path_utils.serving_model_dir(model.uri), fault)
    output = WebModel()
    output.uri = str(tmp_path / "web_model")
    inputs = {spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [_examples_artifact(tmp_path)]}
    Executor().Do(inputs, {spec.WEB_MODEL_KEY: [output]}, {**PROPERTIES, **properties})
    return output


def _checks(tmp_path) -> dict[str, dict]:
    verdict = json.loads((tmp_path / "web_model" / spec.VERDICT_FILE_NAME).read_text())
    return {c["name"]: c for c in verdict["checks"]}


@needs_browser
def test_a_faithful_web_model_passes_on_every_backend_and_is_written_with_its_metadata(tmp_path):
    output = run_export(tmp_path)
    folder = tmp_path / "web_model"
    checks = _checks(tmp_path)
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 1, checks
    assert {c["status"] for c in checks.values()} == {"pass"}
    assert output.get_string_custom_property(spec.VERDICT_PROPERTY) == "passed (6 checks on 300 examples)"
    for backend in ("cpu", "wasm", "webgl"):
        assert checks["agreement"]["figures"][backend]["max_abs_difference"] <= 1e-5
    metadata = json.loads((folder / spec.METADATA_FILE_NAME).read_text())
    assert metadata["signature"] == web.WEB_SIGNATURE and metadata["model"] == "model.json"
    assert metadata["inputs"] == _described()
    assert metadata["sample"] == {"split_trips": 300, "trips": 300, "whole_split": True, "seed": 0}
    on_disk = sorted(p.name for p in folder.iterdir())
    assert set(metadata["files"]) == set(on_disk) - {
        spec.METADATA_FILE_NAME,
        spec.VERDICT_FILE_NAME,
        "encode.js",
    }
    assert metadata["bytes"] == sum((folder / n).stat().st_size for n in metadata["files"])
    assert output.get_int_custom_property(spec.BYTES_PROPERTY) == metadata["bytes"]
    assert (folder / "encode.js").read_text() == (web_browser.WEB_DIR / "encode.js").read_text()
    assert set(metadata["browser"]) == {"cpu", "wasm", "webgl"}


@needs_browser
@pytest.mark.parametrize(
    ("fault", "check"), [("skew", "agreement"), ("nan_marker", "finite")]
)  # fmt: skip
def test_a_web_model_that_departs_from_the_saved_model_is_refused_for_its_reason(tmp_path, fault, check):
    output = run_export(tmp_path, fault)
    checks = _checks(tmp_path)
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
    assert checks[check]["status"] == "fail", checks[check]
    assert check in output.get_string_custom_property(spec.VERDICT_PROPERTY)
    # The converted model is kept, for a look at what went wrong.
    assert (tmp_path / "web_model" / "model.json").exists()


def test_without_chromium_the_gate_refuses_with_the_reason_and_the_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "no-such-chromium"))
    output = run_export(tmp_path)
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
    summary = output.get_string_custom_property(spec.VERDICT_PROPERTY)
    assert "cannot run here" in summary and "no-such-chromium" in summary


def test_a_saved_model_without_the_web_signature_is_refused_not_failed(tmp_path):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    path = path_utils.serving_model_dir(model.uri)
    zoo = WebZoo()
    tf.saved_model.save(zoo, path, signatures={RAW_SIGNATURE: zoo.serve_raw.get_concrete_function()})
    output = WebModel()
    output.uri = str(tmp_path / "web_model")
    properties = {**PROPERTIES, spec.MAX_TRIPS_KEY: 100, spec.BACKENDS_KEY: "cpu"}
    inputs = {spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [_examples_artifact(tmp_path)]}
    Executor().Do(inputs, {spec.WEB_MODEL_KEY: [output]}, properties)
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
    assert web.WEB_INPUTS_FILE in output.get_string_custom_property(spec.VERDICT_PROPERTY)


def test_the_gate_sample_is_the_whole_split_up_to_the_cap_then_seeded():
    assert gate_rows(10, 20, 0).tolist() == list(range(10))
    sample = gate_rows(100_000, 500, 3)
    assert len(sample) == 500 and len(set(sample)) == 500 and sample.tolist() == sorted(sample.tolist())
    assert gate_rows(100_000, 500, 3).tolist() == sample.tolist()
    assert gate_rows(100_000, 500, 4).tolist() != sample.tolist()


def test_marker_trips_set_one_feature_at_a_time():
    raw = {
        "fare": np.array([1.0, 2.0, 3.0], np.float32),
        "company": np.array([b"a", b"b", b"c"], object),
        "trip_start_hour": np.array([1, 2, 3], np.int64),
    }
    marked, names = with_markers(raw, count=2)
    assert names == ["company", "company", "fare", "fare", "trip_start_hour", "trip_start_hour"]
    assert (
        marked["company"][3:5].tolist() == [b"", b""] and marked["company"][5:].tolist() == [b"a", b"b"] * 2
    )
    assert np.isnan(marked["fare"][5:7]).all() and not np.isnan(marked["fare"][:5]).any()
    assert marked["trip_start_hour"][-2:].tolist() == [features.MISSING_INT] * 2


def test_a_model_the_evaluator_did_not_bless_is_not_gated_and_says_why(tmp_path):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    save_web_zoo(path_utils.serving_model_dir(model.uri))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 0)
    output = WebModel()
    output.uri = str(tmp_path / "web_model")
    properties = {**PROPERTIES, spec.MAX_TRIPS_KEY: 100, spec.BACKENDS_KEY: "cpu"}
    inputs = {
        spec.MODEL_KEY: [model],
        spec.EXAMPLES_KEY: [_examples_artifact(tmp_path)],
        spec.MODEL_BLESSING_KEY: [blessing],
    }
    Executor().Do(inputs, {spec.WEB_MODEL_KEY: [output]}, properties)
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
    summary = output.get_string_custom_property(spec.VERDICT_PROPERTY)
    assert "not run: the Evaluator did not bless the model" in summary
    assert not (tmp_path / "web_model" / "model.json").exists()  # no conversion, no browser
