"""The portable Beam runner's options, and the job service and worker pool a run starts.

Real servers (`pipeline.ops.beam_servers`) and real Beam jobs through `PortableRunner`, small
enough to take seconds: two SDK workers that both take work; every listening socket of the
servers and their workers on loopback, sampled while a job runs; nothing left once stopped,
after SIGTERM, or when the process that started them is killed; a worker interpreter that
cannot import apache_beam, and a worker killed in the middle of a stage, each fail the job in
seconds with the cause, where Beam's client alone waits out its deadline.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from pipeline.cli import main
from pipeline.config import BEAM_JOB_ENDPOINT_ENV, ConfigError, PipelineConfig
from pipeline.ops import beam_portable
from pipeline.ops.exit_codes import EXIT_OK, EXIT_USAGE

SERVER_MARKERS = ("pipeline.ops.beam_servers", "worker_pool_main", "local_job_service_main")


def is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def server_processes() -> list[psutil.Process]:
    """Every process on the machine running a Beam server or worker of ours (or Beam's mains)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if any(marker in command for marker in SERVER_MARKERS):
            found.append(process)
    return found


def pid_of_worker(element):
    """Which process handled `element` (module level: the workers import this module)."""
    time.sleep(0.005)
    return os.getpid()


def beam_options(servers, workers: int = 2):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(
        [
            "--runner=PortableRunner",
            f"--job_endpoint={servers.job_endpoint}",
            "--environment_type=EXTERNAL",
            f"--environment_config={servers.worker_pool}",
            f"--sdk_worker_parallelism={workers}",
            "--job_server_timeout=3600",
        ]
    )


@pytest.fixture
def servers(tmp_path, monkeypatch):
    """Started servers whose workers can import this test module; stopped after the test."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    started = beam_portable.LocalServers(tmp_path / "beam").start()
    started.watch()
    yield started
    started.stop()


# --- options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"beam_runner": "flink"}, "beam_runner must be one of"),
        ({"beam_runner": "portable", "beam_workers": 0}, "beam_workers must be a positive integer"),
        ({"beam_job_endpoint": "host:1"}, "for the portable runner only"),
        ({"beam_runner": "portable", "beam_job_endpoint": "no-port"}, "must be HOST:PORT"),
        ({"beam_runner": "portable", "beam_environment_config": "h:1"}, "for a running job server"),
        ({"beam_runner": "portable", "beam_job_endpoint": "h:1"}, "need an SDK environment"),
        (
            {"beam_runner": "portable", "beam_args": ("--runner=FlinkRunner",), "beam_args_given": True},
            "sets --runner itself",
        ),
    ],
)
def test_contradictory_beam_settings_are_named(fields, message):
    with pytest.raises(ConfigError, match=message):
        PipelineConfig(**fields)


def test_runner_options_hold_no_port_for_the_runs_own_servers():
    from pipeline.local_runner import runner_beam_args

    assert runner_beam_args(PipelineConfig()) == list(PipelineConfig.beam_args)
    own = runner_beam_args(PipelineConfig(beam_runner="portable", beam_workers=3))
    assert own[0] == "--runner=PortableRunner" and "--sdk_worker_parallelism=3" in own
    endpoint = own[1].encode()  # a placeholder: the environment variable, resolved per component
    assert BEAM_JOB_ENDPOINT_ENV in str(endpoint) and "--job_endpoint=" in str(endpoint)
    assert not any(isinstance(a, str) and a.startswith("--direct") for a in own)
    cluster = PipelineConfig(
        beam_runner="portable",
        beam_job_endpoint="flink-jobserver:8099",
        beam_environment_config="localhost:50000",
        beam_args=("--parallelism=4",),
        beam_args_given=True,
    )
    assert runner_beam_args(cluster) == [
        "--runner=PortableRunner",
        "--job_endpoint=flink-jobserver:8099",
        "--sdk_worker_parallelism=1",
        "--job_server_timeout=86400",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--parallelism=4",
    ]


def test_cli_options_reach_the_config_and_the_preflight(tmp_path, capsys):
    root = tmp_path / "root"
    assert (
        main(["run", "--check", "--root", str(root), "--beam", "portable", "--beam-workers", "2"]) == EXIT_OK
    )
    out = capsys.readouterr().out
    assert "Pre-flight OK" in out and "Beam: a local job service and worker pool, 2 SDK workers" in out
    assert main(["run", "--check", "--root", str(root), "--beam-workers", "2"]) == EXIT_USAGE
    assert "--beam-workers is for --beam portable" in capsys.readouterr().err
    started = time.monotonic()
    status = main(
        [
            "run",
            "--check",
            "--root",
            str(root),
            "--job-endpoint",
            "127.0.0.1:1",
            "--beam-arg=--environment_type=DOCKER",
        ]
    )
    assert status == EXIT_USAGE and time.monotonic() - started < 30
    assert "no Beam job server answers at 127.0.0.1:1" in capsys.readouterr().err
    assert not root.exists()


def test_compile_writes_a_job_servers_options_and_refuses_servers_on_this_machine(tmp_path, capsys):
    spec = tmp_path / "p.yaml"
    compile_args = [
        *("compile", "--image", "r/i:1", "--pipeline-root", "gs://b/r", "--data-root", "gs://b/d"),
        *("--serving-dir", "gs://b/s", "--output", str(spec)),
    ]
    assert main([*compile_args, "--beam", "portable"]) == EXIT_USAGE
    assert "--job-endpoint HOST:PORT" in capsys.readouterr().err
    assert not spec.exists()
    cluster = ["--job-endpoint", "flink-jobserver:8099", "--environment-config", "localhost:50000"]
    cluster += ["--beam-workers", "2"]
    assert main([*compile_args, *cluster]) == EXIT_OK
    text = spec.read_text()
    for option in (
        "--runner=PortableRunner",
        "--job_endpoint=flink-jobserver:8099",
        "--environment_type=EXTERNAL",
        "--environment_config=localhost:50000",
        "--sdk_worker_parallelism=2",
    ):
        assert option in text
    assert "--setup_file" not in text and "--direct_running_mode" not in text


def test_the_scheduled_line_carries_the_runner(tmp_path, capsys):
    status = main(
        ["schedule", "--print", "--root", str(tmp_path / "r"), "--beam", "portable", "--beam-workers", "3"]
    )
    assert status == EXIT_OK
    assert "run --root " in (out := capsys.readouterr().out) and "--beam portable --beam-workers 3" in out


# --- the servers --------------------------------------------------------------------------


def test_two_workers_share_a_stage_every_listener_is_on_loopback_and_stop_leaves_nothing(servers, tmp_path):
    import apache_beam as beam

    listeners: set = set()
    done = threading.Event()

    def sample():
        while not done.is_set():
            listeners.update(servers.listeners())
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = tmp_path / "pids"
    try:
        with beam.Pipeline(options=beam_options(servers)) as p:
            _ = (
                p
                | beam.Create(list(range(600)))
                | beam.Reshuffle()
                | beam.Map(pid_of_worker)
                | beam.Distinct()
                | beam.io.WriteToText(str(out))
            )
    finally:
        done.set()
        sampler.join()
    started = {e["pid"] for e in servers.worker_events() if e["event"] == "started"}
    handled = {int(line) for path in tmp_path.glob("pids*") for line in path.read_text().split()}
    assert len(started) == 2 and handled == started  # two worker processes, both took elements
    assert servers.failure is None
    # The job API, the worker pool, and the job's control, data, state and logging servers.
    assert len({port for _, _, port in listeners}) >= 6, listeners
    assert all(is_loopback(ip) for _, ip, _ in listeners), listeners
    tree = psutil.Process().children(recursive=True)
    servers.stop()
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not server_processes()


def test_a_worker_python_without_apache_beam_fails_fast_naming_the_cause(tmp_path):
    # `-S`: no site-packages, so no apache_beam; the project itself is on PYTHONPATH.
    broken = tmp_path / "python-without-beam"
    repo = Path(__file__).resolve().parents[2]
    broken.write_text(f'#!/bin/sh\nPYTHONPATH={repo} exec {sys.executable} -S "$@"\n')
    broken.chmod(0o755)
    with pytest.raises(beam_portable.BeamServerError, match="No module named 'apache_beam'"):
        beam_portable.probe_worker_python(str(broken))

    # Past the probe (an interpreter that breaks later): the job fails in seconds, not at
    # the client's deadline, and the failure names the worker and the cause.
    import apache_beam as beam

    servers = beam_portable.LocalServers(tmp_path / "beam", worker_python=str(broken)).start()
    servers.watch()
    started = time.monotonic()
    try:
        with pytest.raises(Exception, match="CANCELLED"), beam.Pipeline(options=beam_options(servers)) as p:
            _ = p | beam.Create([1, 2, 3]) | beam.Map(abs)
    finally:
        servers.stop()
    assert time.monotonic() - started < 45
    assert "exited with status 1: ModuleNotFoundError: No module named 'apache_beam'" in servers.failure
    assert "Beam stage Transform: SDK worker" in str(servers.failed("Transform"))
    assert not server_processes()


def test_a_worker_killed_mid_stage_fails_the_job_in_seconds(servers):
    import apache_beam as beam

    def kill_a_worker():
        while True:
            started = [e for e in servers.worker_events() if e["event"] == "started"]
            if len(started) == 2:
                time.sleep(3)  # into the stage
                os.kill(started[0]["pid"], signal.SIGKILL)
                return time.monotonic()
            time.sleep(0.1)

    killed_at: list[float] = []
    killer = threading.Thread(target=lambda: killed_at.append(kill_a_worker()), daemon=True)
    killer.start()
    with pytest.raises(Exception, match="CANCELLED"), beam.Pipeline(options=beam_options(servers)) as p:
        _ = p | beam.Create([0.05] * 2000) | beam.Reshuffle() | beam.Map(time.sleep)
    assert killed_at and time.monotonic() - killed_at[0] < 15
    assert "was killed by SIGKILL" in servers.failure


STARTER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from pipeline.config import PipelineConfig
    from pipeline.ops import beam_portable
    config = PipelineConfig(root=sys.argv[1], beam_runner="portable")
    with beam_portable.for_run(config, Path(sys.argv[1]) / "beam") as servers:
        pids = [p.pid for p in servers.processes.values()]
        Path(sys.argv[2]).write_text(" ".join(map(str, pids)))
        time.sleep(600)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_servers_go_when_the_run_is_stopped_or_killed(tmp_path, signum):
    pids_file = tmp_path / "pids"
    run = subprocess.Popen([sys.executable, "-c", STARTER, str(tmp_path), str(pids_file)])
    try:
        deadline = time.monotonic() + 120
        while not pids_file.exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
        run.send_signal(signum)
        run.wait(30)
        deadline = time.monotonic() + 15
        while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            run.kill()
        run.wait()
    if signum == signal.SIGTERM:
        assert run.returncode == 128 + signal.SIGTERM
