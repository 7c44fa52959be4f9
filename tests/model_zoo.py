"""Small SavedModels with the project's serving signatures: one correct, the others broken on purpose.

Each is a `tf.Module` whose probability is a fixed logistic function of a few raw features:
no training is needed, because the serving gate judges what a loaded model answers, not how
it learnt. The correct one parses examples as the real model does and builds its raw path
with the real `raw_features_as_parsed`; each fault is one way a real export goes wrong.
"""

from __future__ import annotations

import tensorflow as tf

from models import features
from models.signatures import (
    PREDICTION_KEY,
    RAW_SIGNATURE,
    SERVING_SIGNATURE,
    missing_marker,
    raw_features_as_parsed,
    raw_tensor_specs,
)

# Each fault and the gate check that must refuse it.
FAULTS = {
    # The raw path keeps `fare` as a [N, 1] column; against the [N] features it broadcasts to
    # (N, N), and a mean over the extra axis hides that behind an (N, 1) answer.
    "broadcast_raw": "parity",
    # The raw signature declares `fare` as [None, 1]: its answers come out (N, N).
    "rank2_raw_input": "signatures",
    # The raw path feeds the raw fare where the serialized path applies log1p (skew).
    "skip_transform": "parity",
    # sqrt(trip_miles - 1): NaN for every trip under a mile.
    "nan": "finite",
    # Probabilities of shape (N,) and (N, N) instead of (N, 1).
    "flat_output": "output_shape",
    "square_output": "output_shape",
    # The same probability for every trip.
    "constant": "not_degenerate",
    # Answers that depend on the rest of the request (both signatures alike, right shape,
    # finite, varied): only the batch_invariance check can see them.
    # Each logit (N, 1) + every logit (N,) -> (N, N), averaged back: 0.5 * own + 0.5 * batch
    # mean. A batch of one gets exactly the right answer.
    "batch_mean_blend": "batch_invariance",
    # Normalised by the batch's own mean and variance (a BatchNormalization left in training mode).
    "batch_statistics": "batch_invariance",
    # The previous example's logit leaks into each (a shift by one along the batch axis).
    "order_dependent": "batch_invariance",
    # The batch is padded to a multiple of 8 in front and read from the start: right only when
    # no padding was needed.
    "padding": "batch_invariance",
}
BATCH_FAULTS = sorted(fault for fault, check in FAULTS.items() if check == "batch_invariance")

RAW_DTYPES = {
    **{c: tf.int64 for c in features.RAW_INT_COLUMNS},
    **{c: tf.float32 for c in features.RAW_FLOAT_COLUMNS},
    **{c: tf.string for c in features.RAW_STRING_COLUMNS},
}
CREDIT_CARD = b"Credit Card"
SERVING_SPEC = {name: tf.io.VarLenFeature(RAW_DTYPES[name]) for name in features.serving_raw_features()}


def _dense(parsed: dict) -> dict:
    """Sparse single-valued features -> dense [N], a missing value as its dtype's marker.

    Builtin TFLite ops only, so that the zoo converts for the edge gate too: each row's
    position among the values (0 when absent) picks from [marker, values...]. TFLite has no
    string concatenation, so a string feature is first compared with the one value the
    model reads ("Credit Card": 1.0, any other or missing: 0.0), as the real Transform maps
    strings to ids before densifying.
    """
    dense = {}
    for name, value in parsed.items():
        values = value.values
        if values.dtype == tf.string:
            values = tf.cast(tf.equal(values, CREDIT_CARD), tf.float32)
            marker = tf.constant([0.0])
        else:
            marker = tf.constant([missing_marker(values.dtype)], values.dtype)
        count = tf.shape(values, out_type=tf.int64)[0]
        positions = tf.scatter_nd(
            value.indices[:, :1], tf.range(1, count + 1), tf.reshape(value.dense_shape[0], [1])
        )
        dense[name] = tf.gather(tf.concat([marker, values], axis=0), positions)
    return dense


def _fare_term(fare: tf.Tensor, transformed: bool) -> tf.Tensor:
    fare = tf.where(tf.math.is_nan(fare), 0.0, fare)
    return 0.8 * tf.math.log1p(tf.maximum(fare, 0.0)) if transformed else 0.8 * fare


class ZooModel(tf.Module):
    """P(big tipper) = sigmoid(3 * credit card + 0.8 * log1p(fare) - 3.5), or a faulty variant."""

    def __init__(self, fault: str | None = None, dense: bool = False):
        super().__init__()
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
        self.fault = fault
        self.dense = dense
        raw_specs = raw_tensor_specs(SERVING_SPEC)
        if fault == "rank2_raw_input":
            raw_specs["fare"] = tf.TensorSpec([None, 1], tf.float32, name="fare")
        self.serve_examples = tf.function(
            self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string, name="examples")]
        )
        self.serve_raw = tf.function(self._serve_raw, input_signature=[raw_specs])

    def _serve_examples(self, examples):
        raw = _dense(tf.io.parse_example(examples, SERVING_SPEC))
        return {PREDICTION_KEY: self._probabilities(raw, raw["fare"], raw_path=False)}

    def _serve_raw(self, inputs):
        inputs = dict(inputs)
        fare = inputs.pop("fare")
        if self.fault == "rank2_raw_input":
            raw = _dense(raw_features_as_parsed(inputs, SERVING_SPEC))
            return {PREDICTION_KEY: self._probabilities(raw, fare, raw_path=True)}
        inputs["fare"] = fare
        raw = _dense(raw_features_as_parsed(inputs, SERVING_SPEC))
        fare = raw["fare"]
        if self.fault == "broadcast_raw":
            fare = tf.reshape(fare, [-1, 1])
        return {PREDICTION_KEY: self._probabilities(raw, fare, raw_path=True)}

    def _probabilities(self, raw: dict, fare: tf.Tensor, raw_path: bool) -> tf.Tensor:
        credit = raw["payment_type"]  # 1.0 for "Credit Card" (see _dense)
        transformed = not (raw_path and self.fault == "skip_transform")
        logit = _logit(credit, _fare_term(fare, transformed), self.dense)
        if self.fault == "nan":
            logit += tf.sqrt(raw["trip_miles"] - 1.0)
        if self.fault == "broadcast_raw" and raw_path:
            logit = tf.reduce_mean(logit, axis=1)  # (N, N) -> (N,): the broadcast is hidden.
        logit = _batch_fault(self.fault, logit)
        probabilities = tf.sigmoid(logit)
        if self.fault == "constant":
            return tf.fill([tf.shape(credit)[0], 1], 0.3)
        if self.fault == "flat_output":
            return probabilities
        if self.fault == "square_output":
            return tf.reshape(probabilities, [-1, 1]) * tf.ones_like(probabilities)
        if logit.shape.rank == 2:  # rank2_raw_input: a [N, 1] fare met [N] features.
            return probabilities
        return tf.reshape(probabilities, [-1, 1])


# The same logit through two dense layers: relu(z) and relu(-z), then their difference.
HIDDEN_WEIGHTS = [[3.0, -3.0], [1.0, -1.0], [-3.5, 3.5]]
OUTPUT_WEIGHTS = [[1.0], [-1.0]]


def _logit(credit: tf.Tensor, fare_term: tf.Tensor, dense: bool) -> tf.Tensor:
    """3 * credit + fare_term - 3.5; with `dense`, computed by a two-unit hidden layer (for int8)."""
    if not dense:
        return 3.0 * credit + fare_term - 3.5
    if fare_term.shape.rank == 2:  # the broadcast faults keep their shapes
        return 3.0 * credit + fare_term - 3.5
    inputs = tf.stack([credit, fare_term, tf.ones_like(credit)], axis=1)
    hidden = tf.nn.relu(tf.matmul(inputs, tf.constant(HIDDEN_WEIGHTS)))
    return tf.matmul(hidden, tf.constant(OUTPUT_WEIGHTS))[:, 0]


def _batch_fault(fault: str | None, logit: tf.Tensor) -> tf.Tensor:
    """`logit` [N] as a batch-dependent fault changes it (unchanged for other faults)."""
    if fault == "batch_mean_blend":
        return 0.5 * tf.reduce_mean(tf.reshape(logit, [-1, 1]) + logit, axis=1)
    if fault == "batch_statistics":
        mean, variance = tf.nn.moments(logit, axes=[0])
        return (logit - mean) / tf.sqrt(variance + 1e-3) * 1.5 - 1.0
    if fault == "order_dependent":
        return logit + 0.5 * tf.concat([logit[-1:], logit[:-1]], axis=0)  # tf.roll by 1 (builtin ops)
    if fault == "padding":
        count = tf.shape(logit)[0]
        padded = tf.concat([tf.zeros([(-count) % 8]), logit], axis=0)
        return padded[:count]
    return logit


def save_zoo_model(path: str, fault: str | None = None, dense: bool = False) -> str:
    """Save a ZooModel with the project's two serving signatures; return `path`."""
    model = ZooModel(fault, dense)
    tf.saved_model.save(
        model,
        path,
        signatures={
            SERVING_SIGNATURE: model.serve_examples.get_concrete_function(),
            RAW_SIGNATURE: model.serve_raw.get_concrete_function(),
        },
    )
    return path
