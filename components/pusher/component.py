"""AtomicPusher component: the standard Pusher's interface, optional edge and web models, atomic pushes."""

from __future__ import annotations

from tfx import types
from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_artifacts
from tfx.utils import json_utils

from components.pusher import spec
from components.pusher.executor import Executor


class AtomicPusher(Pusher):
    """Pusher whose versions only grow and whose pushes are atomic renames.

    With `edge_model` (EdgeExport's output), a blessed edge model is written to
    `<base>/edge/<version>/` beside the SavedModel's `<base>/<version>/`; with `web_model`
    (WebExport's output), a blessed TF.js model to `<base>/web/<version>/`.
    """

    SPEC_CLASS = spec.AtomicPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model: types.BaseChannel,
        push_destination,
        model_blessing: types.BaseChannel | None = None,
        infra_blessing: types.BaseChannel | None = None,
        edge_model: types.BaseChannel | None = None,
        web_model: types.BaseChannel | None = None,
    ):
        """Configure the push.

        Args:
            model: the Trainer's model.
            push_destination: a filesystem PushDestination (TF Serving's model base path).
            model_blessing: the Evaluator's blessing.
            infra_blessing: the ServingGate's blessing.
            edge_model: EdgeExport's output; pushed only when its gate blessed it.
            web_model: WebExport's output; pushed only when its gate blessed it.
        """
        # Pusher.__init__ builds TFX's own spec; skip to BaseComponent's with ours.
        super(Pusher, self).__init__(
            spec=spec.AtomicPusherSpec(
                model=model,
                model_blessing=model_blessing,
                infra_blessing=infra_blessing,
                push_destination=push_destination,
                custom_config=json_utils.dumps(None),
                pushed_model=types.Channel(type=standard_artifacts.PushedModel),
                **({spec.EDGE_MODEL_KEY: edge_model} if edge_model is not None else {}),
                **({spec.WEB_MODEL_KEY: web_model} if web_model is not None else {}),
            )
        )
