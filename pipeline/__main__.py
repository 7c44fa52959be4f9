"""Command line: `python -m pipeline COMMAND`, one command per job below.

`run` runs the pipeline, `replay` simulates weeks of retraining, `schedule` puts the weekly
run in this machine's crontab, `runs` lists the run history (`runs show RUN`: one in full),
`report` summarises the newest run, `verify` runs the serving gate's checks on any SavedModel
with our signatures against raw data. `compile` writes the Kubeflow (KFP v2) pipeline spec,
`deploy` uploads it and keeps one weekly recurring run, `manifest --serving` prints the KServe
InferenceService for the pushed model. `serve` serves the pushed model over TF Serving's REST
API; `rollback` makes an older pushed version the served one.

Exit status of `run`: 0 when the pipeline ran to completion (pushed, or not blessed by the
Evaluator: the summary says which); 4 when the serving gate refused the model; 3 when the
data or drift gate stopped the run; 5 when another run holds the root; 2 for bad arguments;
1 for any other failure.
Exit status of `verify`: 0 when every check passes, 1 when one fails, 2 for bad arguments.
Other commands: 0 done; 2 for bad arguments or input (a 5-field cron, an unknown parameter,
no pushed version, a version that does not exist); 1 when a server or the machine failed
(KFP unreachable or refusing, a port in use).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Must precede the first TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.config import DEFAULT_BEAM_ARGS, DEFAULT_ROOT, ConfigError, PipelineConfig  # noqa: E402

DEFAULT_REPLAY_ROOT = DEFAULT_ROOT.parent / "replay"

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA_GATE, EXIT_SERVING_GATE, EXIT_BUSY = 0, 1, 2, 3, 4, 5


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `replay`: the window, training, thresholds, Beam."""
    parser.add_argument(
        "--window",
        type=int,
        default=PipelineConfig.window_spans,
        help="train on the newest N spans (0: every span); ignored with --first-span",
    )
    parser.add_argument("--train-steps", type=int, default=PipelineConfig.train_steps)
    parser.add_argument("--eval-steps", type=int, default=PipelineConfig.eval_steps)
    parser.add_argument("--epochs", type=int, default=PipelineConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=PipelineConfig.batch_size)
    parser.add_argument(
        "--auc-threshold",
        type=float,
        default=PipelineConfig.auc_threshold,
        help="overall AUC a model must reach to be pushed",
    )
    parser.add_argument(
        "--regression-tolerance",
        type=float,
        default=PipelineConfig.regression_tolerance,
        help="largest AUC drop against the last blessed model that still pushes",
    )
    parser.add_argument(
        "--gate-tolerance",
        type=float,
        default=PipelineConfig.gate_tolerance,
        help="largest gap between served and Evaluator accuracy/AUC the serving gate accepts",
    )
    parser.add_argument(
        "--strategy",
        default=PipelineConfig.strategy,
        help="distribution: auto (TF_CONFIG and devices decide), one_device, mirrored, multi_worker",
    )
    parser.add_argument("--mixed-precision", action="store_true", help="float16 compute on GPU")
    parser.add_argument("--xla", action="store_true", help="XLA JIT compilation of the training step")
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="start training from the latest blessed model's weights (vocabulary embeddings remapped)",
    )
    parser.add_argument(
        "--accept-drift",
        action="store_true",
        help="train on a span that drifted beyond the schema's thresholds (recorded in ML Metadata)",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=None,
        metavar="--OPTION=VALUE",
        help="Beam pipeline option, repeatable; replaces the in-memory default "
        f"({' '.join(DEFAULT_BEAM_ARGS)})",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline (LocalDagRunner)")
    run.add_argument("--root", default=str(DEFAULT_ROOT), help="folder for everything the run writes")
    run.add_argument("--data-root", help="folder of span-<k>/*.csv (default: the embedded taxi spans)")
    run.add_argument("--first-span", type=int, help="oldest span to use (default: oldest available)")
    run.add_argument("--last-span", type=int, help="newest span to use (default: newest available)")
    _add_training_options(run)
    run.add_argument("--verbose", action="store_true", help="show TFX's INFO logs")
    replay = commands.add_parser("replay", help="simulate N weeks: one span arrives, the pipeline runs")
    replay.add_argument("--weeks", type=int, required=True, help="how many weeks (spans) to replay")
    replay.add_argument("--root", default=str(DEFAULT_REPLAY_ROOT), help="an empty folder for the replay")
    replay.add_argument(
        "--week-train-steps",
        action="append",
        default=[],
        metavar="WEEK=STEPS",
        help="train week WEEK with STEPS steps only (e.g. 3=5: a deliberately worse week); repeatable",
    )
    _add_training_options(replay)
    schedule = commands.add_parser("schedule", help="schedule the weekly run in this machine's crontab")
    schedule.add_argument("--root", default=str(DEFAULT_ROOT), help="run root of the scheduled runs")
    schedule.add_argument("--data-root", help="folder of span-<k>/*.csv the weekly feed writes into")
    schedule.add_argument("--day", default="mon", help="day of the week (mon..sun; default mon)")
    schedule.add_argument("--time", default="03:00", help="time of day, HH:MM (default 03:00)")
    schedule.add_argument("--print", dest="print_only", action="store_true", help="show the entry only")
    schedule.add_argument("--remove", action="store_true", help="take the root's entry out")
    schedule.add_argument("--crontab", default="crontab", help="the crontab command to use")
    runs = commands.add_parser("runs", help="the run history from ML Metadata: one row per run")
    runs.add_argument("--root", default=str(DEFAULT_ROOT))
    runs.add_argument("action", nargs="?", choices=["show"], help="show one run in full")
    runs.add_argument("run", nargs="?", help="the run id (first column of `runs`); default the newest")
    report = commands.add_parser("report", help="summarise the newest run under a root (--out: an HTML page)")
    report.add_argument("--root", default=str(DEFAULT_ROOT))
    report.add_argument("--out", help="write a self-contained HTML report here instead of the text summary")
    report.add_argument("--run", help="the run to report on (default: the newest)")
    verify = commands.add_parser(
        "verify", help="run the serving gate's checks on a SavedModel against raw data"
    )
    verify.add_argument(
        "--model",
        required=True,
        help="a SavedModel folder, a Trainer model artifact, or a serving directory (newest version)",
    )
    verify.add_argument(
        "--data",
        required=True,
        help="a CSV with the taxi columns (or a folder of them), an ExampleGen examples artifact "
        "(its eval split), or a folder of TFRecord files",
    )
    verify.add_argument("--split", default="eval", help="split to read from an ExampleGen artifact")
    verify.add_argument(
        "--evaluation",
        help="an Evaluator output folder: the served accuracy and AUC must reproduce its figures",
    )
    verify.add_argument("--metric-tolerance", type=float, default=None)
    verify.add_argument("--parity-tolerance", type=float, default=None)
    verify.add_argument("--json", dest="json_path", help="also write the verdict as JSON here")
    _add_kubeflow_commands(commands)
    serve = commands.add_parser(
        "serve", help="serve the pushed model (KServe model server, TF Serving REST API)"
    )
    serve.add_argument("--root", default=str(DEFAULT_ROOT))
    serve.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--poll-s", type=float, default=1.0, help="how often to look for a new version")
    rollback = commands.add_parser("rollback", help="serve an older pushed version (newer ones are kept)")
    rollback.add_argument("--root", default=str(DEFAULT_ROOT))
    rollback.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    target = rollback.add_mutually_exclusive_group()
    target.add_argument(
        "--to", type=int, help="the version to serve (default: the one before the served one)"
    )
    target.add_argument("--clear", action="store_true", help="remove the pin: serve the newest version again")
    return parser


def _add_kubeflow_commands(commands) -> None:
    from pipeline import deploy

    compile_ = commands.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines (KFP v2 YAML)"
    )
    compile_.add_argument("--output", default="kubeflow/build/pipeline.yaml")
    compile_.add_argument(
        "--image",
        required=True,
        help="the project's image (kubeflow/Dockerfile), e.g. REGISTRY/taxi-pipeline:TAG",
    )
    compile_.add_argument("--pipeline-root", required=True, help="artifact bucket: gs://, s3:// or minio://")
    compile_.add_argument("--data-root", required=True, help="bucket folder of span-<k>/*.csv")
    compile_.add_argument("--serving-dir", required=True, help="bucket folder the Pusher writes versions to")
    compile_.add_argument(
        "--gpus", type=int, default=1, help="GPUs for the Trainer (per worker with --tfjob-workers)"
    )
    compile_.add_argument(
        "--gpu-resource", default="nvidia.com/gpu", help="resource name GPUs are requested under"
    )
    compile_.add_argument(
        "--accelerator", help="GPU model for the Trainer's node selector, e.g. nvidia-tesla-t4"
    )
    compile_.add_argument("--accelerator-label", default="cloud.google.com/gke-accelerator")
    compile_.add_argument("--trainer-cpu", type=float, default=8)
    compile_.add_argument("--trainer-memory-gib", type=float, default=32)
    compile_.add_argument(
        "--tfjob-workers", type=int, default=0, help="train in a TFJob of N workers (0: in the Trainer pod)"
    )
    compile_.add_argument("--tfjob-namespace", default="kubeflow")
    _add_training_options(compile_)

    deploy_ = commands.add_parser(
        "deploy", help="upload the compiled pipeline and keep one weekly recurring run"
    )
    deploy_.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8888")
    deploy_.add_argument("--package", default="kubeflow/build/pipeline.yaml", help="the compiled pipeline")
    deploy_.add_argument("--experiment", default=deploy.DEFAULT_EXPERIMENT)
    deploy_.add_argument("--cron", default=deploy.DEFAULT_CRON, help="KFP cron, 6 fields, seconds first")
    deploy_.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="runtime parameter of the recurring run; repeatable",
    )
    deploy_.add_argument(
        "--token", default=os.environ.get("KFP_TOKEN"), help="bearer token (default $KFP_TOKEN)"
    )
    deploy_.add_argument("--namespace", help="KFP namespace (multi-user deployments)")
    state = deploy_.add_mutually_exclusive_group()
    state.add_argument("--pause", dest="schedule_action", action="store_const", const="pause")
    state.add_argument("--resume", dest="schedule_action", action="store_const", const="resume")
    state.add_argument("--delete-schedule", dest="schedule_action", action="store_const", const="delete")

    manifest = commands.add_parser(
        "manifest", help="Kubernetes manifests: --serving for the KServe InferenceService"
    )
    manifest.add_argument("--serving", action="store_true", required=True, help="the KServe InferenceService")
    manifest.add_argument(
        "--storage-uri", required=True, help="the model's base path: <serving dir>/<model name>"
    )
    manifest.add_argument("--name", default=None, help="InferenceService name (default big-tipper)")
    manifest.add_argument("--namespace", default="kubeflow")
    manifest.add_argument("--runtime-version", default=None, help="TF Serving image tag")
    manifest.add_argument("--cpu", default="1")
    manifest.add_argument("--memory", default="2Gi")
    manifest.add_argument("--gpus", type=int, default=0)
    manifest.add_argument("--min-replicas", type=int, default=1)
    manifest.add_argument("--max-replicas", type=int, default=3)
    manifest.add_argument("--service-account", help="account whose secret reads the bucket")
    manifest.add_argument("--output", help="write here instead of stdout")


def _config(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        root=getattr(args, "root", DEFAULT_ROOT),
        data_root=getattr(args, "data_root", None),
        first_span=getattr(args, "first_span", None),
        last_span=getattr(args, "last_span", None),
        window_spans=args.window or None,
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        auc_threshold=args.auc_threshold,
        regression_tolerance=args.regression_tolerance,
        gate_tolerance=args.gate_tolerance,
        accept_drift=args.accept_drift,
        warm_start=args.warm_start,
        strategy=args.strategy,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        beam_args=tuple(args.beam_arg) if args.beam_arg else DEFAULT_BEAM_ARGS,
    )


def run_command(config: PipelineConfig, verbose: bool = False) -> int:
    """Run the pipeline, print progress and the summary; return the exit status.

    Holds the root's run lock throughout: a second run on the same root exits at once.
    """
    from pipeline.lock import RunInProgressError, run_lock

    try:
        with run_lock(config.root):
            return _run_locked(config, verbose)
    except RunInProgressError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BUSY


def _run_locked(config: PipelineConfig, verbose: bool) -> int:
    from components.anomaly_gate.executor import DataAnomalyError
    from components.drift_gate.executor import DriftError
    from data.embedded import DataError
    from pipeline import local_runner, progress, report

    started = time.monotonic()
    try:
        tfx_pipeline = local_runner.build(config)
    except (DataError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"Pipeline {config.pipeline_name}: root {config.root}, data {config.span_data_root}", flush=True)
    status = EXIT_OK
    try:
        with progress.attach(total=len(tfx_pipeline.components), verbose=verbose):
            local_runner.run_pipeline(tfx_pipeline)
    except DataAnomalyError as error:
        print(f"\nSTOPPED by the data gate: {error}", file=sys.stderr)
        status = EXIT_DATA_GATE
    except DriftError as error:
        print(f"\nSTOPPED by the drift gate: {error}", file=sys.stderr)
        status = EXIT_DATA_GATE
    except Exception as error:  # noqa: BLE001 - any component failure ends the run the same way.
        print(f"\nFAILED: {type(error).__name__}: {error}", file=sys.stderr)
        status = EXIT_FAILED
    print()
    try:
        summary = report.load_report(config.metadata_path)
        print(report.format_report(summary))
        if status == EXIT_OK and summary.gate_blessed is False:
            status = EXIT_SERVING_GATE
    except (KeyError, FileNotFoundError) as error:
        print(f"(no run summary: {error})")
    print(f"Wall time {time.monotonic() - started:.1f} s; exit status {status}")
    return status


def verify_command(args: argparse.Namespace) -> int:
    """Run the serving gate's checks on `--model` against `--data`; print the verdict."""
    from components import serving
    from components.serving_gate import checks

    metric_tolerance = (
        checks.DEFAULT_METRIC_TOLERANCE if args.metric_tolerance is None else args.metric_tolerance
    )
    parity_tolerance = (
        checks.DEFAULT_PARITY_TOLERANCE if args.parity_tolerance is None else args.parity_tolerance
    )
    if metric_tolerance < 0 or parity_tolerance < 0:
        print("error: tolerances must be non-negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        model_dir = serving.resolve_model_dir(args.model)
        examples = serving.load_replay_examples(args.data, split=args.split)
        evaluator = None
        if args.evaluation:
            from components.evaluation import evaluation_metrics

            evaluator, _ = evaluation_metrics(args.evaluation)
            if not evaluator:
                raise FileNotFoundError(f"no overall metrics in the evaluation at {args.evaluation}")
    except (FileNotFoundError, serving.ReplayDataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    verdict = checks.run_checks(str(model_dir), examples, evaluator, metric_tolerance, parity_tolerance)
    print(verdict.format())
    if args.json_path:
        with open(args.json_path, "w") as handle:
            handle.write(verdict.to_json())
    return EXIT_OK if verdict.blessed else EXIT_FAILED


def _week_steps(values: list[str]) -> dict[int, int]:
    steps = {}
    for value in values:
        week, _, count = value.partition("=")
        if not (week.isdigit() and count.isdigit()):
            raise ConfigError(f"--week-train-steps takes WEEK=STEPS (e.g. 3=5), got {value!r}")
        steps[int(week)] = int(count)
    return steps


def replay_command(config: PipelineConfig, args: argparse.Namespace) -> int:
    """Replay `--weeks` weeks under `--root`; exit 0 when every week ran to completion."""
    import dataclasses

    from pipeline.replay import ReplayError, replay

    try:
        steps = _week_steps(args.week_train_steps)
        for count in steps.values():
            dataclasses.replace(config, train_steps=count)  # validates each week's setting
        rows = replay(config, args.weeks, steps)
    except (ConfigError, ReplayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    failed = [row.week for row in rows if row.status not in (EXIT_OK, EXIT_SERVING_GATE, EXIT_DATA_GATE)]
    return EXIT_FAILED if failed else EXIT_OK


def schedule_command(args: argparse.Namespace) -> int:
    """Write, show or remove the weekly crontab entry of a root."""
    from pathlib import Path

    from pipeline import schedule

    root = Path(args.root).absolute()
    try:
        fields = schedule.cron_fields(args.day, args.time)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    run_args = ["--data-root", str(Path(args.data_root).absolute())] if args.data_root else []
    new_entry = None if args.remove else schedule.entry(root, fields, run_args)
    if args.print_only:
        print(new_entry or f"(--remove --print: the entry marked '{schedule.MARKER}{root}' would go)", end="")
        return EXIT_OK
    try:
        current = schedule.read_crontab(args.crontab)
        updated = schedule.updated_crontab(current, root, new_entry)
        if updated == current:
            print(f"No weekly run is scheduled for {root}" if args.remove else "Already scheduled, unchanged")
            return EXIT_OK
        if new_entry:
            (root / schedule.LOG_NAME).parent.mkdir(parents=True, exist_ok=True)
        schedule.write_crontab(updated, args.crontab)
    except FileNotFoundError:
        print(
            f"error: no `{args.crontab}` command on this machine (install cron, e.g. apt-get install cron); "
            f"the entry would be:\n{new_entry or ''}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    if new_entry:
        print(f"Scheduled the weekly run of {root} ({fields}); output goes to {root / schedule.LOG_NAME}:")
        print(new_entry, end="")
    else:
        print(f"Removed the weekly run of {root} from the crontab")
    return EXIT_OK


def compile_command(args: argparse.Namespace) -> int:
    """Compile for Kubeflow; print where the YAML went and what it asks for."""
    from pipeline import kubeflow_runner

    try:
        config = _config(args)
        settings = kubeflow_runner.KubeflowSettings(
            image=args.image,
            pipeline_root=args.pipeline_root,
            data_root=args.data_root,
            serving_dir=args.serving_dir,
            beam_args=config.beam_args,
            gpus=args.gpus,
            gpu_resource=args.gpu_resource,
            accelerator=args.accelerator,
            accelerator_label=args.accelerator_label,
            trainer_cpu=args.trainer_cpu,
            trainer_memory_gib=args.trainer_memory_gib,
            tfjob_workers=args.tfjob_workers,
            tfjob_namespace=args.tfjob_namespace,
        )
    except (ConfigError, kubeflow_runner.CompileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    output = kubeflow_runner.compile_pipeline(config, settings, args.output)
    trainer = f"{settings.gpus} x {settings.gpu_resource}" if settings.gpus else "CPU"
    if settings.tfjob_workers:
        trainer = f"TFJob of {settings.tfjob_workers} workers, {trainer} each"
    print(f"Compiled {kubeflow_runner.kfp_name(config.pipeline_name)} to {output}")
    print(f"  image {settings.image}; pipeline root {settings.pipeline_root}; Trainer: {trainer}")
    print("  runtime parameters: " + ", ".join(kubeflow_runner.RUNTIME_PARAMETERS))
    return EXIT_OK


def deploy_command(args: argparse.Namespace) -> int:
    """Upload + schedule, or pause/resume/delete the schedule."""
    from pathlib import Path

    from pipeline import deploy

    try:
        overrides = dict(_name_value(p) for p in args.param)
        if args.schedule_action:
            name = deploy.read_spec(Path(args.package))[0]["pipelineInfo"]["name"]
            client = deploy.connect(args.host, args.token, args.namespace)
            print(deploy.set_schedule_state(client, name, args.experiment, args.schedule_action))
            return EXIT_OK
        request = deploy.plan(Path(args.package), args.cron, overrides)
        client = deploy.connect(args.host, args.token, args.namespace)
        result = deploy.deploy(client, request, args.experiment)
    except (deploy.DeployUsageError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except deploy.DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    for action in result.actions:
        print(f"  {action}")
    print(
        f"Deployed: pipeline {result.pipeline_id}, version {result.version_name} ({result.version_id}), "
        f"experiment {result.experiment_id}, recurring run {result.recurring_run_id}"
    )
    return EXIT_OK


def _name_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param wants NAME=VALUE, got {text!r}")
    return name, value


def manifest_command(args: argparse.Namespace) -> int:
    """Print (or write) the KServe InferenceService."""
    from pathlib import Path

    from pipeline import manifests

    options = {
        key: value
        for key, value in {"name": args.name, "runtime_version": args.runtime_version}.items()
        if value is not None
    }
    try:
        settings = manifests.ServingSettings(
            storage_uri=args.storage_uri,
            namespace=args.namespace,
            cpu=args.cpu,
            memory=args.memory,
            gpus=args.gpus,
            min_replicas=args.min_replicas,
            max_replicas=args.max_replicas,
            service_account=args.service_account,
            **options,
        )
    except manifests.ManifestError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    text = manifests.to_yaml(manifests.inference_service(settings))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
        print(f"Wrote the InferenceService {settings.name} to {args.output}")
    else:
        print(text, end="")
    return EXIT_OK


def _serving_base(args: argparse.Namespace):
    from pathlib import Path

    return Path(args.serving_dir) if args.serving_dir else PipelineConfig(root=args.root).serving_dir


def serve_command(args: argparse.Namespace) -> int:
    """Run the model server until interrupted."""
    import logging

    from components import model_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    base = _serving_base(args)
    try:
        model_server.serve(PipelineConfig(root=args.root).model_name, base, args.host, args.port, args.poll_s)
    except FileNotFoundError as error:
        print(f"error: {error}; run the pipeline first (make run)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: cannot serve on {args.host}:{args.port}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def rollback_command(args: argparse.Namespace) -> int:
    """Pin an older version (or clear the pin) and say what changed."""
    from components import model_server

    base = _serving_base(args)
    available = model_server.versions(base)
    current = model_server.target_version(base)
    if current is None:
        print(f"error: no pushed version in {base}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.clear:
            before, after = model_server.pin_version(base, None)
        else:
            version = args.to
            if version is None:
                older = [v for v in available if v < current]
                if not older:
                    print(
                        f"error: {current} is the oldest pushed version; nothing to roll back to",
                        file=sys.stderr,
                    )
                    return EXIT_USAGE
                version = older[-1]
            before, after = model_server.pin_version(base, version, reason=f"rollback from {current}")
    except model_server.VersionError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    newer = [v for v in available if v > (after or 0)]
    if before == after:
        print(f"Selected version unchanged: {after}")
    else:
        print(f"Selected version: {before} -> {after} (the version `serve` loads from {base})")
    if args.clear:
        print("Pin removed: the newest pushed version is served, and each new push will be.")
    else:
        print(f"Pinned in {base / model_server.PIN_FILE}; kept newer versions: {newer or 'none'}.")
        print("New pushes are not served until `python -m pipeline rollback --clear`.")
    print("A running `serve` switches within its poll interval.")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    simple = {
        "serve": serve_command,
        "rollback": rollback_command,
        "compile": compile_command,
        "deploy": deploy_command,
        "manifest": manifest_command,
        "verify": verify_command,
        "schedule": schedule_command,
    }
    if args.command in simple:
        return simple[args.command](args)
    if args.command == "runs":
        from pipeline import report

        metadata_path = PipelineConfig(root=args.root).metadata_path
        try:
            if args.action == "show":
                print(report.format_run_details(report.load_report(metadata_path, args.run)))
            else:
                print(report.format_runs(metadata_path))
        except (KeyError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    if args.command == "report":
        from pipeline import report

        metadata_path = PipelineConfig(root=args.root).metadata_path
        try:
            if args.out:
                from pipeline import html_report

                path = html_report.write_html(metadata_path, args.out, args.run)
                print(f"Wrote the report to {path}")
            else:
                print(report.format_report(report.load_report(metadata_path, args.run)))
        except (KeyError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    try:
        config = _config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "replay":
        return replay_command(config, args)
    return run_command(config, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
