"""AtomicPusher executor.

TFX's filesystem Pusher copies the model straight into `<base>/<unix time>/`: a TF Serving
instance polling the folder can load a half-copied version, two pushes in one second collide,
and a clock set back yields a smaller version. Here the model is copied into a hidden staging
folder (TF Serving ignores names that are not integers) and renamed into place in one step,
and the version is max(unix time, newest existing version + 1). Every version carries a push
record (`assets.extra/push_record.json`: the version, the Model artifact it came from, when,
and its edge folder), written before the rename; `components.shared.read_push_records` reads
them back.

With an edge model (EdgeExport's output) that the edge gate blessed, the same version also
gets `<base>/edge/<version>/` (`model.tflite` and `metadata.json`), placed the same way, while
the SavedModel waits in its staging folder (so the record names the edge outcome). A refused
or failed edge push is recorded on the PushedModel (`edge_pushed` 0, `edge_reason`) and never
undoes or blocks the SavedModel's; an edge version whose SavedModel version then fails to be
placed is removed again. A TF.js model (WebExport's output) that the web gate blessed goes to
`<base>/web/<version>/` (model.json, weight shards, `encode.js`, `metadata.json`) by the same
rules (`web_pushed`, `web_reason`).

Every byte goes through TFX's `fileio`: the base directory and the artifacts may be bucket URIs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time

import tensorflow as tf
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, proto_utils

from components.edge_export import spec as edge_spec
from components.pusher import spec
from components.shared import PUSH_RECORD_FILE, existing_versions
from components.web_export import spec as web_spec

log = logging.getLogger(__name__)


def next_version(base_directory: str, now: float | None = None) -> int:
    """A version number greater than every existing one (the unix time when that suffices)."""
    versions = existing_versions(base_directory)
    candidate = int(time.time() if now is None else now)
    return max([candidate] + [v + 1 for v in versions])


def _remove(path: str) -> None:
    if fileio.exists(path):
        fileio.rmtree(path)


@contextlib.contextmanager
def _staging(base_directory: str, version: int):
    """An empty hidden folder `<base_directory>/.staging-<version>-<pid>`, removed if the block fails."""
    staging = os.path.join(base_directory, f".staging-{version}-{os.getpid()}")
    _remove(staging)
    fileio.makedirs(staging)
    try:
        yield staging
    except BaseException:
        _remove(staging)
        raise


def _place(staging: str, base_directory: str, version: int) -> str:
    """Rename `staging` to `<base_directory>/<version>` in one step, never over an existing version."""
    target = os.path.join(base_directory, str(version))
    try:
        fileio.rename(staging, target, overwrite=False)
    except tf.errors.AlreadyExistsError as error:
        raise FileExistsError(f"version {version} already exists under {base_directory}") from error
    return target


def atomic_copy_tree(source: str, base_directory: str, version: int) -> str:
    """Copy `source` to `<base_directory>/<version>` so that the final folder appears complete."""
    with _staging(base_directory, version) as staging:
        io_utils.copy_dir(source, staging)
        return _place(staging, base_directory, version)


def _write_push_record(
    version_folder: str, version: int, model_uri: str, edge: str | None, web: str | None = None
) -> None:
    record = {"version": version, "model_uri": model_uri, "pushed_at": time.time(), "edge": edge, "web": web}
    path = os.path.join(version_folder, PUSH_RECORD_FILE)
    fileio.makedirs(os.path.dirname(path))
    with fileio.open(path, "w") as handle:
        json.dump(record, handle, indent=2, sort_keys=True)


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
        model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
        version = next_version(base)
        target = os.path.join(base, str(version))
        with _staging(base, version) as staging:
            io_utils.copy_dir(self.GetModelPath(input_dict), staging)
            edge = web = None
            if input_dict.get(spec.EDGE_MODEL_KEY):
                edge_model = artifact_utils.get_single_instance(input_dict[spec.EDGE_MODEL_KEY])
                edge = push_edge_model(edge_model, base, version, target, model_push)
            if input_dict.get(spec.WEB_MODEL_KEY):
                web_model = artifact_utils.get_single_instance(input_dict[spec.WEB_MODEL_KEY])
                web = push_web_model(web_model, base, version, target, model_push)
            try:
                _write_push_record(staging, version, model.uri, edge, web)
                _place(staging, base, version)
            except BaseException:
                for beside in (edge, web):
                    if beside:
                        _remove(beside)  # No edge or web version without its SavedModel version.
                raise
        self._MarkPushed(model_push, pushed_destination=target, pushed_version=str(version))


def _push_beside(kind: str, artifact, copy, base: str, version: int, saved_model: str, model_push):
    """Write a blessed edge or web model to `<base>/<kind>/<version>/`; record the outcome on `model_push`.

    `copy(source, kind_base, version, saved_model)` places the files and returns the folder.

    Returns:
        The folder, or None when nothing was pushed (the reason is on `model_push`).
    """
    gate = edge_spec if kind == spec.EDGE_FOLDER else web_spec
    reason = None
    if not artifact.has_custom_property(gate.BLESSED_PROPERTY):
        reason = f"the {kind} model carries no {kind} gate verdict"
    elif artifact.get_int_custom_property(gate.BLESSED_PROPERTY) != 1:
        verdict = artifact.get_string_custom_property(gate.VERDICT_PROPERTY)
        reason = f"the {kind} gate refused it: {verdict}"
    target = None
    if reason is None:
        try:
            target = copy(artifact.uri, os.path.join(base, kind), version, saved_model)
        except (OSError, ValueError, KeyError, tf.errors.OpError) as error:
            reason = f"writing it failed: {error}"
    model_push.set_int_custom_property(f"{kind}_pushed", int(target is not None))
    if target is None:
        model_push.set_string_custom_property(f"{kind}_reason", reason)
        log.error(
            "%s model NOT pushed (the SavedModel version %s is): %s", kind.capitalize(), version, reason
        )
        return None
    model_push.set_string_custom_property(f"{kind}_destination", target)
    return target


def push_edge_model(edge_model, base: str, version: int, saved_model: str, model_push) -> str | None:
    """A blessed edge model to `<base>/edge/<version>/` (see `_push_beside`)."""
    return _push_beside(
        spec.EDGE_FOLDER, edge_model, _copy_edge_model, base, version, saved_model, model_push
    )


def _copy_edge_model(source: str, edge_base: str, version: int, saved_model: str) -> str:
    """`model.tflite` and its metadata (with the version) into `<edge_base>/<version>/`, atomically."""
    with fileio.open(os.path.join(source, edge_spec.MODEL_FILE_NAME), "rb") as handle:
        flatbuffer = handle.read()
    with fileio.open(os.path.join(source, edge_spec.METADATA_FILE_NAME)) as handle:
        metadata = json.load(handle)
    if metadata.get("bytes") != len(flatbuffer):
        raise ValueError(
            f"{source}: {edge_spec.MODEL_FILE_NAME} holds {len(flatbuffer)} bytes, "
            f"its metadata says {metadata.get('bytes')}"
        )
    metadata.update({"version": version, "saved_model": saved_model})
    with _staging(edge_base, version) as staging:
        with fileio.open(os.path.join(staging, edge_spec.MODEL_FILE_NAME), "wb") as handle:
            handle.write(flatbuffer)
        with fileio.open(os.path.join(staging, edge_spec.METADATA_FILE_NAME), "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        return _place(staging, edge_base, version)


def push_web_model(web_model, base: str, version: int, saved_model: str, model_push) -> str | None:
    """A blessed TF.js model to `<base>/web/<version>/` (see `_push_beside`)."""
    return _push_beside(spec.WEB_FOLDER, web_model, _copy_web_model, base, version, saved_model, model_push)


def _copy_web_model(source: str, web_base: str, version: int, saved_model: str) -> str:
    """The model files its metadata lists (size and sha256 checked), encoder and metadata, atomically."""
    with fileio.open(os.path.join(source, web_spec.METADATA_FILE_NAME)) as handle:
        metadata = json.load(handle)
    metadata.update({"version": version, "saved_model": saved_model})
    with _staging(web_base, version) as staging:
        for name, expected in sorted(metadata["files"].items()):
            with fileio.open(os.path.join(source, name), "rb") as handle:
                data = handle.read()
            if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
                raise ValueError(
                    f"{source}/{name} is not the file the web gate passed (size or sha256 differs)"
                )
            with fileio.open(os.path.join(staging, name), "wb") as handle:
                handle.write(data)
        fileio.copy(
            os.path.join(source, web_spec.ENCODER_FILE_NAME),
            os.path.join(staging, web_spec.ENCODER_FILE_NAME),
        )
        with fileio.open(os.path.join(staging, web_spec.METADATA_FILE_NAME), "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        return _place(staging, web_base, version)
