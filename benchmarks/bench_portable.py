"""Benchmark: the DirectRunner vs Beam's portable runner with 1 and 2 SDK workers, at 10x and 100x.

On `bench_scale.py`'s data (`data/scaled.py`, written once under `--work-dir`), one after the
other, each a fresh process in a fresh root, every span (`--window 0`):

- direct: `python -m pipeline run` (the in-memory DirectRunner, the default);
- portable-1, portable-2: `python -m pipeline run --beam portable --beam-workers N` (the run's
  own job service and SDK worker pool on 127.0.0.1, N SDK worker processes per stage).

Printed: wall time, peak RSS of the whole process tree, seconds per component (ML Metadata),
peak RSS per process, sampled every 0.1 s by process and told apart by command line (the run's
main process, the job service, the worker pool, each SDK worker: the largest worker and the
most the workers held at once), and eval AUC (the runners must agree).

Usage: `python benchmarks/bench_portable.py [--scales 10,100] [--work-dir runs/bench-scale]
[--run-arg=ARG ...]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import REPO, component_seconds, measure, peak_by_component  # noqa: E402
from bench_scale import prepare  # noqa: E402

RUNNERS = {
    "direct": (),
    "portable-1": ("--beam", "portable", "--beam-workers", "1"),
    "portable-2": ("--beam", "portable", "--beam-workers", "2"),
}
ROLES = ("main", "job service", "worker pool", "worker")


def role_of(command: str) -> str | None:
    if "beam_servers job-service" in command:
        return "job service"
    if "beam_servers worker-pool" in command:
        return "worker pool"
    if "beam_servers worker" in command:
        return "worker"
    if "-m pipeline run" in command:
        return "main"
    return None


class ProcessSampler(threading.Thread):
    """Peak RSS (MiB) of each process under this one, by role, every 0.1 s."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.peak: dict[int, tuple[str, float]] = {}  # pid -> (role, peak MiB)
        self.workers_at_once = 0.0  # the most RSS the SDK workers held together

    def run(self) -> None:
        while not self.done.wait(0.1):
            workers = 0.0
            for process in psutil.Process().children(recursive=True):
                try:
                    role = role_of(" ".join(process.cmdline()))
                    rss = process.memory_info().rss / 2**20
                except psutil.Error:
                    continue
                if role is None:
                    continue
                self.peak[process.pid] = (role, max(rss, self.peak.get(process.pid, (role, 0.0))[1]))
                workers += rss if role == "worker" else 0.0
            self.workers_at_once = max(self.workers_at_once, workers)

    def summary(self) -> dict:
        by_role = {role: [mib for r, mib in self.peak.values() if r == role] for role in ROLES}
        return {
            "peak_mib_by_role": {role: round(max(v), 0) for role, v in by_role.items() if v},
            "worker_processes": len(by_role["worker"]),
            "workers_at_once_mib": round(self.workers_at_once, 0),
        }


def run_one(work: Path, factor: int, name: str, spans: Path, extra: tuple[str, ...]) -> dict:
    root = work / f"portable-bench-{factor}x-{name}"
    shutil.rmtree(root, ignore_errors=True)
    command = [
        *(sys.executable, "-m", "pipeline", "run", "--root", str(root), "--data-root", str(spans)),
        *("--window", "0", *RUNNERS[name], *extra),
    ]
    print(f"{factor}x: {name} ...", flush=True)
    sampler = ProcessSampler()
    sampler.start()
    try:
        result = measure(command, work / f"portable-bench-{factor}x-{name}.log")
    finally:
        sampler.done.set()
        sampler.join()
    result.update(sampler.summary())
    metadata = root / "metadata" / "metadata.db"
    if metadata.exists():
        from pipeline.ops.run_history import load_report

        result.update(
            components=component_seconds(metadata),
            component_peak_mib=peak_by_component(metadata, result["rss"]),
            auc=load_report(metadata).overall.get("auc"),
        )
    result.pop("rss")
    print(
        f"    {result['wall_s']:.0f} s, peak {result['peak_mib']:.0f} MiB, exit {result['status']}",
        flush=True,
    )
    return result


def print_tables(all_results: dict[int, dict[str, dict]]) -> None:
    for factor, results in sorted(all_results.items()):
        names = list(results)
        print(f"\n=== {factor}x, --window 0: " + ", ".join(names) + " ===")
        print(f"  {'':<30}" + "".join(f"{n:>14}" for n in names))
        rows = [
            ("wall (s)", lambda r: f"{r['wall_s']:14.0f}"),
            ("peak RSS, process tree (MiB)", lambda r: f"{r['peak_mib']:14.0f}"),
            ("exit status", lambda r: f"{r['status']:14d}"),
            ("eval AUC", lambda r: f"{r['auc']:14.4f}" if r.get("auc") else f"{'-':>14}"),
        ]
        for label, cell in rows:
            print(f"  {label:<30}" + "".join(cell(results[n]) for n in names))
        print("  seconds per component:")
        nodes = [node for node in results[names[0]].get("components", {})]
        for node in nodes:
            cells = "".join(
                f"{results[n].get('components', {}).get(node, float('nan')):14.1f}" for n in names
            )
            print(f"    {node:<28}{cells}")
        print("  peak RSS per process (MiB):")
        for role in ROLES:
            cells = "".join(
                f"{results[n]['peak_mib_by_role'][role]:14.0f}"
                if role in results[n]["peak_mib_by_role"]
                else f"{'-':>14}"
                for n in names
            )
            print(f"    {role + (' (largest)' if role == 'worker' else ''):<28}{cells}")
        print(
            f"    {'workers at once (sum)':<28}"
            + "".join(f"{results[n]['workers_at_once_mib']:14.0f}" for n in names)
        )
        print(
            f"    {'SDK worker processes':<28}"
            + "".join(f"{results[n]['worker_processes']:14d}" for n in names)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="10,100", help="comma-separated factors of the sample")
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "bench-scale"), help="data and run roots")
    parser.add_argument(
        "--runners", default=",".join(RUNNERS), help=f"comma-separated, of {', '.join(RUNNERS)}"
    )
    parser.add_argument(
        "--run-arg", action="append", default=[], metavar="ARG", help="extra argument for every run"
    )
    parser.add_argument("--json", default=None, help="raw figures (default <work-dir>/portable.json)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    all_results: dict[int, dict[str, dict]] = {}
    for factor in (int(f) for f in args.scales.split(",")):
        spans, _ = prepare(work, factor)
        all_results[factor] = {
            name: run_one(work, factor, name, spans, tuple(args.run_arg)) for name in args.runners.split(",")
        }
    print_tables(all_results)
    out = Path(args.json or work / "portable.json")
    out.write_text(json.dumps({str(k): v for k, v in all_results.items()}, indent=2))
    print(f"\nraw figures: {out}")


if __name__ == "__main__":
    main()
