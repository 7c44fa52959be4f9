"""Run TFMA on tf.Example files as the TFX Evaluator does, on the batched path or TFMA's stock one.

The benchmark (`benchmarks/bench_evaluator.py`) and the comparison test run both paths on the
same rows with `evaluate` and compare them with `metric_values`.
Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

import apache_beam as beam
import tensorflow_model_analysis as tfma

from tfma_batched.model_wrapper import default_eval_shared_model
from tfma_batched.slicing import default_extractors


def evaluate(
    *,
    model_path: str,
    example_patterns: list[str],
    schema,
    eval_config: tfma.EvalConfig,
    output_path: str,
    batched: bool,
    baseline_path: str | None = None,
    tfxio_type: type | None = None,
) -> None:
    """Run TFMA on gzipped tf.Example files as the TFX Evaluator does, batched or stock.

    `eval_config` as the Evaluator receives it (before defaults); with `baseline_path` the
    candidate is compared with that model, as with a blessed baseline; `tfxio_type` reads the
    files (tfx_bsl's `TFExampleRecord` when None). The benchmark and the tests run both paths
    on the same rows with this.
    """
    from tfx_bsl.tfxio import tf_example_record

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config, has_baseline=baseline_path is not None, rubber_stamp=True
    )
    make_model = default_eval_shared_model if batched else tfma.default_eval_shared_model
    models = [
        make_model(
            eval_saved_model_path=baseline_path if spec.is_baseline else model_path,
            model_name=spec.name,
            eval_config=config,
        )
        for spec in config.model_specs
    ]
    source = (tfxio_type or tf_example_record.TFExampleRecord)(
        file_pattern=example_patterns, schema=schema, raw_record_column_name=tfma.ARROW_INPUT_COLUMN
    )
    adapter = source.TensorAdapterConfig()
    shared = models[0] if len(models) == 1 else models
    extractors = default_extractors(shared, config, adapter) if batched else None
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | "Read" >> source.BeamSource()
            | "Evaluate"
            >> tfma.ExtractEvaluateAndWriteResults(
                eval_shared_model=shared,
                eval_config=config,
                extractors=extractors,
                output_path=output_path,
                tensor_adapter_config=adapter,
            )
        )


def metric_values(output_path: str) -> dict[tuple[str, str], float]:
    """(slice, metric key) -> value of every scalar metric in a TFMA output folder."""
    values = {}
    for metrics in tfma.load_metrics(output_path):
        slice_key = str(metrics.slice_key)
        for item in metrics.metric_keys_and_values:
            if item.value.HasField("double_value"):
                values[(slice_key, str(item.key))] = item.value.double_value.value
    return values
