"""A Trainer `run_fn` whose exported model blends each prediction with its batch's mean (e2e).

It trains the project's real model with the real `run_fn`; only at export, the model gets one
more step: probabilities (N, 1) + the same probabilities flattened to (N,) broadcast to (N, N),
averaged back to (N, 1). Each answer becomes half its own and half the batch's mean. Both
signatures carry it, so parity holds; a batch of one is exact; ranking within a batch is
unchanged, so the Evaluator (which scores this very model, in its own batches) blesses it.
Only the serving gate's batch_invariance check can see it.
"""

from __future__ import annotations

import tensorflow as tf

from models import trainer


def blend_with_batch_mean(probabilities: tf.Tensor) -> tf.Tensor:
    """The seed's bug inside a graph: (N, 1) + (N,) broadcasts to (N, N) instead of failing."""
    return 0.5 * tf.reduce_mean(probabilities + tf.reshape(probabilities, [-1]), axis=1, keepdims=True)


def run_fn(fn_args) -> None:
    """The real run_fn, exporting the trained model with the blend appended to its output."""
    original = trainer.export_model

    def export_blended(model, tf_transform_output, path):
        blended = tf.keras.layers.Lambda(blend_with_batch_mean, name="batch_blend")(model.output)
        original(tf.keras.Model(model.input, blended), tf_transform_output, path)

    trainer.export_model = export_blended
    try:
        trainer.run_fn(fn_args)
    finally:
        trainer.export_model = original
