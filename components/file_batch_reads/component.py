"""TFX's StatisticsGen, Transform and Evaluator components, given the file-batch executors.

The components stay TFX's own (spec, inputs, outputs, node ids); only the executor class
their Beam executor spec names changes (`executor.py`), so they run unchanged on every
orchestrator that runs TFX's.
"""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec

from components.file_batch_reads.executor import (
    EvaluatorExecutor,
    StatisticsGenExecutor,
    TransformExecutor,
)

EXECUTORS = {
    "StatisticsGen": StatisticsGenExecutor,
    "Transform": TransformExecutor,
    "Evaluator": EvaluatorExecutor,
}


def read_file_batches(component: base_component.BaseComponent) -> base_component.BaseComponent:
    """Give a stock StatisticsGen, Transform or Evaluator its file-batch executor (in place)."""
    name = type(component).__name__
    if name not in EXECUTORS:
        raise TypeError(f"no file-batch executor for {name}; there are for {sorted(EXECUTORS)}")
    spec = executor_spec.BeamExecutorSpec(EXECUTORS[name])
    spec.beam_pipeline_args = list(component.executor_spec.beam_pipeline_args)
    component.executor_spec = spec
    return component
