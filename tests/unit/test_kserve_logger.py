"""KServe's inference-logger CloudEvents, POSTed over loopback, become prediction-log records."""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.request

import tensorflow as tf

from monitoring.kserve_logger import REQUEST_TYPE, RESPONSE_TYPE, CloudEventReceiver, make_server
from monitoring.prediction_logs import read_logs
from serving.prediction_log import PredictionLogger


def post(url: str, event_id: str, event_type: str, body: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Ce-Id": event_id,
            "Ce-Type": event_type,
            "Ce-Source": "http://localhost:9081/",
            "Ce-Specversion": "1.0",
            "Ce-Inferenceservicename": "big-tipper",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def trip(fare, key=None) -> dict:
    row = {
        "trip_start_hour": 8,
        "trip_start_day": 3,
        "trip_start_month": 5,
        "trip_start_timestamp": 1400000000,
        "pickup_community_area": 8,
        "dropoff_community_area": None,
        "pickup_census_tract": None,
        "dropoff_census_tract": None,
        "pickup_latitude": 41.9,
        "pickup_longitude": -87.6,
        "dropoff_latitude": None,
        "dropoff_longitude": None,
        "trip_miles": 2.0,
        "trip_seconds": 600,
        "fare": fare,
        "payment_type": "Cash",
        "company": "",
    }
    if key is not None:
        row["trip_id"] = key
    return row


def test_request_and_response_events_pair_into_logged_examples(tmp_path):
    logger = PredictionLogger(tmp_path / "logs")
    receiver = CloudEventReceiver(logger, lambda: 42)
    server = make_server(receiver, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        raw = {"signature_name": "serving_raw", "instances": [trip(7.5, "t-1"), trip(None, "t-2")]}
        # The response may arrive first: events are paired by ce-id whatever the order.
        assert post(url, "ev-1", RESPONSE_TYPE, {"predictions": [[0.8], [0.1]]}) == 202
        assert post(url, "ev-1", REQUEST_TYPE, raw) == 200
        example = tf.train.Example()
        example.features.feature["fare"].float_list.value.append(3.0)
        b64 = {"b64": base64.b64encode(example.SerializeToString()).decode()}
        assert post(url, "ev-2", REQUEST_TYPE, {"instances": [b64]}) == 202
        assert post(url, "ev-2", RESPONSE_TYPE, {"predictions": [[0.4]]}) == 200
        # Mismatched counts and non-logger events are refused with the reason.
        assert post(url, "ev-3", REQUEST_TYPE, raw) == 202
        assert post(url, "ev-3", RESPONSE_TYPE, {"predictions": [[0.8]]}) == 422
        assert post(url, "ev-4", "com.example.other", {}) == 400
    finally:
        server.shutdown()
        server.server_close()
        logger.close()
    logged = read_logs(tmp_path / "logs")
    assert logged.keys == ["t-1", "t-2", None]
    assert logged.request_ids == ["ev-1", "ev-1", "ev-2"]
    assert logged.signatures == ["serving_raw", "serving_raw", "serving_default"]
    assert logged.versions.tolist() == [42, 42, 42]
    assert logged.predictions.round(3).tolist() == [0.8, 0.1, 0.4]
    first = tf.train.Example.FromString(logged.serialized[0]).features.feature
    # "" and null are missing: empty value lists, as ExampleGen writes a blank cell.
    assert first["fare"].float_list.value == [7.5] and not first["company"].bytes_list.value
    assert not tf.train.Example.FromString(logged.serialized[1]).features.feature["fare"].float_list.value
    assert receiver.paired == 2
