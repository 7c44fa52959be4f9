"""Command line: `python -m pipeline run | replay | schedule | runs | report | verify`.

`run` runs the pipeline, `replay` simulates weeks of retraining, `schedule` puts the weekly
run in this machine's crontab, `runs` lists the run history (`runs show RUN`: one in full),
`report` summarises the newest run, `verify` runs the serving gate's checks on any SavedModel
with our signatures against raw data.

Exit status of `run`: 0 when the pipeline ran to completion (pushed, or not blessed by the
Evaluator: the summary says which); 4 when the serving gate refused the model; 3 when the
data or drift gate stopped the run; 5 when another run holds the root; 2 for bad arguments;
1 for any other failure.
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        return verify_command(args)
    if args.command == "schedule":
        return schedule_command(args)
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
    if args.command == "replay":
        return replay_command(config, args)
    return run_command(config, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
