"""Model folders: the SavedModel behind the folders people point at.

A command's `--model` (or `--reference`), the monitor's lookup of a pushed version and the
benchmarks may name a SavedModel folder, a Trainer's Model artifact (its serving folder
inside) or a serving base directory of integer versions (TensorFlow Serving's layout,
`serving/versions.py`); `resolve_model_dir` finds the SavedModel in each.
"""

from __future__ import annotations

import os
from pathlib import Path

from tfx.utils import path_utils


def resolve_model_dir(path: str | os.PathLike) -> Path:
    """The SavedModel folder behind `path`.

    Accepts a SavedModel folder, a Trainer Model artifact (its serving folder), or a serving
    base directory of integer versions (the newest is taken).

    Raises:
        FileNotFoundError: when none of these is there.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    trainer_folder = Path(path_utils.serving_model_dir(str(path)))  # a Trainer's Model artifact
    if (trainer_folder / "saved_model.pb").is_file():
        return trainer_folder
    if path.is_dir():
        versions = sorted(
            int(p.name) for p in path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
        )
        if versions:
            return path / str(versions[-1])
    raise FileNotFoundError(
        f"no SavedModel at {path}: expected saved_model.pb there, in {trainer_folder.name}/, "
        "or in integer version folders"
    )
