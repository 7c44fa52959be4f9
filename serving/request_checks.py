"""Request checks: a raw-feature request held to the signature's specs, named by feature.

The exported model refuses malformed raw input by itself (`models/signatures.py`), but a
loaded signature names a wrongly typed input by position ("input #5 was expected to be a
float tensor"), not by feature. Everything that calls the signatures (the serving gate,
`python -m pipeline verify`, the model server, the KServe logger receiver) checks a request
with `check_raw_request` first, which names the feature, what it received and what the
signature expects.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from models import features


class ServingInputError(ValueError):
    """A raw-feature request does not match the signature; the message names the feature."""

    def __init__(self, feature: str, problem: str):
        super().__init__(f"feature '{feature}': {problem}")
        self.feature = feature


def raw_input_specs(signature) -> dict[str, tf.TensorSpec]:
    """Feature name -> TensorSpec of a raw-feature signature's inputs."""
    return dict(signature.structured_input_signature[1])


# The dtype each raw column kind has in the schema, and so in the signatures.
KIND_DTYPES = {"int": tf.int64, "float": tf.float32, "string": tf.string}


def serving_raw_specs() -> dict[str, tf.TensorSpec]:
    """The raw serving features' [None] specs as the schema types them (no model needed)."""
    return {
        name: tf.TensorSpec([None], KIND_DTYPES[features.RAW_COLUMN_KINDS[name]], name=name)
        for name in features.serving_raw_features()
    }


def _shape_text(shape) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + (",)" if len(shape) == 1 else ")")


def check_raw_request(
    specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, object]
) -> dict[str, tf.Tensor]:
    """Check a raw-feature request against the signature's specs; return it as tensors.

    Each feature must be present, rank 1 (one value per example), of the signature's dtype
    (integers are accepted for float features: JSON does not tell 5 from 5.0), non-empty,
    and every feature must carry the same number of examples.

    Raises:
        ServingInputError: naming the first offending feature, what it received and what
            the signature expects.
    """
    missing = sorted(set(specs) - set(inputs))
    if missing:
        raise ServingInputError(
            missing[0],
            f"missing from the request (also missing: {missing[1:]})"
            if len(missing) > 1
            else "missing from the request",
        )
    unexpected = sorted(set(inputs) - set(specs))
    if unexpected:
        raise ServingInputError(unexpected[0], f"not an input of the signature (inputs: {sorted(specs)})")
    tensors, batch_owner, batch = {}, None, None
    for name in sorted(specs):
        spec, value = specs[name], inputs[name]
        array = value.numpy() if isinstance(value, tf.Tensor) else np.asarray(value)
        expected = f"shape {_shape_text(spec.shape)} of {spec.dtype.name}"
        if array.ndim != spec.shape.rank:
            raise ServingInputError(
                name, f"wrong rank: received shape {_shape_text(array.shape)}, expected {expected}"
            )
        if array.shape[0] == 0:
            raise ServingInputError(name, "empty batch: send at least one example")
        array = _converted(name, array, spec.dtype, expected)
        if batch is None:
            batch_owner, batch = name, array.shape[0]
        elif array.shape[0] != batch:
            raise ServingInputError(
                name,
                f"batch size mismatch: received {array.shape[0]} values, expected {batch} "
                f"(the number of values of '{batch_owner}')",
            )
        tensors[name] = tf.constant(array, dtype=spec.dtype)
    return tensors


def _converted(name: str, array: np.ndarray, dtype: tf.DType, expected: str) -> np.ndarray:
    kind = array.dtype.kind
    type_name = {"U": "string", "S": "string", "O": "object", "b": "bool"}.get(kind, array.dtype.name)
    received = f"received {type_name} values of shape {_shape_text(array.shape)}"
    if dtype == tf.string:
        if kind in "SU" or (kind == "O" and all(isinstance(v, str | bytes) for v in array.ravel())):
            return array
    elif dtype.is_floating:
        if kind in "fiu":
            return array.astype(dtype.as_numpy_dtype)
    elif dtype.is_integer:
        if kind in "iu":
            return array.astype(dtype.as_numpy_dtype)
    raise ServingInputError(name, f"wrong dtype: {received}, expected {expected}")
