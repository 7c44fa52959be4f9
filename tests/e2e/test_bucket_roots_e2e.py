"""The whole pipeline with its roots on a non-local file system, as on Kubeflow, in one process.

On Kubeflow the pipeline root, the data root and the serving directory are bucket URIs. The
TensorFlow here cannot reach a GCS emulator, so this runs the real pipeline (LocalDagRunner,
in-memory DirectRunner) with all three on TensorFlow's in-memory `ram://` file system, which
`tf.io.gfile` and TFX's `fileio` resolve, and Beam through `tests/ram_filesystem.py`. Only the
ML Metadata store (a SQLite file, not a root) and the staged schema are local.

A component that treats an artifact URI as a local path fails here, or writes a folder named
`ram:` on local disk: the run must push a model under the ram:// serving directory that loads
and predicts from there, keep every artifact under the ram:// pipeline root, and leave no
`ram:` (or `gs:`) folder anywhere local.

What only a real bucket shows: credentials and permissions, eventual consistency, latency and
throughput, and file-system code outside this process (Beam workers in other processes, the
TFJob's pods): `ram://` lives in this process only.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest
import ram_filesystem  # Importing it registers ram:// with Beam.
import tensorflow as tf
from e2e_support import serialize
from pipeline_nodes import PIPELINE_NODE_IDS

from data import embedded
from pipeline.config import PipelineConfig
from pipeline.local_runner import build, run_pipeline
from pipeline.ops.run_history import load_report

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
LOCAL_URI_FOLDERS = ("ram:", "gs:")
# Artifacts that must lie under the ram:// pipeline root: node id -> output key.
ARTIFACTS = {
    "SpanWindowCsvExampleGen": "examples",
    "StatisticsGen": "statistics",
    "Transform": "transform_graph",
    "Trainer": "model",
    "Evaluator": "evaluation",
}


def local_uri_folders(*tops: Path) -> list[str]:
    """Folders named `ram:` or `gs:` below `tops`: what `os`/`open` make of a URI."""
    found = set()
    for top in tops:
        for folder, subfolders, _ in os.walk(top):
            found.update(os.path.join(folder, s) for s in subfolders if s in LOCAL_URI_FOLDERS)
    return sorted(found)


def copy_spans(local: Path, data_root: str) -> list[int]:
    """The embedded spans as `make run` writes them locally, copied to `data_root` by tf.io.gfile."""
    spans = embedded.materialize_spans(local)
    for span in spans:
        tf.io.gfile.makedirs(f"{data_root}/span-{span}")
        tf.io.gfile.copy(
            str(local / f"span-{span}" / embedded.SPAN_FILE_NAME),
            f"{data_root}/span-{span}/{embedded.SPAN_FILE_NAME}",
        )
    return spans


@pytest.fixture(scope="module")
def bucket_run(tmp_path_factory):
    local = tmp_path_factory.mktemp("bucket-roots")
    bucket = f"ram://taxi-{uuid.uuid4().hex[:8]}"
    tops = (Path.cwd(), REPO, Path(tempfile.gettempdir()), local)
    before = local_uri_folders(*tops)
    config = PipelineConfig(root=local / "root", data_root=f"{bucket}/data", artifact_root=bucket)
    copy_spans(local / "spans", config.span_data_root)
    with ram_filesystem.bucket_renames():  # a folder rename moves its files, as on gs://
        run_pipeline(build(config))
    yield {
        "config": config,
        "bucket": bucket,
        "local": local,
        "tops": tops,
        "before": before,
        "report": load_report(config.metadata_path),
    }
    ram_filesystem.remove_tree(bucket)  # ram:// lives as long as the process


def test_roots_are_the_bucket_and_metadata_is_local(bucket_run):
    config = bucket_run["config"]
    assert config.pipeline_root == f"{bucket_run['bucket']}/pipeline"
    assert config.serving_dir == f"{bucket_run['bucket']}/serving/big_tipper"
    assert config.metadata_path.is_file() and bucket_run["local"] in config.metadata_path.parents


def test_every_node_ran(bucket_run):
    report = bucket_run["report"]
    states = {n.node_id: n.state for n in report.nodes}
    assert set(states) == set(PIPELINE_NODE_IDS) and set(states.values()) == {"ran"}, states
    assert report.spans == "5,6,7,8"
    assert report.blessed and report.gate_blessed


def test_the_run_summary_reads_its_figures_from_the_bucket(bucket_run):
    """What `run` prints: the Evaluator's metrics and both gates' checks, read from ram://."""
    report = bucket_run["report"]
    assert report.overall["auc"] >= 0.9 and report.slices
    assert {c["name"] for c in report.gate_checks} >= {"metrics"}
    assert report.edge_checks


def test_the_model_is_pushed_under_the_ram_serving_dir(bucket_run):
    report, serving = bucket_run["report"], bucket_run["config"].serving_dir
    assert report.pushed_new_version
    assert report.pushed_path == f"{serving}/{report.pushed_version}"
    assert report.pushed_version in tf.io.gfile.listdir(serving)
    assert tf.io.gfile.exists(f"{report.pushed_path}/saved_model.pb")
    # The Pusher copies to a staging folder and renames it: nothing of it is left behind.
    left = [path for path, _ in ram_filesystem.entries_below(serving) if "/.staging" in path]
    assert left == []


def test_the_pushed_model_loads_from_ram_and_predicts(bucket_run):
    report = bucket_run["report"]
    trips = pd.read_csv(bucket_run["local"] / "spans" / "span-8" / embedded.SPAN_FILE_NAME).head(20)
    model = tf.saved_model.load(report.pushed_path)
    examples = tf.constant([serialize(row) for _, row in trips.iterrows()])
    probabilities = model.signatures["serving_default"](examples=examples)["probabilities"].numpy()
    assert probabilities.shape == (len(trips), 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all() and probabilities.std() > 0


def test_the_edge_model_is_pushed_beside_it_when_blessed(bucket_run):
    report, serving = bucket_run["report"], bucket_run["config"].serving_dir
    edge = f"{serving}/edge/{report.pushed_version}"
    assert report.edge_blessed is not None  # the edge gate judged the int8 model
    assert report.edge_pushed == report.edge_blessed, report.edge_reason
    assert tf.io.gfile.exists(edge) == report.edge_blessed
    if report.edge_blessed:
        assert report.edge_path == edge
        assert "model.tflite" in tf.io.gfile.listdir(edge)


def test_artifacts_are_under_the_ram_pipeline_root(bucket_run):
    pipeline_root = bucket_run["config"].pipeline_root
    outputs = {n.node_id: n.outputs for n in bucket_run["report"].nodes}
    for node_id, key in ARTIFACTS.items():
        [artifact] = outputs[node_id][key]
        assert artifact.uri.startswith(f"{pipeline_root}/{node_id}/"), artifact.uri
        assert tf.io.gfile.listdir(artifact.uri), f"{node_id}'s {key} is empty: {artifact.uri}"


def test_nothing_was_written_to_a_local_ram_or_gs_folder(bucket_run):
    assert local_uri_folders(*bucket_run["tops"]) == bucket_run["before"]
    local_files = {p.relative_to(bucket_run["local"]).parts[0] for p in bucket_run["local"].rglob("*")}
    assert local_files == {"root", "spans"}
    root_files = {p.name for p in (bucket_run["local"] / "root").iterdir()}
    assert root_files == {"metadata", "schema"}, root_files
