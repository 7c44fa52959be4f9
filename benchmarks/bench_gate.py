"""What the serving gate costs, and how much of it the batch_invariance check adds.

Runs the gate's checks (`serving.gate_checks.run_checks`, as the ServingGate executor does) on a
pushed model against the eval split of the ExampleGen output it was trained with, several
times, and prints the medians: the whole gate, the batch_invariance check alone, and the
largest difference it saw between two batchings of one example.

Usage: `python benchmarks/bench_gate.py [--root runs/default] [--repeat 5]` after `make run`.
`--pass-batch-sizes 1024,16384` also times one in-order pass over every example through each
signature in batches of each size (what the replay batch size costs at volume). `--memory`
instead runs the gate once per way of holding the split, each in a fresh process, and prints its
peak RSS and seconds: the split held whole (every serialized example and its raw features at
once) and in blocks (`serving.replay_source`, what the ServingGate does), e.g.
`python benchmarks/bench_gate.py --memory --root runs/bench-scale/ours-1000x`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from data.tfrecords import read_tfrecords  # noqa: E402
from models.signatures import RAW_SIGNATURE, SERVING_SIGNATURE  # noqa: E402
from pipeline.config import PipelineConfig  # noqa: E402
from serving import (  # noqa: E402
    gate_checks,
    replay_data,
    replay_source,
    request_checks,
    signature_replay,
    versions,
)


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


def memory_child(model: Path, examples_dir: Path, mode: str) -> None:
    """One gate run holding the eval split `whole` or in `blocks`; prints peak RSS and seconds."""
    files = sorted(str(f) for f in (examples_dir / "Split-eval").iterdir())
    started = time.perf_counter()
    if mode == "whole":
        examples = read_tfrecords(files)
        source = replay_source.ReplaySource.from_examples(examples, block_examples=max(1, len(examples)))
    else:
        source = replay_source.ReplaySource.from_files(files)
    verdict = gate_checks.run_checks(str(model), source)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    print(f"{mode} {len(source)} {len(source.sizes)} {peak:.2f} {seconds:.1f} {verdict.blessed}")


def memory(root: str, model: Path, examples_dir: Path) -> None:
    """The gate's peak RSS and seconds with the split held whole and in blocks, fresh processes."""
    print(f"model {model}, eval split of {examples_dir}")
    for mode in ("whole", "blocks"):
        out = subprocess.run(
            [sys.executable, __file__, "--root", root, "--memory-child", mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        _, count, blocks, peak, seconds, blessed = out[-6:]
        print(
            f"  held {mode:<7} {int(count):>10,} examples in {int(blocks):>3} block(s): "
            f"peak RSS {peak} GiB, {seconds} s, blessed {blessed}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="runs/default", help="a run root with a pushed model")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pass-batch-sizes", default="", help="e.g. 1024,16384: time in-order passes")
    parser.add_argument("--memory", action="store_true", help="peak RSS: the split held whole vs in blocks")
    parser.add_argument("--memory-child", choices=("whole", "blocks"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = PipelineConfig(root=args.root)
    version = versions.target_version(config.serving_dir)
    if version is None:
        raise SystemExit(f"no pushed model under {config.serving_dir}: run `make run` first")
    examples_dir = newest_examples_dir(config)
    if args.memory_child:
        memory_child(config.serving_dir / str(version), examples_dir, args.memory_child)
        return
    if args.memory:
        memory(args.root, config.serving_dir / str(version), examples_dir)
        return
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
