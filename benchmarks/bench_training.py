"""Training throughput: examples/s for 1 vs 2 replicas, and the input pipeline alone.

A pipeline run (default window, in `<work-dir>/root`, made once) provides the Transform graph
and the examples. Each measurement is a fresh process (logical devices must be set before
TensorFlow starts) that builds the real tf.data pipeline (`models.trainer.make_dataset`)
and the real model, fills the dataset cache and compiles with one untimed pass, then times:
- input: batches drawn from the dataset alone (no model);
- train: `model.fit` steps with one replica (one device) or two (MirroredStrategy over two
  logical CPU devices; the global batch doubles, as in `run_fn`).
The input pipeline must not be the bottleneck: its examples/s over training's is reported.

Usage: python benchmarks/bench_training.py [--repeat 3] [--steps 200] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(spec: dict) -> dict:
    """Runs in the child process: one timed measurement, described by `spec`."""
    import tensorflow as tf

    if spec["replicas"] > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * spec["replicas"]
        )
    import tensorflow_transform as tft

    from models import distribution
    from models.model import build_model, categorical_cardinalities
    from models.trainer import DEFAULT_BATCH_SIZE, SEED, make_dataset, vocabulary_sizes

    output = tft.TFTransformOutput(spec["transform"])
    strategy = distribution.build_strategy(
        distribution.MIRRORED if spec["replicas"] > 1 else distribution.ONE_DEVICE
    )
    batch = DEFAULT_BATCH_SIZE * strategy.num_replicas_in_sync
    dataset = make_dataset(spec["train_files"], output, batch, shuffle=True, seed=SEED).repeat()
    steps = spec["steps"]
    if spec["mode"] == "input":
        for _ in dataset.take(steps):  # fills the cache, warms the Transform graph
            pass
        started = time.perf_counter()
        for _ in dataset.take(steps):
            pass
    else:
        with strategy.scope():
            model = build_model(categorical_cardinalities(vocabulary_sizes(output)))
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)  # compile, fill the cache
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    return {"examples_per_s": steps * batch / seconds, "seconds": seconds, "batch": batch}


def prepare(work: Path) -> dict:
    from pipeline.config import PipelineConfig
    from pipeline.ops.exit_codes import EXIT_OK
    from pipeline.ops.run import run_command
    from pipeline.ops.run_history import load_report

    config = PipelineConfig(root=work / "root")
    if not config.metadata_path.exists():
        print(f"set-up: one pipeline run in {config.root}", flush=True)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if run_command(config) != EXIT_OK:
                raise SystemExit("the set-up pipeline run failed")
    outputs = {n.node_id: n.outputs for n in load_report(config.metadata_path).nodes}
    examples = outputs["SpanWindowCsvExampleGen"]["examples"][0].uri
    return {
        "transform": outputs["Transform"]["transform_graph"][0].uri,
        "train_files": [f"{examples}/Split-train/*"],
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(measure(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-training-"))
    base = prepare(work)
    cases = [("input", 1), ("train", 1), ("train", 2)]
    results: dict[tuple, list[dict]] = {case: [] for case in cases}
    for repeat in range(args.repeat):
        for mode, replicas in cases:
            spec = {**base, "mode": mode, "replicas": replicas, "steps": args.steps}
            done = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(spec)],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{mode}/{replicas} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results[(mode, replicas)].append(result)
            print(f"[{repeat + 1}/{args.repeat}] {mode}, {replicas} replica(s): {result}", flush=True)
    median = {case: statistics.median(r["examples_per_s"] for r in runs) for case, runs in results.items()}
    print(f"\nexamples/s, medians of {args.repeat} ({os.cpu_count()} CPU cores, no GPU):")
    print(f"  input pipeline alone       {median[('input', 1)]:10.0f}")
    print(f"  training, 1 replica        {median[('train', 1)]:10.0f}")
    two = median[("train", 2)]
    print(f"  training, 2 replicas       {two:10.0f}   (MirroredStrategy, 2 logical CPU devices)")
    print(f"  2 replicas / 1 replica     {median[('train', 2)] / median[('train', 1)]:10.2f}")
    ratio = median[("input", 1)] / median[("train", 1)]
    print(f"  input / training (1 rep.)  {ratio:10.2f}   (> 1: input is not the bottleneck)")
    (work / "results.json").write_text(json.dumps({f"{m}-{r}": v for (m, r), v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
