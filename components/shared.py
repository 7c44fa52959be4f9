"""Pieces more than one component uses: the data gate's error, split files, the EdgeModel type.

TFX keeps shared types in `tfx/types` and helpers in `tfx/components/util`, never in another
component's executor; this module is that home for our components (and for `pipeline/ops`,
which tells a data-gate stop from a failure by `DataAnomalyError`).
"""

from __future__ import annotations

import os

from tfx.dsl.io import fileio
from tfx.types import artifact, artifact_utils


class DataAnomalyError(RuntimeError):
    """The data does not match the curated schema, or a span is unreadable.

    The run stops before Transform; ExampleGen's span checks and the AnomalyGate raise it.
    """


class EdgeModel(artifact.Artifact):
    """A TFLite flatbuffer (`model.tflite`) with the edge gate's verdict and its metadata.

    Written by EdgeExport, read by the Pusher.
    """

    # KFP v2 names a custom artifact type `<namespace>.<Name>` (its schema title).
    TYPE_NAME = "taxi.EdgeModel"


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
