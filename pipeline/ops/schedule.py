"""`python -m pipeline schedule`: the weekly run as a crontab entry on this machine.

The entry is marked with a comment naming its run root, so scheduling the same root again
replaces it (never a second schedule) and `--remove` takes out exactly that one. Overlapping
runs are prevented by the run lock (`pipeline/ops/lock.py`): a run that starts while another holds
the root exits at once.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import ConfigError

MARKER = "# taxi-pipeline weekly run, root "
DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
PROJECT_DIR = Path(__file__).resolve().parents[1]
LOG_NAME = "logs/weekly.log"


def cron_fields(day: str, at: str) -> str:
    """`mon`, `03:00` -> `0 3 * * 1` (minute hour day-of-month month day-of-week).

    Raises:
        ConfigError: for an unknown day or a time that is not HH:MM.
    """
    day_key = day.strip().lower()[:3]
    if day_key not in DAYS:
        raise ConfigError(f"--day must be one of {', '.join(DAYS)}, got {day!r}")
    hour, _, minute = at.partition(":")
    if not (hour.isdigit() and minute.isdigit() and 0 <= int(hour) <= 23 and 0 <= int(minute) <= 59):
        raise ConfigError(f"--time must be HH:MM (00:00 to 23:59), got {at!r}")
    return f"{int(minute)} {int(hour)} * * {DAYS[day_key]}"


def entry(root: Path, fields: str, run_args: list[str], python: str = sys.executable) -> str:
    """The marker line and the cron line for `root` (its output appended to the root's log)."""
    command = [python, "-m", "pipeline", "run", "--root", str(root), *run_args]
    log = root / LOG_NAME
    line = (
        f"{fields} cd {shlex.quote(str(PROJECT_DIR))} && {shlex.join(command)} "
        f">> {shlex.quote(str(log))} 2>&1"
    )
    return f"{MARKER}{root}\n{line}\n"


def updated_crontab(current: str, root: Path, new_entry: str | None) -> str:
    """`current` without the entry for `root`, plus `new_entry` when given; other lines untouched."""
    lines = current.splitlines(keepends=True)
    kept, skip_next = [], False
    for line in lines:
        if skip_next:
            skip_next = False
            continue
        if line.rstrip("\n") == f"{MARKER}{root}":
            skip_next = True  # the cron line under our marker
            continue
        kept.append(line)
    text = "".join(kept)
    if text and not text.endswith("\n"):
        text += "\n"
    return text + (new_entry or "")


def read_crontab(crontab: str = "crontab") -> str:
    """The current user's crontab ('' when there is none).

    Raises:
        FileNotFoundError: when the crontab command is not installed.
    """
    result = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if "no crontab" in result.stderr.lower():
            return ""
        raise RuntimeError(f"`{crontab} -l` failed: {result.stderr.strip()}")
    return result.stdout


def write_crontab(text: str, crontab: str = "crontab") -> None:
    """Install `text` as the current user's crontab."""
    result = subprocess.run([crontab, "-"], input=text, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{crontab} -` refused the new crontab: {result.stderr.strip()}")
