"""Replay data read as the gates read it: examples to raw requests and labels, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models import features, signatures
from serving import replay_data, request_checks


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
    specs = request_checks.serving_raw_specs()
    whole = replay_data.examples_to_raw(examples, specs)
    labels = replay_data.labels_of(examples)
    monkeypatch.setattr(replay_data, "PARSE_CHUNK", 7)  # 50 rows: 7 full chunks and one of 1
    chunked = replay_data.examples_to_raw(examples, specs)
    assert set(chunked) == set(whole)
    for name in whole:
        np.testing.assert_array_equal(chunked[name], whole[name], err_msg=name)
    assert chunked["payment_type"][3] == signatures.missing_marker(tf.string)
    assert chunked["payment_type"][4] == b"payment_type-4"
    np.testing.assert_array_equal(replay_data.labels_of(examples), labels)
    assert len(labels) == 50
    doubled = tf.train.Example.FromString(examples[46])
    doubled.features.feature["payment_type"].bytes_list.value.append(b"Cash")
    examples[46] = doubled.SerializeToString()  # in the last full chunk
    with pytest.raises(replay_data.ReplayDataError, match="feature 'payment_type' has several values"):
        replay_data.examples_to_raw(examples, specs)
