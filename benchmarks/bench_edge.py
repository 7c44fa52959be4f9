"""The edge model's cost and quality: TFLite float32 / float16 / int8 against the SavedModel.

Converts the pushed model's `serving_raw` signature (`models.edge.convert`, builtin ops only;
int8 calibrated on 100 seeded trips of the training split), then prints for each: size
(the SavedModel's variables for it), single-example latency p50/p99 (the TFLite variants in
the standalone edge runtime, `.venv-edge`, a process without TensorFlow; the SavedModel's
signature in this process), accuracy and AUC on the eval split, and the largest and mean
difference from the SavedModel's answers.

The splits are those of the newest ExampleGen output under the root (the pushed model's
run, after `make run`). Usage: `python benchmarks/bench_edge.py [--root runs/default]
[--examples N]`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_gate import newest_examples_dir  # noqa: E402  (this folder: run as a script)

from models.edge import VARIANTS, convert, representative_trips  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from serving.gate_checks import accuracy, auc  # noqa: E402
from serving.model_dirs import resolve_model_dir  # noqa: E402
from serving.replay_data import examples_to_raw, labels_of, load_replay_examples  # noqa: E402
from serving.request_checks import raw_input_specs  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EDGE_PYTHON = REPO / ".venv-edge" / "bin" / "python"
EDGE_RUNNER = REPO / "tests" / "edge_runner.py"


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _percentiles(ms: np.ndarray) -> str:
    return f"{np.percentile(ms, 50):7.3f} {np.percentile(ms, 99):7.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/default", help="a run root with a pushed model")
    parser.add_argument("--examples", type=int, default=None, help="first N eval trips (default: all)")
    args = parser.parse_args()
    if not EDGE_PYTHON.exists():
        raise SystemExit("no edge venv: `make setup` builds .venv-edge")
    config = PipelineConfig(root=args.root)
    model_dir = resolve_model_dir(config.serving_dir)
    raw_fn = tf.saved_model.load(str(model_dir)).signatures["serving_raw"]
    specs = raw_input_specs(raw_fn)
    examples_dir = newest_examples_dir(config)

    def split_raw(split: str):
        examples = load_replay_examples(examples_dir, split)
        return examples, examples_to_raw(examples, specs)

    representative = representative_trips(split_raw("train")[1])
    examples, raw = split_raw("eval")
    examples = examples[: args.examples]
    raw = {k: v[: args.examples] for k, v in raw.items()}
    labels = labels_of(examples)
    expected = raw_fn(**{k: tf.constant(v) for k, v in raw.items()})["probabilities"].numpy().ravel()

    single = {k: [tf.constant(v[i : i + 1]) for i in range(len(examples))] for k, v in raw.items()}
    times = []
    for i in range(len(examples)):
        started = time.perf_counter()
        raw_fn(**{k: v[i] for k, v in single.items()})
        times.append(time.perf_counter() - started)
    rows = [
        (
            "SavedModel (in process)",
            _folder_bytes(model_dir / "variables"),
            np.asarray(times) * 1000,
            expected,
        )
    ]
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        np.savez(scratch / "inputs.npz", **raw)
        for variant in VARIANTS:
            flatbuffer = convert(str(model_dir), variant, representative if variant == "int8" else None)
            path = scratch / f"{variant}.tflite"
            path.write_bytes(flatbuffer)
            out = scratch / f"{variant}.npz"
            subprocess.run(
                [str(EDGE_PYTHON), str(EDGE_RUNNER), str(path), str(scratch / "inputs.npz"), str(out)],
                check=True,
            )
            answers = np.load(out)
            rows.append(
                (
                    f"TFLite {variant} (edge runtime)",
                    len(flatbuffer),
                    answers["single_ms"],
                    answers["single"].ravel(),
                )
            )

    print(f"eval split: {len(examples)} trips, one example a call")
    header = ("bytes", "p50 ms", "p99 ms", "accuracy", "AUC", "max diff", "mean diff")
    widths = (9, 7, 7, 8, 7, 8, 9)
    print(f"{'model':30} " + " ".join(f"{h:>{w}}" for h, w in zip(header, widths)))
    for name, size, ms, scores in rows:
        diff = np.abs(scores - expected)
        quality = f"{accuracy(labels, scores):8.4f} {auc(labels, scores):7.4f}"
        print(f"{name:30} {size:9,d} {_percentiles(ms)} {quality} {diff.max():8.4f} {diff.mean():9.5f}")
    float32, int8 = rows[1][1], rows[3][1]
    print(f"int8 / float32 size: {int8 / float32:.3f}")


if __name__ == "__main__":
    main()
