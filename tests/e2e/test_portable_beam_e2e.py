"""End to end through Beam's portable runner: the whole pipeline on 2 SDK workers vs the DirectRunner.

One module fixture makes three runs on the embedded data, in-process:
1. the portable runner with 2 SDK workers (what `run --beam portable --beam-workers 2` sets)
   in its own root, while a thread samples every child process of this test (the job service,
   the worker pool, the SDK workers) and their listening sockets;
2. the same run again (every component cached: the pipeline holds no port);
3. the DirectRunner in another root.

The portable run must push a model whose statistics and eval metrics are the DirectRunner's
(every number within 1e-5), with every Beam component run while SDK workers were alive, every
listener on loopback, and no process left behind. Both train with the real run_fn, which
plans from an exact count of the training examples (`models.trainer.count_records`): the
gzipped files' bytes of the same examples differ between the processes that wrote them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import threading
import time
from pathlib import Path

import psutil
import pytest
from e2e_support import run_cli

from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK

pytestmark = pytest.mark.e2e

WORKERS = 2
BEAM_NODES = ("SpanWindowCsvExampleGen", "StatisticsGen", "Transform", "Evaluator")
SERVER_MARKERS = ("pipeline.ops.beam_servers", "worker_pool_main", "local_job_service_main")
TOLERANCE = 1e-5
RUN_FN = PipelineConfig.run_fn


class Sampler(threading.Thread):
    """Every 0.25 s: this process's descendants, their roles, and their listening sockets."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.listeners: set[tuple[str, str, int]] = set()
        self.workers: dict[int, list[float]] = {}  # SDK worker pid -> times it was seen alive
        self.most_workers = 0

    def run(self) -> None:
        while not self.done.wait(0.25):
            now, alive = time.time(), 0
            for process in psutil.Process().children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    command = " ".join(process.cmdline())
                    role = next(
                        (r for r in ("worker-pool", "job-service", "worker") if f" {r} " in command), ""
                    )
                    if role == "worker":
                        alive += 1
                        self.workers.setdefault(process.pid, []).append(now)
                    connections = getattr(process, "net_connections", process.connections)  # psutil < 6
                    for conn in connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            self.listeners.add((role or command[:60], conn.laddr.ip, conn.laddr.port))
            self.most_workers = max(self.most_workers, alive)


def left_behind() -> list[str]:
    """Live descendants of this process, and any Beam server or worker process on the machine."""
    found = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in " ".join(process.info["cmdline"] or []) for marker in SERVER_MARKERS):
            found.append(process)
    return [f"{p.pid}: {' '.join(p.cmdline())[:120]}" for p in found if p.is_running()]


def run(root: Path, **beam):
    return run_cli(root, config=PipelineConfig(root=root, run_fn=RUN_FN, **beam))


@pytest.fixture(scope="module")
def beam_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("beam-runners")
    portable = {"beam_runner": "portable", "beam_workers": WORKERS}
    sampler = Sampler()
    sampler.start()
    try:
        outcomes = {"portable": run(base / "portable", **portable)}
    finally:
        sampler.done.set()
        sampler.join()
    outcomes["leftovers"] = left_behind()
    outcomes["cached"] = run(base / "portable", **portable)
    outcomes["direct"] = run(base / "direct")
    outcomes["sampler"] = sampler
    return outcomes


def node(report, node_id: str):
    return next(n for n in report.nodes if n.node_id == node_id)


def statistics(report) -> dict:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    uri = Path(node(report, "StatisticsGen").outputs["statistics"][0].uri)
    found = {}
    for split in sorted(uri.glob("Split-*")):
        stats = statistics_pb2.DatasetFeatureStatisticsList()
        stats.ParseFromString((split / "FeatureStats.pb").read_bytes())
        found[split.name] = stats
    return found


def as_comparable(stats) -> dict:
    """Statistics as a dict, each dataset's features in path order (which differs by runner)."""
    from google.protobuf import json_format

    found = json_format.MessageToDict(stats)
    for dataset in found["datasets"]:
        dataset["features"].sort(key=lambda feature: str(feature.get("path")))
    return found


def differences(a, b, path: str = "") -> list[str]:
    """Where two protos (as dicts) differ: a number beyond TOLERANCE, or anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path}: fields {sorted(set(a) ^ set(b))}"]
        return [d for key in sorted(a) for d in differences(a[key], b[key], f"{path}/{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    with contextlib.suppress(TypeError, ValueError):
        x, y = float(a), float(b)  # protobuf's JSON writes 64-bit integers as strings
        same = (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        return [] if same else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    return (getattr(address, "ipv4_mapped", None) or address).is_loopback


def test_both_runs_complete_and_push(beam_runs):
    for name in ("portable", "direct"):
        outcome = beam_runs[name]
        assert outcome.status == EXIT_OK, outcome.stdout[-2000:] + outcome.stderr[-2000:]
        assert outcome.report.pushed_new_version and len(outcome.versions) == 1, name
    assert "Beam: job service 127.0.0.1:" in beam_runs["portable"].stdout


def test_every_beam_stage_ran_on_two_sdk_workers(beam_runs):
    sampler = beam_runs["sampler"]
    # A stage's workers exit as its job ends; the next stage's may start before they are gone.
    assert sampler.most_workers >= WORKERS
    for node_id in BEAM_NODES:
        ran = node(beam_runs["portable"].report, node_id)
        assert ran.state == "ran", node_id
        inside = [
            pid
            for pid, seen in sampler.workers.items()
            if any(ran.started <= at <= ran.started + ran.seconds for at in seen)
        ]
        assert len(inside) >= WORKERS, f"{node_id}: SDK workers seen while it ran: {inside}"


def test_statistics_match_the_direct_runner(beam_runs):
    portable, direct = statistics(beam_runs["portable"].report), statistics(beam_runs["direct"].report)
    assert sorted(portable) == ["Split-eval", "Split-train"] and sorted(direct) == sorted(portable)
    for split in portable:
        found = differences(as_comparable(portable[split]), as_comparable(direct[split]))
        assert not found, f"{split}: {found[:10]}"


def test_eval_metrics_match_the_direct_runner(beam_runs):
    portable, direct = beam_runs["portable"].report, beam_runs["direct"].report
    code = [node(r, "Trainer").properties.get("custom_config") for r in (portable, direct)]
    assert code[0] == code[1], "the code changed between the two runs: run the test again"
    assert set(portable.overall) == set(direct.overall) and "auc" in portable.overall
    for metric, value in portable.overall.items():
        assert math.isclose(value, direct.overall[metric], abs_tol=TOLERANCE), (metric, value, direct.overall)


def test_every_listener_was_on_loopback(beam_runs):
    listeners = beam_runs["sampler"].listeners
    assert {"job-service", "worker-pool"} <= {role for role, _, _ in listeners}, listeners
    # The job API, the pool, and each job's control, data, state and logging servers.
    assert len({port for _, _, port in listeners}) >= 6, listeners
    assert all(is_loopback(ip) for _, ip, _ in listeners), sorted(listeners)


def test_no_process_is_left_behind(beam_runs):
    assert beam_runs["leftovers"] == []
    assert left_behind() == []


def test_a_rerun_is_cached(beam_runs):
    cached = beam_runs["cached"]
    assert cached.status == EXIT_OK
    states = {n.node_id: n.state for n in cached.report.nodes}
    assert all(state == "cached" for node_id, state in states.items() if "resolver" not in node_id), states
    assert not cached.report.pushed_new_version and cached.versions == beam_runs["portable"].versions
