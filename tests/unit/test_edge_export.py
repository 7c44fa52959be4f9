"""The edge gate, the int8 conversion and the EdgeExport executor on real TFLite models.

Models: `tests/model_zoo.py`'s SavedModels (a correct one and deliberately broken ones)
converted with builtin ops only, a small dense network for the int8 rules, and a model that
needs a Flex op. Data: the first trips of the embedded sample. Every model runs in the
TensorFlow Lite interpreter; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from model_zoo import save_zoo_model
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.edge_export import spec
from components.edge_export.executor import Executor
from components.serving_gate import spec as serving_gate_spec
from components.shared import EdgeModel
from data import embedded
from data.tfrecords import write_tfrecords
from models import edge
from models.signatures import PREDICTION_KEY, RAW_SIGNATURE
from pipeline.cli import main
from pipeline.ops.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from serving import edge_gate_checks, gate_verdict, replay_data, request_checks

TRIPS = 600
# Each fault the edge gate must refuse, and the check that refuses it.
EDGE_FAULTS = {
    "nan": "finite",
    "flat_output": "output_shape",
    "constant": "not_degenerate",
    "batch_mean_blend": "batch_invariance",
    "order_dependent": "batch_invariance",
}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Real trips (CSV and serialized), and each zoo model as a SavedModel and a float32 .tflite."""
    root = tmp_path_factory.mktemp("edge")
    frame = pd.read_csv(embedded.taxi_sample_path(), dtype=str, keep_default_na=False).head(TRIPS)
    csv = root / "trips.csv"
    frame.to_csv(csv, index=False)
    saved, tflite = {}, {}
    for fault in [None, *EDGE_FAULTS]:
        name = fault or "good"
        saved[fault] = save_zoo_model(str(root / "models" / name), fault)
        tflite[fault] = root / f"{name}.tflite"
        tflite[fault].write_bytes(edge.convert(saved[fault], "float32"))
    return {
        "root": root,
        "csv": csv,
        "examples": replay_data.csv_to_examples(csv),
        "saved": saved,
        "tflite": tflite,
    }


def statuses(verdict) -> dict[str, str]:
    return {check.name: check.status for check in verdict.checks}


def test_the_correct_model_passes_every_edge_check_and_agrees_with_its_saved_model(workspace):
    verdict = edge_gate_checks.run_edge_checks(
        workspace["tflite"][None].read_bytes(), workspace["examples"], reference=workspace["saved"][None]
    )
    assert verdict.blessed, verdict.format()
    assert statuses(verdict) == dict.fromkeys(
        ["builtin_ops", "output_shape", "finite", "batch_invariance", "not_degenerate", "agreement"], "pass"
    )
    agreement = verdict.checks[-1].figures
    assert agreement["max_abs_difference"] < 1e-5
    assert agreement["edge"]["auc"] == pytest.approx(agreement["saved_model"]["auc"], abs=1e-6)
    assert verdict.format().startswith("Edge gate on the edge model (600 examples): PASSED")
    structure = verdict.checks[0].figures
    assert structure["raw_inputs"] == sorted(request_checks.serving_raw_specs())
    assert "CUSTOM" not in structure["ops"]


@pytest.mark.parametrize("fault", sorted(EDGE_FAULTS))
def test_each_broken_edge_model_is_refused_for_its_reason(workspace, fault):
    verdict = edge_gate_checks.run_edge_checks(
        workspace["tflite"][fault].read_bytes(), workspace["examples"], reference=workspace["saved"][fault]
    )
    assert not verdict.blessed
    assert EDGE_FAULTS[fault] in [check.name for check in verdict.failures], verdict.format()
    assert verdict.summary().startswith("refused: ")


def test_answers_that_drift_from_the_saved_model_fail_agreement_with_the_figures(workspace):
    good = workspace["tflite"][None].read_bytes()
    exact = edge_gate_checks.run_edge_checks(good, workspace["examples"], reference=workspace["saved"][None])
    own = exact.checks[-1]
    assert own.status == gate_verdict.PASS
    # The SavedModel side, as the serving gate saves it: here shifted by 0.2 on every tenth trip.
    reference = edge_gate_checks.saved_model_answers(
        workspace["saved"][None],
        replay_data.examples_to_raw(workspace["examples"], request_checks.serving_raw_specs()),
    )
    reference[::10] = np.clip(reference[::10] + 0.2, 0, 1)
    verdict = edge_gate_checks.run_edge_checks(good, workspace["examples"], reference=reference)
    agreement = verdict.checks[-1]
    assert agreement.status == gate_verdict.FAIL, agreement.detail
    assert agreement.figures["max_abs_difference"] == pytest.approx(0.2, abs=1e-3)
    assert agreement.figures["mean_abs_difference"] == pytest.approx(0.02, abs=2e-3)
    assert "auc" in agreement.detail and "tolerance 0.005" in agreement.detail
    # Without a SavedModel the comparison is skipped, never passed.
    alone = edge_gate_checks.run_edge_checks(good, workspace["examples"], reference=None)
    assert alone.checks[-1].status == gate_verdict.SKIPPED


class _HashingModel(tf.Module):
    """A raw-features model whose string hashing (StringToHashBucketFast) has no builtin op."""

    @tf.function(input_signature=[{"company": tf.TensorSpec([None], tf.string, name="company")}])
    def serve_raw(self, inputs):
        bucket = tf.strings.to_hash_bucket_fast(inputs["company"], 10)
        return {PREDICTION_KEY: tf.reshape(tf.sigmoid(tf.cast(bucket, tf.float32) - 5.0), [-1, 1])}


def test_a_model_that_needs_flex_does_not_convert_and_a_flex_flatbuffer_is_refused(workspace, tmp_path):
    module = _HashingModel()
    path = str(tmp_path / "hashing")
    tf.saved_model.save(module, path, signatures={RAW_SIGNATURE: module.serve_raw.get_concrete_function()})
    with pytest.raises(edge.CONVERSION_ERRORS) as raised:
        edge.convert(path, "float32")
    refusal = edge_gate_checks.conversion_refusal("hashing", TRIPS, raised.value)
    assert not refusal.blessed and refusal.failures[0].name == "builtin_ops"
    assert "does not convert to TFLite with builtin ops only" in refusal.failures[0].detail
    # Converted with Flex anyway, the gate refuses it before replaying anything.
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=[RAW_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    flex = converter.convert()
    assert "CUSTOM" in edge.builtin_ops(flex)
    verdict = edge_gate_checks.run_edge_checks(flex, workspace["examples"])
    assert [c.name for c in verdict.checks] == ["builtin_ops"] and not verdict.blessed
    detail = verdict.checks[0].detail
    assert "Flex" in detail or "does not load" in detail, detail
    assert "inputs differ from the raw serving features" in detail or "does not load" in detail


def test_garbage_bytes_and_a_model_without_serving_raw_are_refused(workspace, tmp_path):
    verdict = edge_gate_checks.run_edge_checks(b"not a flatbuffer", workspace["examples"])
    assert verdict.checks[0].status == gate_verdict.FAIL and "does not load" in verdict.checks[0].detail

    class Other(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def f(self, x):
            return {"y": x * 2.0}

    other = Other()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([other.f.get_concrete_function()], other)
    verdict = edge_gate_checks.run_edge_checks(converter.convert(), workspace["examples"])
    assert (
        verdict.checks[0].status == gate_verdict.FAIL
        and "no 'serving_raw' signature" in verdict.checks[0].detail
    )


class _DenseNetwork(tf.Module):
    """Preprocessing (a z-score, a bucket comparison), an embedding, two hidden layers, one output unit."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.table = tf.constant(rng.normal(size=(6, 4)), tf.float32)
        self.w1 = tf.constant(rng.normal(size=(6, 16)) * 0.5, tf.float32)
        self.w2 = tf.constant(rng.normal(size=(16, 8)) * 0.5, tf.float32)
        self.out = tf.constant(rng.normal(size=(8, 1)), tf.float32)

    @tf.function(
        input_signature=[
            {
                "fare": tf.TensorSpec([None], tf.float32, name="fare"),
                "pickup_community_area": tf.TensorSpec([None], tf.int64, name="pickup_community_area"),
            }
        ]
    )
    def serve_raw(self, inputs):
        fare = (inputs["fare"] - 12.0) / 9.0
        far = tf.cast(tf.greater_equal(inputs["fare"], 30.0), tf.float32)
        area = tf.math.floormod(inputs["pickup_community_area"], 6)
        x = tf.concat([tf.stack([fare, far], axis=1), tf.gather(self.table, area)], axis=1)
        hidden = tf.nn.relu(tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2))
        return {PREDICTION_KEY: tf.sigmoid(tf.matmul(hidden, self.out))}


def _weight_types(flatbuffer: bytes) -> list[tuple[str, str, int]]:
    """(op, weight dtype, output units) of every FULLY_CONNECTED and GATHER, in graph order."""
    schema = edge._schema()
    model, names = schema.Model.GetRootAsModel(flatbuffer, 0), edge._op_names()
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    subgraph, out = model.Subgraphs(0), []
    for o in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(o)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name in ("FULLY_CONNECTED", "GATHER"):
            weights = subgraph.Tensors(op.Inputs(1 if name == "FULLY_CONNECTED" else 0))
            out.append((name, type_names[weights.Type()], weights.Shape(0)))
    return out


def test_int8_quantizes_the_hidden_layers_and_the_embedding_only(tmp_path):
    module = _DenseNetwork()
    path = str(tmp_path / "dense")
    tf.saved_model.save(module, path, signatures={RAW_SIGNATURE: module.serve_raw.get_concrete_function()})
    rng = np.random.default_rng(1)
    raw = {
        "fare": rng.gamma(2.0, 7.0, size=300).astype(np.float32),
        "pickup_community_area": rng.integers(1, 78, size=300),
    }
    samples = edge.representative_trips(raw, count=100, seed=0)
    int8 = edge.convert(path, "int8", samples)
    float32 = edge.convert(path, "float32")
    weights = _weight_types(int8)
    # Hidden layers (16 and 8 units) and the embedding table in int8; the one-unit output in float32.
    assert sorted(weights) == [
        ("FULLY_CONNECTED", "FLOAT32", 1),
        ("FULLY_CONNECTED", "INT8", 8),
        ("FULLY_CONNECTED", "INT8", 16),
        ("GATHER", "INT8", 6),
    ]
    assert {"QUANTIZE", "DEQUANTIZE"} <= edge.builtin_ops(int8) and "CUSTOM" not in edge.builtin_ops(int8)
    assert len(int8) < len(float32)
    # The preprocessing stayed float32: answers stay close to the float model's on fresh trips.
    fresh = {k: v[::-1].copy() for k, v in raw.items()}
    answers = [
        tf.lite.Interpreter(model_content=m).get_signature_runner(RAW_SIGNATURE)(**fresh)[PREDICTION_KEY]
        for m in (int8, float32)
    ]
    assert np.abs(answers[0] - answers[1]).mean() < 0.01
    # No tensor names left (the signature keeps its input and output names).
    schema = edge._schema()
    subgraph = schema.Model.GetRootAsModel(int8, 0).Subgraphs(0)
    assert all(not subgraph.Tensors(i).Name() for i in range(subgraph.TensorsLength()))
    runner = tf.lite.Interpreter(model_content=int8).get_signature_runner(RAW_SIGNATURE)
    assert set(runner.get_input_details()) == {"fare", "pickup_community_area"}


def test_the_representative_set_is_seeded_and_refuses_a_short_split():
    rows = edge.representative_rows(1000, 100, seed=0)
    assert len(set(rows.tolist())) == 100 and np.array_equal(rows, edge.representative_rows(1000, 100, 0))
    assert not np.array_equal(rows, edge.representative_rows(1000, 100, seed=1))
    with pytest.raises(ValueError, match="needs 100 trips, the split has 40"):
        edge.representative_rows(40)
    with pytest.raises(ValueError, match="representative dataset"):
        edge.convert("unused", "int8", [])
    with pytest.raises(ValueError, match="variant must be one of"):
        edge.convert("unused", "int4")


# ---------------------------------------------------------------- the EdgeExport executor


def _examples_artifact(workspace, tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    records = workspace["examples"]
    for split, part in (("train", records[:400]), ("eval", records[400:])):
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
        path = os.path.join(examples.uri, f"Split-{split}", "data_tfrecord-00000-of-00001.gz")
        write_tfrecords(path, part)
    return examples


def run_export(workspace, tmp_path, fault=None, serving_answers: bool = False, **properties):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    save_zoo_model(path_utils.serving_model_dir(model.uri), fault, dense=True)
    inputs = {spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [_examples_artifact(workspace, tmp_path)]}
    if serving_answers:  # the ServingGate's saved serving_raw answers on the eval split
        blessing = standard_artifacts.InfraBlessing()
        blessing.uri = str(tmp_path / "serving_blessing")
        os.makedirs(blessing.uri)
        raw = replay_data.examples_to_raw(workspace["examples"][400:], request_checks.serving_raw_specs())
        answers = edge_gate_checks.saved_model_answers(path_utils.serving_model_dir(model.uri), raw)
        np.save(os.path.join(blessing.uri, serving_gate_spec.RAW_ANSWERS_FILE_NAME), answers)
        inputs[spec.SERVING_BLESSING_KEY] = [blessing]
    output = EdgeModel()
    output.uri = str(tmp_path / "edge_model")
    defaults = {
        spec.SPLIT_KEY: "eval",
        spec.CALIBRATION_SPLIT_KEY: "train",
        spec.REPRESENTATIVE_TRIPS_KEY: 100,
        spec.SEED_KEY: 0,
        spec.ACCURACY_TOLERANCE_KEY: 0.01,
        spec.AUC_TOLERANCE_KEY: 0.005,
    }
    Executor().Do(inputs, {spec.EDGE_MODEL_KEY: [output]}, {**defaults, **properties})
    return output


def test_executor_writes_the_int8_model_its_verdict_and_metadata(workspace, tmp_path):
    output = run_export(workspace, tmp_path, serving_answers=True)
    folder = tmp_path / "edge_model"
    flatbuffer = (folder / spec.MODEL_FILE_NAME).read_bytes()
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 1
    assert output.get_int_custom_property(spec.BYTES_PROPERTY) == len(flatbuffer)
    assert output.get_string_custom_property(spec.VERDICT_PROPERTY) == "passed (6 checks on 200 examples)"
    verdict = json.loads((folder / spec.VERDICT_FILE_NAME).read_text())
    assert verdict["blessed"] and {c["status"] for c in verdict["checks"]} == {"pass"}
    metadata = json.loads((folder / spec.METADATA_FILE_NAME).read_text())
    assert metadata["bytes"] == len(flatbuffer) and metadata["variant"] == "int8"
    assert metadata["representative"] == {"split": "train", "trips": 100, "seed": 0}
    assert metadata["reference"].endswith(serving_gate_spec.RAW_ANSWERS_FILE_NAME)
    assert metadata["gate"]["examples"] == 200 and metadata["gate"]["max_abs_difference"] < 0.05
    inputs = {i["name"]: i for i in metadata["inputs"]}
    assert set(inputs) == set(request_checks.serving_raw_specs())
    assert inputs["fare"] == {"name": "fare", "dtype": "float32", "shape": [-1], "missing": "NaN"}
    assert inputs["company"]["missing"] == "" and inputs["pickup_community_area"]["missing"] == -1
    assert metadata["output"] == {"name": PREDICTION_KEY, "dtype": "float32", "shape": [-1, 1]}
    # The bytes are those of a model that answers the raw features (N,) -> (N, 1).
    runner = tf.lite.Interpreter(model_content=flatbuffer).get_signature_runner(RAW_SIGNATURE)
    raw = replay_data.examples_to_raw(workspace["examples"][:5], request_checks.serving_raw_specs())
    assert runner(**raw)[PREDICTION_KEY].shape == (5, 1)


def test_executor_refuses_a_batch_dependent_model_without_failing_the_run(workspace, tmp_path):
    output = run_export(workspace, tmp_path, fault="batch_mean_blend")
    assert output.get_int_custom_property(spec.BLESSED_PROPERTY) == 0
    assert output.get_string_custom_property(spec.VERDICT_PROPERTY).startswith("refused: batch_invariance:")
    metadata = json.loads((tmp_path / "edge_model" / spec.METADATA_FILE_NAME).read_text())
    assert metadata["blessed"] is False and metadata["reference"] == path_utils.serving_model_dir(
        str(tmp_path / "model")
    )


def test_executor_refuses_when_the_tolerances_cannot_be_met(workspace, tmp_path):
    # int8 answers differ a little from the SavedModel's; a zero AUC tolerance cannot hold.
    output = run_export(workspace, tmp_path, accuracy_tolerance=0.0, auc_tolerance=0.0)
    verdict = output.get_string_custom_property(spec.VERDICT_PROPERTY)
    agreement = json.loads((tmp_path / "edge_model" / spec.VERDICT_FILE_NAME).read_text())["checks"][-1]
    assert agreement["figures"]["max_abs_difference"] > 0
    assert agreement["status"] == "fail", agreement
    assert verdict.startswith("refused: agreement:") and "tolerance 0)" in verdict


def test_a_model_with_nothing_to_quantize_is_refused_by_name(workspace, tmp_path):
    with pytest.raises(ValueError, match="nothing to quantize in int8"):
        raw = replay_data.examples_to_raw(workspace["examples"], request_checks.serving_raw_specs())
        edge.convert(workspace["saved"][None], "int8", edge.representative_trips(raw))


def test_executor_names_a_split_too_short_to_calibrate(workspace, tmp_path):
    with pytest.raises(ValueError, match="needs 500 trips, the split has 400"):
        run_export(workspace, tmp_path, representative_trips=500)


# ---------------------------------------------------------------- verify --model X.tflite


def verify(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["verify", *argv])
    return status, out.getvalue(), err.getvalue()


def test_verify_runs_the_edge_gate_on_a_tflite_file(workspace, tmp_path):
    good = str(workspace["tflite"][None])
    status, out, _ = verify(
        "--model", good, "--data", str(workspace["csv"]), "--reference", workspace["saved"][None],
        "--json", str(tmp_path / "v.json"),
    )  # fmt: skip
    assert status == EXIT_OK, out
    assert "Edge gate on " in out and "PASSED" in out and "[PASS   ] agreement" in out
    assert f"Compared with the SavedModel at {workspace['saved'][None]}" in out
    assert json.loads((tmp_path / "v.json").read_text())["blessed"] is True
    # Without a SavedModel beside it (no metadata.json) the agreement is skipped, said so.
    status, out, _ = verify("--model", good, "--data", str(workspace["csv"]))
    assert status == EXIT_OK and "[SKIPPED] agreement" in out
    status, out, _ = verify(
        "--model", str(workspace["tflite"]["batch_mean_blend"]), "--data", str(workspace["csv"])
    )
    assert status == EXIT_FAILED and "[FAIL   ] batch_invariance" in out


def test_verify_finds_the_saved_model_from_the_pushed_metadata(workspace, tmp_path):
    folder = tmp_path / "edge" / "7"
    folder.mkdir(parents=True)
    (folder / "model.tflite").write_bytes(workspace["tflite"][None].read_bytes())
    (folder / "metadata.json").write_text(json.dumps({"saved_model": workspace["saved"][None]}))
    status, out, _ = verify("--model", str(folder), "--data", str(workspace["csv"]))
    assert status == EXIT_OK and "[PASS   ] agreement" in out, out
    status, _, err = verify("--model", str(tmp_path / "missing.tflite"), "--data", str(workspace["csv"]))
    assert status == EXIT_USAGE and "no edge model at" in err
    status, _, err = verify("--model", str(folder), "--data", str(tmp_path / "nothing.csv"))
    assert status == EXIT_USAGE and "nothing.csv" in err
