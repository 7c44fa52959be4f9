"""`python -m pipeline schedule`: the weekly run as a crontab entry on this machine.

The entry is marked with a comment naming its run root, so scheduling the same root again
replaces it (never a second schedule) and `--remove` takes out exactly that one. Overlapping
runs are prevented by the run lock (`pipeline/ops/lock.py`): a run that starts while another holds
the root exits at once.

The line relies on nothing cron does not give it: cron starts it with `/bin/sh -c`, a bare
environment (`HOME`, `LOGNAME`, `PATH=/usr/bin:/bin`, `SHELL=/bin/sh`) and the user's home as
working directory. So the line names the interpreter by absolute path, changes into the project
folder (the one holding the `pipeline` package: `python -m` looks in the working directory
first, and a folder named `pipeline` anywhere else would shadow ours), creates the log folder
before the shell opens the log for appending, and carries every option the run needs; the
program sets TensorFlow's variables itself (`pipeline/cli/__init__.py`). `preflight` proves
the line before it is installed by running it with `run --check` under that same environment.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from pipeline.config import ConfigError

MARKER = "# taxi-pipeline weekly run, root "
DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# The folder that holds the `pipeline` package (pipeline/ops/schedule.py -> the project).
PROJECT_DIR = Path(__file__).resolve().parents[2]
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


def command(root: Path, run_args: list[str], python: str = sys.executable) -> str:
    """The shell command of the weekly run: from the project folder, the run on `root`.

    `python` is kept as given (a venv's `bin/python` is a symlink: resolving it would leave
    the venv).
    """
    run = [python, "-m", "pipeline", "run", "--root", str(root), *run_args]
    return f"cd {shlex.quote(str(PROJECT_DIR))} && {shlex.join(run)}"


def entry(root: Path, fields: str, run_args: list[str], python: str = sys.executable) -> str:
    """The marker line and the cron line for `root` (its output appended to the root's log).

    The log folder is created by the line itself: the shell opens `>> log` before the run
    starts, and a missing folder would fail the line without a trace.
    """
    log = root / LOG_NAME
    line = (
        f"{fields} mkdir -p {shlex.quote(str(log.parent))} && {command(root, run_args, python)} "
        f">> {shlex.quote(str(log))} 2>&1"
    )
    return f"{MARKER}{root}\n{line}\n"


def cron_environment(home: str | None = None) -> dict[str, str]:
    """The environment Debian's cron gives a job: nothing of the caller's shell."""
    home = home or os.path.expanduser("~")
    user = os.environ.get("LOGNAME") or os.environ.get("USER") or "root"
    return {"HOME": home, "LOGNAME": user, "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}


class PreflightError(RuntimeError):
    """The scheduled command failed its pre-flight; the message is one line naming why."""


def preflight(root: Path, run_args: list[str], python: str = sys.executable, timeout_s: float = 300) -> str:
    """Run the scheduled command with `run --check` as cron would; return its one-line verdict.

    `/bin/sh -c` with cron's bare environment, from `/`: the same command the crontab line
    runs, plus `--check` (the run's pre-flight: arguments, data root and window, no pipeline
    work).

    Raises:
        PreflightError: the check exited non-zero (or not at all); the message carries the
            command's own error line.
    """
    shell = command(root, [*run_args, "--check"], python)
    try:
        result = subprocess.run(
            ["/bin/sh", "-c", shell],
            cwd="/",
            env=cron_environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PreflightError(f"the pre-flight `{shell}` did not finish in {timeout_s:.0f} s") from None
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0:
        errors = [line for line in lines if line.startswith("error:")]
        why = (errors or lines or ["no output"])[-1].removeprefix("error: ")
        raise PreflightError(f"the scheduled line fails under cron (exit {result.returncode}): {why}")
    return next((line for line in lines if line.startswith("Pre-flight")), lines[-1] if lines else "")


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
