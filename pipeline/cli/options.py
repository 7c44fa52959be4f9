"""Options shared by several commands: the training options and the config they make."""

from __future__ import annotations

import argparse

from pipeline.config import BEAM_RUNNERS, DEFAULT_BEAM_ARGS, DEFAULT_ROOT, ConfigError, PipelineConfig


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `replay`: the window, training, thresholds, Beam."""
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help=f"train on the newest N spans (0: every span; default {PipelineConfig.window_spans}); "
        "ignored with --first-span",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="train exactly this many steps (default: the whole training split once, at least "
        f"{PipelineConfig.train_steps} steps, a uniform sample past "
        f"{PipelineConfig.max_train_examples:,} examples)",
    )
    parser.add_argument(
        "--max-train-examples",
        type=int,
        default=PipelineConfig.max_train_examples,
        help="without --train-steps: sample the training split uniformly beyond this many examples",
    )
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
        "--calibration-tolerance",
        type=float,
        default=PipelineConfig.calibration_tolerance,
        help="bless only a model whose overall calibration (mean prediction / mean label) is "
        "within [1 - X, 1 + X]",
    )
    parser.add_argument(
        "--gate-tolerance",
        type=float,
        default=PipelineConfig.gate_tolerance,
        help="largest gap between served and Evaluator accuracy/AUC the serving gate accepts",
    )
    parser.add_argument(
        "--edge-accuracy-tolerance",
        type=float,
        default=PipelineConfig.edge_accuracy_tolerance,
        help="largest int8 edge model vs SavedModel accuracy gap the edge gate accepts",
    )
    parser.add_argument(
        "--edge-auc-tolerance",
        type=float,
        default=PipelineConfig.edge_auc_tolerance,
        help="largest int8 edge model vs SavedModel AUC gap the edge gate accepts "
        "(a refusal stops the edge push only)",
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
    add_alert_option(parser)
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=None,
        metavar="--OPTION=VALUE",
        help="Beam pipeline option, repeatable; replaces the in-memory default "
        f"({' '.join(DEFAULT_BEAM_ARGS)}); with --beam portable, added to the runner's options",
    )
    add_beam_runner_options(parser)


def add_beam_runner_options(parser: argparse.ArgumentParser) -> None:
    """`--beam`, `--beam-workers`, `--job-endpoint`, `--environment-config` (docs/beam-runners.md)."""
    parser.add_argument(
        "--beam",
        choices=BEAM_RUNNERS,
        default=None,
        help="direct: the DirectRunner in this process (default); portable: Beam's portable "
        "runner, on a job service and SDK worker pool this run starts on 127.0.0.1, or on "
        "--job-endpoint",
    )
    parser.add_argument(
        "--beam-workers",
        type=int,
        default=None,
        metavar="N",
        help=f"with --beam portable: SDK worker processes per stage (default {PipelineConfig.beam_workers})",
    )
    parser.add_argument(
        "--job-endpoint",
        metavar="HOST:PORT",
        help="a running Beam job server (Flink's, Spark's) instead of the run's own; implies --beam portable",
    )
    parser.add_argument(
        "--environment-config",
        metavar="HOST:PORT",
        help="with --job-endpoint: the SDK worker pool that server's workers reach (EXTERNAL environment)",
    )


def beam_runner_fields(args: argparse.Namespace) -> dict:
    """The PipelineConfig fields of the Beam runner options (`--job-endpoint` implies portable)."""
    endpoint = getattr(args, "job_endpoint", None)
    runner = getattr(args, "beam", None) or ("portable" if endpoint else PipelineConfig.beam_runner)
    workers = getattr(args, "beam_workers", None)
    if workers is not None and runner != "portable":
        raise ConfigError(
            "--beam-workers is for --beam portable (the DirectRunner's: --beam-arg=--direct_num_workers=N)"
        )
    return dict(
        beam_runner=runner,
        beam_workers=PipelineConfig.beam_workers if workers is None else workers,
        beam_job_endpoint=endpoint,
        beam_environment_config=getattr(args, "environment_config", None),
    )


def beam_runner_options(config: PipelineConfig) -> list[str]:
    """The command-line options that choose `config`'s Beam runner (for a scheduled run)."""
    if config.beam_runner == "direct":
        return []
    args = ["--beam", "portable", "--beam-workers", str(config.beam_workers)]
    if config.beam_job_endpoint:
        args += ["--job-endpoint", config.beam_job_endpoint]
    if config.beam_environment_config:
        args += ["--environment-config", config.beam_environment_config]
    return args


def add_alert_option(parser: argparse.ArgumentParser) -> None:
    """`--alert-webhook URL`: where alerts go (default: the PIPELINE_ALERT_WEBHOOK variable)."""
    parser.add_argument(
        "--alert-webhook",
        metavar="URL",
        help="POST one JSON alert per event here (Slack/Mattermost incoming webhooks accept it); "
        "default: $PIPELINE_ALERT_WEBHOOK",
    )


def alert_webhook(args: argparse.Namespace) -> str | None:
    """The webhook of a command: its option, else the environment variable."""
    from monitoring.alerts import webhook_url

    return webhook_url(getattr(args, "alert_webhook", None))


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        root=getattr(args, "root", DEFAULT_ROOT),
        data_root=getattr(args, "data_root", None),
        first_span=getattr(args, "first_span", None),
        last_span=getattr(args, "last_span", None),
        window_spans=PipelineConfig.window_spans if args.window is None else (args.window or None),
        train_steps=PipelineConfig.train_steps if args.train_steps is None else args.train_steps,
        train_steps_from_data=args.train_steps is None,
        max_train_examples=args.max_train_examples,
        eval_steps=args.eval_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        auc_threshold=args.auc_threshold,
        regression_tolerance=args.regression_tolerance,
        calibration_tolerance=args.calibration_tolerance,
        gate_tolerance=args.gate_tolerance,
        edge_accuracy_tolerance=args.edge_accuracy_tolerance,
        edge_auc_tolerance=args.edge_auc_tolerance,
        accept_drift=args.accept_drift,
        warm_start=args.warm_start,
        strategy=args.strategy,
        mixed_precision=args.mixed_precision,
        xla=args.xla,
        beam_args=tuple(args.beam_arg) if args.beam_arg else DEFAULT_BEAM_ARGS,
        beam_args_given=bool(args.beam_arg),
        **beam_runner_fields(args),
    )
