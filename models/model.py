"""The Keras model: embeddings for categoricals, a small DNN, one sigmoid probability per trip.

Kept apart from `run_fn` so its shapes and behaviour can be tested without a pipeline.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from models import features
from models.contracts import ShapeContractModel


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the network (all have working defaults)."""

    hidden_units: tuple[int, ...] = (256, 128, 64)
    embedding_dim: int = 8
    dropout: float = 0.3
    learning_rate: float = 5e-4

    def __post_init__(self):
        if not self.hidden_units or any(u < 1 for u in self.hidden_units):
            raise ValueError(f"hidden_units must be positive integers, got {self.hidden_units}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


def categorical_cardinalities(vocabulary_sizes: dict[str, int]) -> dict[str, int]:
    """Number of distinct ids each categorical model input can take.

    Args:
        vocabulary_sizes: raw categorical key -> size of the vocabulary Transform computed.

    Returns:
        transformed input name -> id count (vocabulary + OOV buckets, or bucket count).
    """
    missing = [k for k in features.VOCABULARY_FEATURES if k not in vocabulary_sizes]
    if missing:
        raise ValueError(f"no vocabulary size for categorical features {missing}")
    sizes = {
        features.transformed_name(k): vocabulary_sizes[k] + features.OOV_BUCKETS
        for k in features.VOCABULARY_FEATURES
    }
    sizes.update(
        {
            features.transformed_name(k): features.integer_id_count(k)
            for k in features.INTEGER_CATEGORICAL_RANGES
        }
    )
    sizes.update({features.transformed_name(k): n + 1 for k, n in features.HASHED_FEATURES.items()})
    sizes.update(
        {features.bucketized_name(k): features.COORDINATE_BUCKETS for k in features.COORDINATE_FEATURES}
    )
    return sizes


# Packages whose code runs in graphs without AutoGraph's help (tf_keras: as `keras` did when
# TensorFlow's rules exempted it; tensorflow_transform: it disables AutoGraph in its own
# tracing), but that TensorFlow's conversion rules do not exempt.
GRAPH_SAFE_PACKAGES = ("tf_keras", "tensorflow_transform")


def skip_autograph_for_graph_safe_packages() -> None:
    """Tell AutoGraph not to convert `GRAPH_SAFE_PACKAGES`, as TensorFlow does for `keras`.

    TFX 1.16 runs the split-out `tf_keras` package (TF_USE_LEGACY_KERAS=1), which TensorFlow's
    rules miss: the first `fit` then spends most of the Trainer's time converting Keras's own
    code, and tracing the Transform layer inside `Dataset.map` converts tensorflow_transform's
    (the Trainer's seconds: `make bench`). Idempotent.
    """
    from tensorflow.python.autograph.core import config as autograph_config

    present = {getattr(rule, "_prefix", None) for rule in autograph_config.CONVERSION_RULES}
    missing = tuple(
        autograph_config.DoNotConvert(package) for package in GRAPH_SAFE_PACKAGES if package not in present
    )
    if missing:
        autograph_config.CONVERSION_RULES = missing + tuple(autograph_config.CONVERSION_RULES)


def build_model(cardinalities: dict[str, int], config: ModelConfig = ModelConfig()) -> tf.keras.Model:
    """Build and compile the big-tipper classifier.

    Args:
        cardinalities: categorical input name -> number of ids (see `categorical_cardinalities`).
        config: network hyper-parameters.

    Returns:
        A compiled model taking a dict of [batch] tensors keyed by transformed feature name and
        returning probabilities of shape [batch, 1].
    """
    skip_autograph_for_graph_safe_packages()
    inputs, parts = {}, []
    for name in features.dense_float_features():
        inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.float32)
        parts.append(tf.keras.layers.Reshape((1,), name=f"{name}_column")(inputs[name]))
    for name, count in sorted(cardinalities.items()):
        inputs[name] = tf.keras.Input(shape=(), name=name, dtype=tf.int64)
        # One width for every categorical, however few its ids: a vocabulary that grows or
        # shrinks between windows then changes rows only, and warm start can carry them over.
        parts.append(
            tf.keras.layers.Embedding(count, config.embedding_dim, name=f"{name}_embedding")(inputs[name])
        )
    x = tf.keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(config.hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
        if config.dropout:
            x = tf.keras.layers.Dropout(config.dropout, name=f"dropout_{i}")(x)
    # float32 output even under a mixed-precision policy: the contracts see float32 probabilities.
    output = tf.keras.layers.Dense(1, activation="sigmoid", name="probabilities", dtype="float32")(x)
    # Labels and predictions must both be (N, 1): checked at every train and test step.
    model = ShapeContractModel(inputs=inputs, outputs=output, name="big_tipper_dnn")
    model.compile(
        optimizer=tf.keras.optimizers.Adam(config.learning_rate),
        loss=tf.keras.losses.BinaryCrossentropy(),
        metrics=[tf.keras.metrics.BinaryAccuracy(name="accuracy"), tf.keras.metrics.AUC(name="auc")],
    )
    return model
