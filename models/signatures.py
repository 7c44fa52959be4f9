"""The serving contract: signature names and specs that training exports and serving reads.

Training (`models.trainer`) exports these signatures; the serving gate, `verify`, and the
model server (`serving/`) call them by these names. Three signatures, all through the
Transform graph that the Transform component saved, so serving computes features with the
very graph training used:

- `serving_default`: serialized tf.Examples -> probabilities [N, 1];
- `serving_raw`: one named [None] tensor per raw serving feature -> probabilities [N, 1]; a
  missing value is its dtype's marker (`features.MISSING_*`), as a blank CSV cell would be;
- `transform_features`: serialized tf.Examples -> the Transform output (TFMA uses it);
- `serving_web`: `serving_raw` in TensorFlow.js's terms (int32/float32 inputs; `models/web.py`).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from models import features, web

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


def serving_signatures(
    model: tf.keras.Model, tf_transform_output: tft.TFTransformOutput, codes: dict | None = None
) -> dict:
    """The exported signatures: examples -> probabilities, examples -> features, raw -> probabilities.

    `serving_default` takes serialized tf.Examples, `transform_features` returns the Transform
    output, `serving_raw` takes one named [None] tensor per raw feature. All run the
    Transform graph saved by the Transform component, so serving computes features with the
    very graph training used.
    """
    if getattr(model, "tft_layer", None) is None:
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

    if codes is None:
        codes = vocabulary_codes(model.tft_layer, serving_spec, tf_transform_output)

    @tf.function(input_signature=[web.web_input_specs(serving_spec)])
    def serve_web(inputs):
        transformed = model.tft_layer(web.web_raw_features(inputs, serving_spec))
        transformed = web.web_transformed(transformed, inputs, codes)
        return {PREDICTION_KEY: model({k: transformed[k] for k in input_names})}

    return {
        SERVING_SIGNATURE: serve_examples.get_concrete_function(),
        TRANSFORM_SIGNATURE: transform_examples.get_concrete_function(),
        RAW_SIGNATURE: serve_raw.get_concrete_function(),
        web.WEB_SIGNATURE: serve_web.get_concrete_function(),
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
    model.tft_layer = tf_transform_output.transform_features_layer()
    serving_spec = {k: v for k, v in tf_transform_output.raw_feature_spec().items() if k != features.TIPS_KEY}
    codes = vocabulary_codes(model.tft_layer, serving_spec, tf_transform_output)
    signatures = serving_signatures(model, tf_transform_output, codes)
    # Consumers load the signatures (tf.saved_model.load), never Keras layer call traces:
    # skipping those traces saves a few seconds per export.
    model.save(path, save_format="tf", signatures=signatures, save_traces=False)
    # Beside saved_model.pb, not in assets.extra/: TF's ram:// file system (the bucket tests')
    # lists `assets` by name prefix, so an `assets.extra` sibling breaks copying the folder.
    with tf.io.gfile.GFile(f"{path}/{web.WEB_INPUTS_FILE}", "w") as handle:
        handle.write(web.dumps_description(web.web_inputs_description(serving_spec, codes)))


def vocabulary_codes(tft_layer, serving_spec: dict, tf_transform_output) -> dict[str, dict]:
    """Per vocabulary feature: its values in code order and the Transform id of each code.

    The values are the vocabulary Transform wrote for the feature (and the missing token);
    each one's id comes from the Transform graph itself, so the web model's lookup is the
    SavedModel's by construction. Raises ValueError when the graph's vocabulary is not that
    file's (an id of the graph that no value of the file reaches).
    """
    from models.transform import MISSING_CATEGORY

    codes = {}
    for key in features.VOCABULARY_FEATURES:
        values = [
            v.decode() if isinstance(v, bytes) else str(v)
            for v in tf_transform_output.vocabulary_by_name(features.vocabulary_name(key))
        ]
        size = len(values)  # the graph's vocabulary has as many values: ids 0..size-1, size = unknown
        if MISSING_CATEGORY not in values:
            values.append(MISSING_CATEGORY)
        dense = {
            name: tf.fill([len(values)], tf.constant(missing_marker(spec.dtype), spec.dtype))
            for name, spec in serving_spec.items()
        }
        dense[key] = tf.constant([v.encode() for v in values])
        transformed = tft_layer(raw_features_as_parsed(dense, serving_spec))
        ids = [int(i) for i in transformed[features.transformed_name(key)].numpy()]
        if sorted(ids[:size]) != list(range(size)):
            raise ValueError(
                f"'{key}': the Transform graph does not give the {size} values of its vocabulary file "
                f"the ids 0..{size - 1} (it gives {sorted(ids[:size])})"
            )
        codes[key] = {
            "values": values,
            "ids": ids,
            "missing_id": ids[values.index(MISSING_CATEGORY)],
            "unknown_id": size,
        }
    return codes
