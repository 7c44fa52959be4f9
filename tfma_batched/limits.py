"""The eval config options the batched path refuses, and the error it raises.

An extract of the batched path holds a batch of examples, not one: options whose meaning
depends on counting extracts, or that TFMA computes outside the slices and combiners this
package replaces, would give other figures than TFMA's. They are refused before the pipeline
is built rather than computed differently. Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma


class UnsupportedEvalConfig(ValueError):
    """An eval config option the batched Evaluator would compute differently from TFMA."""


def check_eval_config(eval_config: tfma.EvalConfig) -> None:
    """Refuse the options whose meaning changes when an extract holds a batch."""
    problems = []
    if eval_config.options.min_slice_size.value > 1:
        problems.append("options.min_slice_size (TFMA would count batches, not examples)")
    if eval_config.cross_slicing_specs:
        problems.append("cross_slicing_specs")
    if any(spec.slice_keys_sql for spec in eval_config.slicing_specs):
        problems.append("slicing_specs[].slice_keys_sql")
    for spec in eval_config.metrics_specs:
        if spec.query_key:
            problems.append("metrics_specs[].query_key")
    if eval_config.options.compute_confidence_intervals.value:
        problems.append("options.compute_confidence_intervals")
    if problems:
        raise UnsupportedEvalConfig(
            "the batched Evaluator (tfma_batched) does not support "
            + ", ".join(problems)
            + "; use TFMA's stock extractors for this eval config"
        )
