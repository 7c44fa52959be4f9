"""Pieces more than one component uses: errors, split files, EdgeModel, WebModel, push records.

TFX keeps shared types in `tfx/types` and helpers in `tfx/components/util`, never in another
component's executor; this module is that home for our components (and for `pipeline/ops`,
which tells a data-gate stop from a failure by `DataAnomalyError`). Every artifact byte goes
through TFX's `fileio`, so a bucket URI (Kubeflow's `gs://`) works as a local path does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import sys

from tfx.dsl.io import fileio
from tfx.types import artifact, artifact_utils

# Written by the AtomicPusher into every version it pushes, before the version is renamed into
# place: which Model artifact it came from (Kubeflow's baseline resolver reads it). TF Serving
# ignores `assets.extra/`.
PUSH_RECORD_FILE = os.path.join("assets.extra", "push_record.json")


class DataAnomalyError(RuntimeError):
    """The data does not match the curated schema, or a span is unreadable.

    The run stops before Transform; ExampleGen's span checks and the AnomalyGate raise it.
    """


class EdgeModel(artifact.Artifact):
    """A TFLite flatbuffer (`model.tflite`) with the edge gate's verdict and its metadata.

    Written by EdgeExport, read by the Pusher.
    """

    # KFP v2 carries a custom type by its name (the schema title, `<lowercase>.<Name>`, one
    # dot: TFX's compiler checks it), and TFX's container entrypoint imports the class by that
    # name: `components.EdgeModel` is this class, re-exported by the `components` package.
    TYPE_NAME = "components.EdgeModel"


class WebModel(artifact.Artifact):
    """A TensorFlow.js graph model (`model.json`, weight shards) with the web gate's verdict and metadata.

    Written by WebExport, read by the Pusher. Its type name follows EdgeModel's rule.
    """

    TYPE_NAME = "components.WebModel"


def release_free_memory() -> None:
    """Hand the memory earlier stages freed back to the operating system.

    LocalDagRunner runs every component in one process, and the allocators keep what a stage
    freed: Arrow's jemalloc pool its dirty pages, glibc's heap its freed chunks. Each stage
    would then start from the largest footprint any stage before it reached, and the run's
    peak would add them up (`make bench-scale` prints each stage's peak; benchmarks/README.md
    says what this takes off). Nothing live is touched. A no-op where there is no
    glibc (macOS) and for an allocator not loaded yet.
    """
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _glibc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _glibc()


def releases_memory(do):
    """Decorate an executor's `Do`: `release_free_memory()` before it runs and after it returns."""

    @functools.wraps(do)
    def wrapped(self, *args, **kwargs):
        release_free_memory()
        try:
            return do(self, *args, **kwargs)
        finally:
            release_free_memory()

    return wrapped


def split_files(examples_artifact, split: str) -> list[str]:
    """The TFRecord files of one split of an Examples artifact (local or bucket URIs alike).

    Raises:
        FileNotFoundError: the split's folder holds no file.
    """
    folder = artifact_utils.get_split_uri([examples_artifact], split)
    files = sorted(os.path.join(folder, name.rstrip("/")) for name in fileio.listdir(folder))
    if not files:
        raise FileNotFoundError(f"split '{split}' of {examples_artifact.uri} holds no files")
    return files


def existing_versions(base_directory: str) -> list[int]:
    """Integer version folders under `base_directory` (TF Serving's model base path), ascending."""
    if not fileio.isdir(base_directory):
        return []
    # A bucket lists its folders with a trailing slash.
    names = (name.rstrip("/") for name in fileio.listdir(base_directory))
    return sorted(int(name) for name in names if name.isdigit())


def read_push_records(base_directory: str) -> list[dict]:
    """The push record of every version under `base_directory`, ascending by version.

    Each is `{"version": int, "model_uri": str, "pushed_at": float (unix seconds), "edge": str
    or None}`, as the AtomicPusher wrote it; versions without a record (pushed by another
    pusher) are left out.
    """
    records = []
    for version in existing_versions(base_directory):
        path = os.path.join(base_directory, str(version), PUSH_RECORD_FILE)
        if fileio.exists(path):
            with fileio.open(path) as handle:
                records.append(json.load(handle))
    return records


# Set on the `model` output of a PushedModelResolver (components/resolver): 1 when it holds a
# pushed model, 0 when none qualified (the first run).
MODEL_FOUND_PROPERTY = "found"


def model_found(model_artifact) -> bool:
    """False only for a resolver's Model output that says it holds no model."""
    if not model_artifact.has_custom_property(MODEL_FOUND_PROPERTY):
        return True
    return model_artifact.get_int_custom_property(MODEL_FOUND_PROPERTY) == 1
