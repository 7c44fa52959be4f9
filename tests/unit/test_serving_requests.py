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
from serving import requests as serving


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
    inputs = serving.check_raw_request(serving.raw_input_specs(signature), request())
    assert signature(**inputs)[signatures.PREDICTION_KEY].shape == (3, 1)


def test_integers_are_accepted_for_float_features(signature):
    """JSON cannot tell 5 from 5.0: an integral fare is a fare."""
    body = request()
    body["fare"] = [5, 7, 9]
    inputs = serving.check_raw_request(serving.raw_input_specs(signature), body)
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
    with pytest.raises(serving.ServingInputError) as error:
        serving.check_raw_request(serving.raw_input_specs(signature), body)
    assert message in str(error.value)


def test_the_signature_itself_refuses_what_a_caller_did_not_check(signature):
    """Without the client-side check, TensorFlow still refuses (it never broadcasts)."""
    inputs = serving.check_raw_request(serving.raw_input_specs(signature), request())
    inputs["fare"] = tf.reshape(inputs["fare"], [3, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Shape of tensor fare \[3,1\]"):
        signature(**inputs)
    inputs["fare"] = tf.constant([1, 2, 3], tf.int64)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        signature(**inputs)


def _write_records(path, records, gzip: bool):
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)


def test_chosen_records_are_read_without_the_rest(tmp_path):
    records = [f"record-{i}".encode() for i in range(250)]
    files = [tmp_path / "a.gz", tmp_path / "b"]
    _write_records(files[0], records[:100], gzip=True)
    _write_records(files[1], records[100:], gzip=False)
    files = [str(f) for f in files]
    assert serving.read_tfrecords(files) == records
    assert serving.count_tfrecords(files) == 250
    rows = [249, 3, 100, 99, 0]  # across both files, out of order
    assert serving.read_tfrecords_at(files, rows) == [records[r] for r in rows]
    with pytest.raises(IndexError, match=r"rows \[250\] are beyond the 250 records"):
        serving.read_tfrecords_at(files, [1, 250])


def _example(row: int) -> bytes:
    """A trip; every 3rd lacks payment_type and every 4th its tips (absent, as a blank cell)."""
    feature = {}
    for name in features.serving_raw_features():
        if name in features.RAW_STRING_COLUMNS:
            if name == "payment_type" and row % 3 == 0:
                continue
            value = tf.train.Feature(bytes_list=tf.train.BytesList(value=[f"{name}-{row}".encode()]))
        elif name in features.RAW_INT_COLUMNS:
            value = tf.train.Feature(int64_list=tf.train.Int64List(value=[row]))
        else:
            value = tf.train.Feature(float_list=tf.train.FloatList(value=[row + 0.5]))
        feature[name] = value
    feature[features.FARE_KEY] = tf.train.Feature(float_list=tf.train.FloatList(value=[10.0]))
    if row % 4:
        feature[features.TIPS_KEY] = tf.train.Feature(float_list=tf.train.FloatList(value=[row % 5]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_examples_parse_the_same_in_chunks_as_whole(monkeypatch):
    examples = np.array([_example(row) for row in range(50)], dtype=object)
    specs = serving.serving_raw_specs()
    whole = serving.examples_to_raw(examples, specs)
    labels = serving.labels_of(examples)
    monkeypatch.setattr(serving, "PARSE_CHUNK", 7)  # 50 rows: 7 full chunks and one of 1
    chunked = serving.examples_to_raw(examples, specs)
    assert set(chunked) == set(whole)
    for name in whole:
        np.testing.assert_array_equal(chunked[name], whole[name], err_msg=name)
    assert chunked["payment_type"][3] == signatures.missing_marker(tf.string)
    assert chunked["payment_type"][4] == b"payment_type-4"
    np.testing.assert_array_equal(serving.labels_of(examples), labels)
    assert len(labels) == 50
    doubled = tf.train.Example.FromString(examples[46])
    doubled.features.feature["payment_type"].bytes_list.value.append(b"Cash")
    examples[46] = doubled.SerializeToString()  # in the last full chunk
    with pytest.raises(serving.ReplayDataError, match="feature 'payment_type' has several values"):
        serving.examples_to_raw(examples, specs)
