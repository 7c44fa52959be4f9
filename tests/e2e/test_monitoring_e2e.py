"""After the push, end to end: a real server, real HTTP requests, the prediction log, `monitor`, alerts.

One module fixture, in order, on its own root:
1. the pipeline trains on spans 4-7 (`--last-span 7`): span 8 is a week the model never saw;
2. `python -m pipeline serve` (a subprocess) answers span 8's trips, sent as serving_raw
   requests with their keys; `monitor --labels span-8` then finds no skew and reports the
   realized accuracy and AUC of what was served;
3. the same trips again, sent by a client with fares in cents and company names upper-cased
   (no keys): `monitor --since` names fare and company, exits 3, the loopback receiver gets
   the alert, and the live skew gauge on /metrics crosses its threshold;
4. an undertrained model that passes every gate (thresholds loosened) is pushed and hot-swapped
   in; span 8 is replayed to it: the labelled join reports it answers worse than the version
   before it, and alerts;
5. a run stopped by the anomaly gate with a webhook delivers exactly one alert; with the
   receiver down the exit status is the same and the failure is logged.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from webhook_receiver import Receiver, closed_port_url

from data import embedded
from models import features
from monitoring.quality import trip_key
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_FINDINGS, EXIT_OK

pytestmark = pytest.mark.e2e

BATCH = 64


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


def instances(csv: Path, keyed: bool = True, edit=None) -> list[dict]:
    """The span's trips as serving_raw instances (a blank cell is null), keyed by file and line."""
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    if edit is not None:
        frame = edit(frame)
    kinds = features.RAW_COLUMN_KINDS
    rows = []
    for line, record in enumerate(frame.to_dict("records"), start=2):
        row = {}
        for name in features.serving_raw_features():
            cell = record[name]
            row[name] = (
                None
                if cell == ""
                else int(cell)
                if kinds[name] == "int"
                else (float(cell) if kinds[name] == "float" else cell)
            )
        if keyed:
            row["trip_id"] = trip_key(csv, line)
        rows.append(row)
    return rows


def send(port: int, rows: list[dict]) -> list[float]:
    """POST the rows in batches to serving_raw; the probabilities answered."""
    answers = []
    for start in range(0, len(rows), BATCH):
        body = json.dumps(
            {"signature_name": "serving_raw", "instances": rows[start : start + BATCH]}
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/models/big_tipper:predict",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
            answers.extend(p[0] for p in json.loads(response.read())["predictions"])
    return answers


def served_version(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models/big_tipper", timeout=10) as response:
        return int(json.loads(response.read())["model_version_status"][0]["version"])


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def gauge(text: str, name: str, feature: str) -> float | None:
    match = re.search(rf'^{name}{{feature="{feature}",measure="[^"]+"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


def wait_for(condition, timeout: float = 60.0, step: float = 0.3):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def now_iso() -> str:
    from datetime import datetime, timezone

    time.sleep(0.01)
    return datetime.now(timezone.utc).isoformat()


def cents_and_upper(frame):
    frame["fare"] = [f"{float(v) * 100:.2f}" if v else v for v in frame["fare"]]
    frame["company"] = frame["company"].str.upper()
    return frame


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitoring")
    result: dict = {"root": root}
    status, out, err = cli("run", "--root", str(root), "--last-span", "7")
    assert status == EXIT_OK, out + err
    span8 = root / "data" / "span-8" / embedded.SPAN_FILE_NAME
    result["span8"] = span8
    port = free_port()
    serve_log = open(root / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "serve",
            "--root",
            str(root),
            "--port",
            str(port),
            "--poll-s",
            "0.2",
            "--skew-interval-s",
            "0.5",
            "--log-rotate-s",
            "2",
        ],
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _up(port, process, root), timeout=180, step=0.5)
        result["v1"] = served_version(port)
        # 2. Span 8 as a well-behaved client sends it.
        result["clean_since"] = now_iso()
        result["clean_answers"] = send(port, instances(span8))
        result["live_clean"] = wait_for(lambda: _live(port, "fare"), timeout=30)
        time.sleep(0.5)
        result["clean"] = cli(
            "monitor",
            "--root",
            str(root),
            "--labels",
            str(span8),
            "--since",
            result["clean_since"],
            "--json",
            str(root / "clean.json"),
        )
        # 3. A client in cents, with its own company spelling, no keys.
        result["cents_since"] = now_iso()
        send(port, instances(span8, keyed=False, edit=cents_and_upper))
        result["live_cents"] = wait_for(lambda: _live(port, "fare", above=True), timeout=30)
        with Receiver() as hook:
            result["cents"] = cli(
                "monitor", "--root", str(root), "--since", result["cents_since"], "--alert-webhook", hook.url
            )
        result["cents_alerts"] = hook.bodies
        # 4. An undertrained version that passes every gate, hot-swapped in, then span 8 again.
        status, out, err = cli(
            "run",
            "--root",
            str(root),
            "--last-span",
            "7",
            "--train-steps",
            "5",
            "--auc-threshold",
            "0.3",
            "--regression-tolerance",
            "1.0",
            "--calibration-tolerance",
            "10",
        )
        result["weak_run"] = (status, out, err)
        result["v2"] = wait_for(lambda: (v := served_version(port)) != result["v1"] and v, timeout=60)
        result["weak_since"] = now_iso()
        send(port, instances(span8))
        time.sleep(1.0)
        with Receiver() as hook:
            result["weak"] = cli(
                "monitor", "--root", str(root), "--labels", str(span8), "--alert-webhook", hook.url
            )
        result["weak_alerts"] = hook.bodies
        result["log_files"] = sorted(p.name for p in (root / "prediction-logs").iterdir())
    finally:
        process.terminate()
        process.wait(timeout=30)
        serve_log.close()
    result["serve_log"] = (root / "serve.log").read_text()
    # 5. A run stopped by the anomaly gate, with a receiver, then with the receiver down.
    data = root / "data-anomaly"
    shutil.copytree(root / "data", data)
    frame = pd.read_csv(data / "span-8" / embedded.SPAN_FILE_NAME, dtype=str, keep_default_na=False)
    frame.loc[frame.index[::3], "payment_type"] = "Bitcoin"
    (data / "span-9").mkdir()
    frame.to_csv(data / "span-9" / embedded.SPAN_FILE_NAME, index=False)
    with Receiver() as hook:
        result["anomaly"] = cli(
            "run", "--root", str(root), "--data-root", str(data), "--alert-webhook", hook.url
        )
    result["anomaly_alerts"] = hook.bodies
    down = closed_port_url()
    result["anomaly_down"] = cli(
        "run", "--root", str(root), "--data-root", str(data), "--alert-webhook", down
    )
    result["down_url"] = down
    return result


def _up(port, process, root) -> bool:
    assert process.poll() is None, (root / "serve.log").read_text()
    try:
        served_version(port)
        return True
    except OSError:
        return False


def _live(port: int, feature: str, above: bool = False):
    """(distance, threshold) of the live gauge once it reflects the latest window."""
    text = metrics(port)
    value = gauge(text, "taxi_serving_feature_skew", feature)
    threshold = gauge(text, "taxi_serving_feature_skew_threshold", feature)
    if value is None or threshold is None or (above and value <= threshold):
        return None
    mean = re.search(r"^taxi_serving_prediction_mean (\S+)$", text, re.M)
    return value, threshold, float(mean.group(1)) if mean else None


def test_every_answer_is_logged_with_its_key_in_files_tfdv_reads(world):
    from monitoring.prediction_logs import read_logs

    logged = read_logs(world["root"] / "prediction-logs")
    rows = len(pd.read_csv(world["span8"]))
    assert len(logged) == 3 * rows  # span 8 three times: clean, cents, to the weak version
    keys = [k for k in logged.keys if k is not None]
    assert len(keys) == 2 * rows and keys[0] == "span-8/data.csv:2"
    assert set(logged.versions.tolist()) == {world["v1"], world["v2"]}
    clean = logged.select(np.asarray([k is not None for k in logged.keys]) & (logged.versions == world["v1"]))
    np.testing.assert_allclose(clean.predictions, world["clean_answers"], rtol=1e-6)
    assert any(name.endswith(".tfrecord") for name in world["log_files"])  # rotated, closed files


def test_monitor_finds_no_skew_in_a_real_held_out_week_and_reports_realized_quality(world):
    status, out, err = world["clean"]
    assert status == EXIT_OK, out + err
    assert "[FINDING]" not in out and "Healthy: no findings" in out
    assert re.search(r"\[OK     \] version \d+ skew: 14 features within thresholds", out)
    assert "prediction drift: Jensen-Shannon" in out
    report = json.loads((world["root"] / "clean.json").read_text())
    (version,) = report["versions"]
    assert version["version"] == world["v1"] and version["examples"] == len(world["clean_answers"])
    realized = version["realized"]
    assert realized["examples"] == len(world["clean_answers"])
    # The same trips scored offline by the pushed model, with the serving gate's figures.
    import tensorflow as tf

    from serving.gate_checks import accuracy, auc
    from serving.model_dirs import resolve_model_dir
    from serving.replay_data import csv_to_examples, labels_of

    examples = csv_to_examples(world["span8"])
    served = PipelineConfig(root=world["root"]).serving_dir / str(world["v1"])
    model = tf.saved_model.load(str(resolve_model_dir(served)))
    scores = (
        model.signatures["serving_default"](examples=tf.constant(examples))["probabilities"].numpy().ravel()
    )
    labels = labels_of(examples)
    assert abs(realized["accuracy"] - accuracy(labels, scores)) < 0.005
    assert abs(realized["auc"] - auc(labels, scores)) < 0.005
    assert realized["auc"] > 0.85 and realized["slices"]  # per slice too
    assert version["evaluator"]["auc"] > 0.85
    # The live gauges saw the same week as in-distribution.
    value, threshold, mean = world["live_clean"]
    assert value <= threshold and 0.0 < mean < 1.0


def test_cents_and_upper_cased_companies_are_named_and_alerted(world):
    status, out, err = world["cents"]
    assert status == EXIT_FINDINGS, out + err
    findings = [line for line in out.splitlines() if line.startswith("[FINDING]")]
    fare = next(line for line in findings if "skew: fare: Jensen-Shannon" in line)
    company = next(line for line in findings if "skew: company: L-infinity" in line)
    assert float(re.search(r"Jensen-Shannon (\S+) > (\S+)", fare).group(1)) > 0.9
    assert float(re.search(r"L-infinity (\S+) > (\S+)", company).group(1)) > 0.3
    assert not any("skew: trip_miles" in line for line in findings)
    skew_alerts = [body for body in world["cents_alerts"] if body["event"] == "skew"]
    assert len(skew_alerts) == 1  # one alert per version and kind
    assert "fare" in skew_alerts[0]["text"] and "company" in skew_alerts[0]["text"]
    assert {f["fields"]["feature"] for f in skew_alerts[0]["findings"]} >= {"fare", "company"}
    value, threshold, _ = world["live_cents"]
    assert value > threshold  # the server's own gauge crossed the schema's threshold


def test_a_worse_version_that_passed_every_gate_is_caught_by_the_labelled_join(world):
    status, out, err = world["weak_run"]
    assert status == EXIT_OK and "Pushed: version" in out, out + err
    assert world["v2"] > world["v1"]
    status, out, err = world["weak"]
    assert status == EXIT_FINDINGS, out + err
    line = next(
        line
        for line in out.splitlines()
        if line.startswith(f"[FINDING] version {world['v2']} realized_quality")
        and f"answers worse than version {world['v1']}" in line
    )
    assert "auc" in line
    quality_alerts = [body for body in world["weak_alerts"] if body["event"] == "realized_quality"]
    assert [a["version"] for a in quality_alerts] == [world["v2"]]


def test_a_run_stopped_by_the_anomaly_gate_alerts_once_and_a_dead_receiver_changes_nothing(world):
    status, out, err = world["anomaly"]
    assert status == EXIT_DATA_GATE, out + err
    (alert,) = world["anomaly_alerts"]
    assert alert["event"] == "stopped_by_gate" and "data gate" in alert["text"]
    assert "payment_type" in alert["text"] and alert["exit_status"] == EXIT_DATA_GATE
    status, out, err = world["anomaly_down"]
    assert status == EXIT_DATA_GATE
    assert f"warning: alert 'stopped_by_gate' not delivered to {world['down_url']} after 4 tries" in err
    log_line = re.search(r"Library logs and warnings: (\S+)", out).group(1)
    assert "not delivered" in Path(log_line).read_text()


def test_the_server_log_shows_no_logging_failure(world):
    for name in ("clean", "cents", "weak"):
        print(f"--- monitor ({name}):\n{world[name][1]}")
    assert "prediction log write failed" not in world["serve_log"]
    assert "live skew update failed" not in world["serve_log"]
    assert not math.isnan(world["live_clean"][0])


def test_the_report_has_a_production_section_over_time(world, tmp_path):
    out = tmp_path / "report.html"
    status, _, err = cli("report", "--root", str(world["root"]), "--out", str(out))
    assert status == EXIT_OK, err
    page = out.read_text()
    section = page[page.index('<section id="production">') :]
    section = section[: section.index("</section>")]
    # The cents and weak monitors wrote to <root>/monitor/ (the clean one to --json elsewhere).
    assert "Production (2 monitor reports)" in section
    assert 'data-chart="production"' in section
    assert "company, fare" in section  # the cents report's skewed features
    v1, v2 = str(world["v1"]), str(world["v2"])
    assert section.count(f"<td>{v2}</td>") == 1 and section.count(f"<td>{v1}</td>") == 2
