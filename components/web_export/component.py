"""WebExport component class."""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import Channel, channel_utils

from components.shared import WebModel
from components.web_export import spec
from components.web_export.executor import Executor


class WebExport(base_component.BaseComponent):
    """Converts the trained model's `serving_web` signature to TensorFlow.js and gates it in Chromium.

    Its `web_model` output goes to the Pusher's `web_model` input: the Pusher writes it
    beside the SavedModel's version only when the web gate blessed it; a refusal (or a
    machine without Chromium) never stops the SavedModel's push.
    """

    SPEC_CLASS = spec.WebExportSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: Channel,
        examples: Channel,
        *,
        model_blessing: Channel | None = None,
        infra_blessing: Channel | None = None,
        split: str = spec.DEFAULT_SPLIT,
        max_trips: int = spec.DEFAULT_MAX_TRIPS,
        seed: int = 0,
        max_difference: float = spec.DEFAULT_MAX_DIFFERENCE,
        backends: str = spec.DEFAULT_BACKENDS,
    ):
        """Configure the export and its gate.

        Args:
            model: the Trainer's model.
            examples: ExampleGen's examples; the gate replays `split`.
            model_blessing: the Evaluator's blessing; unblessed, the gate does not run.
            infra_blessing: the ServingGate's blessing; unblessed, the gate does not run.
            split: the split the gate replays (the serving and edge gates').
            max_trips: the whole split up to this many trips, else a seeded sample this size.
            seed: seeds the sample.
            max_difference: largest accepted |TF.js - SavedModel| per trip, on every backend.
            backends: comma-separated TF.js backends the gate runs (cpu, wasm, webgl).
        """
        super().__init__(
            spec=spec.WebExportSpec(
                **{
                    spec.MODEL_KEY: model,
                    spec.EXAMPLES_KEY: examples,
                    spec.MODEL_BLESSING_KEY: model_blessing,
                    spec.INFRA_BLESSING_KEY: infra_blessing,
                    spec.SPLIT_KEY: split,
                    spec.MAX_TRIPS_KEY: max_trips,
                    spec.SEED_KEY: seed,
                    spec.MAX_DIFFERENCE_KEY: max_difference,
                    spec.BACKENDS_KEY: backends,
                    spec.WEB_MODEL_KEY: channel_utils.as_channel([WebModel()]),
                }
            )
        )
