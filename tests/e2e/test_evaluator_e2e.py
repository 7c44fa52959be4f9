"""The batched Evaluator (tfma_batched) against TFMA's stock per-example path, on the cold run's model.

Same model, same eval rows, with and without a baseline: every slice, every metric key, every
value agrees (see the test's docstring for the tolerance and why).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import node

pytestmark = pytest.mark.e2e


def test_the_batched_evaluator_reports_tfmas_stock_figures(runs, tmp_path):
    """The batched Evaluator (tfma_batched) against TFMA's own per-example path, on the same model and rows.

    The cold run's Evaluator output (batched, no baseline) equals a stock TFMA run; and with
    a baseline (the same model: diffs and both models' figures), batched equals stock too.
    Every slice, every metric key, every value: to 1e-5, as TFMA's adaptive batching feeds
    the model batches of other sizes from run to run, and float32 inference rounds a
    prediction differently by batch size (about 1e-7: it can move one across a histogram
    bucket edge). A wrong count or sum is off by far more. A metric undefined on a small
    slice (precision with no positive prediction) is NaN on both paths.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from pipeline.eval_config import make_eval_config
    from tfma_batched import harness as batched_evaluation

    cold = runs["cold"]
    model = Path(node(cold, "Trainer").outputs["model"][0].uri) / "Format-Serving"
    examples = Path(node(cold, "SpanWindowCsvExampleGen").outputs["examples"][0].uri) / "Split-eval"
    files = sorted(str(p) for p in examples.iterdir())
    schema_uri = node(cold, "ImportSchemaGen").outputs["schema"][0].uri
    schema = io_utils.parse_pbtxt_file(str(Path(schema_uri) / "schema.pbtxt"), schema_pb2.Schema())
    pipeline_figures = batched_evaluation.metric_values(node(cold, "Evaluator").outputs["evaluation"][0].uri)

    def run(batched: bool, baseline: bool) -> dict:
        out = tmp_path / f"batched={batched}-baseline={baseline}"
        batched_evaluation.evaluate(
            model_path=str(model),
            baseline_path=str(model) if baseline else None,
            example_patterns=files,
            schema=schema,
            eval_config=make_eval_config(0.5, 0.1, batched=batched),
            output_path=str(out),
            batched=batched,
        )
        return batched_evaluation.metric_values(str(out))

    def assert_same(expected: dict, got: dict) -> None:
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5, nan_ok=True), key

    stock = run(batched=False, baseline=False)
    slices = {slice_key for slice_key, _ in stock}
    assert "" in slices  # overall
    for column, at_least in (("payment_type", 3), ("trip_start_hour", 24), ("trip_start_day", 7)):
        assert sum(f'column: "{column}"' in s for s in slices) >= at_least, column
    assert_same(stock, pipeline_figures)
    stock_with_baseline = run(batched=False, baseline=True)
    assert any("is_diff: true" in metric for _, metric in stock_with_baseline)
    assert_same(stock_with_baseline, run(batched=True, baseline=True))
