"""Options shared by several commands: the training options and the config they make."""

from __future__ import annotations

import argparse

from pipeline.config import DEFAULT_BEAM_ARGS, DEFAULT_ROOT, PipelineConfig


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
        f"({' '.join(DEFAULT_BEAM_ARGS)})",
    )


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
    )
