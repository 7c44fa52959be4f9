"""Load test of `python -m pipeline serve` on loopback, against the SavedModel called in-process.

Usage: python benchmarks/bench_serving.py [--serving-dir DIR] [--seconds 5] [--repeat 3]

Needs a pushed model (`make run` first). Serves a copy of the serving directory (the hot-swap
phase adds a version to the copy, never to the original), then for single examples and
batches of 64 (raw-feature signature, row format) at concurrency 1, 8 and 32 measures
latency p50/p99, requests/s and examples/s, and counts errors; the in-process baseline calls
the same signature with the same rows (as tensors) from one thread. The prediction log's cost:
a second server with the log on (every example, `--log-sample-rate 1`) takes the same
concurrency-1 load right after the one without it (`--no-prediction-log`), in each round;
the p50s are compared and the records written and dropped are counted. Finally a hot swap
under load (concurrency 8): a new version is pushed while clients run; every request must
succeed. Prints medians over --repeat rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from data import embedded  # noqa: E402
from models import features  # noqa: E402

MODEL = "big_tipper"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raw_rows(count: int) -> list[dict]:
    """`count` real trips as raw-feature instances (JSON: missing values as null)."""
    frame = pd.read_csv(embedded.taxi_sample_path()).head(count)
    rows = []
    for _, trip in frame.iterrows():
        row = {}
        for key in features.serving_raw_features():
            value = trip[key]
            if pd.isna(value):
                row[key] = None
            elif key in features.RAW_STRING_COLUMNS:
                row[key] = str(value)
            elif key in features.RAW_INT_COLUMNS:
                row[key] = int(value)
            else:
                row[key] = float(value)
        rows.append(row)
    return rows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def load(port: int, body: bytes, concurrency: int, seconds: float) -> dict:
    """`concurrency` keep-alive clients posting `body` for `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, bad = [], []
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", f"/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    bad.append(str(response.status))
            except (OSError, http.client.HTTPException) as error:
                bad.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "rps": len(latencies) / elapsed,
    }


def in_process(model_dir: Path, rows: list[dict], seconds: float) -> dict:
    """The raw signature called directly with the same rows: the floor the server adds to."""
    import tensorflow as tf

    from serving.request_checks import check_raw_request, raw_input_specs
    from serving.tf_serving_rest import raw_features

    model = tf.saved_model.load(str(model_dir))
    signature = model.signatures["serving_raw"]
    specs = raw_input_specs(signature)
    tensors = check_raw_request(specs, raw_features("row", rows, specs)[0])
    signature(**tensors)  # warm-up
    latencies = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        signature(**tensors)["probabilities"].numpy()
        latencies.append(time.perf_counter() - started)
    return {"p50_ms": percentile(latencies, 0.5) * 1000, "p99_ms": percentile(latencies, 0.99) * 1000}


def start_server(base: Path, port: int, log_path: Path, extra: list[str]) -> subprocess.Popen:
    log = open(log_path, "w")  # noqa: SIM115 - the process owns it
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
            "0.5",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("serve exited:\n" + log_path.read_text())
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", f"/v1/models/{MODEL}")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("serve did not come up:\n" + log_path.read_text())


def _dropped(port: int) -> float:
    """taxi_prediction_log_dropped_total summed over reasons, from the server's /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("taxi_prediction_log_dropped_total{")
    )


def served_version(port: int) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", f"/v1/models/{MODEL}")
    return int(json.loads(connection.getresponse().read())["model_version_status"][0]["version"])


def hot_swap(port: int, base: Path, body: bytes, seconds: float) -> dict:
    """Push a copy of the served version as a new one while 8 clients run."""
    first = served_version(port)
    new = first + 1000 + int(time.time()) % 1000
    result: dict = {}

    def push():
        time.sleep(seconds / 3)
        staging = base / f".staging-{new}"
        shutil.copytree(base / str(first), staging)
        pushed = time.perf_counter()
        staging.rename(base / str(new))
        while served_version(port) != new:
            time.sleep(0.05)
        result["swap_s"] = time.perf_counter() - pushed

    pusher = threading.Thread(target=push)
    pusher.start()
    figures = load(port, body, 8, seconds)
    pusher.join()
    return {**figures, **result, "from": first, "to": new}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving-dir", default="runs/default/serving/big_tipper")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each load phase")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = Path(args.serving_dir)
    from serving.versions import target_version

    version = target_version(source)
    if version is None:
        print(f"no pushed model under {source}: run `make run` first", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    base = work / MODEL
    shutil.copytree(source / str(version), base / str(version))
    bodies = {
        1: json.dumps({"signature_name": "serving_raw", "instances": raw_rows(1)}).encode(),
        64: json.dumps({"signature_name": "serving_raw", "instances": raw_rows(64)}).encode(),
    }
    port, log_port = free_port(), free_port()
    process = start_server(base, port, work / "serve.log", ["--no-prediction-log"])
    logs = work / "prediction-logs"
    log_process = start_server(base, log_port, work / "serve-logged.log", ["--log-dir", str(logs)])
    rounds: dict[tuple, list[dict]] = {}
    try:
        for body in bodies.values():  # warm-up
            load(port, body, 2, 1.0)
            load(log_port, body, 2, 1.0)
        for _ in range(args.repeat):
            for batch, body in bodies.items():
                rounds.setdefault(("in-process", batch, 1), []).append(
                    in_process(base / str(version), json.loads(body)["instances"], args.seconds / 2)
                )
                for concurrency in (1, 8, 32):
                    rounds.setdefault(("http", batch, concurrency), []).append(
                        load(port, body, concurrency, args.seconds)
                    )
                    if concurrency == 1:
                        rounds.setdefault(("http+log", batch, 1), []).append(
                            load(log_port, body, 1, args.seconds)
                        )
        dropped = _dropped(log_port)
        log_process.terminate()
        log_process.wait(timeout=30)
        from monitoring.prediction_logs import read_logs

        logged = len(read_logs(logs))
        swap = hot_swap(port, base, bodies[1], max(args.seconds, 6.0))
    finally:
        for server in (process, log_process):
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=30)

    def median(key, field):
        return statistics.median(r[field] for r in rounds[key])

    print(f"model version {version}; {args.repeat} rounds of {args.seconds:.0f} s each; medians")
    print(
        f"{'path':<11}{'batch':>6}{'conc':>6}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}{'ex/s':>9}"
        f"{'errors':>8}{'p50 vs in-proc':>16}"
    )
    for path, batch, concurrency in sorted(rounds, key=lambda k: (k[1], k[0] != "in-process", k[2])):
        key = (path, batch, concurrency)
        p50, p99 = median(key, "p50_ms"), median(key, "p99_ms")
        floor = median(("in-process", batch, 1), "p50_ms")
        if path == "in-process":
            print(
                f"{path:<11}{batch:>6}{1:>6}{p50:>9.2f}{p99:>9.2f}{1000 / p50:>9.0f}"
                f"{1000 / p50 * batch:>9.0f}{'-':>8}{'1.0x':>16}"
            )
        else:
            rps = median(key, "rps")
            errors = sum(r["errors"] for r in rounds[key])
            print(
                f"{path:<11}{batch:>6}{concurrency:>6}{p50:>9.2f}{p99:>9.2f}{rps:>9.0f}{rps * batch:>9.0f}"
                f"{errors:>8}{p50 / floor:>15.1f}x"
            )
    for batch in bodies:
        off, on = median(("http", batch, 1), "p50_ms"), median(("http+log", batch, 1), "p50_ms")
        print(
            f"prediction log, batch {batch}, concurrency 1: p50 {off:.2f} ms without, {on:.2f} ms with "
            f"({(on / off - 1) * 100:+.1f}%)"
        )
    print(f"prediction log: {logged:,} examples written, {dropped:,.0f} dropped")
    print(
        f"hot swap under load (8 clients, single examples): {swap['requests']} requests, "
        f"{swap['errors']} errors, "
        f"version {swap['from']} -> {swap['to']} served {swap['swap_s']:.2f} s after the push; "
        f"p99 {swap['p99_ms']:.1f} ms"
    )
    shutil.rmtree(work, ignore_errors=True)
    total_errors = swap["errors"] + sum(
        r["errors"] for k, rs in rounds.items() if k[0].startswith("http") for r in rs
    )
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
