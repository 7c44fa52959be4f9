"""A Trainer `run_fn` that exports a deliberately skewed raw signature (for the serving gate's e2e test).

It trains the project's real model with the real `run_fn`; only while exporting, the raw
signature's `fare` is multiplied by 100 before the Transform graph, as if JSON clients sent
cents where training saw dollars. `serving_default` is untouched, so the Evaluator (which
scores serialized examples) sees a good model; only the serving gate can catch the skew.
"""

from __future__ import annotations

import tensorflow as tf

from models import signatures, trainer


def run_fn(fn_args) -> None:
    """The real run_fn, with `raw_features_as_parsed` swapped for a skewed one during the call."""
    original = signatures.raw_features_as_parsed

    def skewed(inputs, serving_spec):
        parsed = original(inputs, serving_spec)
        fare = parsed["fare"]
        if isinstance(fare, tf.SparseTensor):
            parsed["fare"] = tf.SparseTensor(fare.indices, fare.values * 100.0, fare.dense_shape)
        else:
            parsed["fare"] = fare * 100.0
        return parsed

    signatures.raw_features_as_parsed = skewed
    try:
        trainer.run_fn(fn_args)
    finally:
        signatures.raw_features_as_parsed = original
