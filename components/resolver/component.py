"""The Resolver nodes of the pipeline: the Evaluator's baseline and the Trainer's warm start.

`make_baseline_resolver` runs our `LatestBlessedOtherModelStrategy` (see `strategy.py`) locally,
TFX's stock LatestBlessedModelStrategy where only stock strategies run (Kubeflow v2).
"""

from __future__ import annotations

from tfx.dsl.components.common import resolver
from tfx.types import standard_artifacts

from components.resolver.spec import CANDIDATE_KEY, MODEL_BLESSING_KEY, MODEL_KEY
from components.resolver.strategy import LatestBlessedOtherModelStrategy


def make_baseline_resolver(candidate_model, portable: bool = False) -> resolver.Resolver:
    """Resolver node whose `model` output is the baseline for the Evaluator (may be empty).

    `portable`: TFX's stock LatestBlessedModelStrategy instead of ours, for orchestrators that
    run only stock strategies (KubeflowV2DagRunner); it may return the candidate itself when
    a cached model was blessed before.
    """
    from tfx.types import Channel

    if portable:
        from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
            LatestBlessedModelStrategy,
        )

        return resolver.Resolver(
            strategy_class=LatestBlessedModelStrategy,
            **{
                MODEL_KEY: Channel(type=standard_artifacts.Model),
                MODEL_BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing),
            },
        ).with_id("latest_blessed_model_resolver")

    return resolver.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        **{
            MODEL_KEY: Channel(type=standard_artifacts.Model),
            MODEL_BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing),
            CANDIDATE_KEY: candidate_model,
        },
    ).with_id("latest_blessed_model_resolver")


def make_warm_start_resolver() -> resolver.Resolver:
    """Resolver node whose `model` output is the latest blessed model (empty before the first).

    Runs before the Trainer, so the candidate cannot be among its inputs.
    """
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
    from tfx.types import Channel

    return resolver.Resolver(
        strategy_class=LatestBlessedModelStrategy,
        **{
            MODEL_KEY: Channel(type=standard_artifacts.Model),
            MODEL_BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing),
        },
    ).with_id("warm_start_model_resolver")
