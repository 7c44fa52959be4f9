"""The prediction log's reader: what `monitor` reads back while the server still writes.

Logs are written by the real writer (`serving.prediction_log.PredictionLogger`), then read
through `monitoring.prediction_logs`: filtered by time, and whole while files rotate and go.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from monitoring import prediction_logs
from serving import prediction_log as plog
from serving.prediction_log import PredictionLogger


def raw_item(count: int, version: int = 7) -> dict:
    """One answered serving_raw request of `count` trips (the last with every value missing)."""
    return {
        "version": version,
        "signature": "serving_raw",
        "request_id": "req-1",
        "predictions": np.linspace(0.1, 0.9, count).astype(np.float32),
        "raw": {
            "fare": tf.constant([12.5] * (count - 1) + [float("nan")]),
            "trip_start_hour": tf.constant([5] * (count - 1) + [-1], dtype=tf.int64),
            "company": tf.constant([b"Flash Cab"] * (count - 1) + [b""]),
        },
        "keys": None,
    }


def test_read_logs_filters_by_time(tmp_path):
    logger = PredictionLogger(tmp_path)
    logger.submit(raw_item(2))
    time.sleep(0.05)
    middle = time.time_ns() // 1000
    time.sleep(0.05)
    logger.submit(raw_item(3, version=9))
    logger.close()
    assert len(prediction_logs.read_logs(tmp_path)) == 5
    later = prediction_logs.read_logs(tmp_path, since_us=middle)
    assert len(later) == 3 and set(later.versions.tolist()) == {9}


def test_a_file_closed_or_removed_while_monitor_reads_is_read_once_or_skipped(tmp_path, monkeypatch):
    """The server rotates and caps files while `monitor` reads: no file lost, none read twice."""
    logger = PredictionLogger(tmp_path)
    logger.submit(raw_item(4))
    logger.close()
    (closed,) = tmp_path.glob("*.tfrecord")
    # Listed while still open, closed (renamed) before it is read.
    listed_open = closed.with_name(closed.name.removesuffix(plog.SUFFIX) + plog.OPEN_SUFFIX)
    monkeypatch.setattr(prediction_logs, "log_files", lambda folder: [listed_open])
    assert len(prediction_logs.read_logs(tmp_path)) == 4
    monkeypatch.undo()
    # Seen open and closed by the two listings: kept once.
    listed_open.write_bytes(closed.read_bytes())
    assert prediction_logs.log_files(tmp_path) == [closed] and len(prediction_logs.read_logs(tmp_path)) == 4
    # Removed by the cap after it was listed: skipped, not an error.
    listed_open.unlink()
    monkeypatch.setattr(
        prediction_logs, "log_files", lambda folder: [closed, tmp_path / "predictions-gone.tfrecord"]
    )
    assert len(prediction_logs.read_logs(tmp_path)) == 4
