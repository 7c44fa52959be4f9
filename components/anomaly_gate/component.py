"""AnomalyGate component class."""

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import Channel

from components.anomaly_gate import spec
from components.anomaly_gate.executor import Executor


class AnomalyGate(base_component.BaseComponent):
    """Fails the pipeline run when ExampleValidator's anomalies are not empty.

    Make the first data-consuming component (Transform) depend on it with
    `add_upstream_node`, so that a failing gate stops the run before any training.
    """

    SPEC_CLASS = spec.AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, anomalies: Channel):
        super().__init__(spec=spec.AnomalyGateSpec(**{spec.ANOMALIES_KEY: anomalies}))
