"""Command line: `python -m pipeline run | report | verify`.

`run` runs the pipeline, `report` summarises the newest run, `verify` runs the serving gate's
checks on any SavedModel with our signatures against raw data.

Exit status of `run`: 0 when the pipeline ran to completion (pushed, or not blessed by the
Evaluator: the summary says which); 4 when the serving gate refused the model; 3 when the
data or drift gate stopped the run; 2 for bad arguments; 1 for any other failure.
Exit status of `verify`: 0 when every check passes, 1 when one fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Must precede the first TensorFlow import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pipeline.config import DEFAULT_BEAM_ARGS, DEFAULT_ROOT, ConfigError, PipelineConfig  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_DATA_GATE, EXIT_SERVING_GATE = 0, 1, 2, 3, 4


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the whole pipeline (LocalDagRunner)")
    run.add_argument("--root", default=str(DEFAULT_ROOT), help="folder for everything the run writes")
    run.add_argument("--data-root", help="folder of span-<k>/*.csv (default: the embedded taxi spans)")
    run.add_argument("--first-span", type=int, help="oldest span to use (default: oldest available)")
    run.add_argument("--last-span", type=int, help="newest span to use (default: newest available)")
    run.add_argument(
        "--window",
        type=int,
        default=PipelineConfig.window_spans,
        help="train on the newest N spans (0: every span); ignored with --first-span",
    )
    run.add_argument("--train-steps", type=int, default=PipelineConfig.train_steps)
    run.add_argument("--eval-steps", type=int, default=PipelineConfig.eval_steps)
    run.add_argument("--epochs", type=int, default=PipelineConfig.epochs)
    run.add_argument("--batch-size", type=int, default=PipelineConfig.batch_size)
    run.add_argument(
        "--auc-threshold",
        type=float,
        default=PipelineConfig.auc_threshold,
        help="overall AUC a model must reach to be pushed",
    )
    run.add_argument(
        "--regression-tolerance",
        type=float,
        default=PipelineConfig.regression_tolerance,
        help="largest AUC drop against the last blessed model that still pushes",
    )
    run.add_argument(
        "--gate-tolerance",
        type=float,
        default=PipelineConfig.gate_tolerance,
        help="largest gap between served and Evaluator accuracy/AUC the serving gate accepts",
    )
    run.add_argument(
        "--accept-drift",
        action="store_true",
        help="train on a span that drifted beyond the schema's thresholds (recorded in ML Metadata)",
    )
    run.add_argument(
        "--beam-arg",
        action="append",
        default=None,
        metavar="--OPTION=VALUE",
        help="Beam pipeline option, repeatable; replaces the in-memory default "
        f"({' '.join(DEFAULT_BEAM_ARGS)})",
    )
    run.add_argument("--verbose", action="store_true", help="show TFX's INFO logs")
    report = commands.add_parser("report", help="summarise the newest run under a root")
    report.add_argument("--root", default=str(DEFAULT_ROOT))
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
    return parser


def _config(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        root=args.root,
        data_root=args.data_root,
        first_span=args.first_span,
        last_span=args.last_span,
        window_spans=args.window or None,
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        auc_threshold=args.auc_threshold,
        regression_tolerance=args.regression_tolerance,
        gate_tolerance=args.gate_tolerance,
        accept_drift=args.accept_drift,
        beam_args=tuple(args.beam_arg) if args.beam_arg else DEFAULT_BEAM_ARGS,
    )


def run_command(config: PipelineConfig, verbose: bool = False) -> int:
    """Run the pipeline, print progress and the summary; return the exit status."""
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        return verify_command(args)
    if args.command == "report":
        from pipeline import report

        try:
            print(report.format_report(report.load_report(PipelineConfig(root=args.root).metadata_path)))
        except (KeyError, FileNotFoundError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK
    try:
        config = _config(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return run_command(config, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
