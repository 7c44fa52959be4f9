"""AtomicPusher executor.

TFX's filesystem Pusher copies the model straight into `<base>/<unix time>/`: a TF Serving
instance polling the folder can load a half-copied version, two pushes in one second collide,
and a clock set back yields a smaller version. Here the model is copied into a hidden staging
folder (TF Serving ignores names that are not integers) and renamed into place in one step,
and the version is max(unix time, newest existing version + 1).
"""

from __future__ import annotations

import os
import shutil
import time

from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils


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
