"""AtomicPusher executor.

TFX's filesystem Pusher copies the model straight into `<base>/<unix time>/`: a TF Serving
instance polling the folder can load a half-copied version, two pushes in one second collide,
and a clock set back yields a smaller version. Here the model is copied into a hidden staging
folder (TF Serving ignores names that are not integers) and renamed into place in one step,
and the version is max(unix time, newest existing version + 1).

With an edge model (EdgeExport's output) that the edge gate blessed, the same version also
gets `<base>/edge/<version>/` (`model.tflite` and `metadata.json`), placed the same way. A
refused or failed edge push is recorded on the PushedModel (`edge_pushed` 0, `edge_reason`)
and never undoes or blocks the SavedModel's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time

from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components.edge_export import spec as edge_spec
from components.pusher import spec

log = logging.getLogger(__name__)


def existing_versions(base_directory: str) -> list[int]:
    """Integer version folders under `base_directory`, ascending."""
    if not os.path.isdir(base_directory):
        return []
    return sorted(int(name) for name in os.listdir(base_directory) if name.isdigit())


def next_version(base_directory: str, now: float | None = None) -> int:
    """A version number greater than every existing one (the unix time when that suffices)."""
    versions = existing_versions(base_directory)
    candidate = int(time.time() if now is None else now)
    return max([candidate] + [v + 1 for v in versions])


def atomic_copy_tree(source: str, base_directory: str, version: int) -> str:
    """Copy `source` to `<base_directory>/<version>` so that the final folder appears complete."""
    os.makedirs(base_directory, exist_ok=True)
    target = os.path.join(base_directory, str(version))
    staging = os.path.join(base_directory, f".staging-{version}-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    try:
        os.rename(staging, target)  # Fails rather than overwrite an existing version.
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


class Executor(tfx_pusher_executor.Executor):
    """Pushes a blessed model to `<base_directory>/<version>/` atomically."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise ValueError("AtomicPusher pushes to a filesystem destination only")
        base = destination.filesystem.base_directory
        version = next_version(base)
        target = atomic_copy_tree(self.GetModelPath(input_dict), base, version)
        self._MarkPushed(model_push, pushed_destination=target, pushed_version=str(version))
        if input_dict.get(spec.EDGE_MODEL_KEY):
            edge_model = artifact_utils.get_single_instance(input_dict[spec.EDGE_MODEL_KEY])
            push_edge_model(edge_model, base, version, target, model_push)


def push_edge_model(edge_model, base: str, version: int, saved_model: str, model_push) -> str | None:
    """Write a blessed edge model to `<base>/edge/<version>/`; record the outcome on `model_push`.

    Returns:
        The edge folder, or None when nothing was pushed (the reason is on `model_push`).
    """
    reason = None
    if not edge_model.has_custom_property(edge_spec.BLESSED_PROPERTY):
        reason = "the edge model carries no edge gate verdict"
    elif edge_model.get_int_custom_property(edge_spec.BLESSED_PROPERTY) != 1:
        verdict = edge_model.get_string_custom_property(edge_spec.VERDICT_PROPERTY)
        reason = f"the edge gate refused it: {verdict}"
    target = None
    if reason is None:
        try:
            target = _copy_edge_model(
                edge_model.uri, os.path.join(base, spec.EDGE_FOLDER), version, saved_model
            )
        except (OSError, ValueError) as error:
            reason = f"writing it failed: {error}"
    model_push.set_int_custom_property(spec.EDGE_PUSHED_PROPERTY, int(target is not None))
    if target is None:
        model_push.set_string_custom_property(spec.EDGE_REASON_PROPERTY, reason)
        log.error("Edge model NOT pushed (the SavedModel version %s is): %s", version, reason)
        return None
    model_push.set_string_custom_property(spec.EDGE_DESTINATION_PROPERTY, target)
    return target


def _copy_edge_model(source: str, edge_base: str, version: int, saved_model: str) -> str:
    """`model.tflite` and its metadata (with the version) into `<edge_base>/<version>/`, atomically."""
    with open(os.path.join(source, edge_spec.MODEL_FILE_NAME), "rb") as handle:
        flatbuffer = handle.read()
    with open(os.path.join(source, edge_spec.METADATA_FILE_NAME)) as handle:
        metadata = json.load(handle)
    if metadata.get("bytes") != len(flatbuffer):
        raise ValueError(
            f"{source}: {edge_spec.MODEL_FILE_NAME} holds {len(flatbuffer)} bytes, "
            f"its metadata says {metadata.get('bytes')}"
        )
    metadata.update({"version": version, "saved_model": saved_model})
    os.makedirs(edge_base, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=edge_base, prefix=".assembling-") as assembling:
        folder = os.path.join(assembling, str(version))
        os.makedirs(folder)
        with open(os.path.join(folder, edge_spec.MODEL_FILE_NAME), "wb") as handle:
            handle.write(flatbuffer)
        with open(os.path.join(folder, edge_spec.METADATA_FILE_NAME), "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        return atomic_copy_tree(folder, edge_base, version)
