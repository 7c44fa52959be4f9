"""What `python -m pipeline monitor` found: findings, per-version figures, the printed lines.

Every check (`skew`, `drift`, `quality`) writes into one `CheckLog`: a finding is one line
naming the feature (or metric), the distance (or the figures) and the threshold, plus its
structured fields for the JSON and the alert; a passed check is an `[OK     ]` line, one that
could not run a `[SKIPPED]` line saying why. The report is written as JSON under
`<root>/monitor/` (the HTML report's Production section reads those files).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

MONITOR_FOLDER = "monitor"


class MonitorError(ValueError):
    """Nothing to monitor, or input that cannot be read (the message names it)."""


@dataclasses.dataclass
class Finding:
    """One thing `monitor` found wrong."""

    kind: str  # skew | prediction_drift | realized_quality
    version: int
    text: str
    fields: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class VersionReport:
    """The figures of one served version."""

    version: int
    examples: int
    first_time: str
    last_time: str
    skew: list[dict] = dataclasses.field(default_factory=list)
    prediction_drift: float | None = None
    served_mean: float | None = None
    eval_mean: float | None = None
    realized: dict | None = None  # {"examples", "accuracy", "auc", "slices": {...}}
    evaluator: dict | None = None  # the Evaluator's overall accuracy and auc
    notes: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class MonitorReport:
    """One `monitor` run: every version that answered, the findings, the lines it printed."""

    root: str
    since: str | None
    created: str
    examples: int
    versions: list[VersionReport]
    findings: list[Finding]
    lines: list[str]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, default=float)


@dataclasses.dataclass
class CheckLog:
    """The findings and printed lines of one run, in the order the checks wrote them."""

    findings: list[Finding] = dataclasses.field(default_factory=list)
    lines: list[str] = dataclasses.field(default_factory=list)

    def finding(self, kind: str, version: int, text: str, **fields) -> None:
        """Record a finding of `kind` (its alert event) and print it."""
        self.findings.append(Finding(kind, version, text, fields))
        self.lines.append(f"[FINDING] version {version} {kind}: {text}")

    def ok(self, version: int, check: str, text: str) -> None:
        """A check that passed, with its figures."""
        self.lines.append(f"[OK     ] version {version} {check}: {text}")

    def skipped(self, version: int, check: str | None, text: str) -> None:
        """A check (None: every check of the version) that could not run, and why."""
        self.lines.append(f"[SKIPPED] version {version}{f' {check}' if check else ''}: {text}")

    def line(self, text: str) -> None:
        self.lines.append(text)


def write_report(report: MonitorReport, path: Path | None = None) -> Path:
    """Write the report as JSON (default `<root>/monitor/monitor-<UTC time>.json`); its path."""
    if path is None:
        folder = Path(report.root) / MONITOR_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"monitor-{report.created.replace(':', '').replace('-', '')}.json"
    path.write_text(report.to_json())
    return path
