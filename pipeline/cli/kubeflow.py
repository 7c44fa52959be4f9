"""Commands `compile`, `deploy` and `manifest`: the pipeline on Kubeflow, its schedule, KServe."""

from __future__ import annotations

import argparse
import os
import sys

from pipeline.cli.options import add_training_options, config_from_args
from pipeline.config import ConfigError
from pipeline.ops.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def add_commands(commands) -> None:
    """Add `compile`, `deploy` and `manifest` to the CLI's subparsers."""
    from pipeline.ops import deploy

    compile_ = commands.add_parser(
        "compile", help="compile the pipeline for Kubeflow Pipelines (KFP v2 YAML)"
    )
    compile_.add_argument("--output", default="kubeflow/build/pipeline.yaml")
    compile_.add_argument(
        "--image",
        required=True,
        help="the project's image (kubeflow/Dockerfile), e.g. REGISTRY/taxi-pipeline:TAG",
    )
    compile_.add_argument("--pipeline-root", required=True, help="artifact bucket (gs://)")
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
    add_training_options(compile_)
    compile_.set_defaults(handler=compile_command)

    deploy_ = commands.add_parser(
        "deploy", help="upload the compiled pipeline and keep one weekly recurring run"
    )
    deploy_.set_defaults(handler=deploy_command)
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
    manifest.set_defaults(handler=manifest_command)
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
    manifest.add_argument(
        "--log-url",
        help="KServe's inference logger: POST every request and response here as CloudEvents "
        "(docs/monitoring.md: how they become input for `monitor`)",
    )
    manifest.add_argument("--output", help="write here instead of stdout")


def compile_command(args: argparse.Namespace) -> int:
    """Compile for Kubeflow; print where the YAML went and what it asks for."""
    from pipeline import kubeflow_runner, local_runner

    try:
        config = config_from_args(args)
        if config.beam_runner == "portable" and not config.beam_job_endpoint:
            raise ConfigError(
                "--beam portable alone starts a job service on this machine, which the pipeline's "
                "pods cannot reach: name the cluster's job server with --job-endpoint HOST:PORT "
                "and its worker pool with --environment-config HOST:PORT (docs/beam-runners.md)"
            )
        settings = kubeflow_runner.KubeflowSettings(
            image=args.image,
            pipeline_root=args.pipeline_root,
            data_root=args.data_root,
            serving_dir=args.serving_dir,
            beam_args=tuple(local_runner.runner_beam_args(config)),
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

    from pipeline.ops import deploy

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

    from pipeline.ops import manifests

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
            log_url=args.log_url,
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
