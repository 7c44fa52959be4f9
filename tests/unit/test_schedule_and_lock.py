"""The weekly crontab entry and the one-run-per-root lock.

The crontab round trip uses the machine's real `crontab` command (Debian's cron package) and
puts the user's original crontab back afterwards; where no `crontab` is installed that test
skips and says so. The lock is tested across real processes, one of them killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
import subprocess
import sys
import time

import pytest

from pipeline.cli import main
from pipeline.config import ConfigError
from pipeline.ops import schedule
from pipeline.ops.exit_codes import EXIT_BUSY, EXIT_OK, EXIT_USAGE
from pipeline.ops.lock import LOCK_FILE_NAME, RunInProgressError, run_lock


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("day", "at", "fields"),
    [("mon", "03:00", "0 3 * * 1"), ("Sunday", "23:59", "59 23 * * 0"), ("fri", "7:05", "5 7 * * 5")],
)
def test_cron_fields(day, at, fields):
    assert schedule.cron_fields(day, at) == fields


@pytest.mark.parametrize(("day", "at", "message"), [("funday", "03:00", "--day"), ("mon", "25:00", "--time")])
def test_bad_day_or_time_is_named(day, at, message):
    with pytest.raises(ConfigError, match=message):
        schedule.cron_fields(day, at)


def test_entries_are_replaced_per_root_and_other_lines_kept(tmp_path):
    other = "MAILTO=ops@example.com\n30 1 * * * /usr/bin/backup\n"
    first = schedule.entry(tmp_path / "a", "0 3 * * 1", [])
    text = schedule.updated_crontab(other, tmp_path / "a", first)
    assert text == other + first
    moved = schedule.entry(tmp_path / "a", "0 4 * * 2", [])
    again = schedule.updated_crontab(text, tmp_path / "a", moved)
    assert again == other + moved  # replaced, not added
    second_root = schedule.entry(tmp_path / "b", "0 3 * * 1", [])
    both = schedule.updated_crontab(again, tmp_path / "b", second_root)
    assert both.count(schedule.MARKER) == 2
    assert schedule.updated_crontab(both, tmp_path / "a", None) == other + second_root


def test_the_entry_runs_the_pipeline_on_the_root_with_a_log(tmp_path):
    text = schedule.entry(tmp_path, "0 3 * * 1", ["--data-root", "/feed"])
    line = text.splitlines()[1]
    # The log folder first (the shell opens `>> log` before the run), then the project folder.
    assert line.startswith(f"0 3 * * 1 mkdir -p {tmp_path / 'logs'} && cd {schedule.PROJECT_DIR} && ")
    assert f"-m pipeline run --root {tmp_path} --data-root /feed" in line
    assert line.endswith(f">> {tmp_path / 'logs' / 'weekly.log'} 2>&1")
    assert sys.executable in line


def test_the_line_changes_into_the_folder_that_holds_the_pipeline_package():
    # `python -m pipeline` from any other folder named like a package of ours runs the wrong
    # module: from <project>/pipeline it ran pipeline/pipeline.py and exited 0 doing nothing.
    assert (schedule.PROJECT_DIR / "pipeline" / "__main__.py").is_file()
    assert (schedule.PROJECT_DIR / "setup.py").is_file()
    assert not (schedule.PROJECT_DIR / "pipeline" / "pipeline" / "__main__.py").exists()


def test_run_check_is_a_preflight_that_writes_nothing(tmp_path):
    root = tmp_path / "fresh"
    status, out, err = cli("run", "--check", "--root", str(root))
    assert status == EXIT_OK, err
    assert out.startswith(f"Pre-flight OK: root {root} writable; data the embedded sample (")
    assert "spans 1-8; this run would use spans 5-8" in out
    assert not root.exists()
    status, _, err = cli("run", "--check", "--root", str(root), "--window", "9")
    assert status == EXIT_USAGE and "--window 9 is larger than the 8 spans there are" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    status, _, err = cli("run", "--check", "--root", str(blocker / "root"))
    assert status == EXIT_USAGE and f"--root {blocker / 'root'}: {blocker} is not a folder" in err
    status, _, err = cli("run", "--check", "--data-root", str(tmp_path / "none"), "--root", str(root))
    assert status == EXIT_USAGE and f"--data-root {tmp_path / 'none'}: no such folder" in err


def test_schedule_refuses_a_line_whose_preflight_fails_under_cron(tmp_path):
    # The pre-flight runs the scheduled command itself, in cron's environment, before the
    # crontab is touched: a crontab command that does not exist is never reached.
    status, out, err = cli(
        "schedule",
        "--root",
        str(tmp_path / "root"),
        "--data-root",
        str(tmp_path / "no-feed"),
        "--crontab",
        str(tmp_path / "no-crontab"),
    )
    assert status == EXIT_USAGE and out == ""
    lines = err.strip().splitlines()
    assert lines == [
        "error: not scheduled: the scheduled line fails under cron (exit 2): "
        f"--data-root {tmp_path / 'no-feed'}: no such folder"
    ]


def test_print_shows_the_entry_and_changes_nothing(tmp_path):
    status, out, _ = cli("schedule", "--print", "--root", str(tmp_path), "--day", "tue", "--time", "04:30")
    assert status == EXIT_OK
    assert out.startswith(f"{schedule.MARKER}{tmp_path}\n30 4 * * 2 ")
    assert not (tmp_path / "logs").exists()
    assert cli("schedule", "--print", "--day", "someday")[0] == EXIT_USAGE


def test_a_missing_crontab_command_is_named(tmp_path):
    status, _, err = cli("schedule", "--root", str(tmp_path), "--crontab", str(tmp_path / "no-crontab"))
    assert status == EXIT_USAGE
    assert "no `" in err and "install cron" in err and "pipeline run --root" in err


@pytest.fixture
def real_crontab():
    if shutil.which("crontab") is None:
        pytest.skip(
            "NO `crontab` COMMAND ON THIS MACHINE (apt-get install cron): the real round trip is not run"
        )
    saved = schedule.read_crontab()
    yield
    if saved:
        schedule.write_crontab(saved)
    else:  # there was none: leave none, not an empty one
        subprocess.run(["crontab", "-r"], capture_output=True, check=False)


def test_schedule_twice_then_remove_with_the_real_crontab(real_crontab, tmp_path):
    root = tmp_path / "weekly"
    assert cli("schedule", "--root", str(root))[0] == EXIT_OK
    status, out, _ = cli("schedule", "--root", str(root), "--time", "05:15")
    assert status == EXIT_OK and "Scheduled" in out
    installed = schedule.read_crontab()
    assert installed.count(f"{schedule.MARKER}{root}\n") == 1  # replaced, never duplicated
    assert f"\n15 5 * * 1 mkdir -p {root / 'logs'} && cd " in installed
    assert (root / "logs").is_dir()  # cron's redirection needs the folder
    assert cli("schedule", "--root", str(root), "--remove")[0] == EXIT_OK
    assert f"{schedule.MARKER}{root}" not in schedule.read_crontab()
    status, out, _ = cli("schedule", "--root", str(root), "--remove")
    assert status == EXIT_OK and "No weekly run is scheduled" in out


HOLDER = """
import sys, time
from pipeline.ops.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_locked_root_exits_at_once_and_a_killed_holder_frees_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        status, _, err = cli("run", "--root", str(tmp_path))
        assert status == EXIT_BUSY
        assert time.monotonic() - started < 5
        assert f"another pipeline run is in progress on {tmp_path} (pid {holder.pid} since" in err
        assert not (tmp_path / "metadata").exists()  # nothing touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_lock(tmp_path) as path:  # the crashed run left no stale lock
        assert path.name == LOCK_FILE_NAME
        with pytest.raises(RunInProgressError):
            with run_lock(tmp_path):
                pass
