"""check_raw_request: every malformed raw-feature request is refused naming the feature.

Checked against the raw signature of a SavedModel with the project's contract (the zoo's
correct model): what a server does before it calls the signature.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from model_zoo import save_zoo_model

from models import features, signatures
from serving import request_checks


@pytest.fixture(scope="module")
def signature(tmp_path_factory):
    path = save_zoo_model(str(tmp_path_factory.mktemp("zoo") / "good"))
    return tf.saved_model.load(path).signatures[signatures.RAW_SIGNATURE]


def request(rows: int = 3) -> dict:
    values = {}
    for name in features.serving_raw_features():
        if name in features.RAW_STRING_COLUMNS:
            values[name] = ["Cash"] * rows
        elif name in features.RAW_INT_COLUMNS:
            values[name] = np.arange(1, rows + 1, dtype=np.int64)
        else:
            values[name] = np.linspace(1.0, 9.0, rows).astype(np.float32)
    return values


def test_a_good_request_is_answered_n_by_1(signature):
    inputs = request_checks.check_raw_request(request_checks.raw_input_specs(signature), request())
    assert signature(**inputs)[signatures.PREDICTION_KEY].shape == (3, 1)


def test_integers_are_accepted_for_float_features(signature):
    """JSON cannot tell 5 from 5.0: an integral fare is a fare."""
    body = request()
    body["fare"] = [5, 7, 9]
    inputs = request_checks.check_raw_request(request_checks.raw_input_specs(signature), body)
    assert inputs["fare"].dtype == tf.float32


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("rank_2", "feature 'fare': wrong rank: received shape (3, 1), expected shape (N,) of float32"),
        ("scalar", "feature 'fare': wrong rank: received shape (), expected shape (N,) of float32"),
        (
            "dtype",
            "feature 'fare': wrong dtype: received string values of shape (3,), "
            "expected shape (N,) of float32",
        ),
        (
            "int_dtype",
            "feature 'trip_start_hour': wrong dtype: received float64 values of shape (3,), expected "
            "shape (N,) of int64",
        ),
        ("missing", "feature 'fare': missing from the request"),
        ("unexpected", "feature 'tips': not an input of the signature"),
        (
            "batch",
            "feature 'fare': batch size mismatch: received 2 values, expected 3 (the number of values of "
            "'company')",
        ),
        ("empty", "feature 'company': empty batch"),
    ],
)
def test_malformed_requests_name_the_feature(signature, mistake, message):
    body = request()
    if mistake == "rank_2":
        body["fare"] = np.asarray(body["fare"])[:, None]
    elif mistake == "scalar":
        body["fare"] = np.float32(3.0)
    elif mistake == "dtype":
        body["fare"] = ["1.5", "2.5", "3.5"]
    elif mistake == "int_dtype":
        body["trip_start_hour"] = [1.5, 2.0, 3.0]
    elif mistake == "missing":
        del body["fare"]
    elif mistake == "unexpected":
        body["tips"] = [1.0, 2.0, 3.0]
    elif mistake == "batch":
        body["fare"] = body["fare"][:2]
    else:
        body = {name: value[:0] for name, value in body.items()}
    with pytest.raises(request_checks.ServingInputError) as error:
        request_checks.check_raw_request(request_checks.raw_input_specs(signature), body)
    assert message in str(error.value)


def test_the_signature_itself_refuses_what_a_caller_did_not_check(signature):
    """Without the client-side check, TensorFlow still refuses (it never broadcasts)."""
    inputs = request_checks.check_raw_request(request_checks.raw_input_specs(signature), request())
    inputs["fare"] = tf.reshape(inputs["fare"], [3, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor fare \[3,1\]"):
        signature(**inputs)
    inputs["fare"] = tf.constant([1, 2, 3], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        signature(**inputs)
