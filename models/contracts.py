"""Shape and value contracts where labels meet predictions.

The failure this project exists to stop: labels of shape (N,) met predictions of shape (N, 1),
TensorFlow broadcast the pair to (N, N), and a loss or accuracy computed "the natural way"
came out badly wrong without any error. Keras quietly expands (N,) labels inside `fit`, so
a model can look fine in training while every hand-written metric downstream is garbage.
Here the contract is explicit: labels and predictions are both (N, 1), checked at trace time
(rank) and at run time (batch size), and predictions must be finite.
"""

from __future__ import annotations

import tensorflow as tf

CONTRACT = "(N, 1)"


def check_label_and_prediction(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Return `y_pred` after checking that both tensors are (N, 1) with the same N and y_pred is finite.

    Raises:
        ValueError: at trace time, when a rank or a static size breaks the contract; the
            message names both shapes.
        tf.errors.InvalidArgumentError: at run time, for a batch-size mismatch or a NaN/Inf
            prediction.
    """
    y_true = tf.convert_to_tensor(y_true)
    y_pred = tf.convert_to_tensor(y_pred)
    for name, tensor in (("labels", y_true), ("predictions", y_pred)):
        shape = tensor.shape
        if shape.rank != 2 or (shape[1] is not None and shape[1] != 1):
            raise ValueError(
                f"shape contract broken: {name} have shape {shape}, expected {CONTRACT} "
                f"(labels {y_true.shape}, predictions {y_pred.shape}); refusing to let "
                "TensorFlow broadcast them"
            )
    if y_true.shape[0] is not None and y_pred.shape[0] is not None and y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(f"shape contract broken: labels {y_true.shape} vs predictions {y_pred.shape}")
    checked_size = tf.debugging.assert_equal(
        tf.shape(y_true)[0],
        tf.shape(y_pred)[0],
        message=f"shape contract broken: label and prediction batch sizes differ, expected both {CONTRACT}",
    )
    with tf.control_dependencies([checked_size]):
        return tf.debugging.check_numerics(y_pred, "predictions contain NaN or Inf")


class ShapeContractModel(tf.keras.Model):
    """A Keras model whose train and test steps enforce `check_label_and_prediction`.

    Built functionally (`ShapeContractModel(inputs=..., outputs=...)`); the check runs on the
    raw batch, before Keras's own loss plumbing could expand a (N,) label to fit.
    """

    def train_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = check_label_and_prediction(y, self(x, training=True))
            loss = self.compute_loss(x, y, y_pred, sample_weight)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred = check_label_and_prediction(y, self(x, training=False))
        self.compute_loss(x, y, y_pred, sample_weight)
        return self.compute_metrics(x, y, y_pred, sample_weight)
