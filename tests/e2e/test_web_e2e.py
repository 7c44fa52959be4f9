"""The TF.js model of the shared e2e runs: exported, gated in Chromium, pushed, and checked again here.

The cold run's web model is read back from the serving directory and run again in headless
Chromium on every backend over the whole eval split, independently of the gate's own run,
against the pushed SavedModel's `serving_raw`; its `serving_web` signature equals
`serving_raw` in TensorFlow too. Runs whose model the Evaluator refuses spend no browser run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from models import web, web_convert
from pipeline.config import PipelineConfig
from serving import web_browser

pytestmark = pytest.mark.e2e


def _eval_raw(report):
    from serving.replay_data import examples_to_raw, labels_of, load_replay_examples
    from serving.request_checks import serving_raw_specs

    uri = next(
        a.uri for n in report.nodes if n.node_id == "SpanWindowCsvExampleGen" for a in n.outputs["examples"]
    )
    examples = load_replay_examples(uri, split="eval")
    return examples_to_raw(examples, serving_raw_specs()), labels_of(examples)


def test_the_cold_run_pushes_a_gated_web_model_beside_its_version(runs):
    cold = runs["cold"].report
    assert cold.web_blessed is True and cold.web_pushed is True, (cold.web_summary, cold.web_reason)
    folder = PipelineConfig(root=runs["root"]).serving_dir / "web" / cold.pushed_version
    assert Path(cold.web_path) == folder
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == int(cold.pushed_version) and metadata["saved_model"] == cold.pushed_path
    assert metadata["signature"] == web.WEB_SIGNATURE and metadata["blessed"] is True
    exported = json.loads((Path(cold.pushed_path) / web.WEB_INPUTS_FILE).read_text())
    assert metadata["inputs"] == exported["inputs"]
    for name, described in metadata["files"].items():
        data = (folder / name).read_bytes()
        assert len(data) == described["bytes"] and hashlib.sha256(data).hexdigest() == described["sha256"]
    assert metadata["bytes"] == cold.web_bytes == sum(f["bytes"] for f in metadata["files"].values())
    assert (folder / "encode.js").is_file()
    # No string op or constant, no EnsureShape: the graph runs on the stock runtime.
    web_convert.check_graph(str(folder))
    figures = metadata["gate"]["figures"]["agreement"]
    assert {"cpu", "wasm", "webgl"} <= set(figures)
    assert all(figures[b]["max_abs_difference"] <= 1e-5 for b in ("cpu", "wasm", "webgl"))
    stdout = runs["cold"].stdout
    assert "Web gate: passed (6 checks on" in stdout
    assert f"Web model: TF.js, {cold.web_bytes:,} bytes -> {folder}" in stdout


def test_serving_web_equals_serving_raw_in_tensorflow(runs):
    import tensorflow as tf

    cold = runs["cold"].report
    raw, _ = _eval_raw(cold)
    model = tf.saved_model.load(cold.pushed_path)
    metadata = json.loads((Path(cold.web_path) / "metadata.json").read_text())
    expected = model.signatures["serving_raw"](**{k: tf.constant(v) for k, v in raw.items()})["probabilities"]
    encoded = web.encode(raw, metadata["inputs"])
    answered = model.signatures[web.WEB_SIGNATURE](**{k: tf.constant(v) for k, v in encoded.items()})[
        "probabilities"
    ]
    np.testing.assert_allclose(answered.numpy(), expected.numpy(), atol=1e-6)


def test_the_pushed_web_model_agrees_with_the_saved_model_on_the_whole_eval_split(runs):
    reason = web_browser.unavailable()
    if reason:
        pytest.skip(f"THE PUSHED WEB MODEL IS NOT RUN: {reason}")
    import tensorflow as tf

    from serving.gate_checks import accuracy, auc

    cold = runs["cold"].report
    raw, labels = _eval_raw(cold)
    folder = Path(cold.web_path)
    inputs = json.loads((folder / "metadata.json").read_text())["inputs"]
    signature = tf.saved_model.load(cold.pushed_path).signatures["serving_raw"]
    expected = signature(**{k: tf.constant(v) for k, v in raw.items()})["probabilities"].numpy().ravel()
    assert any((v == -1).any() or (v.dtype.kind == "f" and np.isnan(v).any()) for v in raw.values())
    runs_by_backend = web_browser.run_web_model(str(folder), inputs, raw, batch_size=1024, single=8)
    for backend, run in runs_by_backend.items():
        assert run.error is None and run.backend == backend, (backend, run.error)
        assert run.predictions.shape == expected.shape
        assert np.abs(run.predictions - expected).max() <= 1e-5, backend
        assert round(accuracy(labels, run.predictions), 4) == round(accuracy(labels, expected), 4)
        assert round(auc(labels, run.predictions), 4) == round(auc(labels, expected), 4)


@pytest.mark.parametrize("run", ["miscalibrated", "unreachable"])
def test_a_model_the_evaluator_refuses_is_not_gated_in_the_browser(runs, run):
    report = runs[run].report
    assert not report.pushed_new_version
    web_node = next(n for n in report.nodes if n.node_id == "WebExport")
    assert web_node.state == "ran"  # its blessing input changed: it ran, and spent no browser run
    assert report.web_blessed is False and report.web_pushed is None
    assert report.web_summary.startswith("refused: backends: not run: the Evaluator did not bless")
    assert "Web gate: not run: the Evaluator did not bless the model" in runs[run].stdout
