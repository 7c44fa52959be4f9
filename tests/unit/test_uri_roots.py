"""Roots on a file system other than the local disk (a bucket), as `PipelineConfig` and the checks see them.

The run itself on such roots is tests/e2e/test_bucket_roots_e2e.py; here the config keeps a
URI as it is, and the pre-flight checks read a URI data root through `fileio` (on ram://,
TensorFlow's in-memory file system) instead of the local disk.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import ram_filesystem
import tensorflow as tf

from pipeline.config import ConfigError, PipelineConfig
from pipeline.local_runner import check_arguments, preflight


@pytest.fixture
def bucket():
    path = f"ram://roots-{uuid.uuid4().hex[:8]}"
    yield path
    ram_filesystem.remove_tree(path)


def test_uris_stay_uris_and_the_metadata_store_stays_local(tmp_path):
    config = PipelineConfig(root=tmp_path, data_root="gs://b/feed", artifact_root="gs://b/taxi/")
    assert config.span_data_root == "gs://b/feed" and not config.uses_embedded_data
    assert config.pipeline_root == "gs://b/taxi/pipeline"
    assert config.serving_dir == "gs://b/taxi/serving/big_tipper"
    assert config.metadata_path == tmp_path / "metadata" / "metadata.db"
    local = PipelineConfig(root=tmp_path, artifact_root="elsewhere")  # a folder: made absolute
    assert local.pipeline_root == Path("elsewhere").absolute() / "pipeline"


def test_a_uri_data_root_is_read_through_fileio(tmp_path, bucket):
    for span in (2, 3):
        with tf.io.gfile.GFile(f"{bucket}/data/span-{span}/data.csv", "w") as handle:
            handle.write("a,b\n1,2\n")
    config = PipelineConfig(root=tmp_path, data_root=f"{bucket}/data", artifact_root=bucket)
    assert check_arguments(config) == [2, 3]
    assert preflight(config).startswith(
        f"Pre-flight OK: root {tmp_path} writable; artifacts {bucket}; data {bucket}/data, spans 2,3"
    )
    with pytest.raises(ConfigError, match=rf"--data-root {bucket}/none: no such folder"):
        check_arguments(PipelineConfig(root=tmp_path, data_root=f"{bucket}/none"))


def test_a_file_system_that_does_not_answer_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"--data-root nosuch://feed: .*nosuch"):
        check_arguments(PipelineConfig(root=tmp_path, data_root="nosuch://feed"))
    config = PipelineConfig(root=tmp_path, artifact_root="nosuch://taxi")
    with pytest.raises(ConfigError, match=r"artifact_root nosuch://taxi: .*nosuch"):
        preflight(config)
