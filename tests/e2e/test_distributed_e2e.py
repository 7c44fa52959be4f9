"""Distributed training on CPU, for real: two logical devices, two worker processes, a restart.

MirroredStrategy over 2 logical CPU devices, two MultiWorkerMirroredStrategy processes on
loopback, and a killed worker resuming from its backup.

A pipeline run (default window) provides the Transform graph and the examples; each training
runs the project's `run_fn` in its own process (`instrumented_train_worker.py`), as a Trainer pod would.
Quality is judged by the serving gate's own replay of the eval split.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK
from pipeline.ops.run import run_command
from pipeline.ops.run_history import load_report
from serving import gate_checks
from serving.replay_data import load_replay_examples

pytestmark = pytest.mark.e2e

WORKER = Path(__file__).with_name("instrumented_train_worker.py")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    config = PipelineConfig(root=root)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert run_command(config) == EXIT_OK
    report = load_report(config.metadata_path)
    outputs = {node.node_id: node.outputs for node in report.nodes}
    examples = outputs["SpanWindowCsvExampleGen"]["examples"][0].uri
    return {
        "root": root,
        "transform_output": outputs["Transform"]["transform_graph"][0].uri,
        "train_files": [f"{examples}/Split-train/*"],
        "eval_files": [f"{examples}/Split-eval/*"],
        "eval_examples": load_replay_examples(examples),
        "single_device_auc": report.overall["auc"],
    }


def spec_file(trained, folder: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "transform_output": trained["transform_output"],
        "train_files": trained["train_files"],
        "eval_files": trained["eval_files"],
        "serving_model_dir": str(folder / "serving"),
        "model_run_dir": str(folder / "model_run"),
        "train_steps": 400,
        **extra,
    }
    path = folder / f"spec-{len(list(folder.glob('spec-*.json')))}.json"
    path.write_text(json.dumps(spec))
    return path


def start(spec: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(process: subprocess.Popen, timeout: int = 400) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def served_auc(trained, model_dir: Path) -> float:
    verdict = gate_checks.run_checks(str(model_dir), trained["eval_examples"])
    assert verdict.blessed, verdict.format()
    return {c.name: c for c in verdict.checks}["metrics"].figures["serving_default"]["auc"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_mirrored_over_two_logical_cpus_reaches_the_single_device_bar(trained, tmp_path):
    spec = spec_file(trained, tmp_path, logical_cpus=2, custom_config={"strategy": "mirrored"})
    status, out, err = finish(start(spec))
    assert status == 0, err[-3000:]
    assert "training with MirroredStrategy (mirrored) on 2 replica(s)" in err
    auc = served_auc(trained, tmp_path / "serving")
    assert auc >= 0.90 and auc >= trained["single_device_auc"] - 0.01, (auc, trained["single_device_auc"])


def test_two_workers_train_one_model_and_only_the_chief_exports(trained, tmp_path):
    ports = [free_port(), free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = []
    for index in range(2):
        spec = spec_file(trained, tmp_path, train_steps=200)
        scratch = tmp_path / f"tmp-{index}"
        scratch.mkdir()
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append((start(spec, {"TF_CONFIG": tf_config, "TMPDIR": str(scratch)}), scratch))
    results = [finish(process) for process, _ in workers]
    for status, _, err in results:
        assert status == 0, err[-3000:]
        assert "training with MultiWorkerMirroredStrategy (multi_worker) on 2 replica(s)" in err
    assert [p.name for p in (tmp_path / "serving").iterdir()].count("saved_model.pb") == 1
    assert not [p for p in (tmp_path / "tmp-1").iterdir() if p.name.startswith("worker-")]  # cleaned up
    assert served_auc(trained, tmp_path / "serving") >= 0.90


def test_a_killed_worker_resumes_from_its_backup(trained, tmp_path):
    status, out, _ = finish(start(spec_file(trained, tmp_path, kill_after_epoch=2)))
    assert status == 137 and "KILLED after epoch 2" in out
    assert (tmp_path / "model_run" / "backup").is_dir()
    assert not (tmp_path / "serving").exists()
    status, out, err = finish(start(spec_file(trained, tmp_path)))
    assert status == 0, err[-3000:]
    epochs = [int(line.split()[1]) for line in out.splitlines() if line.startswith("EPOCH ")]
    assert epochs == [3, 4, 5]  # resumed after the two finished epochs, not from scratch
    assert "DONE" in out
    backup = tmp_path / "model_run" / "backup"
    assert not [p for p in backup.rglob("*") if p.is_file()]  # Keras deletes the backup after training
    assert served_auc(trained, tmp_path / "serving") >= 0.90
