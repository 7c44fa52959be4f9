"""The TFJob manifest, and the TFJobTrainer executor's success, failure and timeout.

STAND-IN, named honestly: no Kubernetes cluster or Training Operator can run here. A small HTTP
server on loopback answers the three TFJob endpoints the executor calls (create, read and
delete under /apis/kubeflow.org/v1/namespaces/<ns>/tfjobs), records every request, and plays
the operator's part from a script: Created -> Running -> Succeeded (writing the chief's export,
a real SavedModel, where the worker spec says), or Failed with a message, or never finishing.
The executor, its JSON worker spec and the HTTP client are the real ones.
"""

from __future__ import annotations

import http.server
import json
import os
import threading

import pytest
from model_zoo import save_zoo_model
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.utils import path_utils, proto_utils

from components.tfjob_trainer import kubernetes as tfjob
from components.tfjob_trainer.executor import SPEC_FILE_NAME, TFJOB_KEY, Executor


class StandIn(http.server.ThreadingHTTPServer):
    """Kubernetes API stand-in: scripted TFJob states, every request recorded."""

    def __init__(self, script: list[str], message: str = "", export: bool = True):
        super().__init__(("127.0.0.1", 0), Handler)
        self.script, self.message, self.requests, self.jobs = list(script), message, [], {}
        self.export = export  # whether the "chief" writes its model when the job succeeds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _reply(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(("POST", self.path, body, self.headers.get("Authorization")))
        self.server.jobs[body["metadata"]["name"]] = body
        self._reply(201, body)

    def do_GET(self):
        self.server.requests.append(("GET", self.path, None, self.headers.get("Authorization")))
        name = self.path.rsplit("/", 1)[-1]
        job = self.server.jobs.get(name)
        if job is None:
            return self._reply(404, {"kind": "Status", "message": f'tfjobs "{name}" not found'})
        state = self.server.script.pop(0) if len(self.server.script) > 1 else self.server.script[0]
        if state == "Succeeded" and self.server.export and not job.get("exported"):
            spec_uri = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0][
                "command"
            ][-1]
            with open(spec_uri) as handle:
                save_zoo_model(json.load(handle)["serving_model_dir"])  # the chief's export
            job["exported"] = True
        conditions = [{"type": "Created", "status": "True"}]
        if state != "Created":
            conditions.append({"type": state, "status": "True", "message": self.server.message})
        self._reply(200, {**job, "status": {"conditions": conditions}})

    def do_DELETE(self):
        self.server.requests.append(("DELETE", self.path, None, self.headers.get("Authorization")))
        self._reply(200, {"kind": "Status", "status": "Success"})


@pytest.fixture
def stand_in(request):
    server = StandIn(*request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_manifest_follows_the_tfjob_crd():
    settings = tfjob.TFJobSettings(
        image="registry/taxi:1", workers=3, gpus_per_worker=2, accelerator="nvidia-h100-80gb"
    )
    manifest = tfjob.tfjob_manifest("taxi-trainer-7", "gs://b/run/worker_spec.json", settings)
    assert manifest["apiVersion"] == "kubeflow.org/v1" and manifest["kind"] == "TFJob"
    assert manifest["metadata"] == {
        "name": "taxi-trainer-7",
        "namespace": "kubeflow",
        "labels": {"app": "taxi-trainer"},
    }
    worker = manifest["spec"]["tfReplicaSpecs"]["Worker"]
    assert set(manifest["spec"]["tfReplicaSpecs"]) <= {"Chief", "PS", "Worker", "Evaluator"}
    assert worker["replicas"] == 3 and worker["restartPolicy"] in ("Always", "OnFailure", "Never", "ExitCode")
    container = worker["template"]["spec"]["containers"][0]
    assert container["name"] == "tensorflow"  # the operator finds the TF container by this name
    assert container["image"] == "registry/taxi:1"
    assert container["command"] == ["python", "-m", "models.train_worker", "gs://b/run/worker_spec.json"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert worker["template"]["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"
    }
    assert manifest["spec"]["runPolicy"]["backoffLimit"] == 3
    cpu_only = tfjob.tfjob_manifest("x", "s", tfjob.TFJobSettings(image="i"))
    assert (
        "nvidia.com/gpu"
        not in cpu_only["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["resources"][
            "limits"
        ]
    )


def test_job_names_are_dns_labels():
    assert tfjob.job_name("Trainer/model/12") == "taxi-trainer-trainer-model-12"
    assert len(tfjob.job_name("x" * 100)) == 63


def trainer_artifacts(tmp_path, api_server: str, timeout_s: float = 60):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    for split in ("train", "eval"):
        os.makedirs(tmp_path / "examples" / f"Split-{split}")
    transform = standard_artifacts.TransformGraph()
    transform.uri = str(tmp_path / "transform")
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "Trainer" / "model" / "42")
    model_run = standard_artifacts.ModelRun()
    model_run.uri = str(tmp_path / "Trainer" / "model_run" / "42")
    settings = {
        "image": "registry/taxi:1",
        "workers": 2,
        "api_server": api_server,
        "timeout_s": timeout_s,
        "poll_s": 0.01,
    }
    properties = {
        standard_component_specs.TRAIN_ARGS_KEY: proto_utils.proto_to_json(
            trainer_pb2.TrainArgs(num_steps=400)
        ),
        standard_component_specs.EVAL_ARGS_KEY: proto_utils.proto_to_json(
            trainer_pb2.EvalArgs(num_steps=100)
        ),
        standard_component_specs.RUN_FN_KEY: "models.trainer.run_fn",
        standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps({TFJOB_KEY: settings, "epochs": 5}),
    }
    inputs = {
        standard_component_specs.EXAMPLES_KEY: [examples],
        standard_component_specs.TRANSFORM_GRAPH_KEY: [transform],
    }
    outputs = {
        standard_component_specs.MODEL_KEY: [model],
        standard_component_specs.MODEL_RUN_KEY: [model_run],
    }
    return inputs, outputs, properties, model


@pytest.mark.parametrize("stand_in", [(["Created", "Running", "Running", "Succeeded"], "")], indirect=True)
def test_a_successful_job_yields_the_chiefs_model(stand_in, tmp_path):
    inputs, outputs, properties, model = trainer_artifacts(tmp_path, stand_in.url)
    Executor().Do(inputs, outputs, properties)
    serving = path_utils.serving_model_dir(model.uri)
    assert os.path.isfile(os.path.join(serving, "saved_model.pb"))
    methods = [r[0] for r in stand_in.requests]
    assert methods[0] == "POST" and methods.count("GET") == 4 and "DELETE" not in methods
    assert stand_in.requests[0][1] == "/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs"
    submitted = stand_in.requests[0][2]
    assert submitted["metadata"]["name"] == "taxi-trainer-42"
    spec_uri = submitted["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"][
        -1
    ]
    assert spec_uri.endswith(SPEC_FILE_NAME)
    spec = json.loads(open(spec_uri).read())
    assert spec["serving_model_dir"] == serving and spec["train_steps"] == 400
    assert spec["train_files"] == [os.path.join(str(tmp_path / "examples"), "Split-train", "*")]
    assert spec["custom_config"]["epochs"] == 5


@pytest.mark.parametrize(
    "stand_in", [(["Created", "Running", "Failed"], "Worker 1 OOMKilled (exit 137)")], indirect=True
)
def test_a_failed_job_fails_the_trainer_with_the_operators_message(stand_in, tmp_path):
    inputs, outputs, properties, _ = trainer_artifacts(tmp_path, stand_in.url)
    with pytest.raises(tfjob.TFJobError, match="TFJob kubeflow/taxi-trainer-42 failed: Worker 1 OOMKilled"):
        Executor().Do(inputs, outputs, properties)


@pytest.mark.parametrize("stand_in", [(["Running"], "")], indirect=True)
def test_a_job_that_never_finishes_is_deleted_and_fails(stand_in, tmp_path):
    inputs, outputs, properties, _ = trainer_artifacts(tmp_path, stand_in.url, timeout_s=0.2)
    with pytest.raises(
        tfjob.TFJobError, match="did not finish within 0.2 s .last state Running.; deleted it"
    ):
        Executor().Do(inputs, outputs, properties)
    assert stand_in.requests[-1][:2] == (
        "DELETE",
        "/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs/taxi-trainer-42",
    )


@pytest.mark.parametrize("stand_in", [(["Succeeded"], "", False)], indirect=True)
def test_success_without_an_export_is_an_error(stand_in, tmp_path):
    inputs, outputs, properties, _ = trainer_artifacts(tmp_path, stand_in.url)
    with pytest.raises(tfjob.TFJobError, match="succeeded but its chief exported no model"):
        Executor().Do(inputs, outputs, properties)


def test_an_unreachable_api_server_is_named(tmp_path):
    inputs, outputs, properties, _ = trainer_artifacts(tmp_path, "http://127.0.0.1:9")
    with pytest.raises(tfjob.TFJobError, match="cannot reach the Kubernetes API at http://127.0.0.1:9"):
        Executor().Do(inputs, outputs, properties)
