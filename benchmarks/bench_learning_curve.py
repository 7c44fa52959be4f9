"""Learning curve: eval AUC and calibration against the number of training examples the model sees.

The pipeline runs on the resampled data of `bench_scale.py` (`--scale`, every span, `--window
0`) once per `--max-train-examples` value, all in one root: ExampleGen, StatisticsGen and
Transform run once and are cached; the Trainer (and what follows it) runs again for each value.
Each Trainer draws a uniform sample of that many examples from the whole training split
(`models.trainer.plan_training`), so the curve shows what a sample of each size is worth, and
where more examples stop paying: the default `PipelineConfig.max_train_examples` rests on it.

Printed: examples seen, steps, Trainer seconds, eval AUC, accuracy and calibration (the
Evaluator's overall figures from ML Metadata).

Usage: `python benchmarks/bench_learning_curve.py [--scale 100] [--examples 51200,131072,...]
[--work-dir DIR]`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import REPO, measure  # noqa: E402
from bench_scale import SAMPLE_ROWS, prepare  # noqa: E402

DEFAULT_EXAMPLES = "51200,131072,262144,524288,1048576"
BATCH = 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100, help="factor of the sample (bench_scale's data)")
    parser.add_argument("--examples", default=DEFAULT_EXAMPLES, help="comma-separated sample sizes")
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "bench-scale"), help="data and run roots")
    args = parser.parse_args()
    from pipeline.ops.run_history import load_report

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    spans, _ = prepare(work, args.scale)
    root = work / f"curve-{args.scale}x"
    rows = []
    for examples in (int(x) for x in args.examples.split(",")):
        print(f"{args.scale}x, max {examples:,} training examples ...", flush=True)
        started = time.monotonic()
        run = measure(
            [
                *(sys.executable, "-m", "pipeline", "run", "--root", str(root), "--data-root", str(spans)),
                *("--window", "0", "--max-train-examples", str(examples)),
            ],
            work / f"curve-{args.scale}x-{examples}.log",
        )
        report = load_report(root / "metadata" / "metadata.db")
        seconds = {node.node_id: node.seconds for node in report.nodes}
        overall = report.overall
        rows.append(
            {
                "examples": examples,
                "steps": max(400, math.ceil(examples / BATCH)),
                "trainer_s": seconds.get("Trainer", float("nan")),
                "wall_s": time.monotonic() - started,
                "auc": overall.get("auc", float("nan")),
                "accuracy": overall.get("binary_accuracy", float("nan")),
                "calibration": overall.get("calibration", float("nan")),
                "status": run["status"],
            }
        )
    train_rows = round(SAMPLE_ROWS * args.scale * 2 / 3)
    print(f"\n=== learning curve at {args.scale}x (about {train_rows:,} training examples in the split) ===")
    header = (
        ("examples", 10),
        ("steps", 8),
        ("Trainer s", 11),
        ("AUC", 9),
        ("accuracy", 10),
        ("calibration", 13),
    )
    print("".join(f"{name:>{width}}" for name, width in header) + f"{'exit':>6}")
    for row in rows:
        print(
            f"{row['examples']:>10,}{row['steps']:>8}{row['trainer_s']:>11.1f}{row['auc']:>9.4f}"
            f"{row['accuracy']:>10.4f}{row['calibration']:>13.4f}{row['status']:>6}"
        )


if __name__ == "__main__":
    main()
