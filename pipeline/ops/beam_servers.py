"""Beam's portable job service, SDK worker pool and SDK worker, bound to loopback only.

`python -m pipeline.ops.beam_servers job-service|worker-pool|worker|check ...`, started by
`pipeline.ops.beam_portable` for `run --beam portable`; `worker-pool --port 50000` is also the
SDK worker pool a Flink or Spark job server's workers reach as a sidecar in their pod
(docs/beam-runners.md). Beam's own mains (`local_job_service_main`, `worker_pool_main`) would
do, but for four things:

- Every gRPC server they open binds every interface (`[::]`) without authentication: the job
  API, and for each job the control, data, state and logging servers. Here each server binds
  127.0.0.1, and the job service tells workers to dial 127.0.0.1 (Beam dials the machine's
  fully qualified name, which need not resolve to loopback).
- Beam's pool starts each worker as a bare `python` from PATH: outside the venv it cannot
  import apache_beam, and the job only fails when the client's deadline runs out. Here workers
  run this interpreter (`--worker-python`), and the pool reports each worker's exit, with
  its status and the last line of its log, in an events file that the run watches.
- Beam's local job service runs every job on one SDK worker whatever the options say. Here a
  job gets `--sdk_worker_parallelism` workers (0: one per CPU), as Flink and Spark give it.
- A server outlives a parent that was killed: here each one exits when its parent is gone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"
# How often a server checks that its parent is alive, and the pool that its workers are.
POLL_S = 0.2
# Packages of this project a worker must import (the Beam stages' user code lives there).
PROJECT_PACKAGES = ("components", "data", "models", "pipeline", "tfma_batched")


def loopback_only() -> None:
    """Make every gRPC server this process creates bind 127.0.0.1, whatever address it asks for."""
    import grpc

    real_server = grpc.server

    def server(*args, **kwargs):
        created = real_server(*args, **kwargs)
        bind = created.add_insecure_port
        created.add_insecure_port = lambda address: bind(f"{LOOPBACK}:{address.rpartition(':')[2]}")
        return created

    grpc.server = server


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def exit_with_parent(cleanup) -> None:
    """Run `cleanup` and leave at once when the parent process goes away (it was killed)."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(POLL_S)
        cleanup()
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def on_sigterm(cleanup) -> None:
    """SIGTERM (and SIGINT): clean up, then exit without waiting for Beam's non-daemon threads."""

    def handler(signum, frame):
        cleanup()
        os._exit(0)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def job_service(port_file: Path, staging_dir: Path) -> None:
    """Serve Beam's job API on 127.0.0.1 until SIGTERM; write the port to `port_file`."""
    loopback_only()
    from apache_beam.options.pipeline_options import PortableOptions
    from apache_beam.portability.api import beam_job_api_pb2
    from apache_beam.runners.portability import local_job_service
    from apache_beam.runners.portability.fn_api_runner import fn_runner, worker_handlers

    # Workers of an EXTERNAL environment dial the runner's control and logging servers here.
    worker_handlers.ExternalWorkerHandler.host_from_worker = lambda self: LOOPBACK

    class ParallelBeamJob(local_job_service.BeamJob):
        """A job run on `--sdk_worker_parallelism` SDK workers, not Beam's fixed one."""

        def _invoke_runner(self):
            self.set_state(beam_job_api_pb2.JobState.RUNNING)
            options = self.pipeline_options()
            workers = int(options.view_as(PortableOptions).sdk_worker_parallelism or 1)
            runner = fn_runner.FnApiRunner(provision_info=self._provision_info)
            # FnApiRunner sets its worker count from the options only in run_pipeline(), which
            # a job service does not call.
            runner._num_workers = workers if workers > 0 else os.cpu_count() or 1
            return runner.run_via_runner_api(self._pipeline_proto, options)

    class LoopbackJobServicer(local_job_service.LocalJobServicer):
        def get_bind_address(self):
            return LOOPBACK

        def get_service_address(self):
            return LOOPBACK

    servicer = LoopbackJobServicer(str(staging_dir), beam_job_type=ParallelBeamJob)
    port = servicer.start_grpc_server(0)
    on_sigterm(lambda: servicer.stop(0))
    exit_with_parent(lambda: servicer.stop(0))
    write_atomically(port_file, str(port))
    while True:
        time.sleep(3600)


class WorkerProcesses:
    """The pool's SDK worker processes: started, watched, reported, stopped."""

    def __init__(self, python: str, log_dir: Path, events: Path):
        self.python, self.log_dir, self.events = python, log_dir, events
        self.running: dict[str, subprocess.Popen] = {}
        self.stopping: set[str] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._watch, name="worker-watch", daemon=True).start()

    def start(self, worker_id: str, control_url: str) -> int:
        log = self.log_dir / f"worker-{worker_id}.log"
        command = [
            *(self.python, "-m", "pipeline.ops.beam_servers", "worker"),
            *("--control", control_url, "--worker-id", worker_id),
        ]
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(self.python).parent), os.environ["PATH"]]))
        try:
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, env=env, close_fds=True
                )
        except OSError as error:
            self._event("start_failed", worker_id, 0, cause=f"cannot start {self.python}: {error}")
            raise
        with self.lock:
            self.running[worker_id] = process
        self._event("started", worker_id, process.pid, log=str(log))
        return process.pid

    def stop(self, worker_id: str) -> None:
        with self.lock:
            process = self.running.get(worker_id)
            self.stopping.add(worker_id)
        if process is not None:
            _terminate(process)

    def stop_all(self) -> None:
        with self.lock:
            processes = list(self.running.values())
            self.stopping.update(self.running)
        for process in processes:
            process.terminate()
        for process in processes:
            _terminate(process)

    def _watch(self) -> None:
        while True:
            with self.lock:
                ended = [(i, p) for i, p in self.running.items() if p.poll() is not None]
                for worker_id, _ in ended:
                    del self.running[worker_id]
            for worker_id, process in ended:
                log = self.log_dir / f"worker-{worker_id}.log"
                self._event(
                    "exited",
                    worker_id,
                    process.pid,
                    returncode=process.returncode,
                    stopped=worker_id in self.stopping,
                    cause=last_error_line(log),
                    log=str(log),
                )
            time.sleep(POLL_S)

    def _event(self, event: str, worker_id: str, pid: int, **fields) -> None:
        line = json.dumps({"event": event, "worker_id": worker_id, "pid": pid, "time": time.time(), **fields})
        with self.lock, open(self.events, "a") as out:
            out.write(line + "\n")


def _terminate(process: subprocess.Popen, grace_s: float = 5) -> None:
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def last_error_line(log: Path, max_chars: int = 300) -> str:
    """The line of a log that best says why a process ended: the last exception line, else the last.

    Python's warnings (library deprecations at import) say nothing about an exit and are skipped.
    """
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and "Warning" not in line and not line.strip().startswith("warnings.warn")
    ]
    errors = [
        line for line in lines if ("Error" in line or "Exception" in line) and not line.startswith("File")
    ]
    return (errors or lines or [""])[-1][:max_chars]


def worker_pool(port_file: Path | None, python: str, log_dir: Path, events: Path, port: int = 0) -> None:
    """Serve Beam's worker pool API on 127.0.0.1 until SIGTERM; each worker runs `python`.

    `port` 0 picks a free one, written to `port_file`; a fixed one serves a job server's
    workers in the same pod (a sidecar: docs/beam-runners.md).
    """
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
    from apache_beam.utils import thread_pool_executor

    workers = WorkerProcesses(python, log_dir, events)

    class Pool(beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolServicer):
        def StartWorker(self, request, context):  # noqa: N802 - the gRPC method's name.
            try:
                workers.start(request.worker_id, request.control_endpoint.url)
            except OSError as error:
                return beam_fn_api_pb2.StartWorkerResponse(error=f"cannot start {python}: {error}")
            return beam_fn_api_pb2.StartWorkerResponse()

        def StopWorker(self, request, context):  # noqa: N802
            workers.stop(request.worker_id)
            return beam_fn_api_pb2.StopWorkerResponse()

    server = grpc.server(
        thread_pool_executor.shared_unbounded_instance(),
        options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)],
    )
    port = server.add_insecure_port(f"{LOOPBACK}:{port}")
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(Pool(), server)
    server.start()

    def cleanup():
        server.stop(0)
        workers.stop_all()

    on_sigterm(cleanup)
    exit_with_parent(cleanup)
    if port_file is not None:
        write_atomically(port_file, str(port))
    while True:
        time.sleep(3600)


def worker(control_url: str, worker_id: str) -> None:
    """One SDK worker (what Beam's pool runs as `python -c`), gone when its pool is."""
    import logging

    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.worker import sdk_worker, sdk_worker_main

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    exit_with_parent(lambda: None)
    harness = sdk_worker.SdkHarness(
        control_url,
        worker_id=worker_id,
        # Beam's defaults for a worker whose pipeline sets none (what its loopback workers get).
        state_cache_size=sdk_worker_main._get_state_cache_size_bytes(PipelineOptions([])),
        data_buffer_time_limit_ms=sdk_worker_main._get_data_buffer_time_limit_ms([]),
    )
    harness.run()


def check() -> None:
    """Exit 0 when this interpreter can run a worker: apache_beam's SDK harness and the project."""
    from apache_beam.runners.worker import sdk_worker  # noqa: F401 - the import is the check.

    missing = [name for name in PROJECT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"No module named {missing[0]!r} (this project is not installed here)")
    print("ok")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    roles = parser.add_subparsers(dest="role", required=True)
    service = roles.add_parser("job-service")
    service.add_argument("--port-file", type=Path, required=True)
    service.add_argument("--staging-dir", type=Path, required=True)
    pool = roles.add_parser("worker-pool")
    pool.add_argument("--port", type=int, default=0, help="0: a free port, written to --port-file")
    pool.add_argument("--port-file", type=Path)
    pool.add_argument("--worker-python", default=sys.executable)
    pool.add_argument("--log-dir", type=Path, required=True)
    pool.add_argument("--events", type=Path, help="default: <log-dir>/workers.jsonl")
    one = roles.add_parser("worker")
    one.add_argument("--control", required=True)
    one.add_argument("--worker-id", required=True)
    roles.add_parser("check")
    args = parser.parse_args(argv)
    if args.role == "job-service":
        job_service(args.port_file, args.staging_dir)
    elif args.role == "worker-pool":
        args.log_dir.mkdir(parents=True, exist_ok=True)
        events = args.events or args.log_dir / "workers.jsonl"
        worker_pool(args.port_file, args.worker_python, args.log_dir, events, args.port)
    elif args.role == "worker":
        worker(args.control, args.worker_id)
    else:
        check()


if __name__ == "__main__":
    main()
