"""TFMA's shared model with its signatures callable the way TFMA calls them.

TFMA calls a signature with one positional tensor of serialized examples. TensorFlow refuses
that call against the structured, keyword-only signature first, formats every serialized
example of the batch into the error message, then falls back to the flat signature: a large
share of the Evaluator's inference time (`benchmarks/bench_evaluator.py` measures it). The
wrapper passes the tensor by its one input name: the same function, the same outputs.
Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.api import types


class _KeywordSignature:
    """A loaded signature, also callable with its one input given positionally."""

    def __init__(self, function):
        self._function = function
        _, keywords = function.structured_input_signature
        self._only_input = next(iter(keywords)) if len(keywords) == 1 else None

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and self._only_input is not None:
            return self._function(**{self._only_input: args[0]})
        return self._function(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._function, name)


class _KeywordSignatures:
    """A loaded SavedModel whose `signatures` are `_KeywordSignature`s; the rest is the model."""

    def __init__(self, model):
        self._model = model
        self.signatures = {name: _KeywordSignature(fn) for name, fn in model.signatures.items()}

    def __getattr__(self, name):
        return getattr(self._model, name)


class _KeywordSignaturesLoader:
    """A picklable construct_fn: TFMA's own loader, its model wrapped."""

    def __init__(self, construct_fn):
        self._construct_fn = construct_fn

    def __call__(self):
        return _KeywordSignatures(self._construct_fn())


def default_eval_shared_model(eval_saved_model_path, model_name, eval_config, **kwargs):
    """TFMA's shared model, its signatures called by input name.

    Args:
        eval_saved_model_path: the SavedModel, as for `tfma.default_eval_shared_model`.
        model_name: the model's name in the eval config.
        eval_config: the eval config.
        **kwargs: passed on to `tfma.default_eval_shared_model`.

    Returns:
        TFMA's shared model; a TF generic model's loader wraps its signatures.
    """
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path,
        model_name=model_name,
        eval_config=eval_config,
        **kwargs,
    )
    if shared.model_type != tfma.TF_GENERIC:
        return shared
    loader = types.ModelLoader(
        construct_fn=_KeywordSignaturesLoader(shared.model_loader.construct_fn),
        tags=shared.model_loader.tags,
    )
    return shared._replace(model_loader=loader)
