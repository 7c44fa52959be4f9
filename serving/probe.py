"""A batch-invariance probe for a version about to be served, on rows made from the schema's domains.

The serving gate proves batch invariance on the eval split before a push; the model server
checks it again, cheaply, before it swaps in a version (which may have been copied into the
serving directory by hand, or pushed by an older pipeline). The server has no eval split, so
the probe's rows come from the curated schema: every categorical cycles through its domain's
values, every integer is spread across its domain, every float sits at small fractions of
its range (realistic fares and distances, not the range's extremes, where a probability
saturates and a batch effect would hide), and a feature without a domain is missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, missing_marker
from schemas import load_schema
from serving.request_checks import check_raw_request

PROBE_ROWS = 8
# Where in a float feature's [min, max] the probe rows sit, one fraction per row.
FLOAT_FRACTIONS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3)


def _domains(schema) -> dict[str, object]:
    strings = {domain.name: list(domain.value) for domain in schema.string_domain}
    found = {}
    for feature in schema.feature:
        kind = feature.WhichOneof("domain_info")
        if kind == "domain":
            found[feature.name] = strings.get(feature.domain)
        elif kind == "string_domain":
            found[feature.name] = list(feature.string_domain.value)
        elif kind in ("int_domain", "float_domain"):
            found[feature.name] = getattr(feature, kind)
    return found


def _value(domain, dtype: tf.DType, index: int):
    if domain is None:
        return missing_marker(dtype)
    if isinstance(domain, list):
        return domain[index % len(domain)].encode() if domain else missing_marker(dtype)
    if not (domain.HasField("min") and domain.HasField("max")):
        return domain.min if domain.HasField("min") else missing_marker(dtype)
    if dtype.is_integer:
        return int(domain.min + round((domain.max - domain.min) * index / (PROBE_ROWS - 1)))
    return float(domain.min + (domain.max - domain.min) * FLOAT_FRACTIONS[index])


def probe_rows(specs: Mapping[str, tf.TensorSpec], schema=None) -> dict[str, np.ndarray]:
    """`PROBE_ROWS` raw requests' worth of values, one column per raw input, from the schema."""
    domains = _domains(schema or load_schema())
    columns = {}
    for j, (name, spec) in enumerate(sorted(specs.items())):
        # A different stride per feature, so no two features move in step across the rows.
        values = [
            _value(domains.get(name), spec.dtype, (k * (2 * j + 1) + j) % PROBE_ROWS)
            for k in range(PROBE_ROWS)
        ]
        dtype = object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
        columns[name] = np.array(values, dtype=dtype)
    return columns


def to_examples(columns: Mapping[str, np.ndarray]) -> list[bytes]:
    """The same rows as serialized tf.Examples (a missing marker is an absent feature)."""
    count = len(next(iter(columns.values())))
    records = []
    for row in range(count):
        example = tf.train.Example()
        for name, values in columns.items():
            value = values[row]
            if isinstance(value, bytes):
                if value != missing_marker(tf.string):
                    example.features.feature[name].bytes_list.value.append(value)
            elif isinstance(value, np.floating):
                if not np.isnan(value):
                    example.features.feature[name].float_list.value.append(float(value))
            elif value != missing_marker(tf.int64):
                example.features.feature[name].int64_list.value.append(int(value))
        records.append(example.SerializeToString())
    return records


def _scores(signature, inputs: dict) -> np.ndarray:
    return signature(**inputs)[PREDICTION_KEY].numpy().reshape(-1)


def batch_probe(serving_fn, raw_fn, specs: Mapping[str, tf.TensorSpec], tolerance: float) -> float:
    """Score the probe rows alone, together and in reverse order through both signatures.

    Returns:
        The largest difference between two answers for one row (<= `tolerance`).

    Raises:
        ValueError: naming the signature, the row and both answers when any differ by more
            than `tolerance`: the answer depends on the rest of the batch.
    """
    columns = probe_rows(specs)
    examples = np.array(to_examples(columns), dtype=object)
    inputs_of = {
        "serving_default": (serving_fn, lambda rows: {EXAMPLES_INPUT: tf.constant(list(examples[rows]))}),
        "serving_raw": (
            raw_fn,
            lambda rows: check_raw_request(specs, {k: v[rows] for k, v in columns.items()}),
        ),
    }
    largest = 0.0
    order = np.arange(PROBE_ROWS)
    for name, (signature, inputs) in inputs_of.items():
        together = _scores(signature, inputs(order))
        reverse = _scores(signature, inputs(order[::-1]))[::-1]
        alone = np.concatenate([_scores(signature, inputs(order[i : i + 1])) for i in order])
        for label, other in (("alone", alone), ("in reverse order", reverse)):
            gap = np.abs(other - together)
            row = int(np.argmax(np.where(np.isnan(gap), np.inf, gap)))
            largest = max(largest, float(gap[row]))
            if not gap[row] <= tolerance:
                raise ValueError(
                    f"batch probe: {name} answers probe row {row} with {together[row]:.4f} in a batch of "
                    f"{PROBE_ROWS} but {other[row]:.4f} {label} (difference {gap[row]:.4g} > {tolerance:g}): "
                    "the answer depends on the rest of its batch"
                )
    return largest
