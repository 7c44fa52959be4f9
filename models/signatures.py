"""The serving contract: signature names and specs that training exports and serving reads.

Training (`models.trainer`) exports these signatures; the serving gate, `verify`, and the
model server (`serving/`) call them by these names. Three signatures, all through the
Transform graph that the Transform component saved, so serving computes features with the
very graph training used:

- `serving_default`: serialized tf.Examples -> probabilities [N, 1];
- `serving_raw`: one named [None] tensor per raw serving feature -> probabilities [N, 1]; a
  missing value is its dtype's marker (`features.MISSING_*`), as a blank CSV cell would be;
- `transform_features`: serialized tf.Examples -> the Transform output (TFMA uses it).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features

SERVING_SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
# One named [None] input per raw feature (JSON clients), through the same Transform graph.
RAW_SIGNATURE = "serving_raw"
PREDICTION_KEY = "probabilities"
EXAMPLES_INPUT = "examples"


def missing_marker(dtype: tf.DType):
    """The value a dense raw request uses for "missing" (see `features.MISSING_*`)."""
    if dtype == tf.string:
        return features.MISSING_STRING.encode()
    if dtype.is_floating:
        return features.MISSING_FLOAT
    return features.MISSING_INT


def serving_signatures(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput) -> dict:
    """The exported signatures: examples -> probabilities, examples -> features, raw -> probabilities.

    `serving_default` takes serialized tf.Examples, `transform_features` returns the Transform
    output, `serving_raw` takes one named [None] tensor per raw feature. All run the
    Transform graph saved by the Transform component, so serving computes features with the
    very graph training used.
    """
    model.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    serving_spec = {k: v for k, v in raw_spec.items() if k != features.TIPS_KEY}
    input_names = list(model.input.keys()) if isinstance(model.input, dict) else model.input_names

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def serve_examples(examples):
        raw = tf.io.parse_example(examples, serving_spec)
        transformed = model.tft_layer(raw)
        return {PREDICTION_KEY: model({k: transformed[k] for k in input_names})}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def transform_examples(examples):
        return model.tft_layer(tf.io.parse_example(examples, raw_spec))

    raw_inputs = raw_tensor_specs(serving_spec)

    @tf.function(input_signature=[raw_inputs])
    def serve_raw(inputs):
        transformed = model.tft_layer(raw_features_as_parsed(inputs, serving_spec))
        return {PREDICTION_KEY: model({k: transformed[k] for k in input_names})}

    return {
        SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_examples.get_concrete_function(),
        RAW_SIGNATURE: serve_raw.get_concrete_function(),
    }


def raw_tensor_specs(serving_spec: dict) -> dict[str, tf.TensorSpec]:
    """One [None] TensorSpec per raw serving feature, with the dtype the schema gives it.

    The signature names every feature as a required input: a missing one is refused by name,
    never defaulted.
    """
    return {name: tf.TensorSpec([None], spec.dtype, name=name) for name, spec in sorted(serving_spec.items())}


def raw_features_as_parsed(inputs: dict[str, tf.Tensor], serving_spec: dict) -> dict:
    """Dense [N] raw inputs -> what `tf.io.parse_example` would give (sparse for optional features).

    Every feature must be rank 1 and carry the same N: a wrong rank or a batch-size mismatch
    fails naming the feature. A value equal to the feature's missing marker ("" for strings,
    NaN for floats, -1 for integers: see `features.MISSING_*`) becomes an absent value, exactly
    as a blank CSV cell or an absent tf.Example feature does, so both signatures agree on
    every row.
    """
    names = sorted(inputs)
    batch = tf.shape(inputs[names[0]], out_type=tf.int64)[0]
    # One [N, 1] dense shape for every optional feature, and per feature only: a presence
    # mask, its positions, their values (a few ops each: the edge model's graph is this one).
    dense_shape = tf.stack([batch, tf.constant(1, tf.int64)])
    parsed = {}
    for name in names:
        # A loaded signature does not enforce its TensorSpec shapes at call time: without this
        # a [N, 1] or scalar input would reach the graph (and broadcast). The error reads
        # "Shape of tensor <feature> [N,1] is not compatible with expected shape [?]".
        checked = tf.ensure_shape(inputs[name], [None], name=name)
        same_batch = tf.debugging.assert_equal(
            tf.shape(checked, out_type=tf.int64)[0],
            batch,
            message=f"raw feature '{name}' has a different batch size from '{names[0]}'",
        )
        with tf.control_dependencies([same_batch]):  # Checked before any use of the value.
            value = tf.identity(checked)
        if isinstance(serving_spec[name], tf.io.VarLenFeature):
            rows = tf.where(is_present(value))  # [K, 1]: the rows holding a value
            parsed[name] = tf.SparseTensor(
                indices=tf.pad(rows, [[0, 0], [0, 1]]),  # (row, 0)
                values=tf.gather_nd(value, rows),
                dense_shape=dense_shape,
            )
        else:
            parsed[name] = value
    return parsed


def is_present(value: tf.Tensor) -> tf.Tensor:
    """True where a dense raw value is not its dtype's missing marker."""
    if value.dtype == tf.string:
        return tf.not_equal(value, features.MISSING_STRING)
    if value.dtype.is_floating:
        return tf.equal(value, value)  # False for NaN only
    return tf.not_equal(value, tf.cast(features.MISSING_INT, value.dtype))


def export_model(model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, path: str) -> None:
    """Save `model` as a SavedModel with the serving signatures (the Transform graph included)."""
    signatures = serving_signatures(model, tf_transform_output)
    # Consumers load the signatures (tf.saved_model.load), never Keras layer call traces:
    # skipping those traces saves a few seconds per export.
    model.save(path, save_format="tf", signatures=signatures, save_traces=False)
