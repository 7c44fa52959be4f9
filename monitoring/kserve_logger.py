"""KServe's inference logger, received: CloudEvents in, prediction-log records out.

With `manifest --serving --log-url URL`, KServe POSTs every request and every response of the
InferenceService to URL as a CloudEvent (binary mode: `ce-id`, `ce-type`
`org.kubeflow.serving.inference.request` or `...response`, the same `ce-id` on both; the body
is the TF Serving REST request or response JSON). `python -m pipeline receive-logs` runs this
receiver: it pairs the two events by `ce-id` and hands the pair to a PredictionLogger, which
writes the same records `serve` writes, so `monitor` reads them the same way. TF Serving's
REST answer does not say which version answered: the receiver records the version the
serving directory selects when the pair arrives (the newest, or the pinned one).

In `monitoring/` with the reader of what it writes: it decodes bodies with the model server's
own decoder (`serving/tf_serving_rest.py`) and writes through `serving/prediction_log.py`.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Callable

import numpy as np

from models.signatures import RAW_SIGNATURE, SERVING_SIGNATURE
from serving.request_checks import ServingInputError, check_raw_request, serving_raw_specs
from serving.tf_serving_rest import BadRequest, parse_body, raw_features, serialized_examples, split_request

log = logging.getLogger("taxi.kserve_logger")

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"


class CloudEventReceiver:
    """Pairs request and response events by `ce-id`; submits each pair to `logger`."""

    def __init__(self, logger, version_for: Callable[[], int | None], max_pending: int = 10_000):
        self.logger = logger
        self.version_for = version_for
        self.specs = serving_raw_specs()  # the serving_raw inputs, as the schema types them
        self._pending: collections.OrderedDict[str, tuple[str, bytes]] = collections.OrderedDict()
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self.paired = 0

    def handle(self, headers, body: bytes) -> tuple[int, str]:
        """One CloudEvent; (HTTP status, message)."""
        headers = {k.lower(): v for k, v in headers.items()}
        event_id, event_type = headers.get("ce-id"), headers.get("ce-type")
        if not event_id or event_type not in (REQUEST_TYPE, RESPONSE_TYPE):
            return (
                400,
                f"not a KServe inference-logger CloudEvent (ce-id {event_id!r}, ce-type {event_type!r})",
            )
        with self._lock:
            other = self._pending.pop(event_id, None)
            if other is None or other[0] == event_type:
                self._pending[event_id] = (event_type, body)
                while len(self._pending) > self._max_pending:
                    self._pending.popitem(last=False)  # an unanswered request: forgotten
                return 202, "waiting for the other half"
        request, response = (body, other[1]) if event_type == REQUEST_TYPE else (other[1], body)
        try:
            self.logger.submit(self.item(event_id, request, response))
        except (BadRequest, ServingInputError, ValueError, KeyError) as error:
            log.warning("event %s not logged: %s", event_id, error)
            return 422, f"event {event_id}: {error}"
        self.paired += 1
        return 200, "logged"

    def item(self, event_id: str, request: bytes, response: bytes) -> dict:
        """The PredictionLogger item of one request/response pair."""
        signature, layout, data = split_request(parse_body(request))
        answer = json.loads(response)
        rows = answer.get("predictions", answer.get("outputs"))
        predictions = np.asarray(rows, dtype=np.float64).reshape(-1)
        version = self.version_for()
        if version is None:
            raise ValueError("no served version in the serving directory")
        fields = {
            "version": version,
            "signature": signature,
            "request_id": event_id,
            "predictions": predictions,
        }
        if signature == SERVING_SIGNATURE:
            fields["serialized"] = serialized_examples(layout, data)
            count = len(fields["serialized"])
        else:
            assert signature == RAW_SIGNATURE
            columns, keys = raw_features(layout, data, self.specs)
            fields["raw"] = check_raw_request(self.specs, columns)
            fields["keys"] = keys
            count = next(iter(fields["raw"].values())).shape[0]
        if len(predictions) != count:
            raise ValueError(f"the response holds {len(predictions)} predictions for {count} examples")
        return fields


def make_server(receiver: CloudEventReceiver, host: str, port: int):
    """An HTTP server (not yet serving) handing every POST to `receiver`."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, message = receiver.handle(dict(self.headers.items()), body)
            payload = json.dumps({"status": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    return ThreadingHTTPServer((host, port), Handler)


def serve_receiver(receiver: CloudEventReceiver, host: str, port: int) -> None:
    """Run the receiver's HTTP server until interrupted."""
    server = make_server(receiver, host, port)
    print(
        f"Receiving KServe inference-logger events on http://{host}:{server.server_address[1]}/", flush=True
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
