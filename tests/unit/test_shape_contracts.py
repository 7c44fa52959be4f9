"""The silent (N,) vs (N, 1) broadcast, reproduced on our data, and the contract that stops it."""

import numpy as np
import pytest
import tensorflow as tf

from data import embedded
from models import features
from models.contracts import check_label_and_prediction
from models.model import ModelConfig, build_model, categorical_cardinalities


@pytest.fixture(scope="module")
def labels() -> np.ndarray:
    """Big-tipper labels of the 15,002 embedded trips (0.225 of them positive)."""
    trips = embedded.read_raw_csv(embedded.taxi_sample_path())
    fare = trips[features.FARE_KEY].fillna(0.0).to_numpy()
    tips = trips[features.TIPS_KEY].fillna(0.0).to_numpy()
    return ((fare > 0) & (tips > features.BIG_TIP_FRACTION * fare)).astype(np.float32)


def test_broadcast_silently_ruins_loss_and_accuracy(labels):
    """A perfect model scored the natural way, with labels (N,) and predictions (N, 1)."""
    y_true = tf.constant(labels)  # (N,)
    y_pred = tf.constant(labels[:, None])  # (N, 1): the model is right on every trip
    n, positive = len(labels), labels.mean()

    squared = tf.square(y_true - y_pred)
    assert squared.shape == (n, n)  # no error: TensorFlow broadcast to (N, N)
    broadcast_mse = float(tf.reduce_mean(squared))
    correct_mse = float(tf.reduce_mean(tf.square(y_true[:, None] - y_pred)))
    assert correct_mse == 0.0
    # Every (label_i, prediction_j) pair counts: MSE 2p(1-p) ~ 0.35 for a perfect model.
    assert broadcast_mse == pytest.approx(2 * positive * (1 - positive), abs=1e-4)
    assert broadcast_mse > 0.3

    hits = tf.cast(tf.equal(y_true, tf.round(y_pred)), tf.float32)
    broadcast_accuracy = float(tf.reduce_mean(hits))
    correct_accuracy = float(tf.reduce_mean(tf.cast(tf.equal(y_true[:, None], tf.round(y_pred)), tf.float32)))
    assert correct_accuracy == 1.0
    # 100% accuracy reported as ~65%: p^2 + (1-p)^2.
    assert broadcast_accuracy == pytest.approx(positive**2 + (1 - positive) ** 2, abs=1e-4)
    assert broadcast_accuracy < 0.7


def test_contract_names_both_shapes():
    with pytest.raises(ValueError, match=r"labels have shape \(4,\).*predictions \(4, 1\)"):
        check_label_and_prediction(tf.zeros([4]), tf.zeros([4, 1]))
    with pytest.raises(ValueError, match=r"predictions have shape \(4, 4\)"):
        check_label_and_prediction(tf.zeros([4, 1]), tf.zeros([4, 4]))
    with pytest.raises(ValueError, match=r"labels \(3, 1\) vs predictions \(4, 1\)"):
        check_label_and_prediction(tf.zeros([3, 1]), tf.zeros([4, 1]))


def test_contract_refuses_nan_predictions():
    with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
        check_label_and_prediction(tf.zeros([2, 1]), tf.constant([[0.5], [np.nan]]))
    ok = check_label_and_prediction(tf.zeros([2, 1]), tf.constant([[0.5], [0.1]]))
    assert ok.shape == (2, 1)


def model_and_batch(n: int = 64):
    cardinalities = categorical_cardinalities({"payment_type": 6, "company": 40})
    model = build_model(cardinalities, ModelConfig(hidden_units=(8,)))
    rng = np.random.default_rng(0)
    x = {name: rng.normal(size=n).astype(np.float32) for name in features.dense_float_features()}
    x.update({name: rng.integers(0, c, size=n) for name, c in cardinalities.items()})
    return model, x, rng.integers(0, 2, size=n).astype(np.float32)


def test_training_with_rank_one_labels_fails_at_the_first_batch():
    """Keras alone would quietly expand (N,) labels; our model refuses them."""
    model, x, y = model_and_batch()
    with pytest.raises(
        ValueError, match=r"labels have shape \((16|None),\).*expected \(N, 1\).*predictions \((16|None), 1\)"
    ):
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    model, x, y = model_and_batch()
    with pytest.raises(ValueError, match=r"labels have shape \((16|None),\)"):
        model.evaluate(x, y, batch_size=16, verbose=0)
    model, x, y = model_and_batch()
    history = model.fit(x, y[:, None], batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
