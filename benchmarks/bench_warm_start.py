"""Does warm start save time at equal quality? Week 5 trained cold and warm, with fewer steps too.

Set-up (once): a 4-week replay in `<work-dir>/base` (span k arrives in week k, default window).
Then, for each variant and repeat, a copy of that root receives span 5 and runs week 5:
cold or warm start (from week 4's blessed model), with the default 400 steps or fewer.
Prints, per variant, the medians of the Trainer's seconds, the whole run's wall time, and the
eval AUC and accuracy (on week 5's window, identical for every variant).

Usage: python benchmarks/bench_warm_start.py [--repeat 3] [--work-dir DIR] [--steps 400 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.config import PipelineConfig  # noqa: E402
from pipeline.ops.replay import replay  # noqa: E402
from pipeline.ops.run import run_command  # noqa: E402
from pipeline.ops.run_history import load_report  # noqa: E402

WEEKS = 4


def run_week5(base: Path, target: Path, warm: bool, steps: int) -> dict:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(base, target)
    shutil.copytree(target / "feed" / "span-5", target / "weekly-data" / "span-5")
    config = PipelineConfig(
        root=target,
        data_root=target / "weekly-data",
        warm_start=warm,
        train_steps=steps,
        train_steps_from_data=False,
    )
    started = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        status = run_command(config)
    wall = time.monotonic() - started
    report = load_report(config.metadata_path)
    trainer = next(n for n in report.nodes if n.node_id == "Trainer")
    return {
        "status": status,
        "wall_s": wall,
        "trainer_s": trainer.seconds,
        "auc": report.overall.get("auc"),
        "accuracy": report.overall.get("binary_accuracy"),
        "warm_from": [a.uri for a in trainer.inputs.get("base_model", [])],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--steps", type=int, nargs="+", default=[400, 100])
    args = parser.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-warm-"))
    base = work / "base"
    if not (base / "metadata").exists():
        print(f"set-up: {WEEKS}-week replay in {base}", flush=True)
        replay(PipelineConfig(root=base), WEEKS, out=io.StringIO())
    variants = [(warm, steps) for steps in args.steps for warm in (False, True)]
    results: dict[str, list[dict]] = {}
    for repeat in range(args.repeat):
        for warm, steps in variants:
            name = f"{'warm' if warm else 'cold'} {steps} steps"
            result = run_week5(base, work / "week5", warm, steps)
            if warm and not result["warm_from"]:
                raise RuntimeError("the warm run did not receive a base model")
            results.setdefault(name, []).append(result)
            print(f"[{repeat + 1}/{args.repeat}] {name}: {json.dumps(result)}", flush=True)
    print(
        f"\n{'variant':<18} {'trainer s':>10} {'run s':>8} {'AUC':>7} {'accuracy':>9}"
        f"   (medians of {args.repeat})"
    )
    for name, runs in results.items():
        print(
            f"{name:<18} {statistics.median(r['trainer_s'] for r in runs):10.1f} "
            f"{statistics.median(r['wall_s'] for r in runs):8.1f} "
            f"{statistics.median(r['auc'] for r in runs):7.4f} "
            f"{statistics.median(r['accuracy'] for r in runs):9.4f}"
        )
    (work / "results.json").write_text(json.dumps(results, indent=2))
    print(f"raw results: {work / 'results.json'}")


if __name__ == "__main__":
    main()
