"""TF Serving's REST request format, decoded: what the model server takes before it calls a model.

`predict` (`serving/server.py`) and the KServe logger (`monitoring/kserve_logger.py`) read a
request body through these: `parse_body` (JSON), `split_request` (signature, row or columnar
layout), then `serialized_examples` for `serving_default` or `raw_features` for `serving_raw`.
Anything malformed raises `BadRequest`, whose message names the problem (an HTTP 400) and
whose `kind` labels the error metric.
"""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np
import tensorflow as tf

from models.signatures import EXAMPLES_INPUT, RAW_SIGNATURE, SERVING_SIGNATURE, missing_marker
from serving.prediction_log import KEY_FIELD

SIGNATURES = (SERVING_SIGNATURE, RAW_SIGNATURE)


class BadRequest(ValueError):
    """A malformed request; `kind` labels the error metric."""

    def __init__(self, message: str, kind: str = "bad_request"):
        super().__init__(message)
        self.kind = kind


def parse_body(body) -> dict:
    """The request as a dict; raw bytes (a non-JSON content type) are parsed here."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"the body is not JSON: {error}", "not_json") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}", "not_json")
    return body


def split_request(body: dict) -> tuple[str, str, object]:
    """(signature name, 'row' or 'columnar', the instances or inputs)."""
    signature = body.get("signature_name", SERVING_SIGNATURE)
    if signature not in SIGNATURES:
        raise BadRequest(
            f"unknown signature_name {signature!r}; this model serves {list(SIGNATURES)}", "signature"
        )
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances == has_inputs:
        raise BadRequest(
            'send exactly one of "instances" (row format) or "inputs" (columnar format)', "format"
        )
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise BadRequest(f"unknown request field(s) {unknown}", "format")
    return (
        signature,
        ("row" if has_instances else "columnar"),
        body["instances" if has_instances else "inputs"],
    )


def _b64(value, where: str) -> bytes:
    if not (isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str)):
        raise BadRequest(
            f'{where}: a serialized tf.Example must be sent as {{"b64": "<base64>"}}, got {value!r:.80}'
        )
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise BadRequest(f"{where}: invalid base64: {error}") from None


def serialized_examples(layout: str, data) -> list[bytes]:
    """The serialized examples of a serving_default request."""
    if layout == "row":
        if not isinstance(data, list):
            raise BadRequest('"instances" must be a list')
        items = [i[EXAMPLES_INPUT] if isinstance(i, dict) and EXAMPLES_INPUT in i else i for i in data]
    else:
        items = data[EXAMPLES_INPUT] if isinstance(data, dict) and set(data) == {EXAMPLES_INPUT} else data
        if isinstance(data, dict) and set(data) != {EXAMPLES_INPUT}:
            raise BadRequest(
                f'"inputs" of {SERVING_SIGNATURE} has one input, "{EXAMPLES_INPUT}"; got {sorted(data)}'
            )
        if not isinstance(items, list):
            raise BadRequest(f'"{EXAMPLES_INPUT}" must be a list of {{"b64": ...}} values (rank 1)')
    if not items:
        raise BadRequest("empty batch: send at least one example")
    return [_b64(item, f"example {i}") for i, item in enumerate(items)]


def json_column(values: list, spec) -> np.ndarray:
    """JSON values -> one feature's array; null becomes the feature's missing marker.

    Strings stay Python objects (a number among them is then named as a wrong dtype, not
    silently turned into text); numbers take NumPy's type (check_raw_request judges it).
    """
    marker = missing_marker(spec.dtype)
    values = [marker if v is None else v for v in values]
    return np.asarray(values, dtype=object if spec.dtype == tf.string else None)


def raw_features(layout: str, data, specs: dict) -> tuple[dict, list | None]:
    """The feature columns of a serving_raw request, and the client's keys.

    The columns are checked by `check_raw_request` next; the keys (`trip_id`, None when the
    request has none) are logged and never given to the model.
    """
    keys = None
    if layout == "row":
        if not isinstance(data, list):
            raise BadRequest('"instances" must be a list of {feature: value} objects')
        if not data:
            raise BadRequest("empty batch: send at least one example")
        columns: dict[str, list] = {}
        for i, instance in enumerate(data):
            if not isinstance(instance, dict):
                raise BadRequest(f"instance {i} must be an object of features, got {instance!r:.80}")
            if KEY_FIELD in instance:
                instance = dict(instance)
                keys = keys if keys is not None else [None] * i
                keys.append(_key(instance.pop(KEY_FIELD), i))
            elif keys is not None:
                keys.append(None)
            missing = sorted(set(specs) - set(instance))
            if missing:
                raise BadRequest(f"instance {i}: feature '{missing[0]}': missing from the request")
            for name, value in instance.items():
                columns.setdefault(name, []).append(value)
    else:
        if not isinstance(data, dict):
            raise BadRequest('"inputs" must be an object of {feature: [values]}')
        columns = dict(data)
        if KEY_FIELD in columns:
            values = columns.pop(KEY_FIELD)
            if not isinstance(values, list):
                raise BadRequest(f'"{KEY_FIELD}" must be a list of keys, one per example')
            keys = [_key(v, i) for i, v in enumerate(values)]
    arrays = {}
    for name, values in columns.items():
        if name not in specs:
            arrays[name] = np.asarray([])
            continue
        if not isinstance(values, list):
            arrays[name] = np.asarray(values)  # a scalar: rank 0, named by the check
        else:
            try:
                arrays[name] = json_column(values, specs[name])
            except ValueError as error:  # ragged nesting
                raise BadRequest(f"feature '{name}': {error}") from None
    return arrays, keys


def _key(value, index: int) -> str | None:
    """A client's key as text (a string or an integer; null: none)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRequest(f"instance {index}: '{KEY_FIELD}' must be a string or an integer, got {value!r:.80}")
    return str(value)
