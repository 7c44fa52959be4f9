"""`python -m pipeline monitor`: what the served versions actually saw and answered.

Over the prediction logs (`monitoring/prediction_logs.py`) since a time, per model version
that answered, found in ML Metadata through `monitoring/lineage.py`, one check after another:

- **skew** (`monitoring/skew.py`): TFDV statistics of the logged requests against the train
  split's statistics of the examples that version was trained on, with the schema's
  `skew_comparator`s;
- **prediction drift** (`monitoring/drift.py`): the served probabilities against the
  version's own on its eval split (what the Evaluator scored);
- **realized quality** (`monitoring/quality.py`), with `--labels`: the logged predictions
  joined by key to the trips' real outcomes, against the Evaluator's figures for that version
  and against the realized figures of the version served before it.

Each finding is one line naming the feature (or metric), the distance (or the figures) and the
threshold (`monitoring/report.py`); the command writes `<root>/monitor/monitor-<UTC time>.json`
(the HTML report's Production section reads them) and alerts once per version and kind of
finding (`alert_findings`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from monitoring.drift import check_prediction_drift
from monitoring.lineage import LineageError, version_lineage
from monitoring.prediction_logs import LoggedExamples, read_logs
from monitoring.quality import DEFAULT_QUALITY_TOLERANCE, check_quality, compare_versions, load_labels
from monitoring.report import CheckLog, Finding, MonitorError, MonitorReport, VersionReport
from monitoring.skew import check_skew


def _iso(time_us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_us / 1e6))


def monitor(
    root: Path,
    *,
    metadata_path: Path,
    serving_dir: Path,
    since_us: int | None = None,
    labels_path: str | None = None,
    tolerance: dict[str, float] | None = None,
    log_dir: Path | None = None,
) -> MonitorReport:
    """Check every version that answered since `since_us`; the report (findings included).

    Args:
        root: the run root (the report is written under it; the logs are read from it by default).
        metadata_path: the run's ML Metadata store (each version's lineage).
        serving_dir: the model's serving base directory (each version's SavedModel).
        since_us: only examples answered from then on (microseconds since the epoch).
        labels_path: outcomes to hold realized quality to (`quality.load_labels`).
        tolerance: how far realized accuracy and AUC may fall (default DEFAULT_QUALITY_TOLERANCE).
        log_dir: the prediction logs (default `<root>/prediction-logs`).

    Raises:
        MonitorError: no logged predictions in that period, or unreadable labels.
        FileNotFoundError: no ML Metadata store at `metadata_path`.
    """
    from schemas import load_schema
    from serving.prediction_log import LOG_FOLDER

    tolerance = dict(DEFAULT_QUALITY_TOLERANCE if tolerance is None else tolerance)
    log_dir = log_dir or Path(root) / LOG_FOLDER
    labels = load_labels(labels_path) if labels_path else None
    logged = read_logs(log_dir, since_us)
    since_text = _iso(since_us) if since_us is not None else None
    if not len(logged):
        raise MonitorError(
            f"no logged predictions under {log_dir}"
            + (f" since {since_text}" if since_text else "")
            + ": serve the model (python -m pipeline serve) and send it requests first"
        )
    schema = load_schema()
    checks = CheckLog()
    versions = sorted(set(logged.versions.tolist()))
    checks.line(
        f"Monitor of {root}: {len(logged):,} logged predictions"
        + (f" since {since_text}" if since_text else "")
        + f", versions {', '.join(str(v) for v in versions)}"
    )
    reports = []
    for version in versions:
        served = logged.select(logged.versions == version)
        reports.append(report := _version_report(version, served))
        try:
            lineage = version_lineage(metadata_path, version)
        except LineageError as error:
            report.notes.append(f"not checked: {error}")
            checks.skipped(version, None, str(error))
            continue
        check_skew(report, served, lineage, schema, checks)
        check_prediction_drift(report, served, lineage, serving_dir, checks)
        check_quality(report, served, lineage, labels, tolerance, checks)
    if labels is not None:
        compare_versions(reports, tolerance, checks)
    return MonitorReport(
        root=str(root),
        since=since_text,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        examples=len(logged),
        versions=reports,
        findings=checks.findings,
        lines=checks.lines,
    )


def _version_report(version: int, served: LoggedExamples) -> VersionReport:
    """A version's report before any check: how many examples it answered, when, and their mean."""
    report = VersionReport(
        version, len(served), _iso(int(served.times_us.min())), _iso(int(served.times_us.max()))
    )
    report.served_mean = float(served.predictions.mean())
    return report


def alert_findings(report: MonitorReport, url: str | None) -> int:
    """One alert per version and kind of finding; how many were delivered."""
    from monitoring.alerts import send_alert

    grouped: dict[tuple[int, str], list[Finding]] = {}
    for item in report.findings:
        grouped.setdefault((item.version, item.kind), []).append(item)
    delivered = 0
    for (version, kind), items in grouped.items():
        text = f"monitor of {report.root}: version {version} {kind}: " + "; ".join(i.text for i in items)
        delivered += send_alert(
            url, kind, text, version=version, findings=[dataclasses.asdict(i) for i in items]
        )
    return delivered
