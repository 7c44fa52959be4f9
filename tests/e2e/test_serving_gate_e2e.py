"""The serving gate on real pipeline models: it passes the good one and refuses what the Evaluator cannot see.

The cold run's model passes every check with the Evaluator's figures; the skewed raw signature
(skewed_trainer.py) and the batch-dependent model (batch_blend_trainer.py) are blessed by the
Evaluator and refused by the gate, so nothing is pushed; `verify` re-runs the gate's checks
on the pushed model.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from data import embedded
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK, EXIT_SERVING_GATE

pytestmark = pytest.mark.e2e


def test_serving_gate_passes_the_real_model_with_the_evaluators_figures(runs):
    cold = runs["cold"]
    assert cold.report.gate_blessed is True
    assert "Serving gate: passed (7 checks on" in cold.stdout
    checks = {c["name"]: c for c in cold.report.gate_checks}
    assert {c["status"] for c in checks.values()} == {"pass"}
    metrics = checks["metrics"]["figures"]
    for ours, theirs in (("accuracy", "binary_accuracy"), ("auc", "auc")):
        for signature in ("serving_default", "serving_raw"):
            assert abs(metrics[signature][ours] - cold.report.overall[theirs]) <= 0.005
    assert checks["parity"]["figures"]["max_abs_difference"] <= 1e-5
    assert checks["parity"]["figures"]["examples_differing"] == 0


def test_serving_gate_refusal_pushes_nothing_and_says_why(runs):
    skewed = runs["skewed"]
    assert skewed.status == EXIT_SERVING_GATE, skewed.stdout + skewed.stderr
    states = {n.node_id: n.state for n in skewed.report.nodes}
    assert states["Trainer"] == "ran" and states["ServingGate"] == "ran"
    # The Evaluator alone would have pushed it: serving_default is the real model.
    assert skewed.report.blessed is True
    assert skewed.report.gate_blessed is False
    assert not skewed.report.pushed_new_version
    assert skewed.versions == runs["cold"].versions
    failed = [c["name"] for c in skewed.report.gate_checks if c["status"] == "fail"]
    assert "parity" in failed
    assert "Serving gate: REFUSED the push" in skewed.stdout
    assert "train/serve preprocessing skew" in skewed.stdout
    assert "Pushed: nothing (the serving gate refused it)" in skewed.stdout


def test_a_batch_dependent_model_fools_the_evaluator_but_not_the_serving_gate(runs):
    blend = runs["batch_blend"]
    assert blend.status == EXIT_SERVING_GATE, blend.stdout + blend.stderr
    states = {n.node_id: n.state for n in blend.report.nodes}
    assert states["Trainer"] == "ran" and states["Evaluator"] == "ran"
    assert blend.report.blessed is True  # the Evaluator scored the blended answers and passed them
    assert blend.report.gate_blessed is False
    assert not blend.report.pushed_new_version
    assert blend.versions == runs["cold"].versions
    checks = {c["name"]: c for c in blend.report.gate_checks}
    assert checks["batch_invariance"]["status"] == "fail"
    for name in ("signatures", "output_shape", "finite", "parity", "not_degenerate"):
        assert checks[name]["status"] == "pass", (name, checks[name]["detail"])
    detail = checks["batch_invariance"]["detail"]
    assert "serving_default: example " in detail and "batchings that disagree: 1, 2, 7, 64" in detail
    assert checks["batch_invariance"]["figures"]["max_abs_difference"] > 0.01
    assert "Serving gate: REFUSED the push" in blend.stdout
    assert "depends on the rest of its batch" in blend.stdout


def test_verify_passes_the_pushed_model_on_raw_csv_and_the_evaluator(runs, tmp_path):
    cold = runs["cold"]
    evaluation = next(
        node.outputs["evaluation"][0].uri for node in cold.report.nodes if node.node_id == "Evaluator"
    )
    examples = next(
        node.outputs["examples"][0].uri
        for node in cold.report.nodes
        if node.node_id == "SpanWindowCsvExampleGen"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["verify", "--model", cold.report.pushed_path, "--data", examples, "--evaluation", evaluation]
        )
    assert status == EXIT_OK, out.getvalue()
    assert "[PASS   ] metrics" in out.getvalue()
    csv = runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME
    with contextlib.redirect_stdout(io.StringIO()):
        serving_dir = str(PipelineConfig(root=runs["root"]).serving_dir)
        assert main(["verify", "--model", serving_dir, "--data", str(csv)]) == EXIT_OK
