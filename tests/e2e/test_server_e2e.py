"""`python -m pipeline serve` over HTTP, serving the pipeline's pushed model.

A subprocess on a free loopback port serves a copy of the cold run's serving directory (so
pushing and rolling back here disturbs no other test): its answers equal the SavedModel's in
both request formats and both signatures; malformed requests get a 400 naming the problem; a
new version is swapped in under load without a dropped request, a broken one is skipped, and
`rollback` pins and unpins a version; /metrics counts requests, errors and latency.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import pytest
from e2e_support import raw_inputs, serialize

from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK, EXIT_USAGE

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, body=None, content_type="application/json") -> tuple[int, object]:
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if path != "/metrics" else raw.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    import subprocess
    import sys
    import time

    base = tmp_path_factory.mktemp("serving") / "big_tipper"
    shutil.copytree(PipelineConfig(root=runs["root"]).serving_dir, base)
    port = _free_port()
    log = open(base.parent / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "serve",
            "--serving-dir",
            str(base),
            "--port",
            str(port),
            "--poll-s",
            "0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        assert process.poll() is None, (base.parent / "serve.log").read_text()
        try:
            if http(port, "/v1/models/big_tipper")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("serve did not come up in 180 s:\n" + (base.parent / "serve.log").read_text())
    yield port, base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def _json_raw(inputs: dict) -> dict:
    """A raw-signature request body: NaN (missing float) as null, arrays as lists."""
    import math

    body = {}
    for key, tensor in inputs.items():
        values = tensor.numpy().tolist()
        body[key] = [
            None if isinstance(v, float) and math.isnan(v) else v.decode() if isinstance(v, bytes) else v
            for v in values
        ]
    return body


def test_served_predictions_equal_the_saved_model_in_both_formats_and_signatures(served, server):
    import base64

    import numpy as np
    import tensorflow as tf

    model, trips = served
    port, _ = server
    expected = model.signatures["serving_raw"](**raw_inputs(trips))["probabilities"].numpy()
    columns = _json_raw(raw_inputs(trips))
    instances = [{k: columns[k][i] for k in columns} for i in range(len(trips))]
    examples = [{"b64": base64.b64encode(serialize(row)).decode()} for _, row in trips.iterrows()]
    parsed = model.signatures["serving_default"](
        examples=tf.constant([serialize(row) for _, row in trips.iterrows()])
    )["probabilities"].numpy()
    answers = {
        "raw rows": http(
            port, "/v1/models/big_tipper:predict", {"signature_name": "serving_raw", "instances": instances}
        ),
        "raw columns": http(
            port, "/v1/models/big_tipper:predict", {"signature_name": "serving_raw", "inputs": columns}
        ),
        "examples rows": http(port, "/v1/models/big_tipper:predict", {"instances": examples}),
        "examples columns": http(
            port,
            "/v1/models/big_tipper:predict",
            {"signature_name": "serving_default", "inputs": {"examples": examples}},
        ),
    }
    for name, (status, body) in answers.items():
        assert status == 200, (name, body)
        key = "predictions" if "rows" in name else "outputs"
        assert set(body) == {key}, name
        served_values = np.array(body[key])
        assert served_values.shape == (len(trips), 1), name
        np.testing.assert_allclose(
            served_values, parsed if name.startswith("examples") else expected, atol=1e-6
        )
    np.testing.assert_allclose(expected, parsed, atol=1e-5)
    status, body = http(port, "/v1/models/big_tipper")
    assert status == 200
    [version] = body["model_version_status"]
    assert version["state"] == "AVAILABLE" and version["status"]["error_code"] == "OK"


def _raw_body(trips, edit):
    columns = _json_raw(raw_inputs(trips.head(3)))
    body = {"signature_name": "serving_raw", "inputs": columns}
    edit(body, columns)
    return body


MALFORMED = {
    "missing feature": (lambda b, c: c.pop("fare"), "feature 'fare': missing from the request"),
    "wrong rank": (
        lambda b, c: c.__setitem__("fare", [[v] for v in c["fare"]]),
        "feature 'fare': wrong rank",
    ),
    "scalar": (lambda b, c: c.__setitem__("fare", 5.0), "feature 'fare': wrong rank"),
    "wrong type": (
        lambda b, c: c.__setitem__("trip_start_hour", ["ten"] * 3),
        "feature 'trip_start_hour': wrong dtype: received string",
    ),
    "number for a string": (
        lambda b, c: c.__setitem__("payment_type", [1, 2, 3]),
        "feature 'payment_type': wrong dtype",
    ),
    "empty batch": (lambda b, c: [c.__setitem__(k, []) for k in c], "empty batch"),
    "batch mismatch": (
        lambda b, c: c.__setitem__("fare", c["fare"][:2]),
        "batch size mismatch: received 2 values",
    ),
    "unexpected feature": (lambda b, c: c.__setitem__("tips", [1.0] * 3), "feature 'tips': not an input"),
    "unknown signature": (
        lambda b, c: b.__setitem__("signature_name", "predict"),
        "unknown signature_name 'predict'",
    ),
    "both formats": (lambda b, c: b.__setitem__("instances", []), 'exactly one of "instances"'),
}


@pytest.mark.parametrize("mistake", sorted(MALFORMED))
def test_malformed_requests_get_400_naming_the_problem(served, server, mistake):
    _, trips = served
    port, _ = server
    edit, message = MALFORMED[mistake]
    status, body = http(port, "/v1/models/big_tipper:predict", _raw_body(trips, edit))
    assert status == 400, body
    assert message in body["error"]


def test_malformed_bodies_and_examples_get_400(server):
    import base64

    port, _ = server
    for body, content_type, message in [
        (b"{not json", "application/json", "Unrecognized request format"),
        (b"{not json", "text/plain", "the body is not JSON"),
        (b"[1, 2]", "text/plain", "the body must be a JSON object"),
        ({"instances": [{"b64": "!!"}]}, "application/json", "example 0: invalid base64"),
        (
            {"instances": [{"b64": base64.b64encode(b"garbage").decode()}]},
            "application/json",
            "Could not parse example",
        ),
        ({"instances": ["plain"]}, "application/json", 'must be sent as {"b64"'),
        ({"instances": []}, "application/json", "empty batch"),
    ]:
        status, answer = http(port, "/v1/models/big_tipper:predict", body, content_type)
        assert status == 400, (body, answer)
        assert message in answer["error"], (body, answer)


def _push_copy(base: Path, source: int, version: int) -> None:
    """What the Pusher does: write the folder aside, then rename it into place."""
    staging = base / f".staging-{version}"
    shutil.copytree(base / str(source), staging)
    staging.rename(base / str(version))


def _served_version(port: int) -> int:
    return int(http(port, "/v1/models/big_tipper")[1]["model_version_status"][0]["version"])


def _wait_for_version(port: int, version: int, timeout_s: float = 60) -> None:
    import time

    deadline = time.time() + timeout_s
    while _served_version(port) != version:
        assert time.time() < deadline, f"still serving {_served_version(port)}, expected {version}"
        time.sleep(0.2)


def test_hot_swap_under_load_drops_nothing_and_rollback_follows(served, server):
    import threading
    import time

    _, trips = served
    port, base = server
    first = _served_version(port)
    body = {"signature_name": "serving_raw", "inputs": _json_raw(raw_inputs(trips.head(8)))}
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                results.append(http(port, "/v1/models/big_tipper:predict", body)[0])
            except Exception as error:  # noqa: BLE001 - a dropped connection is a failure to count
                results.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    _push_copy(base, first, first + 10)
    _wait_for_version(port, first + 10)
    # A broken push: the server logs it and keeps serving first + 10.
    (base / str(first + 20)).mkdir()
    (base / str(first + 20) / "saved_model.pb").write_bytes(b"not a SavedModel")
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(results) > 20 and set(results) == {200}, [r for r in results if r != 200][:5]
    assert _served_version(port) == first + 10
    metrics = http(port, "/metrics")[1]
    assert "taxi_serving_model_load_failures_total 1.0" in metrics
    assert (
        f"taxi_serving_model_version {float(first + 10)!r}" in metrics
        or "taxi_serving_model_version 1." in metrics
    )

    # rollback: pin the version before the selected one; serve follows; newer versions kept.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rollback", "--serving-dir", str(base), "--to", str(first)]) == EXIT_OK
    assert f"-> {first}" in out.getvalue()
    _wait_for_version(port, first)
    assert (base / str(first + 10)).is_dir() and (base / str(first + 20)).is_dir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["rollback", "--serving-dir", str(base), "--clear"]) == EXIT_OK
    _wait_for_version(port, first + 10)  # The newest loadable one again (first + 20 is broken).
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["rollback", "--serving-dir", str(base), "--to", "12345"]) == EXIT_USAGE
    assert "version 12345 is not in" in err.getvalue()


def test_metrics_count_requests_errors_and_latency(served, server):
    _, trips = served
    port, _ = server
    body = {"signature_name": "serving_raw", "inputs": _json_raw(raw_inputs(trips.head(2)))}
    assert http(port, "/v1/models/big_tipper:predict", body)[0] == 200
    assert http(port, "/v1/models/big_tipper:predict", {"signature_name": "nope", "instances": []})[0] == 400
    metrics = http(port, "/metrics")[1]
    assert re.search(
        r'taxi_serving_requests_total\{format="columnar",signature="serving_raw"\} [1-9]', metrics
    )
    assert re.search(r'taxi_serving_errors_total\{kind="signature"\} [1-9]', metrics)
    assert re.search(r'taxi_serving_request_latency_seconds_count\{signature="serving_raw"\} [1-9]', metrics)
    assert re.search(r'taxi_serving_http_responses_total\{code="400",route="predict"\} [1-9]', metrics)
