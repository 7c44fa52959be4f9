"""The Keras model's inputs, output shape and the validation of its configuration."""

import numpy as np
import pytest
import tensorflow as tf

from models import features
from models.model import ModelConfig, build_model, categorical_cardinalities

VOCABULARY_SIZES = {"payment_type": 6, "company": 40}


def batch(n: int) -> dict:
    cardinalities = categorical_cardinalities(VOCABULARY_SIZES)
    rng = np.random.default_rng(0)
    data = {name: tf.constant(rng.normal(size=n), tf.float32) for name in features.dense_float_features()}
    data.update(
        {name: tf.constant(rng.integers(0, c, size=n), tf.int64) for name, c in cardinalities.items()}
    )
    return data


def test_cardinalities_cover_every_categorical_input():
    sizes = categorical_cardinalities(VOCABULARY_SIZES)
    assert sizes[features.transformed_name("payment_type")] == 6 + features.OOV_BUCKETS
    assert sizes[features.transformed_name("trip_start_hour")] == 26  # missing, 0..23, out of range
    assert sizes[features.transformed_name("dropoff_census_tract")] == 257
    assert sizes[features.bucketized_name("pickup_latitude")] == features.COORDINATE_BUCKETS
    expected = {features.transformed_name(k) for k in features.CATEGORICAL_FEATURES}
    expected |= {features.bucketized_name(k) for k in features.COORDINATE_FEATURES}
    assert set(sizes) == expected


def test_missing_vocabulary_size_is_named():
    with pytest.raises(ValueError, match="company"):
        categorical_cardinalities({"payment_type": 3})


def test_model_maps_a_batch_to_one_probability_per_trip():
    model = build_model(categorical_cardinalities(VOCABULARY_SIZES), ModelConfig(hidden_units=(8,)))
    data = batch(5)
    assert set(model.input) == set(data)
    output = model(data)
    assert output.shape == (5, 1)
    assert ((output.numpy() > 0) & (output.numpy() < 1)).all()


def test_model_inputs_are_rank_one():
    model = build_model(categorical_cardinalities(VOCABULARY_SIZES), ModelConfig(hidden_units=(8,)))
    assert all(tensor.shape.as_list() == [None] for tensor in model.input.values())


def test_model_learns_a_simple_rule():
    """Minimum functionality: the label is fare > 0; a few epochs must separate it."""
    tf.keras.utils.set_random_seed(0)
    model = build_model(
        categorical_cardinalities(VOCABULARY_SIZES), ModelConfig(hidden_units=(16,), dropout=0.0)
    )
    data = batch(512)
    label = tf.cast(data[features.transformed_name("fare")] > 0, tf.float32)[:, None]
    model.fit(data, label, epochs=30, batch_size=64, verbose=0)
    accuracy = model.evaluate(data, label, verbose=0, return_dict=True)["accuracy"]
    assert accuracy > 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden_units": ()}, "hidden_units"),
        ({"hidden_units": (0,)}, "hidden_units"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_bad_model_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_autograph_leaves_graph_safe_packages_alone():
    import types

    from tensorflow.python.autograph.core import config as autograph_config
    from tensorflow.python.autograph.core.config_lib import Action

    from models.model import GRAPH_SAFE_PACKAGES, skip_autograph_for_graph_safe_packages

    skip_autograph_for_graph_safe_packages()
    skip_autograph_for_graph_safe_packages()  # idempotent
    prefixes = [getattr(rule, "_prefix", None) for rule in autograph_config.CONVERSION_RULES]
    for package in GRAPH_SAFE_PACKAGES:
        assert prefixes.count(package) == 1
        rule = next(r for r in autograph_config.CONVERSION_RULES if getattr(r, "_prefix", None) == package)
        assert rule.get_action(types.ModuleType(f"{package}.src.layers")) == Action.DO_NOT_CONVERT


def test_warm_start_moves_embedding_rows_with_their_tokens():
    from models.trainer import _remap_rows

    old_tokens = [b"Cash", b"Credit Card", b"No Charge"]
    new_tokens = [b"Credit Card", b"Cash", b"Dispute", b"No Charge"]
    old = np.arange(4 * 2, dtype=np.float32).reshape(4, 2)  # 3 tokens + 1 OOV row
    fresh = -np.ones((5, 2), dtype=np.float32)  # 4 tokens + 1 OOV row
    rows = _remap_rows(fresh, old, old_tokens, new_tokens)
    np.testing.assert_array_equal(rows[0], old[1])  # Credit Card followed its token
    np.testing.assert_array_equal(rows[1], old[0])
    np.testing.assert_array_equal(rows[2], fresh[2])  # new token: fresh initialisation
    np.testing.assert_array_equal(rows[3], old[2])
    np.testing.assert_array_equal(rows[4], old[3])  # the OOV bucket stays the OOV bucket
