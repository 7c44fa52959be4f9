"""One training process of a multi-worker Trainer: `python -m models.train_worker SPEC.json`.

A TFJob's pods run this (see `components/tfjob_trainer/kubernetes.py`): the TFJob-submitting
Trainer writes the FnArgs it would have passed to `run_fn` as JSON next to its outputs, and
every worker calls the same `run_fn` with them; the Training Operator sets each pod's TF_CONFIG, so
`models.distribution` picks MultiWorkerMirroredStrategy and only the chief exports.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# The spec's fields, as FnArgs names them.
SPEC_FIELDS = (
    "train_files",
    "eval_files",
    "transform_output",
    "serving_model_dir",
    "model_run_dir",
    "train_steps",
    "eval_steps",
    "custom_config",
    "base_model",
)


def fn_args_spec(fn_args) -> dict:
    """The JSON-able part of a FnArgs that `run_fn` reads."""
    return {name: getattr(fn_args, name, None) for name in SPEC_FIELDS}


def load_spec(path: str) -> dict:
    """Read a worker spec (a local path or a bucket URI TensorFlow can open)."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path) as handle:
        spec = json.load(handle)
    missing = [
        f
        for f in ("train_files", "transform_output", "serving_model_dir", "model_run_dir")
        if not spec.get(f)
    ]
    if missing:
        raise ValueError(f"worker spec {path} lacks {missing}")
    return spec


def run(spec: dict) -> None:
    """Call the project's `run_fn` with the spec's FnArgs."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from models import trainer

    trainer.run_fn(FnArgs(**{name: spec.get(name) for name in SPEC_FIELDS if spec.get(name) is not None}))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m models.train_worker SPEC.json", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("models").setLevel(logging.INFO)
    run(load_spec(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
