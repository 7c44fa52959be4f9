"""A Trainer `run_fn` that exports a deliberately miscalibrated model (for the calibration gate's e2e test).

It trains the project's real model with the real `run_fn`; only before exporting, the output
layer's bias is raised by `LOGIT_SHIFT`: every logit moves by the same amount, so the ranking
(AUC) is the trained model's, but every probability is too high and the mean prediction far
above the mean label. Only the Evaluator's calibration bound can refuse it.
"""

from __future__ import annotations

from models import trainer

LOGIT_SHIFT = 1.2


def run_fn(fn_args) -> None:
    """The real run_fn, with the export preceded by a shift of the output bias."""
    original = trainer.export_model

    def shifted_export(model, tf_transform_output, path):
        layer = model.get_layer("probabilities")
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel, bias + LOGIT_SHIFT])
        return original(model, tf_transform_output, path)

    trainer.export_model = shifted_export
    try:
        trainer.run_fn(fn_args)
    finally:
        trainer.export_model = original
