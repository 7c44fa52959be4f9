"""DriftGate component class."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import Channel, channel_utils, standard_artifacts

from components.drift_gate import spec
from components.drift_gate.executor import Executor


class DriftGate(base_component.BaseComponent):
    """Fails the run when the newest span drifted from the previous one beyond the schema's thresholds.

    Make Transform depend on it with `add_upstream_node`. With `accept_drift`, a drifted span
    passes and the acceptance is recorded on the output artifact (and the execution) in ML
    Metadata.
    """

    SPEC_CLASS = spec.DriftGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        examples: Channel,
        schema: Channel,
        data_root: str,
        span_pattern: str,
        accept_drift: bool | data_types.RuntimeParameter,
        min_span_rows: int,
    ):
        """Configure the gate.

        Args:
            examples: ExampleGen's output; its `spans` property names the newest span.
            schema: the curated schema, whose `drift_comparator`s set the thresholds.
            data_root: folder of the span data (to read the newest and the previous span).
            span_pattern: the span file pattern under `data_root`, with `{SPAN}`.
            accept_drift: let a drifted span through (a person's knowing override).
            min_span_rows: fewer rows in a compared span stop the run (too few to compare).
        """
        super().__init__(
            spec=spec.DriftGateSpec(
                **{
                    spec.EXAMPLES_KEY: examples,
                    spec.SCHEMA_KEY: schema,
                    spec.DATA_ROOT_KEY: data_root,
                    spec.SPAN_PATTERN_KEY: span_pattern,
                    # A RuntimeParameter (Kubeflow) passes through as it is.
                    spec.ACCEPT_DRIFT_KEY: accept_drift
                    if isinstance(accept_drift, data_types.RuntimeParameter)
                    else int(accept_drift),
                    spec.MIN_SPAN_ROWS_KEY: int(min_span_rows),
                    spec.DRIFT_KEY: channel_utils.as_channel([standard_artifacts.ExampleAnomalies()]),
                }
            )
        )
