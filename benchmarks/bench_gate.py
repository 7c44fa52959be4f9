"""What the serving gate costs, and how much of it the batch_invariance check adds.

Runs the gate's checks (`serving.gate_checks.run_checks`, as the ServingGate executor does) on a
pushed model against the eval split of the ExampleGen output it was trained with, several
times, and prints the medians: the whole gate, the batch_invariance check alone, and the
largest difference it saw between two batchings of one example.

Usage: `python benchmarks/bench_gate.py [--root runs/default] [--repeat 5]` after `make run`.
`--pass-batch-sizes 1024,16384` also times one in-order pass over every example through each
signature in batches of each size (what the replay batch size costs at volume).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from models.signatures import RAW_SIGNATURE, SERVING_SIGNATURE  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from serving import gate_checks, replay_data, request_checks, signature_replay, versions  # noqa: E402


def newest_examples_dir(config: PipelineConfig) -> Path:
    """The newest ExampleGen output under a run root (the pushed model's run after `make run`)."""
    return sorted((Path(config.pipeline_root) / "SpanWindowCsvExampleGen" / "examples").iterdir())[-1]


def time_passes(model_dir: Path, examples: list[bytes], sizes: list[int], repeat: int) -> None:
    """Median seconds of one in-order replay pass through each signature, per batch size.

    The gate's own callers and replay (`serving.signature_replay`), timed alone.
    """
    model = tf.saved_model.load(str(model_dir))
    serialized = np.array(examples, dtype=object)
    specs = request_checks.raw_input_specs(model.signatures[RAW_SIGNATURE])
    callers = {
        SERVING_SIGNATURE: signature_replay.serialized_caller(model, serialized),
        RAW_SIGNATURE: signature_replay.raw_caller(
            model, specs, replay_data.examples_to_raw(serialized, specs)
        ),
    }
    for size in sizes:
        batches = signature_replay.chunks(np.arange(len(serialized)), size)
        cells = []
        for name, caller in callers.items():
            signature_replay.replay_rows(name, *caller, batches[:1])  # traces this batch shape
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                signature_replay.replay_rows(name, *caller, batches)
                seconds.append(time.perf_counter() - started)
            cells.append(f"{name} {statistics.median(seconds):6.2f} s")
        print(f"  one pass in batches of {size:>6,} ({len(batches):>4} calls): " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/default", help="a run root with a pushed model")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pass-batch-sizes", default="", help="e.g. 1024,16384: time in-order passes")
    args = parser.parse_args()
    config = PipelineConfig(root=args.root)
    version = versions.target_version(config.serving_dir)
    if version is None:
        raise SystemExit(f"no pushed model under {config.serving_dir}: run `make run` first")
    examples_dir = newest_examples_dir(config)
    examples = replay_data.load_replay_examples(examples_dir)
    model = config.serving_dir / str(version)
    gate_checks.run_checks(str(model), examples)  # warm-up: traces the signatures once
    totals, batch, largest = [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        verdict = gate_checks.run_checks(str(model), examples)
        totals.append(time.perf_counter() - started)
        figures = {c.name: c for c in verdict.checks}["batch_invariance"].figures
        batch.append(figures["seconds"])
        largest.append(figures["max_abs_difference"])
    print(f"model {model}, {len(examples)} eval examples, {args.repeat} runs (medians)")
    whole, added = statistics.median(totals), statistics.median(batch)
    print(f"  whole gate           {whole:6.2f} s")
    print(f"  batch_invariance     {added:6.2f} s ({added / whole:.0%} of the gate)")
    print(f"  largest difference between two batchings of one example: {max(largest):.2g}")
    if args.pass_batch_sizes:
        sizes = [int(size) for size in args.pass_batch_sizes.split(",")]
        time_passes(model, examples, sizes, args.repeat)


if __name__ == "__main__":
    main()
