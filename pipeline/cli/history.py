"""Commands `runs` and `report`: the run history from ML Metadata, a run's summary or HTML page."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import DEFAULT_ROOT, PipelineConfig
from pipeline.ops.exit_codes import EXIT_OK, EXIT_USAGE


def add_commands(commands) -> None:
    """Add `runs` and `report` to the CLI's subparsers."""
    runs = commands.add_parser("runs", help="the run history from ML Metadata: one row per run")
    runs.add_argument("--root", default=str(DEFAULT_ROOT))
    runs.add_argument("action", nargs="?", choices=["show"], help="show one run in full")
    runs.add_argument("run", nargs="?", help="the run id (first column of `runs`); default the newest")
    runs.set_defaults(handler=runs_command)
    report = commands.add_parser("report", help="summarise the newest run under a root (--out: an HTML page)")
    report.add_argument("--root", default=str(DEFAULT_ROOT))
    report.add_argument("--out", help="write a self-contained HTML report here instead of the text summary")
    report.add_argument("--run", help="the run to report on (default: the newest)")
    report.set_defaults(handler=report_command)


def runs_command(args: argparse.Namespace) -> int:
    """One row per run, or (`runs show RUN`) one run in full."""
    from pipeline.ops import run_history as history

    metadata_path = PipelineConfig(root=args.root).metadata_path
    try:
        if args.action == "show":
            print(history.format_run_details(history.load_report(metadata_path, args.run)))
        else:
            print(history.format_runs(metadata_path))
    except (KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def report_command(args: argparse.Namespace) -> int:
    """The newest (or `--run`) run's summary; with `--out`, a self-contained HTML page."""
    from pipeline.ops import run_history as history

    metadata_path = PipelineConfig(root=args.root).metadata_path
    try:
        if args.out:
            from pipeline.ops import html_report

            path = html_report.write_html(metadata_path, args.out, args.run)
            print(f"Wrote the report to {path}")
        else:
            print(history.format_report(history.load_report(metadata_path, args.run)))
    except (KeyError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
