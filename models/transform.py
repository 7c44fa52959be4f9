"""Transform's `preprocessing_fn`: the one feature graph shared by training, evaluation and serving.

TFX bakes this graph into the exported model (see `models/signatures.py`), so a feature is
computed by exactly the same code at training and at serving time: there is no second
implementation that could drift from this one.

Every op the graph runs at serving time is a TensorFlow Lite builtin, so the same graph also
converts for the edge runtime without Flex ops: vocabulary ids come from comparing each
value with the vocabulary held as a constant (no lookup table, no 1-bucket string hash for
out-of-vocabulary values), census tracts are hashed with integer
arithmetic (not AsString + StringToHashBucketFast), and bucket ids are counts of boundaries
below the value (not UpperBound). `tests/unit/test_transform.py` holds each to its old form.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features

# Stands for a missing categorical value; TFT vocabularies drop empty strings.
MISSING_CATEGORY = "__missing__"


def _dense(x: tf.Tensor | tf.SparseTensor, default) -> tf.Tensor:
    """Turn a single-valued feature (sparse when it may be missing) into a dense [batch] tensor.

    Missing values become `default`. A dense input (already [batch] or [batch, 1]) passes
    through, so the same graph serves raw-feature requests that carry dense tensors.
    """
    if isinstance(x, tf.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default
        )
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def apply_buckets(x: tf.Tensor, boundaries: tf.Tensor) -> tf.Tensor:
    """Bucket ids as `tft.apply_buckets` gives them: how many boundaries are <= x."""
    below = tf.greater_equal(x[:, None], tf.reshape(boundaries, [1, -1]))
    return tf.reduce_sum(tf.cast(below, tf.int64), axis=1)


def _presence(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A dense [batch] bool: True where the feature holds a value (every row of a dense input)."""
    if isinstance(x, tf.SparseTensor):
        return _dense(_map_values(x, lambda v: tf.ones_like(v, tf.float32)), default=0.0) > 0.5
    return tf.ones_like(_dense(x, default=0.0), tf.bool)


def _present_values(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """The values that are actually present (for analyzers that must ignore missing ones)."""
    return x.values if isinstance(x, tf.SparseTensor) else tf.reshape(x, [-1])


def _coordinate_features(x: tf.Tensor | tf.SparseTensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(z-score, bucket id) of a coordinate; a missing value counts as the mean.

    Every statistic (mean, variance, quantiles) is taken over the present values only, in
    the same analysis pass: nothing here waits for another analyzer's result, so Transform
    runs one analysis phase, not two.
    """
    x = _as_float(x)
    present = _present_values(x)
    mean, variance = tft.mean(present), tft.var(present)
    # A finite default and a presence mask, not a NaN default: TensorFlow.js's WebGL
    # SparseToDense spreads a NaN default over every row (docs/web.md).
    dense = _dense(x, default=0.0)
    known = tf.logical_and(_presence(x), tf.logical_not(tf.math.is_nan(dense)))
    filled = tf.where(known, dense, mean)
    z_score = tf.math.divide_no_nan(filled - mean, tf.sqrt(variance))
    boundaries = tft.quantiles(present, num_buckets=features.COORDINATE_BUCKETS, epsilon=0.01)
    return z_score, apply_buckets(filled, boundaries)


def big_tipper_label(tips: tf.Tensor, fare: tf.Tensor) -> tf.Tensor:
    """1 when tips exceed `BIG_TIP_FRACTION` of the fare; 0 when the fare is 0 or missing (NaN)."""
    fare_known = tf.logical_and(tf.logical_not(tf.math.is_nan(fare)), fare > 0)
    big = tf.logical_and(fare_known, tips > features.BIG_TIP_FRACTION * fare)
    return tf.cast(big, tf.int64)


def integer_ids(x: tf.Tensor | tf.SparseTensor, low: int, high: int) -> tf.Tensor:
    """Ids for an integer code in [low, high]: 0 missing, 1..n in range, n + 1 out of range."""
    missing = tf.constant(low - 1, tf.int64)
    value = _dense(_map_values(x, lambda v: tf.cast(v, tf.int64)), default=missing)
    in_range = tf.logical_and(value >= low, value <= high)
    ids = tf.where(in_range, value - low + 1, tf.cast(high - low + 2, tf.int64))
    return tf.where(tf.equal(value, missing), tf.zeros_like(ids), ids)


# Integer hashing (Lehmer's MINSTD step): no product exceeds int64, every op a TFLite builtin.
HASH_MODULUS = 2_147_483_647
HASH_MULTIPLIER = 48_271


def hashed_ids(x: tf.Tensor | tf.SparseTensor, buckets: int) -> tf.Tensor:
    """Ids for a code from a huge range: 0 missing, else 1 + a hash bucket in [0, buckets)."""
    value = _dense(_map_values(x, lambda v: tf.cast(v, tf.int64)), default=features.MISSING_INT)
    mixed = tf.math.floormod(tf.math.floormod(value, HASH_MODULUS) * HASH_MULTIPLIER, HASH_MODULUS)
    ids = tf.math.floormod(mixed, buckets) + 1
    return tf.where(tf.equal(value, features.MISSING_INT), tf.zeros_like(ids), ids)


def vocabulary_ids(x: tf.Tensor | tf.SparseTensor, name: str) -> tf.Tensor:
    """Ids of the top values by frequency; an unseen value gets the id after them.

    Ids 0..size-1 for the vocabulary that `tft.vocabulary` writes (same values, top_k, size:
    the model reads its size), id `size` for anything else: the ids of
    `tft.compute_and_apply_vocabulary(num_oov_buckets=1)`, up to the order of the values.
    Applied by comparing each value with the vocabulary held as a constant (from
    `tft.count_per_key`) and taking the first match: TFLite builtins only, no lookup table
    to initialise and no string hash.
    """
    assert features.OOV_BUCKETS == 1, "one OOV id: the id after the vocabulary"
    # Analysis only (pruned from the serving graph): the dense strings, missing as a token.
    text = _dense(x, default=MISSING_CATEGORY)
    tft.vocabulary(text, top_k=features.VOCAB_TOP_K, vocab_filename=name)  # the model's size
    keys, counts = tft.count_per_key(text)
    top = tf.math.top_k(counts, k=tf.minimum(tf.size(counts), features.VOCAB_TOP_K)).indices
    vocabulary = tf.gather(keys, top)

    def ids_of(values: tf.Tensor) -> tf.Tensor:
        match = tf.cast(tf.equal(values[:, None], vocabulary[None, :]), tf.int32)
        # One more column, always 1: no match at all -> its index, `size`.
        match = tf.concat([match, tf.ones_like(match[:, :1])], axis=1)
        return tf.argmax(match, axis=1, output_type=tf.int64)

    # Applied to the present values, then made dense as integers (TFLite's SparseToDense
    # takes no strings): a missing value gets the id of the missing token.
    missing_id = ids_of(tf.constant([MISSING_CATEGORY]))[0]
    return _dense(_map_values(x, ids_of), default=missing_id)


def preprocessing_fn(inputs: dict, custom_config: dict | None = None) -> dict:
    """Map raw taxi features to model features (and the label, where `tips` is present).

    - heavy-tailed numerics: missing -> 0, log1p, z-score;
    - coordinates: missing -> mean, z-score, and a 10-quantile bucket id;
    - string categoricals: vocabulary of the top values plus OOV buckets, missing -> its own
      token, unseen -> an OOV bucket;
    - integer codes of a known range: fixed ids (missing and out-of-range get ids of their own);
    - census tracts: hashed into buckets (0 = missing);
    - label: big tipper, from `tips` and `fare` (only in TRAINING data; absent at serving).
    """
    outputs = {}
    for key in features.LOG_NUMERIC_FEATURES:
        value = tf.maximum(_dense(_as_float(inputs[key]), default=0.0), 0.0)
        outputs[features.transformed_name(key)] = tft.scale_to_z_score(tf.math.log1p(value))

    for key in features.COORDINATE_FEATURES:
        z_score, bucket = _coordinate_features(inputs[key])
        outputs[features.transformed_name(key)] = z_score
        outputs[features.bucketized_name(key)] = bucket

    for key in features.VOCABULARY_FEATURES:
        outputs[features.transformed_name(key)] = vocabulary_ids(inputs[key], features.vocabulary_name(key))

    for key, (low, high) in features.INTEGER_CATEGORICAL_RANGES.items():
        outputs[features.transformed_name(key)] = integer_ids(inputs[key], low, high)

    for key, buckets in features.HASHED_FEATURES.items():
        outputs[features.transformed_name(key)] = hashed_ids(inputs[key], buckets)

    if features.TIPS_KEY in inputs:
        tips = _dense(_as_float(inputs[features.TIPS_KEY]), default=0.0)
        fare = _dense(_as_float(inputs[features.FARE_KEY]), default=float("nan"))
        outputs[features.LABEL_KEY] = big_tipper_label(tips, fare)
    return outputs


def _map_values(x: tf.Tensor | tf.SparseTensor, fn) -> tf.Tensor | tf.SparseTensor:
    """Apply `fn` to the values of a dense or sparse tensor, keeping its structure."""
    if isinstance(x, tf.SparseTensor):
        return tf.SparseTensor(x.indices, fn(x.values), x.dense_shape)
    return fn(x)


def _as_float(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor | tf.SparseTensor:
    """Cast a dense or sparse numeric tensor to float32."""
    return _map_values(x, lambda v: tf.cast(v, tf.float32))
