"""The pushed TF.js model in headless Chromium against the REST server and the edge runtime.

Usage: `python benchmarks/bench_web.py [--root runs/default] [--repeats 3] [--calls 200]`

Needs a pushed model with its web and edge models (`make run` first), Chromium, node and the
npm packages (`make setup`), and the edge venv (`.venv-edge`). Data: the eval split of the
newest ExampleGen output under the root. Prints:

- sizes: the SavedModel folder, the TF.js graph model (model.json and shards) and the TFLite
  int8 model, in bytes and gzipped (each file on its own, as a server would send it);
- load and latency: per TF.js backend (cpu, wasm, webgl; each in a browser of its own, so
  every backend's load is a first load in a fresh page), `python -m pipeline serve` on a free
  loopback port (POST :predict, signature serving_raw, row format, one client, keep-alive),
  the pushed int8 model in the edge runtime (`.venv-edge`, a process without TensorFlow) and
  the SavedModel's `serving_raw` in this process. Each path takes the eval split's first 1 and
  first 64 trips as raw values and answers probabilities: TF.js encodes them (encode.js),
  runs and reads back; the server parses JSON; the others make tensors from arrays. Per
  repeat, p50 and p99 over `--calls` calls after a warm-up call; medians over `--repeats`;
- the largest |answer - SavedModel's| on the whole eval split per TF.js backend (one more
  browser run, every backend, batches of 512 as the web gate runs them) and for the edge model.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_gate import newest_examples_dir  # noqa: E402  (this folder: run as a script)
from bench_serving import MODEL, free_port, percentile, start_server  # noqa: E402

from pipeline.config import PipelineConfig  # noqa: E402
from serving import web_browser  # noqa: E402
from serving.model_dirs import resolve_model_dir  # noqa: E402
from serving.replay_data import examples_to_raw, load_replay_examples  # noqa: E402
from serving.request_checks import raw_input_specs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EDGE_PYTHON = REPO / ".venv-edge" / "bin" / "python"
TRIPS = (1, 64)
BACKENDS = web_browser.BACKENDS
GATE_BATCH = 512  # the web gate's batch (components/web_export/executor.py)

# Run by the edge venv's Python: no TensorFlow there. argv: model, inputs.npz, out.npz, calls,
# rounds. Writes the load time, the whole split's answers in one call and each call's ms.
EDGE_TIMER = """
import sys, time
import numpy as np
from ai_edge_litert.interpreter import Interpreter
model, inputs_path, out_path, calls, rounds = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:6])
data = np.load(inputs_path, allow_pickle=True)
inputs = {name: data[name] for name in data.files}
started = time.perf_counter()
runner = Interpreter(model_path=model).get_signature_runner("serving_raw")
out = {"load_ms": np.float64((time.perf_counter() - started) * 1000)}
out["answers"] = runner(**inputs)["probabilities"].ravel()
for trips in (1, 64):
    part = {name: values[:trips] for name, values in inputs.items()}
    runner(**part)
    times = []
    for _ in range(calls * rounds):
        started = time.perf_counter()
        runner(**part)["probabilities"]
        times.append(time.perf_counter() - started)
    out[f"ms_{trips}"] = np.asarray(times).reshape(rounds, calls) * 1000
np.savez(out_path, **out)
"""


def file_sizes(folder: Path) -> tuple[int, int, int]:
    """Files, bytes and gzipped bytes (each file alone) of everything under `folder`."""
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    raw = sum(p.stat().st_size for p in files)
    packed = sum(len(gzip.compress(p.read_bytes(), mtime=0)) for p in files)
    return len(files), raw, packed


def p50_p99(ms: list[float]) -> dict[str, float]:
    return {"p50": percentile(ms, 0.50), "p99": percentile(ms, 0.99)}


def json_rows(raw: dict[str, np.ndarray], count: int) -> list[dict]:
    """The first `count` trips as REST instances: NaN as null, strings as text."""
    rows = []
    for i in range(count):
        row = {}
        for name, values in raw.items():
            value = values[i]
            if isinstance(value, bytes):
                row[name] = value.decode()
            elif isinstance(value, np.floating):
                row[name] = None if np.isnan(value) else float(value)
            else:
                row[name] = int(value)
        rows.append(row)
    return rows


def head(raw: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
    return {name: values[:count] for name, values in raw.items()}


def time_saved_model(model_dir: Path, raw: dict, calls: int) -> dict:
    """One round in this process: load, then `calls` calls per trip count (tensors made per call)."""
    started = time.perf_counter()
    signature = tf.saved_model.load(str(model_dir)).signatures["serving_raw"]
    figures = {"load_ms": (time.perf_counter() - started) * 1000}
    for trips in TRIPS:
        part = head(raw, trips)
        signature(**{k: tf.constant(v) for k, v in part.items()})
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            signature(**{k: tf.constant(v) for k, v in part.items()})["probabilities"].numpy()
            times.append((time.perf_counter() - started) * 1000)
        figures[trips] = p50_p99(times)
    return figures


def time_rest(port: int, raw: dict, calls: int) -> dict:
    """One round against the server: `calls` sequential POSTs per trip count on one connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    figures = {}
    for trips in TRIPS:
        body = json.dumps({"signature_name": "serving_raw", "instances": json_rows(raw, trips)}).encode()
        times = []
        for call in range(calls + 1):
            started = time.perf_counter()
            connection.request(
                "POST", f"/v1/models/{MODEL}:predict", body, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"serve answered {response.status}: {answer[:300]!r}")
            if call:  # the first call is the warm-up
                times.append((time.perf_counter() - started) * 1000)
        figures[trips] = p50_p99(times)
    connection.close()
    return figures


def time_edge(
    tflite: Path, raw: dict, calls: int, rounds: int, scratch: Path
) -> tuple[list[dict], np.ndarray]:
    """Rounds of the edge runtime's timings (one process), and its answers on the whole split."""
    np.savez(scratch / "inputs.npz", **raw)
    out = scratch / "edge.npz"
    subprocess.run(
        [str(EDGE_PYTHON), "-c", EDGE_TIMER, str(tflite), str(scratch / "inputs.npz"), str(out)]
        + [str(calls), str(rounds)],
        check=True,
    )
    result = np.load(out)
    figures = [
        {"load_ms": float(result["load_ms"]) if i == 0 else None}
        | {trips: p50_p99(list(result[f"ms_{trips}"][i])) for trips in TRIPS}
        for i in range(rounds)
    ]
    return figures, result["answers"]


def time_browser(web_dir: Path, inputs: list[dict], raw: dict, backend: str, calls: int) -> dict:
    """One fresh browser running one backend on the first 64 trips: load and latencies."""
    run = web_browser.run_web_model(
        str(web_dir),
        inputs,
        head(raw, max(TRIPS)),
        backends=(backend,),
        batch_size=max(TRIPS),
        single=0,
        timing=calls,
    )[backend]
    if run.error or run.backend != backend:
        raise RuntimeError(f"TF.js {backend}: {run.error or f'ran as {run.backend}'}")
    return {"load_ms": run.load_ms, **run.latency_ms, "browser": run.browser}


def median_of(rounds: list[dict], key, field: str | None = None) -> float | None:
    values = [r.get(key) if field is None else r[key][field] for r in rounds]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/default", help="a run root with a pushed model")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (browser runs per backend)")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per round and trip count")
    args = parser.parse_args()
    reason = web_browser.unavailable()
    if reason:
        raise SystemExit(reason)
    if not EDGE_PYTHON.exists():
        raise SystemExit("no edge venv: `make setup` builds .venv-edge")
    config = PipelineConfig(root=args.root)
    model_dir = resolve_model_dir(config.serving_dir)
    version = model_dir.name
    web_dir = Path(config.serving_dir) / "web" / version
    tflite = Path(config.serving_dir) / "edge" / version / "model.tflite"
    for needed in (web_dir / "model.json", tflite):
        if not needed.is_file():
            raise SystemExit(f"no {needed}: the pushed version {version} lacks its web or edge model")
    inputs = json.loads((web_dir / "metadata.json").read_text())["inputs"]

    signature = tf.saved_model.load(str(model_dir)).signatures["serving_raw"]
    raw = examples_to_raw(
        load_replay_examples(newest_examples_dir(config), "eval"), raw_input_specs(signature)
    )
    count = len(next(iter(raw.values())))
    expected = np.concatenate(
        [
            signature(**{k: tf.constant(v[start : start + 4096]) for k, v in raw.items()})["probabilities"]
            .numpy()
            .ravel()
            for start in range(0, count, 4096)
        ]
    )

    rounds: dict[str, list[dict]] = {}
    work = Path(tempfile.mkdtemp(prefix="bench-web-"))
    base = work / MODEL
    shutil.copytree(model_dir, base / version)
    server = start_server(base, free_port(), work / "serve.log", ["--no-prediction-log"])
    port = int(server.args[server.args.index("--port") + 1])
    try:
        edge_rounds, edge_answers = time_edge(tflite, raw, args.calls, args.repeats, work)
        rounds["TFLite int8, edge runtime"] = edge_rounds
        for _ in range(args.repeats):
            rounds.setdefault("SavedModel, in process", []).append(
                time_saved_model(model_dir, raw, args.calls)
            )
            rounds.setdefault("REST serve, loopback", []).append(time_rest(port, raw, args.calls))
            for backend in BACKENDS:
                rounds.setdefault(f"TF.js {backend}", []).append(
                    time_browser(web_dir, inputs, raw, backend, args.calls)
                )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    checked = web_browser.run_web_model(
        str(web_dir), inputs, raw, backends=BACKENDS, batch_size=GATE_BATCH, single=0
    )
    differences = {
        f"TF.js {b}": float(np.nanmax(np.abs(r.predictions - expected))) for b, r in checked.items()
    }
    differences["TFLite int8, edge runtime"] = float(np.abs(edge_answers - expected).max())
    failed = {b: r.error for b, r in checked.items() if r.error or len(r.predictions) != count}

    print(f"{args.root}: version {version}; eval split {count} trips; {rounds['TF.js cpu'][0]['browser']}")
    print(f"{'model':<26}{'files':>6}{'bytes':>11}{'gzip bytes':>12}")
    for name, folder in (
        ("SavedModel folder", model_dir),
        ("TF.js graph model", web_dir),
        ("TFLite int8", None),
    ):
        if folder is None:
            files, size = 1, tflite.stat().st_size
            packed = len(gzip.compress(tflite.read_bytes(), mtime=0))
        elif folder == web_dir:  # what a page downloads: model.json and the shards
            shipped = [web_dir / "model.json", *sorted(web_dir.glob("*.bin"))]
            files, size = len(shipped), sum(p.stat().st_size for p in shipped)
            packed = sum(len(gzip.compress(p.read_bytes(), mtime=0)) for p in shipped)
        else:
            files, size, packed = file_sizes(folder)
        print(f"{name:<26}{files:>6}{size:>11,}{packed:>12,}")

    print(
        f"\n{args.repeats} rounds of {args.calls} calls per trip count; medians of the rounds' p50, p99 (ms)"
    )
    print(f"{'path':<26}{'load ms':>9}{'1 p50':>8}{'1 p99':>8}{'64 p50':>8}{'64 p99':>8}{'max |diff|':>12}")
    order = ["SavedModel, in process", "REST serve, loopback", "TFLite int8, edge runtime"]
    for name in order + [f"TF.js {b}" for b in BACKENDS]:
        figures = rounds[name]
        load = median_of(figures, "load_ms")
        cells = [median_of(figures, trips, q) for trips in TRIPS for q in ("p50", "p99")]
        difference = differences.get(name)
        print(
            f"{name:<26}{'-' if load is None else f'{load:.1f}':>9}"
            + "".join(f"{c:>8.2f}" for c in cells)
            + f"{'-' if difference is None else f'{difference:.2e}':>12}"
        )
    for backend, error in failed.items():
        print(f"TF.js {backend} failed on the eval split: {error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
