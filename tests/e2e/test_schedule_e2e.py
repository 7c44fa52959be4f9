"""The weekly schedule as cron runs it: the printed line executed under cron's bare environment.

Each test takes the line that `python -m pipeline schedule --print` prints (as a user would copy
it) and runs what cron would run: `/bin/sh -c LINE` with `env -i HOME=... PATH=/usr/bin:/bin
SHELL=/bin/sh`, from `/`. Then ML Metadata, the serving folder and a loopback webhook say what
happened. Where this runs as root with Debian's `cron` installed (CI installs it), the last test
lets the real cron daemon run a one-off entry and waits for its push.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from webhook_receiver import Receiver

from data import embedded
from pipeline.config import PipelineConfig
from pipeline.ops import schedule
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_OK

pytestmark = pytest.mark.e2e

CRON_ENV = ["env", "-i", f"HOME={Path.home()}", "PATH=/usr/bin:/bin", "SHELL=/bin/sh"]


def printed_line(root: Path, *options: str) -> str:
    """The cron line `schedule --print` prints for `root`, without its five time fields."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "schedule", "--root", str(root), "--print", *options],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PIPELINE_ALERT_WEBHOOK"},
    )
    assert result.returncode == EXIT_OK, result.stderr
    marker, line = result.stdout.splitlines()
    assert marker == f"{schedule.MARKER}{root}"
    return line.split(" ", 5)[5]


def run_as_cron(line: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CRON_ENV, "/bin/sh", "-c", line], cwd="/", capture_output=True, text=True, timeout=timeout_s
    )


def pushed_versions(root: Path) -> list[str]:
    serving = PipelineConfig(root=root).serving_dir
    return sorted(p.name for p in serving.glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file())


def runs_table(root: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "runs", "--root", str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_the_printed_line_runs_the_pipeline_under_cron_and_pushes(tmp_path):
    root = tmp_path / "weekly-root"
    line = printed_line(root)
    result = run_as_cron(line)
    log = (root / schedule.LOG_NAME).read_text()
    assert result.returncode == EXIT_OK, log[-3000:]
    assert result.stdout == result.stderr == ""  # everything went to the root's log
    assert "Pushed: version" in log, log[-3000:]
    versions = pushed_versions(root)
    assert len(versions) == 1
    table = runs_table(root)
    assert "completed" in table and versions[0] in table, table


def test_a_scheduled_run_that_stops_alerts_the_webhook_under_cron(tmp_path):
    data = tmp_path / "feed"
    embedded.materialize_spans(data, num_spans=3)
    bad = data / "span-3" / embedded.SPAN_FILE_NAME
    bad.write_text(bad.read_text().splitlines()[0] + "\n")  # the newest week: header only
    root = tmp_path / "root"
    with Receiver() as hook:
        line = printed_line(root, "--data-root", str(data), "--alert-webhook", hook.url)
        assert f"--alert-webhook {hook.url}" in line  # cron's environment has no variable for it
        result = run_as_cron(line)
    log = (root / schedule.LOG_NAME).read_text()
    assert result.returncode == EXIT_DATA_GATE, log[-3000:]
    assert "has a header but no rows" in log
    assert [body["event"] for body in hook.bodies] == ["stopped_by_gate"], hook.bodies
    assert "span 3" in hook.bodies[0]["text"] and str(root) in hook.bodies[0]["text"]
    assert pushed_versions(root) == []


@pytest.fixture
def cron_daemon():
    """The real cron daemon (started if it is not running), with the user's crontab restored after."""
    if os.geteuid() != 0 or shutil.which("cron") is None or shutil.which("crontab") is None:
        pytest.skip(
            "NOT ROOT OR NO DEBIAN `cron` HERE (apt-get install cron): the real cron daemon test is not run"
        )
    saved = schedule.read_crontab()
    running = subprocess.run(["pgrep", "-x", "cron"], capture_output=True, check=False).returncode == 0
    if not running:
        subprocess.run(["cron"], check=True)
    try:
        yield
    finally:
        if saved:
            schedule.write_crontab(saved)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True, check=False)
        if not running:
            subprocess.run(["pkill", "-x", "cron"], check=False)


def test_the_real_cron_daemon_runs_the_scheduled_entry(cron_daemon, tmp_path):
    root = tmp_path / "cron-root"
    now = dt.datetime.now()
    at = now + dt.timedelta(minutes=2 if now.second > 40 else 1)
    day = at.strftime("%a").lower()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "schedule",
            "--root",
            str(root),
            "--day",
            day,
            "--time",
            f"{at:%H:%M}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert f"{schedule.MARKER}{root}" in schedule.read_crontab()
    deadline = time.monotonic() + 60 * 8
    log = root / schedule.LOG_NAME
    try:
        while time.monotonic() < deadline and not pushed_versions(root):
            time.sleep(5)
        while time.monotonic() < deadline and "exit status" not in (log.read_text() if log.exists() else ""):
            time.sleep(2)  # the summary's last line: the run has finished writing
    finally:
        removed = subprocess.run(
            [sys.executable, "-m", "pipeline", "schedule", "--root", str(root), "--remove"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert removed.returncode == EXIT_OK and f"{schedule.MARKER}{root}" not in schedule.read_crontab()
    text = log.read_text() if log.exists() else "(cron never started the line: no log)"
    assert len(pushed_versions(root)) == 1, text[-3000:]
    assert "exit status 0" in text
