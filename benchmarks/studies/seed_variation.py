"""How much the 1x model's eval figures move with the training seed alone (same data, same code).

The Trainer fixes one seed (`models.trainer.SEED`) for weights, dropout and shuffling, so a
run is reproducible; but any change that reorders the training input (a shuffle buffer one
example larger) draws another sample of the same distribution of models. This prints the
Evaluator's overall accuracy, AUC and calibration for several seeds on the default window of
the embedded data: the band a one-seed comparison between two versions of the code sits in.
Each seed runs the whole pipeline cold in a process of its own.
Usage: `python benchmarks/studies/seed_variation.py [--seeds 42,1,2,3] [--work-dir DIR]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OVERALL = re.compile(
    r"Eval split, overall: trips (\d+), AUC ([\d.]+), accuracy ([\d.]+).*calibration ([\d.]+)"
)


def run_one(seed: int, root: Path) -> None:
    """In this process: the pipeline on the embedded data with the Trainer's seed set to `seed`."""
    import importlib

    sys.path.insert(0, str(REPO))
    from models import trainer
    from pipeline.cli import main

    trainer.SEED = seed  # the Trainer runs in this process (LocalDagRunner)...
    # ...which imports `run_fn`'s module with importlib.reload: that would set SEED back.
    reload = importlib.reload
    importlib.reload = lambda module: module if module is trainer else reload(module)
    sys.argv = ["pipeline", "run", "--root", str(root)]
    sys.exit(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,1,2,3", help="comma-separated Trainer seeds")
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "seed-study"))
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        run_one(args.one, Path(args.root))
    work = Path(args.work_dir)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        root = work / f"seed-{seed}"
        subprocess.run(["rm", "-rf", str(root)], check=True)
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(seed), "--root", str(root)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        match = OVERALL.search(done.stdout)
        if done.returncode != 0 or not match:
            raise SystemExit(f"seed {seed}: the run failed (exit {done.returncode}):\n{done.stdout[-2000:]}")
        trips, auc, accuracy, calibration = match.groups()
        rows.append(
            {
                "seed": seed,
                "trips": int(trips),
                "auc": float(auc),
                "accuracy": float(accuracy),
                "calibration": float(calibration),
            }
        )
        print(
            f"seed {seed:>4}: AUC {auc}, accuracy {accuracy}, calibration {calibration} ({trips} eval trips)",
            flush=True,
        )
    for key in ("auc", "accuracy", "calibration"):
        values = [r[key] for r in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        print(
            f"{key:<12} median {statistics.median(values):.4f}, min {min(values):.4f}, "
            f"max {max(values):.4f}, stdev {spread:.4f}"
        )
    (work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
