"""A stand-in for the Kubeflow Pipelines API server, on loopback, for the deploy tests.

NOT Kubeflow Pipelines: no KFP backend can run on our machines (it needs a Kubernetes cluster,
Argo and MySQL). This is a small HTTP server that answers the few KFP v2beta1 REST endpoints
the real `kfp.Client` (2.5) calls when `deploy` runs: healthz, pipelines (list, upload,
upload_version, versions), experiments (list, create) and recurring runs (list, create,
enable, disable, delete), with the JSON shapes of KFP's v2beta1 API. It keeps what it is sent
in memory and records every request, so tests assert on what the real client sent.

`fail_with` makes every request answer one HTTP status (401, 500, ...) with a KFP-style error
body, and `reject_uploads` makes uploads fail as a server that rejects the spec, to test how
errors reach the user.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

API = "/apis/v2beta1"


class KfpStandIn:
    """In-memory KFP v2beta1 state plus the request log."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[dict] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.experiments: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.fail_with: int | None = None
        self.reject_uploads: str | None = None  # answer uploads 400 with this message
        self._ids = itertools.count(1)
        self.server: ThreadingHTTPServer | None = None

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # -- server --
    def start(self) -> str:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_DELETE(self):
                self._handle("DELETE")

            def _handle(self, method):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urllib.parse.urlparse(self.path)
                query = dict(urllib.parse.parse_qsl(parsed.query))
                with standin.lock:
                    standin.requests.append(
                        {
                            "method": method,
                            "path": parsed.path,
                            "query": query,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                        }
                    )
                    if standin.fail_with:
                        status, payload = (
                            standin.fail_with,
                            {
                                "error": "request rejected by the stand-in",
                                "message": f"stand-in answers {standin.fail_with}",
                                "code": 16 if standin.fail_with == 401 else 13,
                            },
                        )
                    else:
                        status, payload = standin.route(method, parsed.path, query, body, self.headers)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    # -- API --
    def route(self, method, path, query, body, headers):
        if not path.startswith(API):
            return 404, {"error": f"unknown path {path}"}
        path = path[len(API) :]
        if path == "/healthz" and method == "GET":
            return 200, {"multi_user": False}
        if path == "/pipelines" and method == "GET":
            return 200, {"pipelines": self._filter(self.pipelines.values(), query)}
        if path == "/pipelines/upload" and method == "POST":
            return self._upload(query, body, headers, version_of=None)
        if path == "/pipelines/upload_version" and method == "POST":
            return self._upload(query, body, headers, version_of=query.get("pipelineid"))
        if path.startswith("/pipelines/") and path.endswith("/versions") and method == "GET":
            pipeline_id = path.split("/")[2]
            versions = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
            return 200, {"pipeline_versions": self._filter(versions, query), "total_size": len(versions)}
        if path == "/experiments" and method == "GET":
            return 200, {"experiments": self._filter(self.experiments.values(), query)}
        if path == "/experiments" and method == "POST":
            experiment = json.loads(body)
            experiment["experiment_id"] = self.new_id("experiment")
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if path == "/recurringruns" and method == "GET":
            runs = [
                r
                for r in self.recurring_runs.values()
                if not query.get("experiment_id") or r.get("experiment_id") == query["experiment_id"]
            ]
            return 200, {"recurringRuns": self._filter(runs, query), "total_size": len(runs)}
        if path == "/recurringruns" and method == "POST":
            run = json.loads(body)
            version = run.get("pipeline_version_reference") or {}
            if version.get("pipeline_version_id") not in self.versions:
                return 404, {"error": "pipeline version not found", "message": f"no version {version}"}
            run["recurring_run_id"] = self.new_id("recurring")
            run["status"] = "ENABLED" if run.get("mode") == "ENABLE" else "DISABLED"
            self.recurring_runs[run["recurring_run_id"]] = run
            return 200, run
        if path.startswith("/recurringruns/"):
            rest = path[len("/recurringruns/") :]
            run_id, _, verb = rest.partition(":")
            if run_id not in self.recurring_runs:
                return 404, {"error": "not found", "message": f"recurring run {run_id} not found"}
            if method == "DELETE" and not verb:
                del self.recurring_runs[run_id]
                return 200, {}
            if method == "POST" and verb in ("enable", "disable"):
                self.recurring_runs[run_id]["mode"] = "ENABLE" if verb == "enable" else "DISABLE"
                self.recurring_runs[run_id]["status"] = "ENABLED" if verb == "enable" else "DISABLED"
                return 200, {}
        return 404, {"error": f"{method} {API}{path} is not served by this stand-in"}

    def _upload(self, query, body, headers, version_of):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + headers["Content-Type"].encode() + b"\r\n\r\n" + body
        )
        files = {
            part.get_param("name", header="content-disposition"): part.get_content()
            for part in message.iter_parts()
        }
        text = files["uploadfile"]
        text = text.decode() if isinstance(text, bytes) else text
        documents = [d for d in yaml.safe_load_all(text) if d]
        if self.reject_uploads:
            return 400, {"error": "invalid pipeline spec", "message": self.reject_uploads}
        if not documents or "pipelineInfo" not in documents[0]:
            return 400, {"error": "invalid pipeline spec", "message": "Failed to parse the pipeline spec"}
        if version_of is None:
            pipeline = {"pipeline_id": self.new_id("pipeline"), "display_name": query["name"]}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            pipeline_id, name, response = pipeline["pipeline_id"], query["name"], pipeline
        else:
            if version_of not in self.pipelines:
                return 404, {"error": "not found", "message": f"pipeline {version_of} not found"}
            pipeline_id, name, response = version_of, query["name"], None
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self.new_id("version"),
            "display_name": name,
            "pipeline_spec": documents[0],
            "platform_spec": documents[1] if len(documents) > 1 else None,
        }
        self.versions[version["pipeline_version_id"]] = version
        return 200, response or {k: v for k, v in version.items() if k != "platform_spec"}

    @staticmethod
    def _filter(items, query):
        items = list(items)
        if "filter" in query:
            for predicate in json.loads(query["filter"]).get("predicates", []):
                key = predicate["key"]
                value = predicate.get("stringValue", predicate.get("string_value"))
                items = [i for i in items if i.get(key) == value]
        return items
