"""End to end on Kubeflow's contract: `compile` -> `kfp-run`, every task its own process.

The spec is compiled for bucket roots (gs://taxi-bucket/...) exactly as for a cluster, then
`python -m pipeline kfp-run` runs it the way open-source KFP's driver and launcher do
(pipeline/ops/kfp_run.py), with the bucket rewritten to a local folder (TensorFlow 2.16
cannot reach a GCS emulator: docs/kubeflow.md). Two runs over one serving dir:

1. spans 1-7 (window 4-7): every task succeeds, the model, the edge and web models are pushed with
   a push record naming the Trainer's model; no baseline yet; drift compares span 7 with 6.
2. span 8 arrives, with an AUC floor no model reaches (`--param eval-config=...`): the
   baseline resolver hands over run 1's pushed model, the Evaluator compares against it,
   the DriftGate compares span 8 with 7, the model is refused and nothing is pushed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline_nodes import PIPELINE_NODE_IDS

from data import embedded

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUCKET = "gs://taxi-bucket/"
TASKS = set(PIPELINE_NODE_IDS)  # The compiled tasks are the local DAG's nodes, same ids.


def cli(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def kfp_run(spec: Path, bucket: Path, run_root: Path, *extra: str) -> dict:
    result = cli(
        "kfp-run", str(spec), "--run-root", str(run_root), "--rewrite", f"{BUCKET}={bucket}/", *extra
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((run_root / "kfp-run.json").read_text())
    summary["by_name"] = {task["name"]: task for task in summary["tasks"]}
    return summary


def artifact(summary: dict, task: str, key: str) -> dict:
    return summary["by_name"][task]["artifacts"][key][0]


def versions(serving: Path) -> list[str]:
    return sorted(p.name for p in serving.iterdir() if p.name.isdigit()) if serving.is_dir() else []


def unreachable_eval_config(spec: Path) -> str:
    """The spec's own eval-config default with the AUC floor raised to 0.999."""
    default = yaml.safe_load(spec.read_text())["root"]["inputDefinitions"]["parameters"]["eval-config"]
    config = json.loads(default["defaultValue"])
    raised = 0
    for metrics_spec in config["metrics_specs"]:
        for metric in metrics_spec["metrics"]:
            if metric["class_name"] == "BatchedAUC" and "per_slice_thresholds" in metric:
                for threshold in metric["per_slice_thresholds"]:
                    threshold["threshold"]["value_threshold"]["lower_bound"] = 0.999
                    raised += 1
    assert raised == 1
    return json.dumps(config)


@pytest.fixture(scope="module")
def kfp_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kfp")
    spec = tmp / "pipeline.yaml"
    compiled = cli(
        "compile",
        "--image",
        "registry.example/taxi-pipeline:1.0",
        "--pipeline-root",
        f"{BUCKET}root",
        "--data-root",
        f"{BUCKET}data",
        "--serving-dir",
        f"{BUCKET}serving",
        "--output",
        str(spec),
    )
    assert compiled.returncode == 0, compiled.stderr
    bucket = tmp / "bucket"
    embedded.materialize_spans(bucket / "data")
    shutil.move(bucket / "data" / "span-8", tmp / "span-8")  # Arrives before the second run.
    first = kfp_run(spec, bucket, tmp / "run1")
    serving = bucket / "serving" / "big_tipper"
    first["versions"] = versions(serving)
    shutil.move(tmp / "span-8", bucket / "data" / "span-8")
    second = kfp_run(spec, bucket, tmp / "run2", "--param", f"eval-config={unreachable_eval_config(spec)}")
    second["versions"] = versions(serving)
    return {"spec": spec, "bucket": bucket, "serving": serving, "first": first, "second": second, "tmp": tmp}


def test_every_compiled_task_runs_in_its_own_process_and_the_model_is_pushed(kfp_runs):
    first = kfp_runs["first"]
    assert first["state"] == "succeeded"
    assert set(first["by_name"]) == TASKS
    assert all(task["state"] == "succeeded" for task in first["tasks"])
    assert len({task["pid"] for task in first["tasks"] if task["pid"]}) == len(TASKS)
    # KFP's output URIs: <pipeline root>/<pipeline>/<run id>/<task>/<uuid>/<key>, in the bucket.
    model_uri = artifact(first, "Trainer", "model")["uri"]
    assert model_uri.startswith(f"{kfp_runs['bucket']}/root/taxi-big-tipper/{first['run_id']}/Trainer/")
    [version] = first["versions"]
    pushed = kfp_runs["serving"] / version
    assert (pushed / "saved_model.pb").is_file() and (pushed / "variables").is_dir()
    record = json.loads((pushed / "assets.extra" / "push_record.json").read_text())
    assert record["version"] == int(version) and record["model_uri"] == model_uri
    edge = kfp_runs["serving"] / "edge" / version
    assert (edge / "model.tflite").stat().st_size > 10_000 and record["edge"] == str(edge)
    # The TF.js model too: converted and gated in Chromium inside the WebExport task's process.
    web = kfp_runs["serving"] / "web" / version
    assert (web / "model.json").is_file() and record["web"] == str(web)
    assert json.loads((web / "metadata.json").read_text())["blessed"] is True
    pusher = artifact(first, "AtomicPusher", "pushed_model")["metadata"]
    assert pusher["pushed"] == 1 and pusher["pushed_version"] == version


def test_the_window_drift_and_baseline_of_the_first_run(kfp_runs):
    first = kfp_runs["first"]
    # ExampleGen resolved the rolling window (4 spans) inside its own task.
    assert artifact(first, "SpanWindowCsvExampleGen", "examples")["metadata"]["spans"] == "4,5,6,7"
    drift = artifact(first, "DriftGate", "drift")["metadata"]
    assert drift["compared_spans"] == "6,7" and drift["drift_detected"] == 0
    baseline = artifact(first, "latest_blessed_model_resolver", "model")["metadata"]
    assert baseline["found"] == 0 and "no pushed version" in baseline["reason"]
    blessing = artifact(first, "Evaluator", "blessing")["metadata"]
    assert blessing["blessed"] == 1 and "baseline_model" not in blessing


def test_a_newer_span_is_compared_with_the_previous_one_and_the_first_model(kfp_runs):
    first, second = kfp_runs["first"], kfp_runs["second"]
    assert second["state"] == "succeeded" and second["run_id"] != first["run_id"]
    assert artifact(second, "SpanWindowCsvExampleGen", "examples")["metadata"]["spans"] == "5,6,7,8"
    assert artifact(second, "DriftGate", "drift")["metadata"]["compared_spans"] == "7,8"
    baseline = artifact(second, "latest_blessed_model_resolver", "model")
    assert baseline["metadata"]["found"] == 1
    assert baseline["metadata"]["pushed_version"] == int(first["versions"][0])
    assert baseline["metadata"]["source_model_uri"] == artifact(first, "Trainer", "model")["uri"]
    assert (Path(baseline["uri"]) / "Format-Serving" / "saved_model.pb").is_file()
    blessing = artifact(second, "Evaluator", "blessing")["metadata"]
    assert blessing["baseline_model"] == baseline["uri"]


def test_a_refused_model_pushes_nothing(kfp_runs):
    second = kfp_runs["second"]
    blessing = artifact(second, "Evaluator", "blessing")["metadata"]
    assert blessing["blessed"] == 0
    # Refused by the raised floor the --param carried, not by anything else.
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(artifact(second, "Evaluator", "evaluation")["uri"])
    failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
    assert any(f.metric_threshold.value_threshold.lower_bound.value == 0.999 for f in failures), failures
    pusher = artifact(second, "AtomicPusher", "pushed_model")["metadata"]
    assert pusher["pushed"] == 0
    assert second["versions"] == kfp_runs["first"]["versions"]


def test_nothing_lands_in_a_scheme_named_folder(kfp_runs):
    for top in (kfp_runs["tmp"], REPO):
        named = [
            os.path.join(folder, d)
            for folder, dirs, _ in os.walk(top)
            if ".venv" not in folder and ".git" not in folder
            for d in dirs
            if d in ("gs:", "taxi-bucket")
        ]
        assert named == [], named
