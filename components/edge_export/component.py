"""EdgeExport component class."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import Channel, channel_utils

from components.edge_export import spec
from components.edge_export.executor import Executor
from components.shared import EdgeModel
from models.edge import REPRESENTATIVE_TRIPS


class EdgeExport(base_component.BaseComponent):
    """Converts the trained model to int8 TFLite (builtin ops only) and runs the edge gate on it.

    Its `edge_model` output goes to the Pusher's `edge_model` input: the Pusher writes it
    beside the SavedModel's version only when the gate blessed it; a refusal never stops
    the SavedModel's push.
    """

    SPEC_CLASS = spec.EdgeExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: Channel,
        examples: Channel,
        *,
        accuracy_tolerance: float,
        auc_tolerance: float,
        serving_blessing: Channel | None = None,
        split: str = spec.DEFAULT_SPLIT,
        calibration_split: str = spec.DEFAULT_CALIBRATION_SPLIT,
        representative_trips: int = REPRESENTATIVE_TRIPS,
        seed: int = 0,
    ):
        """Configure the export and its gate.

        Args:
            model: the Trainer's model.
            examples: ExampleGen's examples: calibration trips from `calibration_split`,
                the gate's replay from `split`.
            serving_blessing: the ServingGate's output (its `serving_raw` answers on `split`).
            split: the split the gate replays (the Evaluator's and the serving gate's).
            calibration_split: the split the representative trips are drawn from.
            representative_trips: how many trips calibrate the int8 ranges.
            seed: seeds the draw of the representative trips.
            accuracy_tolerance: largest accepted |edge - SavedModel| accuracy.
            auc_tolerance: largest accepted |edge - SavedModel| AUC.
        """
        super().__init__(
            spec=spec.EdgeExportSpec(
                **{
                    spec.MODEL_KEY: model,
                    spec.EXAMPLES_KEY: examples,
                    spec.SERVING_BLESSING_KEY: serving_blessing,
                    spec.SPLIT_KEY: split,
                    spec.CALIBRATION_SPLIT_KEY: calibration_split,
                    spec.REPRESENTATIVE_TRIPS_KEY: representative_trips,
                    spec.SEED_KEY: seed,
                    spec.ACCURACY_TOLERANCE_KEY: accuracy_tolerance,
                    spec.AUC_TOLERANCE_KEY: auc_tolerance,
                    spec.EDGE_MODEL_KEY: channel_utils.as_channel([EdgeModel()]),
                }
            )
        )
