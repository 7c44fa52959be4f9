"""ServingGate component class."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import Channel, channel_utils, standard_artifacts

from components.serving_gate import spec
from components.serving_gate.executor import Executor
from serving.gate_defaults import DEFAULT_PARITY_TOLERANCE


class ServingGate(base_component.BaseComponent):
    """Loads the trained model as a server would and replays a split through its signatures.

    Its `blessing` output (an InfraBlessing) goes to the Pusher's `infra_blessing` input: a
    model is pushed only when the Evaluator blesses it and every check here passes.
    """

    SPEC_CLASS = spec.ServingGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: Channel,
        examples: Channel,
        *,
        metric_tolerance: float | data_types.RuntimeParameter,
        evaluation: Channel | None = None,
        split: str = spec.DEFAULT_SPLIT,
        parity_tolerance: float = DEFAULT_PARITY_TOLERANCE,
    ):
        """Configure the gate.

        Args:
            model: the Trainer's model.
            examples: ExampleGen's examples; `split` of them is replayed.
            evaluation: the Evaluator's output, whose overall accuracy and AUC the served
                predictions must reproduce; without it that check is skipped.
            split: which split to replay (the Evaluator's, so the figures are comparable).
            metric_tolerance: largest accepted |served - Evaluator| for accuracy and AUC.
            parity_tolerance: largest accepted |raw - serialized| for one prediction.
        """
        super().__init__(
            spec=spec.ServingGateSpec(
                **{
                    spec.MODEL_KEY: model,
                    spec.EXAMPLES_KEY: examples,
                    spec.EVALUATION_KEY: evaluation,
                    spec.SPLIT_KEY: split,
                    spec.METRIC_TOLERANCE_KEY: metric_tolerance,
                    spec.PARITY_TOLERANCE_KEY: parity_tolerance,
                    spec.BLESSING_KEY: channel_utils.as_channel([standard_artifacts.InfraBlessing()]),
                }
            )
        )
