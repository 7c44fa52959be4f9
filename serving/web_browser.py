"""Run a TensorFlow.js model in headless Chromium: the web gate's browser run, from Python.

`run_web_model` hands raw trips (the columns `models.web.encode` takes) and a local TF.js
graph model to `serving/web/drive.mjs` under node. That serves them to Chromium, whose page
(`serving/web/gate.js`) encodes the raw trips with `encode.js`, as a web client would, and
runs the model on each TF.js backend asked for: stock @tensorflow/tfjs from the repo's
`node_modules` (`package-lock.json`), no GPU (WebGL runs on SwiftShader).

What it needs beside Python (`unavailable` says which is missing): node, the npm packages
and Debian's `chromium` (or `$CHROMIUM`); `make setup` installs the last two where it can.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
WEB_DIR = REPO_ROOT / "serving" / "web"
DRIVER = WEB_DIR / "drive.mjs"
NODE_MODULES = REPO_ROOT / "node_modules"
# What the page loads and drive.mjs imports from node_modules.
NPM_FILES = (
    "@tensorflow/tfjs/dist/tf.min.js",
    "@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js",
    "puppeteer-core/package.json",
)
BACKENDS = ("cpu", "wasm", "webgl")
CHROMIUM_ENV = "CHROMIUM"
MIN_NODE_MAJOR = 18  # puppeteer-core 24's floor
# Beyond the driver's own timeout: its start, and closing the browser after a timeout.
_GRACE_S = 60
_STDERR_LINES = 20

log = logging.getLogger(__name__)


class WebBrowserError(RuntimeError):
    """The browser run failed as a whole (not one backend: that is `BackendRun.error`)."""


@dataclass(frozen=True)
class BackendRun:
    """One TF.js backend's run of the model on the trips.

    Attributes:
        backend: the backend TF.js actually ran (it falls back silently when one cannot start).
        predictions: float32, the model's output for every trip in batches, flattened
            (one per trip for a [N, 1] output); NaN where the browser's answer was not finite.
        singles: the same for the first `single` trips, each run alone.
        load_ms: loading model.json and the weights.
        run_ms: every trip in batches, encoding included.
        latency_ms: with `timing`: trips per call (1 and 64, fewer when there are fewer
            trips) -> {"p50": ms, "p99": ms} over `timing` calls, each encoding, running and
            reading back; else None.
        error: why the backend failed (the other fields hold what it got to), or None.
        browser: the Chromium version that ran it.
    """

    backend: str | None
    predictions: np.ndarray
    singles: np.ndarray
    load_ms: float | None
    run_ms: float | None
    latency_ms: dict[int, dict[str, float]] | None
    error: str | None
    browser: str


def chromium_path() -> str | None:
    """The Chromium binary the driver will use: `$CHROMIUM`, else `chromium` on PATH."""
    return shutil.which(os.environ.get(CHROMIUM_ENV) or "chromium")


def unavailable() -> str | None:
    """Why the browser run cannot happen here (and how to fix it), or None when it can."""
    node = shutil.which("node")
    if node is None:
        return f"node is not installed: install Node.js {MIN_NODE_MAJOR}+ and npm, then run `make setup`"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < MIN_NODE_MAJOR:
        return (
            f"node {version or '(unknown version)'} is too old: the web gate needs Node.js {MIN_NODE_MAJOR}+"
        )
    missing = [name for name in NPM_FILES if not (NODE_MODULES / name).is_file()]
    if missing:
        return f"the npm packages are not installed (no {NODE_MODULES / missing[0]}): run `make setup`"
    if chromium_path() is None:
        wanted = os.environ.get(CHROMIUM_ENV) or "chromium"
        return (
            f"Chromium is not installed ('{wanted}' is not on PATH): run `make setup` as root on Debian "
            f"(it installs the chromium package), or point ${CHROMIUM_ENV} at a Chromium binary"
        )
    return None


def _column(name: str, values) -> list:
    """One raw column as JSON values: str for strings, null for a missing (NaN) float."""
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"raw feature '{name}': expected one value per trip, got shape {values.shape}")
    if values.dtype.kind == "f":
        if np.isinf(values).any():
            raise ValueError(f"raw feature '{name}' holds infinite values (JSON cannot carry them)")
        return [None if math.isnan(v) else v for v in values.tolist()]
    if values.dtype.kind in "iub":
        return values.tolist()
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.tolist()]


def write_data(path: str, inputs: Sequence[dict], raw: Mapping[str, np.ndarray]) -> int:
    """Write the page's /data.json ({raw: columns, inputs}); returns the number of trips.

    Floats are written as the doubles they are (float32 widened exactly), so the page's
    Float32Array rounds them back to the very float32 `models.web.encode` uses.
    """
    missing = [entry["name"] for entry in inputs if entry["name"] not in raw]
    if missing:
        raise ValueError(f"raw trips lack the model's inputs {missing}")
    columns = {entry["name"]: _column(entry["name"], raw[entry["name"]]) for entry in inputs}
    sizes = {len(column) for column in columns.values()}
    if len(sizes) > 1:
        raise ValueError(f"raw columns differ in length: {sorted(sizes)}")
    with open(path, "w") as handle:
        json.dump({"raw": columns, "inputs": list(inputs)}, handle, separators=(",", ":"), allow_nan=False)
    return sizes.pop() if sizes else 0


def _answers(values: list) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], np.float32)


def _backend_run(entry: dict, browser: str) -> BackendRun:
    latency = entry.get("latency_ms")
    return BackendRun(
        backend=entry.get("backend"),
        predictions=_answers(entry.get("predictions") or []),
        singles=_answers(entry.get("singles") or []),
        load_ms=entry.get("load_ms"),
        run_ms=entry.get("run_ms"),
        latency_ms={int(k): {p: float(ms) for p, ms in v.items()} for k, v in latency.items()}
        if latency
        else None,
        error=entry.get("error"),
        browser=browser,
    )


def _failure(stderr: str) -> str:
    """The driver's own message (its `drive.mjs:` line), then the rest of its stderr's end."""
    lines = stderr.strip().splitlines()
    own = [line.removeprefix("drive.mjs:").strip() for line in lines if line.startswith("drive.mjs:")]
    rest = [line for line in lines[-_STDERR_LINES:] if not line.startswith("drive.mjs:")]
    return (own[-1] if own else "no message from drive.mjs") + ("\n" + "\n".join(rest) if rest else "")


def run_web_model(
    model_dir: str,
    inputs: Sequence[dict],
    raw: Mapping[str, np.ndarray],
    backends: Sequence[str] = BACKENDS,
    batch_size: int = 512,
    single: int = 32,
    timing: int = 0,
    timeout_s: float = 600,
    output: str | None = None,
) -> dict[str, BackendRun]:
    """Run the TF.js graph model in `model_dir` on the raw trips in Chromium, per backend.

    Args:
        model_dir: a local folder holding model.json and its weight shards (node serves it).
        inputs: the web inputs description (`models.web.web_inputs_description`).
        raw: raw feature -> one value per trip, as `models.web.encode` takes them: strings as
            bytes or str ("" missing), floats with NaN missing, integers with -1 missing.
        backends: TF.js backends to run, in order.
        batch_size: trips per call in the main run.
        single: how many leading trips to run again one at a time.
        timing: with R > 0, also time R calls on 1 and on 64 trips (`BackendRun.latency_ms`).
        timeout_s: the whole browser run's limit.
        output: the signature output to read, when the model has several.

    Returns:
        backend asked for -> its `BackendRun` (a backend that failed carries its error).

    Raises:
        WebBrowserError: the run could not happen or failed as a whole (`unavailable`'s
            reason, no model, Chromium failing to start, the page failing, the timeout).
        ValueError: `raw` does not fit `inputs`.
    """
    reason = unavailable()
    if reason:
        raise WebBrowserError(reason)
    if not (Path(model_dir) / "model.json").is_file():
        raise WebBrowserError(f"no TF.js model in {model_dir} (model.json is missing)")
    with tempfile.TemporaryDirectory(prefix="web-browser-") as scratch:
        data_path, config_path, out_path = (
            os.path.join(scratch, n) for n in ("data.json", "config.json", "out.json")
        )
        write_data(data_path, inputs, raw)
        config = {
            "model_dir": os.path.abspath(model_dir),
            "data": data_path,
            "backends": list(backends),
            "batch_size": int(batch_size),
            "single": int(single),
            "timing": int(timing),
            "timeout_s": timeout_s,
            "chromium": chromium_path(),
            "output": output,
        }
        with open(config_path, "w") as handle:
            json.dump(config, handle)
        stderr = _drive(config_path, out_path, timeout_s + _GRACE_S)
        with open(out_path) as handle:
            result = json.load(handle)
    if stderr.strip():
        log.debug("drive.mjs stderr:\n%s", stderr)
    if result.get("page_errors"):
        log.warning("the web gate page reported errors: %s", "; ".join(result["page_errors"]))
    runs = result["runs"]
    absent = [b for b in backends if b not in runs]
    if absent:
        raise WebBrowserError(f"the page returned no run for {absent}")
    return {backend: _backend_run(runs[backend], result.get("browser", "")) for backend in backends}


def _drive(config_path: str, out_path: str, limit_s: float) -> str:
    """Run drive.mjs; its stderr on success, WebBrowserError with the cause otherwise."""
    command = [shutil.which("node") or "node", str(DRIVER), config_path, out_path]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        # SIGTERM first: puppeteer closes Chromium on it; a SIGKILLed node would leave it running.
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        raise WebBrowserError(f"drive.mjs did not finish in {limit_s:g} s: {_failure(stderr)}") from None
    if process.returncode != 0:
        raise WebBrowserError(
            f"the browser run failed (drive.mjs exit {process.returncode}): {_failure(stderr)}"
        )
    return stderr
