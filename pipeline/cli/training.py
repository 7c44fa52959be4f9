"""Commands `run`, `replay` and `schedule`: the pipeline on a root, weeks of it, and its cron entry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.options import (
    add_alert_option,
    add_beam_runner_options,
    add_training_options,
    alert_webhook,
    beam_runner_fields,
    beam_runner_options,
    config_from_args,
)
from pipeline.config import DEFAULT_ROOT, ConfigError, PipelineConfig
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_FAILED, EXIT_OK, EXIT_SERVING_GATE, EXIT_USAGE
from pipeline.ops.run import run_command

DEFAULT_REPLAY_ROOT = DEFAULT_ROOT.parent / "replay"


def add_commands(commands) -> None:
    """Add `run`, `replay` and `schedule` to the CLI's subparsers."""
    run = commands.add_parser("run", help="run the whole pipeline (LocalDagRunner)")
    run.add_argument("--root", default=str(DEFAULT_ROOT), help="folder for everything the run writes")
    run.add_argument("--data-root", help="folder of span-<k>/*.csv (default: the embedded taxi spans)")
    run.add_argument("--first-span", type=int, help="oldest span to use (default: oldest available)")
    run.add_argument("--last-span", type=int, help="newest span to use (default: newest available)")
    add_training_options(run)
    run.add_argument(
        "--verbose",
        action="store_true",
        help="library logs and warnings (TFX INFO included) on the console, not in <root>/logs/<run id>.log",
    )
    run.add_argument(
        "--check",
        action="store_true",
        help="pre-flight only: check the arguments, the run root, the data root and the window, "
        "run nothing (exit 0 when the run could start, 2 with the problem)",
    )
    run.set_defaults(handler=run_handler)
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
    add_training_options(replay)
    replay.set_defaults(handler=replay_command)
    schedule = commands.add_parser("schedule", help="schedule the weekly run in this machine's crontab")
    schedule.add_argument("--root", default=str(DEFAULT_ROOT), help="run root of the scheduled runs")
    schedule.add_argument("--data-root", help="folder of span-<k>/*.csv the weekly feed writes into")
    schedule.add_argument("--day", default="mon", help="day of the week (mon..sun; default mon)")
    schedule.add_argument("--time", default="03:00", help="time of day, HH:MM (default 03:00)")
    schedule.add_argument("--print", dest="print_only", action="store_true", help="show the entry only")
    schedule.add_argument("--remove", action="store_true", help="take the root's entry out")
    schedule.add_argument("--crontab", default="crontab", help="the crontab command to use")
    add_alert_option(schedule)
    add_beam_runner_options(schedule)
    schedule.set_defaults(handler=schedule_command)


def _config_or_usage(args: argparse.Namespace) -> PipelineConfig | None:
    try:
        return config_from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def run_handler(args: argparse.Namespace) -> int:
    """Run the pipeline once on `--root`."""
    config = _config_or_usage(args)
    if config is None:
        return EXIT_USAGE
    if args.check:
        return _preflight(config, explicit_window=args.window is not None)
    return run_command(
        config,
        verbose=args.verbose,
        explicit_window=args.window is not None,
        alert_webhook=alert_webhook(args),
    )


def _preflight(config: PipelineConfig, explicit_window: bool) -> int:
    from data.embedded import DataError
    from pipeline import local_runner
    from pipeline.ops import beam_portable

    try:
        print(local_runner.preflight(config, explicit_window))
        print(beam_portable.preflight(config))
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _week_steps(values: list[str]) -> dict[int, int]:
    steps = {}
    for value in values:
        week, _, count = value.partition("=")
        if not (week.isdigit() and count.isdigit()):
            raise ConfigError(f"--week-train-steps takes WEEK=STEPS (e.g. 3=5), got {value!r}")
        steps[int(week)] = int(count)
    return steps


def replay_command(args: argparse.Namespace) -> int:
    """Replay `--weeks` weeks under `--root`; exit 0 when every week ran to completion."""
    import dataclasses

    config = _config_or_usage(args)
    if config is None:
        return EXIT_USAGE

    from pipeline.ops.replay import ReplayError, replay

    try:
        steps = _week_steps(args.week_train_steps)
        for count in steps.values():
            dataclasses.replace(config, train_steps=count)  # validates each week's setting
        rows = replay(config, args.weeks, steps, alert_webhook=alert_webhook(args))
    except (ConfigError, ReplayError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    failed = [row.week for row in rows if row.status not in (EXIT_OK, EXIT_SERVING_GATE, EXIT_DATA_GATE)]
    return EXIT_FAILED if failed else EXIT_OK


def schedule_command(args: argparse.Namespace) -> int:
    """Write, show or remove the weekly crontab entry of a root.

    A new entry is proven first: its command runs with `run --check` under cron's bare
    environment from `/` (`schedule.preflight`); a line that fails is neither printed as
    good nor installed.
    """
    from pipeline.ops import schedule

    root = Path(args.root).absolute()
    try:
        fields = schedule.cron_fields(args.day, args.time)
        beam = PipelineConfig(root=root, **beam_runner_fields(args))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    run_args = ["--data-root", str(Path(args.data_root).absolute())] if args.data_root else []
    run_args += beam_runner_options(beam)
    webhook = alert_webhook(args)
    if webhook:
        run_args += ["--alert-webhook", webhook]
    new_entry = None if args.remove else schedule.entry(root, fields, run_args)
    if new_entry:
        try:
            verdict = schedule.preflight(root, run_args)
        except schedule.PreflightError as error:
            print(f"error: not scheduled: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"# {verdict}", file=sys.stderr)
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
