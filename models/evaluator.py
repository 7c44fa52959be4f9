"""The Evaluator's user code, named by `module_path`: TFMA's slices and metrics a batch at a time.

TFX's Evaluator imports this module and calls the hooks it finds here: `custom_eval_shared_model`
(the model TFMA loads) and `custom_extractors` (the extractors TFMA runs). Both hand over to
`tfma_batched`, as do the metric classes the eval config names (`tfma_batched.metrics`, built
by `pipeline.eval_config.make_eval_config`). Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

from tfma_batched import model_wrapper, slicing


def custom_eval_shared_model(eval_saved_model_path, model_name, eval_config, **kwargs):
    """The TFX Evaluator's hook: TFMA's shared model, its signatures called by input name."""
    return model_wrapper.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path,
        model_name=model_name,
        eval_config=eval_config,
        **kwargs,
    )


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config=None):
    """The TFX Evaluator's hook: TFMA's extractors up to the predictions, then `slice_batches`."""
    return slicing.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
    )
