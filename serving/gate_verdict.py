"""A gate's verdict: each check's outcome, and the model blessed only when none failed.

The serving gate (`serving/gate_checks.py`) and the edge gate (`serving/edge_gate_checks.py`)
both answer a `Verdict`; the executors write its JSON next to their blessing, and
`python -m pipeline verify` prints its `format()`.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


@dataclasses.dataclass
class Check:
    """One check's outcome: its status, a sentence saying why, and its figures."""

    name: str
    status: str
    detail: str
    figures: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Verdict:
    """Every check on one model; it blesses only when none failed."""

    model: str
    examples: int
    checks: list[Check]
    tolerances: dict
    gate: str = "Serving gate"
    # Each signature's predictions on the replay, in order (not part of the JSON verdict).
    answers: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def blessed(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def summary(self) -> str:
        """One line: passed, or refused with each failed check's reason."""
        if self.blessed:
            return f"passed ({len(self.checks)} checks on {self.examples} examples)"
        return "refused: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_dict(self) -> dict:
        return {
            "blessed": self.blessed,
            "model": self.model,
            "examples": self.examples,
            "tolerances": self.tolerances,
            "checks": [dataclasses.asdict(check) for check in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default)

    def format(self) -> str:
        """The verdict for people: the outcome, then one line per check."""
        outcome = (
            "PASSED"
            if self.blessed
            else f"REFUSED ({len(self.failures)} of {len(self.checks)} checks failed)"
        )
        lines = [f"{self.gate} on {self.model} ({self.examples} examples): {outcome}"]
        width = max(len(check.name) for check in self.checks)
        for check in self.checks:
            lines.append(f"  [{check.status.upper():<7}] {check.name:<{width}}  {check.detail}")
        return "\n".join(lines)


def _json_default(value):
    if isinstance(value, np.floating | np.integer):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def finite_or_none(value: float) -> float | None:
    """A figure for the verdict's JSON: the float, or None when it is missing, NaN or infinite."""
    return None if value is None or not math.isfinite(value) else float(value)
