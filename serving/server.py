"""The model server: KServe's Python model server speaking TensorFlow Serving's REST API.

`python -m pipeline serve` runs this. It serves the version chosen in the serving directory
(the newest pushed one, or the one `rollback` pinned) through KServe's `ModelServer` app:
`POST /v1/models/<name>:predict` (KServe's v1 protocol, which is TF Serving's), `GET
/v1/models/<name>` (answered in TF Serving's status format), `/metrics` (Prometheus); and
`/web/`, a page that scores trips in the browser with the version's TF.js model (`serving/web_page.py`).

Requests, as TF Serving takes them:
- row format `{"instances": [...]}` -> `{"predictions": [...]}`; columnar format
  `{"inputs": {...}}` -> `{"outputs": [...]}`;
- `signature_name`: `serving_default` (serialized tf.Examples, as `{"b64": "..."}`) or
  `serving_raw` (one value per raw feature; a missing value is `null`, `""`, NaN or -1);
- anything malformed (not JSON, unknown signature, missing or unexpected feature, wrong rank
  or type, empty batch, batch-size mismatch, bad base64, unparsable example) is an HTTP 400
  whose message names the problem. A model answer of any shape but (N, 1) for N examples is
  a 500, never a 200 with a broadcast answer. The decoding is `serving/tf_serving_rest.py`.

Prediction logs (`serving/prediction_log.py`): with a logger, every answered example is
handed to its writer thread after the answer is computed (the raw features, the prediction,
the version, the signature, the time, the request id (`x-request-id`, else a new one) and the
client's key: `trip_id` in a serving_raw instance or column, or a feature of a serialized
example; the key is never given to the model). With a `RollingSkew`, the same examples feed
the live skew gauges on /metrics.

Versions: a watcher thread polls the serving directory; a new target version is loaded and
smoke-tested off the request path (one all-missing example must give one finite probability;
rows from the schema's domains must score the same alone, together and in reverse order),
then swapped in with one reference assignment, so no request is dropped or sees a
half-loaded model. A version that fails to load or to answer leaves the current one serving;
the failure is logged and counted (and retried only if that version's folder changes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import tensorflow as tf
from prometheus_client import Counter, Gauge, Histogram

from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, RAW_SIGNATURE, SERVING_SIGNATURE
from serving.gate_defaults import DEFAULT_BATCH_TOLERANCE
from serving.probe import batch_probe
from serving.request_checks import ServingInputError, check_raw_request, raw_input_specs
from serving.tf_serving_rest import (
    SIGNATURES,
    BadRequest,
    json_column,
    parse_body,
    raw_features,
    serialized_examples,
    split_request,
)
from serving.versions import read_pin, versions

log = logging.getLogger("taxi.model_server")

REQUESTS = Counter("taxi_serving_requests_total", "Prediction requests", ["signature", "format"])
ERRORS = Counter("taxi_serving_errors_total", "Failed prediction requests by kind", ["kind"])
LATENCY = Histogram(
    "taxi_serving_request_latency_seconds",
    "Prediction latency inside the model server (decode, check, model call, encode)",
    ["signature"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
EXAMPLES = Counter("taxi_serving_examples_total", "Examples scored", ["signature"])
SERVED_VERSION = Gauge("taxi_serving_model_version", "The model version being served")
HTTP_RESPONSES = Counter(
    "taxi_serving_http_responses_total", "HTTP responses by path kind and status", ["route", "code"]
)
LOAD_FAILURES = Counter("taxi_serving_model_load_failures_total", "Versions that failed to load")


# ------------------------------------------------------------------ loaded versions


@dataclasses.dataclass(frozen=True)
class LoadedVersion:
    """One loaded SavedModel with what a request needs from it."""

    version: int
    serving_fn: object
    raw_fn: object
    raw_specs: dict
    model: object  # The loaded trackable: its signatures need it alive.


def load_version(base: Path, version: int) -> LoadedVersion:
    """Load and smoke-test one version; raise with the reason if it cannot serve."""
    path = Path(base) / str(version)
    model = tf.saved_model.load(str(path))
    missing = [s for s in SIGNATURES if s not in model.signatures]
    if missing:
        raise ValueError(f"signatures {missing} missing (has {sorted(model.signatures)})")
    raw_fn = model.signatures[RAW_SIGNATURE]
    specs = raw_input_specs(raw_fn)
    # One all-missing example through the raw signature: it must answer one finite probability.
    probe = {name: json_column([None], spec) for name, spec in specs.items()}
    output = raw_fn(**check_raw_request(specs, probe))[PREDICTION_KEY].numpy()
    if output.shape != (1, 1) or not np.isfinite(output).all():
        raise ValueError(f"smoke test: one example gave output of shape {output.shape}: {output.ravel()[:4]}")
    serving_fn = model.signatures[SERVING_SIGNATURE]
    # Rows from the schema's domains alone, together and reversed: the same answers, or no swap.
    batch_probe(serving_fn, raw_fn, specs, DEFAULT_BATCH_TOLERANCE)
    return LoadedVersion(version, serving_fn, raw_fn, specs, model)


class VersionWatcher:
    """Keeps `current` pointing at the serving directory's target version."""

    def __init__(self, base: Path, poll_s: float = 1.0):
        self.base = Path(base)
        self.poll_s = poll_s
        self.current: LoadedVersion | None = None
        self._failed: dict[int, float] = {}  # version -> folder mtime when it failed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def candidates(self) -> list[int]:
        """Versions to try, best first: the pinned one; else the newest ones above the current."""
        available = versions(self.base)
        pin = read_pin(self.base)
        if pin and pin.get("version") in available:
            return [pin["version"]]
        floor = self.current.version if self.current and not pin else -1
        return [v for v in reversed(available) if v > floor]

    def refresh(self) -> bool:
        """Serve the best loadable candidate if it is not the current one; True when it swapped.

        A candidate that fails is skipped (and not retried until its folder changes), so a
        broken newest version leaves the best older loadable one serving.
        """
        for version in self.candidates():
            if self.current and self.current.version == version:
                return False
            folder = self.base / str(version)
            mtime = folder.stat().st_mtime if folder.exists() else None
            if self._failed.get(version) == mtime:
                continue
            try:
                started = time.perf_counter()
                loaded = load_version(self.base, version)
            except Exception as error:  # Any failure: keep serving what serves.
                self._failed[version] = mtime
                LOAD_FAILURES.inc()
                ERRORS.labels("model_load").inc()
                serving = self.current.version if self.current else "nothing yet"
                log.error("version %s failed to load (%s); serving %s", version, error, serving)
                continue
            previous = self.current.version if self.current else None
            self.current = loaded  # One reference assignment: requests hold their own reference.
            SERVED_VERSION.set(version)
            log.info(
                "now serving version %s (was %s), loaded in %.1f s",
                version,
                previous,
                time.perf_counter() - started,
            )
            return True
        return False

    def start(self) -> None:
        def loop():
            while not self._stop.wait(self.poll_s):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the watcher must outlive any one bad poll
                    log.exception("version watcher poll failed")

        self._thread = threading.Thread(target=loop, name="version-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


# ------------------------------------------------------------------ requests


def tf_reason(error: tf.errors.OpError) -> str:
    """The line of a TensorFlow error that says what was wrong (not the graph-execution noise)."""
    for line in error.message.splitlines():
        line = line.strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "<stack traces", "[[")):
            return line.split(" [[")[0]
    return error.message.strip()


def predict(loaded: LoadedVersion, body, logger=None, request_id: str | None = None) -> dict:
    """One TF Serving REST request against one loaded version; the response dict.

    With `logger` (a PredictionLogger), the answered examples are handed to it after the
    answer is computed; it queues them without blocking.
    """
    signature, layout, data = split_request(parse_body(body))
    serialized, tensors, keys = None, None, None
    REQUESTS.labels(signature, layout).inc()
    with LATENCY.labels(signature).time():
        if signature == SERVING_SIGNATURE:
            serialized = serialized_examples(layout, data)
            try:
                output = loaded.serving_fn(**{EXAMPLES_INPUT: tf.constant(serialized)})[PREDICTION_KEY]
            except tf.errors.InvalidArgumentError as error:
                raise BadRequest(f"the examples do not parse: {tf_reason(error)}", "bad_example") from None
            count = len(serialized)
        else:
            columns, keys = raw_features(layout, data, loaded.raw_specs)
            try:
                tensors = check_raw_request(loaded.raw_specs, columns)
            except ServingInputError as error:
                raise BadRequest(str(error)) from None
            try:
                output = loaded.raw_fn(**tensors)[PREDICTION_KEY]
            except tf.errors.InvalidArgumentError as error:
                raise BadRequest(f"the model refused the request: {tf_reason(error)}") from None
            count = next(iter(tensors.values())).shape[0]
        output = output.numpy()
        if output.shape != (count, 1):
            ERRORS.labels("output_shape").inc()
            raise RuntimeError(
                f"model version {loaded.version} answered shape {output.shape} for {count} examples; "
                f"expected ({count}, 1): refusing to answer rather than broadcast"
            )
        if not np.isfinite(output).all():
            ERRORS.labels("non_finite").inc()
            raise RuntimeError(f"model version {loaded.version} answered non-finite probabilities")
        EXAMPLES.labels(signature).inc(count)
        rows = output.tolist()
    if logger is not None:
        logger.submit(
            {
                "version": loaded.version,
                "signature": signature,
                "request_id": request_id or uuid.uuid4().hex,
                "predictions": output[:, 0],
                "serialized": serialized,
                "raw": tensors,
                "keys": keys,
            }
        )
    return {"predictions": rows} if layout == "row" else {"outputs": rows}


def status(watcher: VersionWatcher) -> dict:
    """TF Serving's GetModelStatus answer for the served version."""
    current = watcher.current
    if current is None:
        return {"model_version_status": []}
    return {
        "model_version_status": [
            {
                "version": str(current.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


# ------------------------------------------------------------------ KServe glue


class CountResponses:
    """ASGI middleware counting responses by route and status.

    A plain ASGI wrapper, not Starlette's `@app.middleware("http")`, which adds its own cost to
    every request (the server's request latency: `benchmarks/bench_serving.py`).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        route = "predict" if path.endswith(":predict") else "metrics" if path == "/metrics" else "other"

        async def counting_send(message):
            if message["type"] == "http.response.start":
                HTTP_RESPONSES.labels(route, str(int(message["status"]))).inc()
            await send(message)

        return await self.app(scope, receive, counting_send)


def build_app(name: str, base: Path, poll_s: float = 1.0, logger=None, web=None):
    """KServe's REST app serving `name` from `base`, plus TF Serving's status route; and the watcher.

    `logger`: a PredictionLogger that every answered example goes to (None: no log).
    `web`: a `serving.web_page.WebPage` whose `/web/` routes the app also serves (None: none).
    """
    import kserve
    from fastapi.responses import ORJSONResponse
    from fastapi.routing import APIRoute
    from kserve.errors import InferenceError, InvalidInput
    from kserve.protocol.rest.server import RESTServer

    watcher = VersionWatcher(base, poll_s)
    watcher.refresh()
    if watcher.current is None:
        raise FileNotFoundError(
            f"no servable version in {base} (pushed versions: {versions(base) or 'none'})"
        )

    class BigTipperModel(kserve.Model):
        """KServe model whose predict speaks TF Serving's REST request and response formats."""

        def __init__(self):
            super().__init__(name)
            self.ready = True

        async def predict(self, payload, headers=None):
            loaded = watcher.current  # This request's version, whatever swaps meanwhile.
            loop = asyncio.get_running_loop()
            request_id = (headers or {}).get("x-request-id")
            try:
                # TensorFlow releases the GIL: concurrent requests run in parallel threads.
                return await loop.run_in_executor(None, predict, loaded, payload, logger, request_id)
            except BadRequest as error:
                ERRORS.labels(error.kind).inc()
                raise InvalidInput(str(error)) from None
            except RuntimeError as error:
                raise InferenceError(str(error)) from None

    # A 400 is the client's error, counted in taxi_serving_errors_total and answered with its
    # reason: KServe's handler would also log a full traceback for each one.
    logging.getLogger("kserve").addFilter(
        lambda record: not (record.exc_info and isinstance(record.exc_info[1], InvalidInput))
    )
    model_server = kserve.ModelServer(http_port=0, enable_grpc=False, workers=1)
    model_server.register_model(BigTipperModel())
    app = RESTServer(model_server.dataplane, model_server.model_repository_extension).create_application()

    async def model_status(model_name: str):
        if model_name != name:
            return ORJSONResponse({"error": f"Model with name {model_name} not found"}, status_code=404)
        return status(watcher)

    app.add_middleware(CountResponses)
    # TF Serving's status format for GET /v1/models/<name> (KServe's own says only "ready").
    app.router.routes.insert(0, APIRoute("/v1/models/{model_name}", model_status, methods=["GET"]))
    if web is not None:
        app.include_router(web.router(watcher))
    return app, watcher


def serve(
    name: str,
    base: Path,
    host: str = "127.0.0.1",
    port: int = 8501,
    poll_s: float = 1.0,
    logger=None,
    live_skew=None,
    web=None,
) -> None:
    """Run the server until interrupted (then the prediction log is flushed and closed)."""
    import uvicorn

    app, watcher = build_app(name, base, poll_s, logger, web)
    watcher.start()
    if live_skew is not None:
        live_skew.start()
    log.info("serving %s version %s on http://%s:%s", name, watcher.current.version, host, port)
    print(
        f"Serving {name} version {watcher.current.version} from {base} on http://{host}:{port}"
        f"/v1/models/{name} (metrics: /metrics)"
        + (f"; web page: http://{host}:{port}/web/" if web is not None else "")
        + (f"; prediction log: {logger.folder}" if logger is not None else ""),
        flush=True,
    )
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
    finally:
        watcher.stop()
        if live_skew is not None:
            live_skew.stop()
        if logger is not None:
            logger.close()
