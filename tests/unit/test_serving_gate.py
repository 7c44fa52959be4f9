"""The serving gate on real SavedModels: a correct one passes, each deliberately broken one is refused.

The models come from `tests/model_zoo.py` (small tf.Modules with the project's signatures);
the data is the first trips of the embedded taxi sample. The same checks run three ways:
`run_checks`, the ServingGate executor on real artifacts, and `python -m pipeline verify`.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from model_zoo import BATCH_FAULTS, FAULTS, save_zoo_model
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import path_utils

from components.serving_gate import spec
from components.serving_gate.executor import Executor
from data import embedded
from data.tfrecords import write_tfrecords
from models import features
from pipeline.cli import main
from pipeline.ops.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from serving import gate_checks, replay_data, replay_source, request_checks, signature_replay

TRIPS = 600


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A CSV of real trips, the same trips as serialized examples, and a model per fault."""
    root = tmp_path_factory.mktemp("gate")
    frame = pd.read_csv(embedded.taxi_sample_path(), dtype=str, keep_default_na=False).head(TRIPS)
    csv = root / "trips.csv"
    frame.to_csv(csv, index=False)
    models = {
        fault: save_zoo_model(str(root / "models" / (fault or "good")), fault) for fault in [None, *FAULTS]
    }
    return {"root": root, "csv": csv, "examples": replay_data.csv_to_examples(csv), "models": models}


def served_figures(workspace) -> dict[str, float]:
    """Accuracy and AUC of the correct model on the trips, computed outside the gate."""
    model = tf.saved_model.load(workspace["models"][None])
    scores = model.signatures["serving_default"](examples=tf.constant(workspace["examples"]))
    scores = scores["probabilities"].numpy()[:, 0]
    labels = replay_data.labels_of(workspace["examples"])
    return {"binary_accuracy": gate_checks.accuracy(labels, scores), "auc": gate_checks.auc(labels, scores)}


def test_the_correct_model_passes_every_check(workspace):
    figures = served_figures(workspace)
    verdict = gate_checks.run_checks(workspace["models"][None], workspace["examples"], figures)
    assert verdict.blessed, verdict.format()
    assert [c.status for c in verdict.checks] == ["pass"] * 7
    by_name = {c.name: c for c in verdict.checks}
    assert by_name["parity"].figures["max_abs_difference"] <= gate_checks.DEFAULT_PARITY_TOLERANCE
    assert by_name["batch_invariance"].figures["max_abs_difference"] <= gate_checks.DEFAULT_BATCH_TOLERANCE
    assert by_name["batch_invariance"].figures["batchings"] == ["1", "2", "7", "64", "1024 shuffled"]
    assert by_name["metrics"].figures["serving_raw"]["auc"] == pytest.approx(figures["auc"], abs=1e-6)
    # The fixed score is a real classifier on these trips, not a coin.
    assert figures["auc"] > 0.75


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_broken_model_is_refused_for_its_reason(workspace, fault):
    verdict = gate_checks.run_checks(workspace["models"][fault], workspace["examples"])
    assert not verdict.blessed
    failed = [c.name for c in verdict.failures]
    assert FAULTS[fault] in failed, verdict.format()


@pytest.mark.parametrize("fault", BATCH_FAULTS)
def test_batch_dependence_fails_only_batch_invariance(workspace, fault):
    """Right shape, finite, varied, the same through both signatures: only the batching differs."""
    verdict = gate_checks.run_checks(workspace["models"][fault], workspace["examples"])
    assert [c.name for c in verdict.failures] == ["batch_invariance"], verdict.format()
    check = verdict.failures[0]
    assert "depends on the rest of its batch" in check.detail
    assert "serving_default: example " in check.detail and "serving_raw: example " in check.detail
    assert "batchings that disagree: 1" in check.detail  # alone disagrees with every fault here
    for name in ("serving_default", "serving_raw"):
        worst = max(f["max_abs_difference"] for f in check.figures[name].values())
        assert worst > 100 * gate_checks.DEFAULT_BATCH_TOLERANCE


def test_batch_blending_is_invisible_to_a_batch_of_one(workspace):
    """The seed's bug as a new user meets it: alone it answers exactly as the correct model."""
    good = tf.saved_model.load(workspace["models"][None]).signatures["serving_default"]
    blend = tf.saved_model.load(workspace["models"]["batch_mean_blend"]).signatures["serving_default"]
    one = tf.constant(workspace["examples"][:1])
    assert blend(examples=one)["probabilities"].numpy() == pytest.approx(
        good(examples=one)["probabilities"].numpy()
    )
    many = tf.constant(workspace["examples"])
    gap = np.abs(blend(examples=many)["probabilities"].numpy() - good(examples=many)["probabilities"].numpy())
    assert gap.max() > 0.05


def test_broadcasting_hidden_behind_an_n_by_1_answer_is_caught_as_skew(workspace):
    """The insidious case: (N, N) averaged back to (N, 1) has the right shape and wrong values."""
    verdict = gate_checks.run_checks(workspace["models"]["broadcast_raw"], workspace["examples"])
    by_name = {c.name: c for c in verdict.checks}
    assert by_name["output_shape"].status == "pass"
    assert by_name["parity"].status == "fail"
    assert by_name["parity"].figures["examples_differing"] > TRIPS // 2
    assert "train/serve preprocessing skew" in by_name["parity"].detail


def test_shape_failures_say_what_came_back(workspace):
    square = gate_checks.run_checks(workspace["models"]["square_output"], workspace["examples"])
    detail = {c.name: c.detail for c in square.checks}["output_shape"]
    assert f"returned shape ({TRIPS}, {TRIPS}) for {TRIPS} examples, expected ({TRIPS}, 1)" in detail
    assert "only broadcasting" in detail
    flat = gate_checks.run_checks(workspace["models"]["flat_output"], workspace["examples"])
    assert f"returned shape ({TRIPS},)" in {c.name: c.detail for c in flat.checks}["output_shape"]


def test_nan_count_is_reported(workspace):
    verdict = gate_checks.run_checks(workspace["models"]["nan"], workspace["examples"])
    finite = {c.name: c for c in verdict.checks}["finite"]
    short_trips = int((pd.read_csv(workspace["csv"])["trip_miles"] < 1).sum())
    assert short_trips > 0
    assert finite.figures["serving_default"]["nan"] == short_trips


def test_metrics_that_disagree_with_the_evaluator_are_refused(workspace):
    figures = served_figures(workspace)
    off = dict(figures, auc=figures["auc"] + 0.02)
    verdict = gate_checks.run_checks(workspace["models"][None], workspace["examples"], off)
    assert [c.name for c in verdict.failures] == ["metrics"]
    assert "tolerance 0.005" in verdict.failures[0].detail
    loose = gate_checks.run_checks(
        workspace["models"][None], workspace["examples"], off, metric_tolerance=0.03
    )
    assert loose.blessed


def test_exact_auc_and_accuracy():
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.6, 0.6, 0.9, 0.4])
    # Pairs (pos, neg): 0.6>0.1, 0.6=0.6 (half), 0.9>both, 0.4>0.1 but <0.6 -> (1 + .5 + 2 + 1) / 6
    assert gate_checks.auc(labels, scores) == pytest.approx(4.5 / 6)
    assert gate_checks.accuracy(labels, scores) == pytest.approx(3 / 5)
    assert math.isnan(gate_checks.auc(np.ones(3), np.array([0.1, 0.2, 0.3])))


def write_tfma_metrics(folder, figures: dict[str, float]) -> None:
    """An overall-slice MetricsForSlice in TFMA's own file layout (what tfma.load_metrics reads)."""
    proto = metrics_for_slice_pb2.MetricsForSlice()
    for name, value in figures.items():
        item = proto.metric_keys_and_values.add()
        item.key.name = name
        item.value.double_value.value = value
    os.makedirs(folder, exist_ok=True)
    write_tfrecords(os.path.join(folder, "metrics-00000-of-00001.tfrecord"), [proto.SerializeToString()])


def gate_artifacts(workspace, tmp_path, fault, figures):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    save_zoo_model(path_utils.serving_model_dir(model.uri), fault)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        os.makedirs(os.path.join(examples.uri, f"Split-{split}"))
    path = os.path.join(examples.uri, "Split-eval", "data_tfrecord-00000-of-00001.gz")
    write_tfrecords(path, workspace["examples"])
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(tmp_path / "evaluation")
    write_tfma_metrics(evaluation.uri, figures)
    blessing = standard_artifacts.InfraBlessing()
    blessing.uri = str(tmp_path / "blessing")
    inputs = {spec.MODEL_KEY: [model], spec.EXAMPLES_KEY: [examples], spec.EVALUATION_KEY: [evaluation]}
    return inputs, {spec.BLESSING_KEY: [blessing]}, blessing


@pytest.mark.parametrize("fault", [None, "skip_transform"])
def test_executor_writes_the_verdict_and_the_blessing(workspace, tmp_path, fault):
    inputs, outputs, blessing = gate_artifacts(workspace, tmp_path, fault, served_figures(workspace))
    properties = {spec.SPLIT_KEY: "eval", spec.METRIC_TOLERANCE_KEY: 0.005, spec.PARITY_TOLERANCE_KEY: 1e-5}
    Executor().Do(inputs, outputs, properties)
    verdict = json.loads((tmp_path / "blessing" / spec.VERDICT_FILE_NAME).read_text())
    assert verdict["examples"] == TRIPS
    assert verdict["blessed"] is (fault is None)
    assert blessing.get_int_custom_property(spec.BLESSED_PROPERTY) == (1 if fault is None else 0)
    statuses = {c["name"]: c["status"] for c in verdict["checks"]}
    if fault is None:
        assert set(statuses.values()) == {"pass"}
        assert verdict["checks"][-1]["figures"]["evaluator"]["auc"] > 0.75
    else:
        assert statuses["parity"] == "fail"
        assert blessing.get_string_custom_property(spec.VERDICT_PROPERTY).startswith("refused: parity:")


def verify(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["verify", *argv])
    return status, out.getvalue(), err.getvalue()


def test_verify_passes_the_correct_model_and_writes_json(workspace, tmp_path):
    status, out, _ = verify(
        "--model",
        workspace["models"][None],
        "--data",
        str(workspace["csv"]),
        "--json",
        str(tmp_path / "v.json"),
    )
    assert status == EXIT_OK, out
    assert "PASSED" in out
    assert "[SKIPPED] metrics" in out  # No Evaluator given: nothing to compare with.
    assert json.loads((tmp_path / "v.json").read_text())["blessed"] is True


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_verify_refuses_each_broken_model(workspace, fault):
    status, out, _ = verify("--model", workspace["models"][fault], "--data", str(workspace["csv"]))
    assert status == EXIT_FAILED
    assert "REFUSED" in out
    assert f"[FAIL   ] {FAULTS[fault]}" in out


def test_verify_reads_an_examples_artifact_and_an_evaluation(workspace, tmp_path):
    inputs, _, _ = gate_artifacts(workspace, tmp_path, None, served_figures(workspace))
    status, out, _ = verify(
        "--model",
        inputs[spec.MODEL_KEY][0].uri,
        "--data",
        inputs[spec.EXAMPLES_KEY][0].uri,
        "--evaluation",
        inputs[spec.EVALUATION_KEY][0].uri,
    )
    assert status == EXIT_OK, out
    assert "[PASS   ] metrics" in out


def test_verify_names_bad_paths_and_columns(workspace, tmp_path):
    status, _, err = verify("--model", str(tmp_path / "nowhere"), "--data", str(workspace["csv"]))
    assert status == EXIT_USAGE
    assert "no SavedModel at" in err
    thin = tmp_path / "thin.csv"
    pd.read_csv(workspace["csv"]).drop(columns=["company"]).to_csv(thin, index=False)
    status, _, err = verify("--model", workspace["models"][None], "--data", str(thin))
    assert status == EXIT_USAGE
    assert "lacks the taxi columns ['company']" in err


def test_csv_replay_keeps_blank_cells_absent_and_names_bad_values(workspace, tmp_path):
    frame = pd.read_csv(workspace["csv"], dtype=str, keep_default_na=False)
    example = tf.train.Example.FromString(workspace["examples"][0])
    for column in features.serving_raw_features():
        assert (column in example.features.feature) == (frame[column][0] != "")
    frame.loc[3, "trip_start_hour"] = "noon"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(
        replay_data.ReplayDataError, match="line 5, column 'trip_start_hour': 'noon' is not a valid int"
    ):
        replay_data.csv_to_examples(bad)


def test_examples_to_raw_uses_the_missing_markers(workspace):
    specs = request_checks.raw_input_specs(
        tf.saved_model.load(workspace["models"][None]).signatures["serving_raw"]
    )
    raw = replay_data.examples_to_raw(workspace["examples"], specs)
    frame = pd.read_csv(workspace["csv"], dtype=str, keep_default_na=False)
    blank_tract = (frame["dropoff_census_tract"] == "").to_numpy()
    assert blank_tract.any()
    assert (raw["dropoff_census_tract"][blank_tract] == features.MISSING_INT).all()
    blank_company = (frame["company"] == "").to_numpy()
    assert (raw["company"][blank_company] == b"").all()
    blank_latitude = (frame["dropoff_latitude"] == "").to_numpy()
    assert blank_latitude.any()
    assert np.isnan(raw["dropoff_latitude"][blank_latitude]).all()
    assert not np.isnan(raw["dropoff_latitude"][~blank_latitude]).any()


def test_batch_plans_cover_every_example_and_stay_bounded_at_volume():
    plans = signature_replay.batch_plans(500_000, 1024)
    calls = {plan: len(batches) for plan, batches in plans.items()}
    assert calls == {"1": 64, "2": 32, "7": 10, "64": 64, "1024 shuffled": 489}
    shuffled = np.concatenate(plans["1024 shuffled"])
    assert sorted(shuffled) == list(range(500_000)) and (shuffled[:100] != np.arange(100)).any()
    assert np.array_equal(np.concatenate(plans["64"]), np.arange(4096))
    # At volume the batch grows so that a pass is at most 64 calls; below 65,537 it stays 1,024.
    sizes = {n: signature_replay.replay_batch_size(n) for n in (600, 65_536, 65_537, 500_000, 10**7)}
    assert sizes == {600: 1024, 65_536: 1024, 65_537: 1025, 500_000: 7813, 10**7: 16_384}
    volume = signature_replay.batch_plans(500_000, sizes[500_000])
    assert len(volume["7813 shuffled"]) == 64 and sum(map(len, volume["7813 shuffled"])) == 500_000
    small = signature_replay.batch_plans(600, 1024)
    assert np.array_equal(np.concatenate(small["64"]), np.arange(600))  # everything when small


def test_a_split_in_blocks_gets_the_same_verdict_and_answers_as_held_whole(workspace, tmp_path):
    # At volume a gate holds one block of the split at a time (serving.replay_source); every
    # example is still replayed, in order and shuffled, with the same answers.
    files = []
    for part in range(3):  # three files of 200 trips; blocks of whole files
        path = str(tmp_path / f"data_tfrecord-{part}.gz")
        write_tfrecords(path, workspace["examples"][part * 200 : (part + 1) * 200])
        files.append(path)
    source = replay_source.ReplaySource.from_files(files, block_examples=400)
    assert source.sizes == [400, 200] and source.count == TRIPS
    figures = served_figures(workspace)
    whole = gate_checks.run_checks(workspace["models"][None], workspace["examples"], figures)
    blocks = gate_checks.run_checks(workspace["models"][None], source, figures)
    assert blocks.blessed, blocks.format()
    assert [c.status for c in blocks.checks] == [c.status for c in whole.checks]
    for name, answers in whole.answers.items():
        assert np.allclose(blocks.answers[name], answers, atol=1e-6)
    by_name = {c.name: c for c in blocks.checks}
    shuffled = by_name["batch_invariance"].figures["serving_raw"]["1024 shuffled"]
    assert shuffled["examples"] == TRIPS
    # A batch-dependent model is still refused when the replay goes block by block.
    blend = gate_checks.run_checks(workspace["models"]["batch_mean_blend"], source)
    assert {c.name: c.status for c in blend.checks}["batch_invariance"] == "fail", blend.format()


def test_a_replay_source_holds_one_block_and_refuses_rows_across_blocks(workspace):
    source = replay_source.ReplaySource.from_examples(workspace["examples"], block_examples=256)
    assert source.sizes == [256, 256, 88] and source.starts == [0, 256, 512]
    assert list(source.examples(1)) == workspace["examples"][256:512]
    block, local = source.local(np.array([300, 511]))
    assert block == 1 and list(local) == [44, 255]
    with pytest.raises(ValueError, match="span more than block 0"):
        source.local(np.array([250, 260]))
    calls = []
    source.derived(2, "n", lambda examples: calls.append(len(examples)))
    source.derived(2, "n", lambda examples: calls.append(len(examples)))
    assert calls == [88]  # computed once while the block is held
    # What is kept (the labels) is computed as each block is loaded by a pass, never in a pass of
    # its own, and survives the block's unloading.
    kept_calls = []
    source.keep("sizes", lambda examples: kept_calls.append(len(examples)) or len(examples))
    for block in (0, 1, 2, 0):
        source.examples(block)
    assert kept_calls == [256, 256, 88]  # block 2 was held when keep() was called: loaded again
    assert source.kept("sizes") == [256, 256, 88] and kept_calls == [256, 256, 88]


def test_block_plans_keep_every_batch_in_one_block_and_cover_every_example():
    sizes = [4_000, 4_000, 1_000]
    plans = signature_replay.batch_plans(9_000, 1_024, block_sizes=sizes)
    bounds = np.cumsum(sizes)
    for plan, batches in plans.items():
        for batch in batches:
            blocks = np.searchsorted(bounds, batch, side="right")
            assert len(set(blocks)) == 1, (plan, batch)
    shuffled = np.concatenate(plans["1024 shuffled"])
    assert sorted(shuffled) == list(range(9_000)) and (shuffled[:100] != np.arange(100)).any()
    ordered = signature_replay.in_order(9_000, 1_024, sizes)
    assert np.array_equal(np.concatenate(ordered), np.arange(9_000)) and max(map(len, ordered)) == 1_024


def test_one_pass_over_the_blocks_replays_every_batching(workspace):
    """Each block is loaded once for the in-order replay and every batching: not once per pass."""
    examples = workspace["examples"]
    sizes, starts, loads = [256, 256, TRIPS - 512], [0, 256, 512], []

    def loader(block):
        def load():
            loads.append(block)
            return examples[starts[block] : starts[block] + sizes[block]]

        return load

    source = replay_source.ReplaySource([loader(b) for b in range(3)], sizes)
    verdict = gate_checks.run_checks(workspace["models"][None], source, served_figures(workspace))
    assert verdict.blessed, verdict.format()
    assert loads == [0, 1, 2]
    figures = {c.name: c.figures for c in verdict.checks}["batch_invariance"]
    assert figures["serving_raw"]["1024 shuffled"]["examples"] == TRIPS and figures["seconds"] > 0
    # A batch-dependent model is still refused from the same single pass.
    loads.clear()
    blend = gate_checks.run_checks(workspace["models"]["batch_mean_blend"], source)
    assert {c.name: c.status for c in blend.checks}["batch_invariance"] == "fail" and loads == [0, 1, 2]


def test_replay_passes_answer_each_pass_in_its_own_order_from_one_pass_over_the_blocks():
    """Batches are called block by block, but each pass's predictions keep its own batch order."""
    sizes = [100, 100, 50]
    values = np.arange(250, dtype=np.float64) / 250
    loads, called = [], []

    def inputs_of(rows):
        block = int(np.searchsorted(np.cumsum(sizes), rows[0], side="right"))
        if not loads or loads[-1] != block:
            loads.append(block)
        return {"rows": rows}

    def call(rows):
        called.append(int(rows[0]))
        return {signature_replay.PREDICTION_KEY: values[rows][:, None]}

    shuffled = [np.arange(200, 250)[::-1], np.arange(0, 100)[::-1], np.arange(100, 200)]  # blocks 2, 0, 1
    passes = {"in order": signature_replay.in_order(250, 64, sizes), "shuffled": shuffled}
    replays = signature_replay.replay_passes({"s": (call, inputs_of)}, passes, sizes)
    assert loads == [0, 1, 2]  # each block once for both passes
    assert np.array_equal(replays["in order"]["s"].predictions, values)
    assert np.array_equal(replays["shuffled"]["s"].predictions, values[np.concatenate(shuffled)])
    # A failure in one pass leaves the other's answers alone.
    broken = {"s": (lambda rows: {"x": 0} if rows[0] == 249 else call(rows), inputs_of)}
    replays = signature_replay.replay_passes(broken, passes, sizes)
    assert replays["shuffled"]["s"].error and replays["in order"]["s"].predictions is not None
