"""The prediction log's writer: written in a format TFDV reads, sampled, rotated, capped, never blocking.

Read back through `monitoring.prediction_logs.read_logs`, as `monitor` reads it; the reader's own
cases are in test_prediction_log_reading.py, the record framing's in test_tfrecords.py.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from monitoring.prediction_logs import read_logs
from serving import prediction_log as plog
from serving.prediction_log import PredictionLogger


def raw_item(count: int, version: int = 7, keys=None, fare=12.5) -> dict:
    return {
        "version": version,
        "signature": "serving_raw",
        "request_id": "req-1",
        "predictions": np.linspace(0.1, 0.9, count).astype(np.float32),
        "raw": {
            "fare": tf.constant([fare] * (count - 1) + [float("nan")]),
            "trip_start_hour": tf.constant([5] * (count - 1) + [-1], dtype=tf.int64),
            "company": tf.constant([b"Flash Cab"] * (count - 1) + [b""]),
        },
        "keys": keys,
    }


def example_item(key_value) -> dict:
    example = tf.train.Example()
    example.features.feature["fare"].float_list.value.append(3.25)
    example.features.feature[plog.KEY_FIELD].bytes_list.value.append(key_value)
    return {
        "version": 8,
        "signature": "serving_default",
        "request_id": "req-2",
        "predictions": np.array([0.25], np.float32),
        "serialized": [example.SerializeToString()],
    }


def _values(feature) -> list:
    return list(getattr(feature, feature.WhichOneof("kind")).value)


def counter(metric, **labels) -> float:
    return (metric.labels(**labels) if labels else metric)._value.get()


def test_logged_examples_hold_the_raw_features_the_prediction_and_the_key(tmp_path):
    logger = PredictionLogger(tmp_path)
    logger.submit(raw_item(3, keys=["a", None, "c"]))
    logger.submit(example_item(b"trip-9"))
    logger.close()
    files = list(tmp_path.glob("*.tfrecord"))
    assert len(files) == 1 and not list(tmp_path.glob("*.partial"))  # closed and renamed
    logged = read_logs(tmp_path)
    assert len(logged) == 4
    assert logged.keys == ["a", None, "c", "trip-9"]
    assert logged.versions.tolist() == [7, 7, 7, 8]
    assert logged.signatures == ["serving_raw"] * 3 + ["serving_default"]
    np.testing.assert_allclose(logged.predictions, [0.1, 0.5, 0.9, 0.25], rtol=1e-6)
    first = tf.train.Example.FromString(logged.serialized[0]).features.feature
    assert first["fare"].float_list.value == [12.5]
    assert first["company"].bytes_list.value == [b"Flash Cab"]
    # Missing markers (NaN, -1, "") are empty value lists, as ExampleGen writes a blank cell.
    last_raw = tf.train.Example.FromString(logged.serialized[2]).features.feature
    assert set(last_raw) == {"fare", "trip_start_hour", "company"}
    assert not any(last_raw[name].WhichOneof("kind") and _values(last_raw[name]) for name in last_raw)
    # The key and the log-only fields are not features of the logged request.
    served = tf.train.Example.FromString(logged.serialized[3]).features.feature
    assert set(served) == {"fare"}
    # The framing is TFRecord's own: TensorFlow reads the file, CRCs checked.
    assert len(list(tf.data.TFRecordDataset(str(files[0])))) == 4


def test_tfdv_reads_the_log_folder_directly(tmp_path):
    import tensorflow_data_validation as tfdv

    logger = PredictionLogger(tmp_path)
    logger.submit(raw_item(50))
    logger.close()
    stats = tfdv.generate_statistics_from_tfrecord(data_location=str(tmp_path / "*.tfrecord"))
    dataset = stats.datasets[0]
    assert dataset.num_examples == 50
    by_name = {f.path.step[0]: f for f in dataset.features}
    # 49 fares and one empty value list (the missing one), counted as ExampleGen's are.
    assert by_name["fare"].num_stats.common_stats.tot_num_values == 49
    assert by_name[plog.PREDICTION].num_stats.max == pytest.approx(0.9, rel=1e-6)


def test_the_sample_rate_logs_that_share_of_examples(tmp_path):
    before = counter(plog.SAMPLED_OUT)
    logger = PredictionLogger(tmp_path, sample_rate=0.25, seed=1)
    for _ in range(40):
        logger.submit(raw_item(50))
    logger.close()
    kept = len(read_logs(tmp_path))
    assert 400 <= kept <= 600  # 2,000 examples at 0.25
    assert counter(plog.SAMPLED_OUT) - before == 2000 - kept


def test_files_rotate_by_size_and_the_folder_is_capped(tmp_path):
    logger = PredictionLogger(tmp_path, max_file_bytes=2_000, max_total_bytes=6_000, flush_s=0.01)
    for _ in range(30):
        logger.submit(raw_item(10))
        time.sleep(0.03)  # about one flush per request: a file closes once it passes 2,000 bytes
    logger.close()
    files = sorted(tmp_path.glob("*.tfrecord"))
    assert len(files) >= 2
    assert sum(f.stat().st_size for f in files) <= 6_000 + 2_000  # the cap, plus at most one file's overshoot
    names = [f.name for f in files]
    assert names == sorted(names)
    # Age: files older than the limit go.
    old = files[0]
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    removed = plog.enforce_caps(tmp_path, max_total_bytes=10**9, max_age_s=86400)
    assert removed == [old] and not old.exists()


def test_a_full_disk_drops_records_never_the_request(tmp_path, monkeypatch):
    def open_full_disk(self):
        self._path = tmp_path / "full.tfrecord.partial"
        self._handle = open("/dev/full", "ab", buffering=0)  # noqa: SIM115 - every write: ENOSPC
        self._opened_at, self._written = time.monotonic(), 0

    monkeypatch.setattr(PredictionLogger, "_open_file", open_full_disk)
    before = counter(plog.DROPPED, reason="write_error")
    logger = PredictionLogger(tmp_path)
    logger.submit(raw_item(5))  # returns at once, raises nothing
    logger.submit(raw_item(5))
    logger.close()
    assert counter(plog.DROPPED, reason="write_error") - before == 10


def test_a_slow_writer_drops_records_and_never_blocks_the_request(tmp_path, monkeypatch):
    release = threading.Event()
    real = plog.build_examples

    def slow(item):
        release.wait(5)
        return real(item)

    monkeypatch.setattr(plog, "build_examples", slow)
    before = counter(plog.DROPPED, reason="queue_full")
    logger = PredictionLogger(tmp_path, queue_size=2)
    started = time.perf_counter()
    for _ in range(20):
        logger.submit(raw_item(3))
    elapsed = time.perf_counter() - started
    release.set()
    logger.close()
    assert elapsed < 0.5  # 20 submits while the writer is stuck
    dropped = counter(plog.DROPPED, reason="queue_full") - before
    assert dropped >= 3 * 17  # at most 1 in the writer's hands and 2 queued
    assert len(read_logs(tmp_path)) == 60 - dropped
