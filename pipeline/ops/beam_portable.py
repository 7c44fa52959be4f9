"""Beam's portable runner for a run: its own job service and SDK worker pool, or a cluster's.

`run --beam portable` starts a job service and an SDK worker pool (`pipeline.ops.beam_servers`)
bound to 127.0.0.1, with this interpreter, each in a process group of its own; every Beam
stage is then a job on that service, run by `--beam-workers` SDK worker processes. They are
stopped when the run ends, fails or is interrupted (SIGINT, SIGTERM): each group is sent
SIGTERM, then SIGKILL, so no worker outlives the run.

A worker that cannot start or dies fails the run in seconds, naming the stage and the cause:
the pool reports every worker's exit (status, last error line of its log) in an events file;
a watchdog thread here reads it and watches both servers, and on a failure cancels the jobs
on the service, which ends the client's wait at once. Without it Beam's client waits for its
deadline with no hint why. The interpreter the workers will run is probed before the run.

`run --job-endpoint HOST:PORT` uses a job server that is already running (Flink's or Spark's);
it is probed before the run so an unreachable one fails at once.

The servers' addresses reach the Beam components through two environment variables read when
each component starts (`pipeline.local_runner.runner_beam_args`), so the pipeline holds no port
and an unchanged re-run is cached like any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipeline.config import BEAM_JOB_ENDPOINT_ENV, BEAM_WORKER_POOL_ENV, ConfigError, PipelineConfig
from pipeline.ops.beam_servers import LOOPBACK, last_error_line

SERVERS_MODULE = "pipeline.ops.beam_servers"
# Longest wait for a server to listen (imports included, on a busy machine), and for one probe.
START_TIMEOUT_S = 120
PROBE_TIMEOUT_S = 60
ENDPOINT_TIMEOUT_S = 10
WATCH_INTERVAL_S = 0.2
STOP_GRACE_S = 5


class BeamServerError(RuntimeError):
    """A job service, worker pool or SDK worker failed; the message names which and why."""


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def probe_worker_python(python: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail unless `python` can run an SDK worker (import apache_beam's harness and this project).

    Raises:
        BeamServerError: naming the interpreter and the import that failed.
    """
    try:
        result = subprocess.run(
            [python, "-m", SERVERS_MODULE, "check"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env=_server_env(python),
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BeamServerError(f"the SDK worker interpreter {python} cannot run: {error}") from None
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()] or [result.stdout.strip()]
        errors = [line for line in lines if "Error" in line]
        raise BeamServerError(
            f"the SDK worker interpreter {python} cannot run a Beam worker: {(errors or lines)[-1].strip()}"
        )


def probe_endpoint(endpoint: str, what: str, timeout_s: float = ENDPOINT_TIMEOUT_S) -> None:
    """Fail unless a gRPC server answers at `endpoint` within `timeout_s`."""
    import grpc

    with grpc.insecure_channel(endpoint) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise BeamServerError(f"no {what} answers at {endpoint} (waited {timeout_s:.0f} s)") from None


def _server_env(python: str) -> dict[str, str]:
    """This environment, with `python`'s folder first on PATH (whatever a worker starts by name)."""
    path = os.pathsep.join([str(Path(python).parent), os.environ.get("PATH", "/usr/bin:/bin")])
    return dict(os.environ, PATH=path, TF_USE_LEGACY_KERAS=os.environ.get("TF_USE_LEGACY_KERAS", "1"))


class LocalServers:
    """A job service and an SDK worker pool on 127.0.0.1, and the watchdog over them.

    Attributes:
        job_endpoint, worker_pool: `127.0.0.1:PORT` of each.
        state_dir: their port files, logs (`job-service.log`, `worker-pool.log`,
            `worker-<id>.log`) and the pool's events (`workers.jsonl`).
        failure: what failed, once the watchdog saw a failure; else None.
    """

    def __init__(self, state_dir: Path, python: str = sys.executable, worker_python: str | None = None):
        self.state_dir = Path(state_dir)
        self.python = python
        self.worker_python = worker_python or python
        self.events = self.state_dir / "workers.jsonl"
        self.processes: dict[str, subprocess.Popen] = {}
        self.job_endpoint = self.worker_pool = ""
        self.failure: str | None = None
        self._stop_watch = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> LocalServers:
        """Start both servers and wait until they listen.

        Raises:
            BeamServerError: a server exited or did not listen within `timeout_s` (both are
                stopped again).
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "staging").mkdir(exist_ok=True)
        for stale in (self._role_file("job service"), self._role_file("worker pool"), self.events):
            stale.unlink(missing_ok=True)
        roles = {
            "job service": ["job-service", "--staging-dir", str(self.state_dir / "staging")],
            "worker pool": [
                *("worker-pool", "--worker-python", self.worker_python),
                *("--log-dir", str(self.state_dir), "--events", str(self.events)),
            ],
        }
        try:
            for name, args in roles.items():
                self._spawn(name, args)
            self.job_endpoint = f"{LOOPBACK}:{self._port(self._role_file('job service'), timeout_s)}"
            self.worker_pool = f"{LOOPBACK}:{self._port(self._role_file('worker pool'), timeout_s)}"
            probe_endpoint(self.job_endpoint, "Beam job service")
            probe_endpoint(self.worker_pool, "Beam worker pool")
        except BaseException:
            self.stop()
            raise
        return self

    def _role_file(self, name: str) -> Path:
        return self.state_dir / f"{name.replace(' ', '-')}.port"

    def _spawn(self, name: str, args: list[str]) -> None:
        role = args[0]
        log = self.state_dir / f"{name.replace(' ', '-')}.log"
        with open(log, "wb") as out:
            self.processes[name] = subprocess.Popen(
                [self.python, "-m", SERVERS_MODULE, role, "--port-file", str(self._role_file(name))]
                + args[1:],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=_server_env(self.python),
                start_new_session=True,  # a group of its own: stopped as one, with its workers
            )

    def _port(self, port_file: Path, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        name = port_file.stem.replace("-", " ")
        while not port_file.exists():
            process = self.processes[name]
            if process.poll() is not None:
                log = self.state_dir / f"{port_file.stem}.log"
                raise BeamServerError(
                    f"the Beam {name} {describe_exit(process.returncode)} before listening: "
                    f"{last_error_line(log) or 'no output'} (log {log})"
                )
            if time.monotonic() > deadline:
                raise BeamServerError(f"the Beam {name} did not listen within {timeout_s:.0f} s")
            time.sleep(0.1)
        return int(port_file.read_text())

    def watch(self) -> None:
        """Start the watchdog: on a failure, record it and cancel every job on the service."""
        self._watcher = threading.Thread(target=self._watch, name="beam-watchdog", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        offset = 0
        while not self._stop_watch.wait(WATCH_INTERVAL_S):
            failure = None
            for name, process in self.processes.items():
                if process.poll() is not None:
                    log = self.state_dir / f"{name.replace(' ', '-')}.log"
                    failure = (
                        f"the Beam {name} (pid {process.pid}) {describe_exit(process.returncode)}: "
                        f"{last_error_line(log) or 'no output'} (log {log})"
                    )
            events, offset = self._read_events(offset)
            for event in events:
                failure = failure or worker_failure(event)
            if failure:
                self.failure = failure
                self.cancel_jobs()
                return

    def _read_events(self, offset: int) -> tuple[list[dict], int]:
        try:
            with open(self.events) as source:
                source.seek(offset)
                text = source.read()
        except FileNotFoundError:
            return [], offset
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines() if line], offset + len(complete)

    def worker_events(self) -> list[dict]:
        """Every event the pool reported: `started` and `exited` of each SDK worker."""
        return self._read_events(0)[0]

    def cancel_jobs(self) -> None:
        """Cancel every unfinished job on the service (the client's wait ends); kill it if it cannot."""
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

        terminal = {
            beam_job_api_pb2.JobState.DONE,
            beam_job_api_pb2.JobState.FAILED,
            beam_job_api_pb2.JobState.CANCELLED,
        }
        try:
            with grpc.insecure_channel(self.job_endpoint) as channel:
                service = beam_job_api_pb2_grpc.JobServiceStub(channel)
                for job in service.GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=5).job_info:
                    if job.state not in terminal:
                        service.Cancel(beam_job_api_pb2.CancelJobRequest(job_id=job.job_id), timeout=5)
        except grpc.RpcError:
            self._signal_group("job service", signal.SIGKILL)

    def failed(self, stage: str | None) -> BeamServerError:
        """The error a run reports for the watchdog's failure, naming the stage it happened in."""
        return BeamServerError(f"Beam stage {stage or '(between stages)'}: {self.failure}")

    def _signal_group(self, name: str, signum: int) -> None:
        process = self.processes.get(name)
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signum)

    def stop(self) -> None:
        """Stop the watchdog, then each server's process group: SIGTERM, then SIGKILL."""
        self._stop_watch.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        for name in ("job service", "worker pool"):
            self._signal_group(name, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name, process in self.processes.items():
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left in the group (a worker that ignored SIGTERM) goes now.
            self._signal_group(name, signal.SIGKILL)
            process.wait()
        for event in self.worker_events():
            if event["event"] == "started":
                _kill_if_alive(event["pid"])

    def listeners(self) -> list[tuple[str, str, int]]:
        """(process, address, port) of every listening socket of the servers and their workers."""
        import psutil

        found = []
        for name, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                tree = psutil.Process(process.pid)
                for member in [tree, *tree.children(recursive=True)]:
                    connections = getattr(member, "net_connections", member.connections)  # psutil < 6
                    for conn in connections(kind="inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            found.append((f"{name} pid {member.pid}", conn.laddr.ip, conn.laddr.port))
        return found


def worker_failure(event: dict) -> str | None:
    """The failure an event of the pool reports, or None (a start, a worker stopped or done)."""
    if event["event"] == "start_failed":
        return f"SDK worker {event['worker_id']} could not start: {event.get('cause')}"
    if event["event"] != "exited" or event.get("stopped") or event.get("returncode") == 0:
        return None
    cause = event.get("cause") or "nothing in its log says why"
    return (
        f"SDK worker {event['worker_id']} (pid {event['pid']}) {describe_exit(event['returncode'])}: "
        f"{cause} (log {event.get('log')})"
    )


def _kill_if_alive(pid: int) -> None:
    import psutil

    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if SERVERS_MODULE in " ".join(process.cmdline()):
            process.kill()


@contextlib.contextmanager
def _sigterm_raises():
    """While the servers run, SIGTERM unwinds the run like Ctrl-C does, so they are stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    saved = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


@contextlib.contextmanager
def for_run(config: PipelineConfig, state_dir: Path, worker_python: str | None = None):
    """The Beam servers of one run: started before it, stopped after it whatever happens.

    Yields the `LocalServers` for `--beam portable` without a job endpoint, else None (the
    DirectRunner needs none; a `--job-endpoint` is probed and used as it is). The servers'
    addresses are published in the environment for the run's Beam components.

    Raises:
        BeamServerError: a server did not start, the workers' interpreter cannot run a worker,
            or the job endpoint does not answer.
    """
    if config.beam_runner != "portable":
        yield None
        return
    if config.beam_job_endpoint:
        probe_endpoint(config.beam_job_endpoint, "Beam job server")
        yield None
        return
    probe_worker_python(worker_python or sys.executable)
    saved = {key: os.environ.get(key) for key in (BEAM_JOB_ENDPOINT_ENV, BEAM_WORKER_POOL_ENV)}
    servers = LocalServers(state_dir, worker_python=worker_python)
    with _sigterm_raises():
        try:
            servers.start()
            os.environ[BEAM_JOB_ENDPOINT_ENV] = servers.job_endpoint
            os.environ[BEAM_WORKER_POOL_ENV] = servers.worker_pool
            servers.watch()
            yield servers
        finally:
            servers.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    if servers.failure is None:
        shutil.rmtree(state_dir, ignore_errors=True)  # kept, with its logs, when something failed


def preflight(config: PipelineConfig) -> str:
    """`run --check` for the Beam runner: probe what a run would use; one line, or ConfigError."""
    if config.beam_runner != "portable":
        return "Beam: DirectRunner"
    try:
        if config.beam_job_endpoint:
            probe_endpoint(config.beam_job_endpoint, "Beam job server")
            return f"Beam: job server {config.beam_job_endpoint} answers"
        probe_worker_python(sys.executable)
    except BeamServerError as error:
        raise ConfigError(str(error)) from None
    return f"Beam: a local job service and worker pool, {workers(config.beam_workers)} ({sys.executable})"


def workers(count: int) -> str:
    return f"{count} SDK worker{'' if count == 1 else 's'}"
