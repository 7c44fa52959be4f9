"""Versions of a serving directory (TensorFlow Serving's layout) and the rollback pin.

A serving base directory holds one folder per pushed version (an integer that only grows).
`python -m pipeline rollback` writes `SERVED_VERSION.json` there to serve an older version;
the model server, the run summary and `rollback` read it through these functions.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

PIN_FILE = "SERVED_VERSION.json"


class VersionError(ValueError):
    """A requested version does not exist in the serving directory."""


def versions(base: Path) -> list[int]:
    """Pushed versions under a serving base directory (complete ones: saved_model.pb), ascending."""
    base = Path(base)
    if not base.is_dir():
        return []
    return sorted(
        int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
    )


def read_pin(base: Path) -> dict | None:
    """The rollback pin, or None when the newest version is served."""
    path = Path(base) / PIN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def target_version(base: Path) -> int | None:
    """The version to serve: the pinned one if it still exists, else the newest."""
    available = versions(base)
    pin = read_pin(base)
    if pin and pin.get("version") in available:
        return pin["version"]
    return available[-1] if available else None


def pin_version(base: Path, version: int | None, reason: str = "") -> tuple[int | None, int | None]:
    """Pin `version` as the served one (None: remove the pin, serve the newest).

    Returns (served before, served after). Writes atomically; deletes nothing.
    """
    base = Path(base)
    available = versions(base)
    before = target_version(base)
    path = base / PIN_FILE
    if version is None:
        path.unlink(missing_ok=True)
        return before, target_version(base)
    if version not in available:
        raise VersionError(f"version {version} is not in {base}; pushed versions: {available or 'none'}")
    record = {"version": version, "pinned_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": reason}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return before, version
