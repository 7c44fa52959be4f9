"""TFJobTrainer component: TFX's Trainer spec and interface with the TFJob-submitting executor.

No spec.py here: the component reuses TFX's TrainerSpec unchanged (same inputs, outputs and
parameters); the TFJob settings travel in `custom_config[TFJOB_KEY]` (see executor.py).
"""

from tfx.components import Trainer
from tfx.dsl.components.base import executor_spec

from components.tfjob_trainer.executor import Executor


class TFJobTrainer(Trainer):
    """Trainer whose `run_fn` runs in N TFJob worker pods; the chief's export is the output model."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
