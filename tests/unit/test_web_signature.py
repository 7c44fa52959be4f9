"""The web signature's pieces: the exact limb hash, the input encodings, the vocabulary codes.

The hash must equal the Transform's int64 MINSTD hash bit for bit, in int32 and in float32
arithmetic (WebGL computes int32 in float32), on random 40-bit values, the sample's tracts
and the edges of the modulus. The web model as a whole is held to `serving_raw` by the web
gate (tests/unit/test_web_export.py, tests/e2e).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from data import embedded
from models import features, transform, web

EDGES = [0, 1, 255, 256, 2**24 - 1, 2**24, 2**31 - 2, 2**31 - 1, 2**31, 2 * (2**31 - 1), 2**40 - 1, 2**46]


def _pairs(values: np.ndarray) -> np.ndarray:
    return np.stack([values // web.SPLIT_BASE, values % web.SPLIT_BASE], axis=1)


@pytest.mark.parametrize("dtype", [tf.int32, tf.float32])
def test_the_limb_hash_equals_the_transform_hash_exactly(dtype):
    rng = np.random.default_rng(7)
    tracts = pd.read_csv(embedded.taxi_sample_path(), usecols=["dropoff_census_tract", "pickup_census_tract"])
    sample = tracts.stack().dropna().astype(np.int64).to_numpy()
    values = np.concatenate([rng.integers(0, 2**40, 100_000), sample, EDGES]).astype(np.int64)
    buckets = features.HASHED_FEATURES["dropoff_census_tract"]
    expected = transform.hashed_ids(tf.constant(values), buckets).numpy()
    got = web.exact_hashed_ids(tf.cast(tf.constant(_pairs(values)), dtype), buckets).numpy()
    assert got.dtype.kind in "if"
    mismatched = np.flatnonzero(got.astype(np.int64) != expected)
    assert (
        mismatched.size == 0
    ), f"values {values[mismatched[:5]]}: {got[mismatched[:5]]} vs {expected[mismatched[:5]]}"
    # Not a constant: the hash spreads the sample's tracts over many buckets.
    assert len(set(expected[-len(EDGES) - len(sample) : -len(EDGES)])) > 50


def test_a_missing_tract_is_id_zero_as_in_the_transform():
    missing = web.exact_hashed_ids(tf.constant([[-1, -1]], tf.int32), 256).numpy()
    assert (
        missing.tolist()
        == transform.hashed_ids(tf.constant([features.MISSING_INT], tf.int64), 256).numpy().tolist()
    )
    assert missing.tolist() == [0]


def test_a_hash_over_too_many_buckets_is_refused():
    with pytest.raises(AssertionError, match="limbs"):
        web.exact_hashed_ids(tf.constant([[0, 5]], tf.int32), 5000)


DESCRIBED = [
    {"name": "company", "encoding": "vocabulary", "vocabulary": ["Flash Cab", "__missing__", "Taxi"],
     "unknown": 3, "missing": -1, "dtype": "int32", "shape": [-1]},
    {"name": "dropoff_census_tract", "encoding": "split", "base": web.SPLIT_BASE, "missing": [-1, -1],
     "dtype": "int32", "shape": [-1, 2]},
    {"name": "trip_start_hour", "encoding": "int", "missing": -1, "dtype": "int32", "shape": [-1]},
    {"name": "fare", "encoding": "float", "missing": "NaN", "dtype": "float32", "shape": [-1]},
]  # fmt: skip


def test_encode_maps_values_markers_and_unknown_strings():
    raw = {
        "company": np.array([b"Flash Cab", b"", b"Nobody Cab", b"__missing__"], dtype=object),
        "dropoff_census_tract": np.array([17031081500, -1, 0, 2**24 * 3 + 5], np.int64),
        "trip_start_hour": np.array([0, -1, 23, 5], np.int64),
        "fare": np.array([1.5, np.nan, 0.0, 7.25], np.float32),
    }
    encoded = web.encode(raw, DESCRIBED)
    assert encoded["company"].tolist() == [0, -1, 3, 1]
    assert encoded["company"].dtype == np.int32
    assert encoded["dropoff_census_tract"].tolist() == [[1015, 2207260], [-1, -1], [0, 0], [3, 5]]
    assert 1015 * 2**24 + 2207260 == 17031081500
    assert encoded["trip_start_hour"].tolist() == [0, -1, 23, 5]
    assert np.isnan(encoded["fare"][1]) and encoded["fare"].dtype == np.float32


def test_web_inputs_are_int32_or_float32_one_per_serving_feature():
    spec = {
        name: tf.io.VarLenFeature(
            tf.string
            if name in features.RAW_STRING_COLUMNS
            else tf.float32
            if name in features.RAW_FLOAT_COLUMNS
            else tf.int64
        )
        for name in features.serving_raw_features()
    }
    specs = web.web_input_specs(spec)
    assert sorted(specs) == sorted(features.serving_raw_features())
    assert {s.dtype for s in specs.values()} == {tf.int32, tf.float32}
    assert specs["dropoff_census_tract"].shape.as_list() == [None, 2]
    assert specs["payment_type"].dtype == tf.int32 and specs["fare"].dtype == tf.float32


def test_a_string_feature_without_a_web_encoding_is_refused_by_name():
    with pytest.raises(ValueError, match="'notes'"):
        web.web_kind("notes", tf.string)


def test_the_vocabulary_lookup_maps_codes_markers_and_unknown_codes():
    table = {"values": ["a", "__missing__", "b"], "ids": [2, 0, 1], "missing_id": 0, "unknown_id": 3}
    codes = tf.constant([0, 1, 2, -1, 3, 99, -7], tf.int32)
    assert web._vocabulary_ids(codes, table).numpy().tolist() == [2, 0, 1, 0, 3, 3, 3]
