"""Benchmark: this pipeline cold vs TFX's own taxi example, then a cached re-run of ours.

Each run is a fresh Python process (imports included, as a user would pay them), on the same
machine in the same invocation, in its own temp root:

- ours: `python -m pipeline run --root <tmp>/ours --window 0` (in-memory DirectRunner, the
  default; every span, like the reference, rather than the weekly 4-span window);
- reference: `tfx/examples/chicago_taxi_pipeline/taxi_pipeline_native_keras.py` from the
  installed tfx, its `_create_pipeline` run with LocalDagRunner on the same taxi CSV, with its
  module file and its Beam arguments exactly as shipped (multi_processing);
- ours again on the same root: every component should come from the cache.

Printed for each: wall time, peak memory (RSS summed over the process and its children,
sampled every 0.1 s), per-component seconds read from ML Metadata, and eval-split binary
accuracy and AUC, computed the same way for both: each pipeline's trained model, loaded with
`tf.saved_model.load`, scores the eval split its own ExampleGen wrote, against the label
tips > 0.2 * fare. `--repeat N` repeats the cold runs and reports medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parent.parent
REFERENCE_RUNNER = """
import os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as ref
from tfx.orchestration.local.local_dag_runner import LocalDagRunner
root = sys.argv[1]
here = os.path.dirname(ref.__file__)
LocalDagRunner().run(ref._create_pipeline(
    pipeline_name="chicago_taxi_native_keras",
    pipeline_root=os.path.join(root, "pipeline"),
    data_root=sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "data", "simple"),
    module_file=os.path.join(here, "taxi_utils_native_keras.py"),
    serving_model_dir=os.path.join(root, "serving"),
    metadata_path=os.path.join(root, "metadata", "metadata.db"),
    beam_pipeline_args=ref._beam_pipeline_args,
))
"""


# Same data as the reference pipeline: all 15,002 trips.
ALL_SPANS = ("--window", "0")


def measure(command: list[str], log_path: Path) -> dict:
    """Run `command`; return its wall seconds, peak tree RSS (MiB), exit status and RSS samples.

    `rss`: (epoch seconds, tree RSS MiB) every 0.1 s, to attribute memory to components.
    """
    peak = 0
    samples: list[tuple[float, float]] = []
    with open(log_path, "wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        root = psutil.Process(process.pid)
        done = threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                try:
                    tree = [root] + root.children(recursive=True)
                    total = 0
                    for proc in tree:
                        try:
                            total += proc.memory_info().rss
                        except psutil.Error:
                            pass
                    peak = max(peak, total)
                    samples.append((time.time(), total / 2**20))
                except psutil.Error:
                    pass
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = process.wait()
        wall = time.monotonic() - started
        done.set()
        sampler.join()
    return {"wall_s": wall, "peak_mib": peak / 2**20, "status": status, "log": str(log_path), "rss": samples}


def peak_by_component(metadata_path: Path, samples: list[tuple[float, float]]) -> dict[str, float]:
    """Peak tree RSS (MiB) while each component ran, from its execution's times in ML Metadata."""
    from pipeline.ops.run_history import load_report

    peaks = {}
    for node in load_report(metadata_path).nodes:
        inside = [rss for at, rss in samples if node.started <= at <= node.started + node.seconds]
        if inside:
            peaks[node.node_id] = round(max(inside))
    return peaks


def component_seconds(metadata_path: Path) -> dict[str, float]:
    from pipeline.ops.run_history import load_report

    report = load_report(metadata_path)
    return {node.node_id: round(node.seconds, 1) for node in report.nodes}


def outputs_of(metadata_path: Path, node_suffix: str, key: str) -> str:
    from pipeline.ops.run_history import load_report

    report = load_report(metadata_path)
    for node in report.nodes:
        if node.node_id.endswith(node_suffix) and key in node.outputs:
            return node.outputs[key][0].uri
    raise KeyError(f"no {key} output of {node_suffix} in {metadata_path}")


def score(metadata_path: Path, output_key: str) -> dict[str, float]:
    """Accuracy (threshold 0.5), AUC and calibration (mean score / mean label) on the eval split."""
    import itertools

    import numpy as np
    import tensorflow as tf

    from data.tfrecords import iter_tfrecords

    model_dir = os.path.join(outputs_of(metadata_path, "Trainer", "model"), "Format-Serving")
    examples_dir = outputs_of(metadata_path, "ExampleGen", "examples")
    files = tf.io.gfile.glob(os.path.join(examples_dir, "Split-eval", "*"))
    serve = tf.saved_model.load(model_dir).signatures["serving_default"]
    spec = {
        "tips": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        "fare": tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
    }
    labels, scores = [], []
    reader = iter_tfrecords(files)  # both ExampleGens write gzipped *.gz files
    while batch := list(itertools.islice(reader, 1024)):
        records = tf.constant(batch)
        parsed = tf.io.parse_example(records, spec)
        labels.append((parsed["tips"] > 0.2 * parsed["fare"]).numpy() & (parsed["fare"] > 0).numpy())
        scores.append(serve(examples=records)[output_key].numpy().reshape(-1))
    y, p = np.concatenate(labels).astype(int), np.concatenate(scores)
    return {
        "examples": int(len(y)),
        "accuracy": float(((p > 0.5) == y).mean()),
        "auc": auc(y, p),
        "calibration": float(p.mean() / y.mean()),
    }


def auc(labels, scores) -> float:
    """Area under the ROC curve by the rank-sum formula (ties get average ranks)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="cold runs of each pipeline (medians)")
    parser.add_argument("--work-dir", default=None, help="where run roots go (default: a temp dir)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--json", default=str(REPO / "runs" / "bench" / "results.json"))
    args = parser.parse_args()

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="taxi-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    results = {"ours": [], "reference": [], "cached": []}
    for i in range(args.repeat):
        ours = work / f"ours-{i}"
        shutil.rmtree(ours, ignore_errors=True)
        print(f"[{i + 1}/{args.repeat}] ours, cold ...", flush=True)
        run = measure(
            [python, "-m", "pipeline", "run", "--root", str(ours), *ALL_SPANS], work / f"ours-{i}.log"
        )
        run.update(components=component_seconds(ours / "metadata" / "metadata.db"), root=str(ours))
        results["ours"].append(run)
        print(f"    {run['wall_s']:.1f} s, peak {run['peak_mib']:.0f} MiB, exit {run['status']}", flush=True)
        print(f"[{i + 1}/{args.repeat}] ours, cached re-run ...", flush=True)
        cached = measure(
            [python, "-m", "pipeline", "run", "--root", str(ours), *ALL_SPANS], work / f"cached-{i}.log"
        )
        cached.update(components=component_seconds(ours / "metadata" / "metadata.db"))
        results["cached"].append(cached)
        print(f"    {cached['wall_s']:.1f} s, peak {cached['peak_mib']:.0f} MiB", flush=True)
        if not args.skip_reference:
            reference = work / f"reference-{i}"
            shutil.rmtree(reference, ignore_errors=True)
            print(f"[{i + 1}/{args.repeat}] TFX taxi_pipeline_native_keras, cold ...", flush=True)
            run = measure([python, "-c", REFERENCE_RUNNER, str(reference)], work / f"reference-{i}.log")
            run.update(
                components=component_seconds(reference / "metadata" / "metadata.db"), root=str(reference)
            )
            results["reference"].append(run)
            print(
                f"    {run['wall_s']:.1f} s, peak {run['peak_mib']:.0f} MiB, exit {run['status']}", flush=True
            )

    for runs in results.values():
        for run in runs:
            run.pop("rss", None)  # per-component memory is bench_scale's business
    for name, key in (("ours", "probabilities"), ("reference", "outputs")):
        for run in results[name]:
            if run["status"] == 0:
                run["quality"] = score(Path(run["root"]) / "metadata" / "metadata.db", key)
    report(results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nraw figures: {args.json}")


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(results: dict) -> None:
    print("\n=== results (medians over cold runs) ===")
    names = [n for n in ("ours", "reference", "cached") if results[n]]
    print(f"{'':<28}" + "".join(f"{n:>14}" for n in names))
    print(f"{'wall time (s)':<28}" + "".join(f"{median(results[n], 'wall_s'):>14.1f}" for n in names))
    print(f"{'peak memory (MiB)':<28}" + "".join(f"{median(results[n], 'peak_mib'):>14.0f}" for n in names))
    for metric in ("accuracy", "auc"):
        row = f"{'eval ' + metric:<28}"
        for n in names:
            values = [r["quality"][metric] for r in results[n] if "quality" in r]
            row += f"{statistics.median(values):>14.4f}" if values else f"{'-':>14}"
        print(row)
    for n in names:
        print(f"\nper-component seconds ({n}, first run, from ML Metadata):")
        for node, seconds in results[n][0]["components"].items():
            print(f"  {node:<36} {seconds:>7.1f}")
    if results["reference"]:
        ratio = median(results["ours"], "wall_s") / median(results["reference"], "wall_s")
        print(f"\nwall-time ratio ours / reference: {ratio:.2f}  (target <= 0.40)")
    print(f"peak memory ours: {median(results['ours'], 'peak_mib') / 1024:.2f} GiB  (target <= 1.5)")
    print(f"cached re-run: {median(results['cached'], 'wall_s'):.1f} s  (target < 15)")


if __name__ == "__main__":
    main()
