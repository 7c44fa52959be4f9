"""Command `monitor`: skew, prediction drift and realized quality of what the served versions answered."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.cli.options import add_alert_option, alert_webhook
from pipeline.config import DEFAULT_ROOT, PipelineConfig
from pipeline.ops.exit_codes import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE


def add_commands(commands) -> None:
    """Add `monitor` to the CLI's subparsers."""
    monitor = commands.add_parser(
        "monitor",
        help="compare logged requests with training data, served predictions with eval, "
        "and served answers with real outcomes",
    )
    monitor.add_argument("--root", default=str(DEFAULT_ROOT), help="the run root (ML Metadata, logs)")
    monitor.add_argument("--since", metavar="ISO-8601-TIME", help="only requests answered from then on")
    monitor.add_argument(
        "--labels",
        metavar="CSV_OR_SPAN_DIR",
        help="outcomes: a CSV with trip_id and tips (fare optional), or a span's CSV/folder "
        "(rows keyed <span folder>/<file>:<line>)",
    )
    monitor.add_argument("--log-dir", help="the prediction logs (default: <root>/prediction-logs)")
    monitor.add_argument("--serving-dir", help="the model's serving base directory (default: the root's)")
    monitor.add_argument(
        "--quality-tolerance",
        type=float,
        default=None,
        help="how far realized accuracy and AUC may fall below the Evaluator's or the previous "
        "version's (default: accuracy 0.055, AUC 0.035)",
    )
    monitor.add_argument("--json", dest="json_path", help="write the report here (default <root>/monitor/)")
    add_alert_option(monitor)
    monitor.set_defaults(handler=monitor_command)


def parse_since(text: str | None) -> int | None:
    """ISO-8601 time -> microseconds since the epoch (a time without zone is UTC).

    Raises:
        ValueError: naming the text that is not a time.
    """
    if text is None:
        return None
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {text!r} is not an ISO-8601 time (e.g. 2026-11-24T08:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000)


def monitor_command(args: argparse.Namespace) -> int:
    """Print one line per check (a finding: `[FINDING]`), write the JSON, alert; exit 0 or 3."""
    from monitoring import monitor
    from monitoring.report import write_report

    tolerance = None
    if args.quality_tolerance is not None:
        tolerance = {"accuracy": args.quality_tolerance, "auc": args.quality_tolerance}
    if args.quality_tolerance is not None and args.quality_tolerance < 0:
        print("error: --quality-tolerance must be non-negative", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = PipelineConfig(root=Path(args.root))
        report = monitor.monitor(
            Path(args.root),
            metadata_path=config.metadata_path,
            serving_dir=Path(args.serving_dir) if args.serving_dir else config.serving_dir,
            since_us=parse_since(args.since),
            labels_path=args.labels,
            tolerance=tolerance,
            log_dir=Path(args.log_dir) if args.log_dir else None,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(report.lines))
    path = write_report(report, Path(args.json_path) if args.json_path else None)
    url = alert_webhook(args)
    delivered = monitor.alert_findings(report, url) if report.findings else 0
    summary = f"Findings: {len(report.findings)}" if report.findings else "Healthy: no findings"
    if report.findings and url:
        summary += f" ({delivered} alert(s) delivered)"
    print(f"{summary}. Report: {path}")
    return EXIT_FINDINGS if report.findings else EXIT_OK
