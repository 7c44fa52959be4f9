"""Benchmark at real weekly volumes: this pipeline vs TFX's own taxi example at 10x, 100x, 1,000x.

For each scale, the data is the project's own deterministic resampling of the embedded sample
(`data/scaled.py`: every trip repeated with +-2% jitter on money and miles, seconds jittered,
time order kept), written once under `--work-dir` (outside git) as 8 spans for us and one CSV
for the reference (up to 100x; at 1,000x ours only, the spans written one at a time). Then,
one after the other, each in a fresh process:

- ours: `python -m pipeline run --window 0 --data-root <scaled spans>` (every span);
- reference: `tfx/examples/chicago_taxi_pipeline/taxi_pipeline_native_keras.py` as shipped
  (LocalDagRunner, its own Beam arguments), on the same rows.

Printed side by side: wall time, peak RSS of the process tree, per-component seconds from ML
Metadata (with rows/s over every row), ExampleGen rows/s (all rows) and Evaluator rows/s (eval
rows), and eval accuracy, AUC and calibration of both trained models scored the same way (see
`bench_pipeline.score`).

Usage: `python benchmarks/bench_scale.py [--scales 10,100,1000] [--work-dir DIR] [--skip-reference]`
(`make bench-scale`). 100x takes tens of minutes on 2 cores; 1,000x about as long again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import (  # noqa: E402
    REFERENCE_RUNNER,
    REPO,
    component_seconds,
    measure,
    peak_by_component,
    score,
)

SAMPLE_ROWS = 15_002
EXAMPLE_GEN = ("SpanWindowCsvExampleGen", "CsvExampleGen")


# Past this factor only our pipeline runs (TFX's example would take over an hour here), and the
# data is written a span at a time (the whole scaled sample would not fit in memory).
OURS_ONLY_ABOVE = 100


def prepare(work: Path, factor: int) -> tuple[Path, Path]:
    """Scaled spans and the single CSV for `factor`, generated unless already there."""
    from data.scaled import write_scaled, write_scaled_spans

    data = work / f"data-{factor}x"
    marker = data / ".complete"
    if not marker.exists():
        print(f"generating {factor}x ({SAMPLE_ROWS * factor:,} trips) in {data} ...", flush=True)
        if factor > OURS_ONLY_ABOVE:
            write_scaled_spans(data, factor)
        else:
            write_scaled(data, factor)
        marker.touch()
    return data, data / "all"


def run_both(work: Path, factor: int, skip_reference: bool, ours_args: tuple[str, ...] = ()) -> dict:
    spans, single = prepare(work, factor)
    python = sys.executable
    results = {}
    ours = work / f"ours-{factor}x"
    shutil.rmtree(ours, ignore_errors=True)
    print(f"{factor}x: ours, cold ...", flush=True)
    results["ours"] = measure(
        [
            *(python, "-m", "pipeline", "run", "--root", str(ours), "--data-root", str(spans)),
            *("--window", "0", *ours_args),
        ],
        work / f"ours-{factor}x.log",
    )
    results["ours"]["root"] = str(ours)
    if not skip_reference and factor <= OURS_ONLY_ABOVE:
        reference = work / f"reference-{factor}x"
        shutil.rmtree(reference, ignore_errors=True)
        print(f"{factor}x: TFX taxi_pipeline_native_keras, cold ...", flush=True)
        results["reference"] = measure(
            [python, "-c", REFERENCE_RUNNER, str(reference), str(single)], work / f"reference-{factor}x.log"
        )
        results["reference"]["root"] = str(reference)
    for name, key in (("ours", "probabilities"), ("reference", "outputs")):
        if name in results:
            run = results[name]
            metadata = Path(run["root"]) / "metadata" / "metadata.db"
            run["components"] = component_seconds(metadata) if metadata.exists() else {}
            run["component_peak_mib"] = (
                peak_by_component(metadata, run.pop("rss")) if metadata.exists() else {}
            )
            if run["status"] == 0:
                run["quality"] = score(metadata, key)
            print(f"    {name}: {run['wall_s']:.1f} s, peak {run['peak_mib']:.0f} MiB, exit {run['status']}")
    return results


def rates(run: dict, rows: int) -> tuple[float | None, float | None]:
    """ExampleGen rows/s over every row, Evaluator rows/s over the eval rows."""
    seconds = run.get("components", {})
    example_gen = next((seconds[n] for n in EXAMPLE_GEN if n in seconds), None)
    evaluator = seconds.get("Evaluator")
    eval_rows = run.get("quality", {}).get("examples")
    return (
        rows / example_gen if example_gen else None,
        eval_rows / evaluator if evaluator and eval_rows else None,
    )


def print_table(all_results: dict[int, dict]) -> None:
    print("\n=== cold runs, --window 0, same rows for both ===")
    print(
        f"{'data':<14}{'ours s':>9}{'TFX s':>9}{'ratio':>7}{'ours GiB':>10}{'TFX GiB':>9}"
        f"{'EG rows/s':>11}{'Eval rows/s':>12}{'AUC ours':>10}{'AUC TFX':>9}{'calib ours':>11}"
    )
    for factor, results in sorted(all_results.items()):
        ours, ref = results["ours"], results.get("reference")
        example_gen, evaluator = rates(ours, SAMPLE_ROWS * factor)
        ratio = ours["wall_s"] / ref["wall_s"] if ref else None
        cells = [
            f"{factor}x ({SAMPLE_ROWS * factor / 1e6:.2f}M)",
            f"{ours['wall_s']:9.0f}",
            f"{ref['wall_s']:9.0f}" if ref else f"{'-':>9}",
            f"{ratio:7.2f}" if ratio else f"{'-':>7}",
            f"{ours['peak_mib'] / 1024:10.2f}",
            f"{ref['peak_mib'] / 1024:9.2f}" if ref else f"{'-':>9}",
            f"{example_gen:11,.0f}" if example_gen else f"{'-':>11}",
            f"{evaluator:12,.0f}" if evaluator else f"{'-':>12}",
            f"{ours.get('quality', {}).get('auc', float('nan')):10.4f}",
            f"{ref.get('quality', {}).get('auc', float('nan')):9.4f}" if ref else f"{'-':>9}",
            f"{ours.get('quality', {}).get('calibration', float('nan')):11.4f}",
        ]
        print(f"{cells[0]:<14}" + "".join(cells[1:]))
    for factor, results in sorted(all_results.items()):
        names = [n for n in ("ours", "reference") if n in results]
        nodes = sorted({node for n in names for node in results[n].get("components", {})})
        print(
            f"\nper component at {factor}x: seconds, rows/s (every row) and peak tree RSS (MiB) while it ran"
        )
        print(f"  {'':<34}" + "".join(f"{n + ' s':>12}{n + ' rows/s':>16}{n + ' MiB':>15}" for n in names))
        for node in nodes:
            cells = ""
            for n in names:
                seconds = results[n]["components"].get(node, float("nan"))
                peak = results[n].get("component_peak_mib", {}).get(node, float("nan"))
                rate = SAMPLE_ROWS * factor / seconds if seconds and seconds == seconds else float("nan")
                cells += f"{seconds:>12.1f}{rate:>16,.0f}{peak:>15.0f}"
            print(f"  {node:<34}{cells}")
    if len(all_results) > 1:
        low, high = min(all_results), max(all_results)
        growth = all_results[high]["ours"]["peak_mib"] / all_results[low]["ours"]["peak_mib"]
        print(
            f"\nours: peak RSS {high}x / {low}x = {growth:.2f}; wall {high}x / {low}x = "
            f"{all_results[high]['ours']['wall_s'] / all_results[low]['ours']['wall_s']:.2f} "
            f"for {high / low:.0f}x the rows"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scales", default="10,100,1000", help="comma-separated factors of the sample (1000: ours only)"
    )
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "bench-scale"), help="data and run roots")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--ours-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for our run (repeatable), e.g. --ours-arg=--beam-arg=--direct_num_workers=1",
    )
    parser.add_argument("--json", default=None, help="raw figures (default <work-dir>/results.json)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    all_results = {
        int(f): run_both(work, int(f), args.skip_reference, tuple(args.ours_arg))
        for f in args.scales.split(",")
    }
    print_table(all_results)
    out = Path(args.json or work / "results.json")
    out.write_text(json.dumps({str(k): v for k, v in all_results.items()}, indent=2))
    print(f"\nraw figures: {out}")


if __name__ == "__main__":
    main()
