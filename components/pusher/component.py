"""AtomicPusher component: the standard Pusher spec and interface, with the atomic executor.

No spec.py here: the component reuses TFX's PusherSpec unchanged (same inputs, outputs and
push_destination parameter), so only the executor differs.
"""

from tfx.components import Pusher
from tfx.dsl.components.base import executor_spec

from components.pusher.executor import Executor


class AtomicPusher(Pusher):
    """Pusher whose versions only grow and whose pushes are atomic renames."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
