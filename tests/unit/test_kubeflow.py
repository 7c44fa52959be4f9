"""Kubeflow: the compiled spec, the ExampleGen window on KFP, deploy, KServe manifest, image.

The compile runs the real KubeflowV2DagRunner and loads the YAML with the real `kfp` SDK.
Deploy runs the real `kfp.Client` against `tests/kfp_standin.py`, a loopback HTTP server that
answers the KFP v2beta1 endpoints the client calls (not a KFP backend: none can run here).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import kfp.components
import kserve  # noqa: F401  (see below)
import pytest
import yaml
from google.protobuf import json_format
from kfp_standin import KfpStandIn

from pipeline import kubeflow_runner
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops import deploy, manifests
from pipeline.pipeline import RUNTIME_PARAMETERS, create_pipeline

# kserve is imported here, at collection, on purpose: its first import (ray, logging set-up)
# inside a test that holds `capsys` leaves pytest's own capture file closed at teardown.

REPO = Path(__file__).resolve().parents[2]
IMAGE = "registry.example.com/taxi-pipeline:1.2.3"
SETTINGS = dict(
    image=IMAGE,
    pipeline_root="gs://taxi-bucket/root",
    data_root="gs://taxi-bucket/data",
    serving_dir="gs://taxi-bucket/serving",
    beam_args=("--runner=DataflowRunner", "--region=europe-west1"),
    gpus=2,
    accelerator="nvidia-tesla-t4",
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    config = PipelineConfig(train_steps=321, gate_tolerance=0.007, window_spans=3)
    kubeflow_runner.compile_pipeline(config, kubeflow_runner.KubeflowSettings(**SETTINGS), output)
    return output


@pytest.fixture(scope="module")
def spec(compiled) -> dict:
    return list(yaml.safe_load_all(compiled.read_text()))[0]


def test_the_real_kfp_sdk_loads_the_compiled_pipeline(compiled):
    component = kfp.components.load_component_from_file(str(compiled))
    assert component.name == "taxi-big-tipper"
    assert component.pipeline_spec.default_pipeline_root == "gs://taxi-bucket/root"
    inputs = component.component_spec.inputs
    assert set(inputs) == set(RUNTIME_PARAMETERS)
    assert json.loads(inputs["train-args"].default) == {"num_steps": 321}
    assert json.loads(inputs["range-config"].default) == {"rolling_range": {"num_spans": 3}}
    assert inputs["gate-tolerance"].default == pytest.approx(0.007)
    assert inputs["accept-drift"].default == 0
    eval_config = json.loads(inputs["eval-config"].default)
    assert eval_config["model_specs"][0]["signature_name"] == "serving_default"
    # The Trainer's node selector travels as KFP's Kubernetes platform spec.
    platform = json_format.MessageToDict(component.platform_spec)
    selector = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["Trainer_executor"]
    assert selector == {"nodeSelector": {"labels": {"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"}}}


def test_same_nodes_as_the_local_pipeline(spec, tmp_path):
    local = create_pipeline(
        pipeline_name="local",
        pipeline_root=str(tmp_path / "root"),
        data_root=str(tmp_path / "data"),
        schema_path=str(REPO / "schemas" / "schema.pbtxt"),
        serving_dir=str(tmp_path / "serving"),
        first_span=None,
        last_span=None,
        window_spans=3,
        run_fn="models.trainer.run_fn",
        train_steps=10,
        eval_steps=5,
        trainer_config={},
        code_version="x",
        auc_threshold=0.9,
        regression_tolerance=0.01,
        calibration_tolerance=0.1,
        gate_tolerance=0.005,
        edge_accuracy_tolerance=0.01,
        edge_auc_tolerance=0.005,
        min_span_rows=800,
        accept_drift=False,
        warm_start=False,
        beam_pipeline_args=[],
    )
    local_ids = {node.id for node in local.components}
    tasks = set(spec["root"]["dag"]["tasks"])
    # The same node ids: the resolver nodes are container tasks under the same names.
    assert tasks == local_ids


def test_every_executor_runs_the_image_with_the_beam_args(spec):
    containers = {
        k: v["container"] for k, v in spec["deploymentSpec"]["executors"].items() if "container" in v
    }
    assert len(containers) == 14
    for name, container in containers.items():
        assert container["image"] == IMAGE, name
        assert container["command"][:3] == [
            "python",
            "-m",
            "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
        ]
    for name in (
        "SpanWindowCsvExampleGen_executor",
        "StatisticsGen_executor",
        "Transform_executor",
        "Evaluator_executor",
    ):
        args = containers[name]["args"]
        assert "--runner=DataflowRunner" in args and "--region=europe-west1" in args, name
    # User code by dotted path, resolved inside the image; nothing staged from this machine.
    trainer_args = spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]
    assert trainer_args["run_fn"]["runtimeValue"]["constant"] == "models.trainer.run_fn"
    assert "module_file" not in trainer_args
    assert "/work/" not in json.dumps(spec) and str(REPO) not in json.dumps(spec)


@pytest.mark.parametrize(
    ("producer", "key", "type_name"),
    [("EdgeExport", "edge_model", "EdgeModel"), ("WebExport", "web_model", "WebModel")],
)
def test_edge_and_web_models_travel_as_custom_artifacts_to_the_pusher(spec, producer, key, type_name):
    outputs = spec["components"][producer]["outputDefinitions"]["artifacts"]
    # A custom type travels as its schema title (KFP recovers the type by that name at run time).
    # TFX's container entrypoint imports it by that title: it must be an importable class path.
    title = outputs[key]["artifactType"]["instanceSchema"].split("\n")[0]
    assert title == f"title: components.{type_name}"
    pusher_inputs = spec["root"]["dag"]["tasks"]["AtomicPusher"]["inputs"]["artifacts"]
    assert pusher_inputs[key]["taskOutputArtifact"] == {"outputArtifactKey": key, "producerTask": producer}


def test_trainer_asks_for_gpus_and_the_others_for_sensible_resources(spec):
    executors = spec["deploymentSpec"]["executors"]
    trainer = executors["Trainer_executor"]["container"]["resources"]
    assert trainer["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert trainer["cpuLimit"] == 8 and trainer["memoryLimit"] == 32
    assert trainer["cpuRequest"] == 8 and trainer["memoryRequest"] == 32
    for name, executor in executors.items():
        if "container" not in executor or name == "Trainer_executor":
            continue
        resources = executor["container"]["resources"]
        assert "accelerator" not in resources, name
        assert 1 <= resources["cpuLimit"] <= 4 and 4 <= resources["memoryLimit"] <= 16, name
    assert executors["Transform_executor"]["container"]["resources"]["memoryLimit"] == 16


def test_runtime_parameters_feed_the_components(spec):
    tasks = spec["root"]["dag"]["tasks"]
    wired = {
        ("Trainer", "train_args"): "train-args",
        ("SpanWindowCsvExampleGen", "range_config"): "range-config",
        ("Evaluator", "eval_config"): "eval-config",
        ("ServingGate", "metric_tolerance"): "gate-tolerance",
        ("DriftGate", "accept_drift"): "accept-drift",
    }
    for (task, parameter), name in wired.items():
        assert tasks[task]["inputs"]["parameters"][parameter] == {"componentInputParameter": name}


def test_only_container_and_importer_executors_and_no_lifecycle_hooks(spec):
    """What open-source KFP 2.x's backend compiler accepts (backend/src/v2/compiler/visitor.go)."""
    for label, executor in spec["deploymentSpec"]["executors"].items():
        assert set(executor) <= {"container", "importer"}, label
        assert "lifecycle" not in executor.get("container", {}), label


def test_window_and_baseline_are_container_tasks_that_kfp_does_not_cache(spec):
    tasks = spec["root"]["dag"]["tasks"]
    executors = spec["deploymentSpec"]["executors"]
    example_gen = executors["SpanWindowCsvExampleGen_executor"]["container"]
    assert "components.example_gen.executor.Executor" in example_gen["args"]
    resolver = executors[kubeflow_runner.executor_label(spec, "latest_blessed_model_resolver")]["container"]
    assert "components.resolver.executor.Executor" in resolver["args"]
    baseline = tasks["latest_blessed_model_resolver"]
    assert baseline["inputs"]["parameters"]["serving_dir"]["runtimeValue"]["constant"] == (
        "gs://taxi-bucket/serving/big_tipper"
    )
    assert baseline["inputs"]["artifacts"]["candidate"]["taskOutputArtifact"]["producerTask"] == "Trainer"
    assert tasks["Evaluator"]["inputs"]["artifacts"]["baseline_model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model",
        "producerTask": "latest_blessed_model_resolver",
    }
    # Their results depend on the data root and the serving dir, not only on their inputs.
    for task in ("SpanWindowCsvExampleGen", "latest_blessed_model_resolver"):
        assert tasks[task]["cachingOptions"] == {"enableCache": False}, task
    assert tasks["Trainer"]["cachingOptions"] == {"enableCache": True}


def _write_spans(root: Path, spans) -> None:
    for span in spans:
        folder = root / f"span-{span}"
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text(f"trip_miles,fare\n{span}.5,{span}\n")


def _unresolved(data: Path, range_config: dict) -> dict:
    """ExampleGen's exec properties as a KFP task receives them: no driver has run."""
    return {
        "input_base": str(data),
        "input_config": json.dumps({"splits": [{"name": "all", "pattern": "span-{SPAN}/*.csv"}]}),
        "range_config": json.dumps(range_config),
        "output_config": "{}",
    }


def test_example_gen_resolves_a_rolling_window_in_its_own_task(tmp_path):
    from tfx.types import standard_artifacts

    from components.example_gen.executor import resolve_window_here

    data = tmp_path / "data"
    _write_spans(data, [1, 2, 3, 4])
    examples = standard_artifacts.Examples()
    resolved = resolve_window_here(_unresolved(data, {"rolling_range": {"num_spans": 3}}), examples)
    assert resolved["spans"] == "2,3,4" and resolved["span"] == 4
    patterns = json.loads(resolved["input_config"])["splits"][0]["pattern"]
    assert patterns == "span-2/*.csv|span-3/*.csv|span-4/*.csv"
    assert resolved["input_fingerprint"].count("split:all") == 3
    # What the driver would have set on the output artifact, so the ExecutorOutput carries it.
    assert examples.get_int_custom_property("span") == 4
    assert examples.get_string_custom_property("spans") == "2,3,4"
    assert examples.get_string_custom_property("input_fingerprint") == resolved["input_fingerprint"]
    # A window a driver already resolved (the local run) passes through untouched.
    assert resolve_window_here(resolved, standard_artifacts.Examples()) is resolved


def test_example_gen_names_a_missing_window(tmp_path):
    from tfx.types import standard_artifacts

    from components.example_gen.executor import resolve_window_here

    data = tmp_path / "data"
    _write_spans(data, [1])
    properties = _unresolved(data, {"static_range": {"start_span_number": 5, "end_span_number": 6}})
    with pytest.raises(ValueError, match=r"available spans: \[1\]"):
        resolve_window_here(properties, standard_artifacts.Examples())


def test_warm_start_compiles_to_a_container_resolver_before_the_trainer(tmp_path):
    output = kubeflow_runner.compile_pipeline(
        PipelineConfig(warm_start=True), kubeflow_runner.KubeflowSettings(**SETTINGS), tmp_path / "p.yaml"
    )
    spec = next(yaml.safe_load_all(output.read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    resolver = tasks["warm_start_model_resolver"]
    assert "candidate" not in resolver.get("inputs", {}).get("artifacts", {})
    assert resolver["cachingOptions"] == {"enableCache": False}
    assert tasks["Trainer"]["inputs"]["artifacts"]["base_model"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model",
        "producerTask": "warm_start_model_resolver",
    }
    for label, executor in spec["deploymentSpec"]["executors"].items():
        assert set(executor) == {"container"} or set(executor) == {"importer"}, label


def test_tfjob_variant_moves_the_gpus_to_the_workers(tmp_path):
    settings = kubeflow_runner.KubeflowSettings(**{**SETTINGS, "tfjob_workers": 3})
    output = kubeflow_runner.compile_pipeline(PipelineConfig(), settings, tmp_path / "p.yaml")
    documents = list(yaml.safe_load_all(output.read_text()))
    assert len(documents) == 1  # No node selector on the submitting pod.
    spec = documents[0]
    trainer = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]
    assert "components.tfjob_trainer.executor.Executor" in trainer["args"]
    assert "accelerator" not in trainer["resources"]
    custom = json.loads(
        spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"]["custom_config"]["runtimeValue"][
            "constant"
        ]
    )
    assert custom["tfjob"]["workers"] == 3 and custom["tfjob"]["gpus_per_worker"] == 2
    assert custom["tfjob"]["image"] == IMAGE and custom["tfjob"]["accelerator"] == "nvidia-tesla-t4"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"pipeline_root": "/tmp/root"}, "--pipeline-root must be a bucket URI"),
        ({"data_root": "data"}, "--data-root must be a bucket URI"),
        ({"image": ""}, "--image must be a container image"),
        ({"gpus": -1}, "--gpus must be >= 0"),
        ({"pipeline_root": "s3://bucket/root"}, "s3:// roots are not supported: TensorFlow 2.16 has no s3"),
        ({"serving_dir": "minio://bucket/serving"}, "minio:// roots are not supported"),
    ],
)
def test_bad_compile_options_are_named(override, message):
    with pytest.raises(kubeflow_runner.CompileError, match=re.escape(message)):
        kubeflow_runner.KubeflowSettings(**{**SETTINGS, **override})


# ---------------------------------------------------------------- deploy


@pytest.fixture
def kfp_server():
    server = KfpStandIn()
    host = server.start()
    yield server, host
    server.stop()


def _deploy(host, compiled, *extra):
    return main(["deploy", "--host", host, "--package", str(compiled), *extra])


def test_deploy_uploads_and_schedules_weekly(kfp_server, compiled, capsys):
    server, host = kfp_server
    assert (
        _deploy(host, compiled, "--param", 'train-args={"num_steps": 800}', "--param", "accept-drift=1") == 0
    )
    assert "created recurring run taxi-big-tipper-weekly" in capsys.readouterr().out
    [pipeline] = server.pipelines.values()
    assert pipeline["display_name"] == "taxi-big-tipper"
    uploaded = [v for v in server.versions.values() if v["display_name"].startswith("taxi-big-tipper-")]
    assert len(uploaded) == 1
    assert uploaded[0]["pipeline_spec"] == list(yaml.safe_load_all(compiled.read_text()))[0]
    [run] = server.recurring_runs.values()
    assert run["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert int(run["max_concurrency"]) == 1 and run["no_catchup"] is True and run["mode"] == "ENABLE"
    assert run["pipeline_version_reference"]["pipeline_version_id"] == uploaded[0]["pipeline_version_id"]
    params = run["runtime_config"]["parameters"]
    assert params["train-args"] == '{"num_steps": 800}' and params["accept-drift"] == 1
    assert params["gate-tolerance"] == pytest.approx(0.007)  # The compiled default.
    [experiment] = server.experiments.values()
    assert (
        experiment["display_name"] == deploy.DEFAULT_EXPERIMENT
        and run["experiment_id"] == experiment["experiment_id"]
    )


def test_deploying_twice_keeps_one_schedule(kfp_server, compiled, capsys):
    server, host = kfp_server
    assert _deploy(host, compiled) == 0
    versions, run_ids = len(server.versions), set(server.recurring_runs)
    assert _deploy(host, compiled) == 0
    assert "recurring run taxi-big-tipper-weekly unchanged" in capsys.readouterr().out
    assert len(server.versions) == versions and set(server.recurring_runs) == run_ids
    # A new schedule replaces the old one: still exactly one.
    assert _deploy(host, compiled, "--cron", "0 30 4 * * 0") == 0
    [run] = server.recurring_runs.values()
    assert run["trigger"]["cron_schedule"]["cron"] == "0 30 4 * * 0" and set(server.recurring_runs) != run_ids
    assert len(server.experiments) == 1 and len(server.pipelines) == 1


def test_pause_resume_delete(kfp_server, compiled, capsys):
    server, host = kfp_server
    assert _deploy(host, compiled) == 0
    [run_id] = server.recurring_runs
    assert _deploy(host, compiled, "--pause") == 0
    assert server.recurring_runs[run_id]["status"] == "DISABLED"
    assert _deploy(host, compiled, "--resume") == 0
    assert server.recurring_runs[run_id]["status"] == "ENABLED"
    assert _deploy(host, compiled, "--delete-schedule") == 0
    assert not server.recurring_runs and server.pipelines
    assert _deploy(host, compiled, "--pause") == 1
    assert "no recurring run 'taxi-big-tipper-weekly'" in capsys.readouterr().err


def test_deploy_errors_are_clear(kfp_server, compiled, capsys, tmp_path):
    server, host = kfp_server
    assert _deploy(host, compiled, "--cron", "0 3 * * 1") == 2
    assert "6 fields, seconds first" in capsys.readouterr().err
    assert _deploy(host, compiled, "--param", "steps=5") == 2
    assert "unknown runtime parameter(s) ['steps']" in capsys.readouterr().err
    assert _deploy(host, compiled, "--param", "gate-tolerance=tight") == 2
    assert "gate-tolerance: 'tight' is not a valid NUMBER_DOUBLE" in capsys.readouterr().err
    assert _deploy(host, tmp_path / "missing.yaml") == 2
    assert "run `python -m pipeline compile` first" in capsys.readouterr().err
    server.reject_uploads = "Failed to validate the pipeline spec: unknown executor"
    assert _deploy(host, compiled) == 1
    assert "uploading the pipeline failed: HTTP 400" in (err := capsys.readouterr().err)
    assert "Failed to validate the pipeline spec: unknown executor" in err
    server.reject_uploads = None
    server.fail_with = 401
    assert _deploy(host, compiled) == 1
    assert "HTTP 401: not authorised" in capsys.readouterr().err
    server.fail_with = None
    assert not server.recurring_runs
    server.stop()
    assert _deploy(host, compiled) == 1
    assert f"cannot reach Kubeflow Pipelines at {host}" in capsys.readouterr().err


def test_bearer_token_is_sent(kfp_server, compiled):
    server, host = kfp_server
    assert _deploy(host, compiled, "--token", "s3cret") == 0
    assert server.requests and all(
        r["headers"].get("authorization") == "Bearer s3cret" for r in server.requests
    )


# ---------------------------------------------------------------- manifest


def test_inference_service_manifest(tmp_path):
    output = tmp_path / "isvc.yaml"
    assert (
        main(
            [
                "manifest",
                "--serving",
                "--storage-uri",
                "gs://taxi-bucket/serving/big_tipper",
                "--gpus",
                "1",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    manifest = yaml.safe_load(output.read_text())
    assert manifests.schema_errors(manifest) == []
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    assert manifest["metadata"]["name"] == "big-tipper"
    predictor = manifest["spec"]["predictor"]
    assert predictor["tensorflow"]["storageUri"] == "gs://taxi-bucket/serving/big_tipper"
    assert predictor["tensorflow"]["runtimeVersion"] == manifests.DEFAULT_TF_SERVING_VERSION
    resources = predictor["tensorflow"]["resources"]
    assert resources["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert resources["limits"] == {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}


def test_schema_check_catches_what_kserve_would_reject():
    manifest = manifests.inference_service(manifests.ServingSettings(storage_uri="s3://b/m"))
    manifest["spec"]["predictor"]["tensorflow"]["storageURI"] = "s3://typo"
    manifest["spec"]["predictor"]["minReplicas"] = "one"
    manifest["spec"]["predictor"]["sklearn"] = {"storageUri": "s3://b/other"}
    errors = manifests.schema_errors(manifest)
    assert (
        "InferenceService.spec.predictor.tensorflow.storageURI: not a field of V1beta1TFServingSpec" in errors
    )
    assert "InferenceService.spec.predictor.minReplicas: expected int, got 'one'" in errors
    assert any("exactly one model server" in e for e in errors)


def test_manifest_refuses_a_local_path(capsys):
    assert main(["manifest", "--serving", "--storage-uri", "/tmp/serving"]) == 2
    assert "--storage-uri must be a URI" in capsys.readouterr().err


# ---------------------------------------------------------------- image


def test_dockerfile_matches_the_locks_and_the_repo():
    dockerfile = (REPO / "kubeflow" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"COPY source {source} missing"
    # Every package setup.py installs is copied into the image and let through .dockerignore.
    packages = re.findall(r'"(\w+)",', (REPO / "setup.py").read_text())
    assert {"pipeline", "components", "models", "serving", "data", "schemas"} <= set(packages)
    allowed = (REPO / ".dockerignore").read_text().splitlines()
    for package in packages:
        assert f"COPY {package} /opt/pipeline/{package}" in dockerfile, package
        assert f"!{package}" in allowed, package
    assert re.search(r"^USER 1000$", dockerfile, re.M), "the image must not run as root"
    assert "python3.10" in dockerfile
    # CUDA base = the CUDA runtime TF 2.16.2's wheels were built against.
    cuda = re.search(r"nvidia/cuda:(\d+\.\d+)", dockerfile).group(1)
    gpu_lock = (REPO / "kubeflow" / "requirements-gpu.lock").read_text()
    assert re.search(rf"^nvidia-cuda-runtime-cu12=={cuda}\.", gpu_lock, re.M)
    pins = lambda text: {p for p in text.splitlines() if re.match(r"^[a-z0-9].*==", p)}  # noqa: E731
    cpu = pins((REPO / "requirements.lock").read_text())
    gpu = pins(gpu_lock)
    assert cpu <= gpu and all(p.startswith("nvidia-") for p in gpu - cpu)
