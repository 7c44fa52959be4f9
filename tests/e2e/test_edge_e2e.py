"""The int8 edge model: exported, gated and pushed beside the SavedModel, run in the edge runtime.

The cold run's edge model runs in the standalone edge runtime (.venv-edge: ai-edge-litert, no
TensorFlow) and meets the int8 bars against the SavedModel; `verify` runs the edge gate on it;
a batch-dependent model is refused at the edge too; an edge refusal leaves the SavedModel's
push alone and the summary says so.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from e2e_support import edge_versions

from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK

pytestmark = pytest.mark.e2e


def _edge_runtime(model: Path, raw: dict, tmp_path: Path, name: str) -> dict:
    """Answers of `model` in the standalone edge runtime (.venv-edge: ai-edge-litert, no TensorFlow)."""
    import subprocess

    import numpy as np

    repo = Path(__file__).resolve().parents[2]
    edge_python = repo / ".venv-edge" / "bin" / "python"
    assert (
        edge_python.exists()
    ), "no edge venv: `make setup` builds .venv-edge (ai-edge-litert, no TensorFlow)"
    np.savez(tmp_path / f"{name}-inputs.npz", **raw)
    result = subprocess.run(
        [str(edge_python), str(repo / "tests" / "edge_runner.py"), str(model)]
        + [str(tmp_path / f"{name}-inputs.npz"), str(tmp_path / f"{name}-out.npz")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(np.load(tmp_path / f"{name}-out.npz"))


def test_the_pushed_edge_model_runs_in_the_edge_runtime_and_meets_the_int8_bars(runs, tmp_path):
    """The int8 model the Pusher wrote beside the cold run's version, judged on the eval split."""
    import json

    import numpy as np
    import tensorflow as tf

    from models.edge import INT8_OPS, builtin_ops, convert
    from serving.gate_checks import accuracy, auc
    from serving.replay_data import examples_to_raw, labels_of, load_replay_examples
    from serving.request_checks import serving_raw_specs

    cold = runs["cold"].report
    assert cold.edge_blessed is True and cold.edge_pushed is True, (cold.edge_summary, cold.edge_reason)
    folder = PipelineConfig(root=runs["root"]).serving_dir / "edge" / cold.pushed_version
    assert Path(cold.edge_path) == folder
    model = folder / "model.tflite"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == int(cold.pushed_version) and metadata["saved_model"] == cold.pushed_path
    assert metadata["bytes"] == model.stat().st_size == cold.edge_bytes
    assert metadata["variant"] == "int8"
    assert metadata["representative"] == {"split": "train", "trips": 100, "seed": 0}
    assert [i["name"] for i in metadata["inputs"]] == sorted(serving_raw_specs())
    assert f"Edge model: int8, {cold.edge_bytes:,} bytes -> {folder}" in runs["cold"].stdout

    flatbuffer = model.read_bytes()
    assert "CUSTOM" not in builtin_ops(flatbuffer) and INT8_OPS | {"QUANTIZE"} <= builtin_ops(flatbuffer)
    float32 = convert(cold.pushed_path, "float32")  # raises if any op needs Flex
    # The preprocessing stays float32 in int8 (docs/edge.md), presence masks included: about a
    # third of the float32 model's bytes.
    assert len(flatbuffer) <= 0.36 * len(float32), (len(flatbuffer), len(float32))

    # The eval split the gate replayed, through the edge runtime and through the SavedModel.
    examples_uri = next(
        a.uri for n in cold.nodes if n.node_id == "SpanWindowCsvExampleGen" for a in n.outputs["examples"]
    )
    examples = load_replay_examples(examples_uri, split="eval")
    raw = examples_to_raw(examples, serving_raw_specs())
    signature = tf.saved_model.load(cold.pushed_path).signatures["serving_raw"]
    expected = signature(**{k: tf.constant(v) for k, v in raw.items()})["probabilities"].numpy().ravel()
    answers = _edge_runtime(model, raw, tmp_path, "int8")
    edge = answers["batch"].ravel()
    # Missing markers included (the eval split has blank cells), batched and one at a time alike.
    assert any((v == -1).any() or (v.dtype.kind == "f" and np.isnan(v).any()) for v in raw.values())
    np.testing.assert_allclose(answers["single"].ravel(), edge, atol=1e-6)
    labels = labels_of(examples)
    assert abs(accuracy(labels, edge) - accuracy(labels, expected)) <= 0.01
    assert abs(auc(labels, edge) - auc(labels, expected)) <= 0.005
    # The gate measured (in TensorFlow's TFLite interpreter) what the edge runtime answers, up to
    # kernel rounding between the two builds (measured: AUC 1e-5 apart).
    gate = metadata["gate"]
    assert gate["examples"] == len(examples)
    assert gate["edge"]["auc"] == pytest.approx(auc(labels, edge), abs=1e-3)
    assert gate["max_abs_difference"] == pytest.approx(np.abs(edge - expected).max(), abs=0.02)

    # float32: the very graph of the SavedModel, answering the same in the edge runtime.
    (tmp_path / "float32.tflite").write_bytes(float32)
    same = _edge_runtime(tmp_path / "float32.tflite", {k: v[:300] for k, v in raw.items()}, tmp_path, "f32")
    np.testing.assert_allclose(same["batch"].ravel(), expected[:300], atol=1e-5)


def test_verify_runs_the_edge_gate_on_the_pushed_tflite(runs):
    cold = runs["cold"].report
    model = Path(cold.edge_path) / "model.tflite"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["verify", "--model", str(model), "--data", str(runs["root"] / "data" / "span-8")])
    assert status == EXIT_OK, out.getvalue()
    text = out.getvalue()
    assert "[PASS   ] agreement" in text and f"Compared with the SavedModel at {cold.pushed_path}" in text


def test_a_batch_dependent_model_is_refused_at_the_edge_too(runs):
    blend = runs["batch_blend"].report
    states = {n.node_id: n.state for n in blend.nodes}
    assert states["EdgeExport"] == "ran"
    assert blend.edge_blessed is False
    failed = [c["name"] for c in blend.edge_checks if c["status"] == "fail"]
    assert "batch_invariance" in failed, blend.edge_checks
    assert "Edge gate: REFUSED the int8 edge model" in runs["batch_blend"].stdout
    assert edge_versions(runs["root"]) == [runs["cold"].report.pushed_version]


def test_an_edge_refusal_leaves_the_saved_model_push_alone_and_the_summary_says_so(runs):
    refused = runs["edge_refused"]
    assert refused.status == EXIT_OK, refused.stdout + refused.stderr
    states = {n.node_id: n.state for n in refused.report.nodes}
    # The cold run's model (Trainer cached); the Evaluator re-ran against the newer baseline.
    assert states["Trainer"] == "cached" and states["Transform"] == "cached", states
    assert states["EdgeExport"] == "ran" and states["AtomicPusher"] == "ran", states
    report = refused.report
    assert report.pushed_new_version and report.pushed_version not in runs["batch_blend"].versions
    assert refused.versions == sorted(runs["batch_blend"].versions + [report.pushed_version])
    assert report.edge_blessed is False and report.edge_pushed is False
    assert report.edge_reason.startswith("the edge gate refused it: refused: agreement:")
    assert edge_versions(runs["root"]) == [runs["cold"].report.pushed_version]
    assert f"Pushed: version {report.pushed_version}" in refused.stdout
    assert "Edge model: not pushed (the edge gate refused it" in refused.stdout
    assert "the SavedModel push above is unaffected" in refused.stdout
