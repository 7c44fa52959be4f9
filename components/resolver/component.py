"""The resolver nodes of the pipeline: the Evaluator's baseline and the Trainer's warm start.

Locally (and wherever TFX resolver nodes run) they query ML Metadata: the baseline is our
`LatestBlessedOtherModelStrategy` (`strategy.py`), the latest blessed model other than the
candidate. With `portable=True` (Kubeflow Pipelines, whose open-source backend runs only
container and importer executors) they are `PushedModelResolver` container tasks instead,
which read what the Pusher recorded in the serving dir (`executor.py`).
"""

from __future__ import annotations

from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.components.common import resolver
from tfx.types import Channel, standard_artifacts

from components.resolver import spec
from components.resolver.executor import Executor
from components.resolver.spec import CANDIDATE_KEY, MODEL_BLESSING_KEY, MODEL_KEY
from components.resolver.strategy import LatestBlessedOtherModelStrategy

BASELINE_ID = "latest_blessed_model_resolver"
WARM_START_ID = "warm_start_model_resolver"


class PushedModelResolver(base_component.BaseComponent):
    """The newest model the Pusher pushed to `serving_dir`, other than `candidate`.

    Its `model` output carries `found` (1 or 0), `pushed_version` and `source_model_uri`.
    """

    SPEC_CLASS = spec.PushedModelResolverSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, serving_dir: str, candidate: Channel | None = None):
        super().__init__(
            spec=spec.PushedModelResolverSpec(
                **{
                    spec.SERVING_DIR_KEY: serving_dir,
                    spec.CANDIDATE_KEY: candidate,
                    spec.MODEL_KEY: Channel(type=standard_artifacts.Model),
                }
            )
        )


def make_baseline_resolver(candidate_model, portable: bool = False, serving_dir: str = ""):
    """The node whose `model` output is the Evaluator's baseline (may be empty).

    `portable`: a PushedModelResolver container task over `serving_dir` instead of a
    resolver node.
    """
    if portable:
        if not serving_dir:
            raise ValueError("a portable baseline resolver needs the serving dir")
        return PushedModelResolver(serving_dir, candidate=candidate_model).with_id(BASELINE_ID)
    return resolver.Resolver(
        strategy_class=LatestBlessedOtherModelStrategy,
        **{
            MODEL_KEY: Channel(type=standard_artifacts.Model),
            MODEL_BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing),
            CANDIDATE_KEY: candidate_model,
        },
    ).with_id(BASELINE_ID)


def make_warm_start_resolver(portable: bool = False, serving_dir: str = ""):
    """The node whose `model` output is the latest blessed model (empty before the first).

    Runs before the Trainer, so the candidate cannot be among its inputs. `portable`: the
    newest pushed model, from a PushedModelResolver container task.
    """
    if portable:
        if not serving_dir:
            raise ValueError("a portable warm-start resolver needs the serving dir")
        return PushedModelResolver(serving_dir).with_id(WARM_START_ID)
    from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

    return resolver.Resolver(
        strategy_class=LatestBlessedModelStrategy,
        **{
            MODEL_KEY: Channel(type=standard_artifacts.Model),
            MODEL_BLESSING_KEY: Channel(type=standard_artifacts.ModelBlessing),
        },
    ).with_id(WARM_START_ID)
