"""Every command's console holds its own lines only: library noise goes to the root's log.

Each subcommand runs as a user runs it (a subprocess of `python -m pipeline`, without the
variables the Makefile sets), on inputs that make it import what it imports for real work
(TensorFlow, TFX, TFMA, KFP). Its standard error must hold nothing but the command's own
lines; with `--verbose` the library lines come back (so the first check is not vacuous).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# What TensorFlow's C++ runtime, absl, Python's warnings and Google's client libraries print.
NOISE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] |^[IWEF]\d{4} |Warning|WARNING|warnings\.warn|absl|"
    r"tensorflow|cuda|cuDNN|oneDNN|TF-TRT|Traceback"
)
# Our own lines on standard error.
OWN = re.compile(r"^(error: |# Pre-flight OK|Usage|usage)")


def invocations(tmp: Path) -> dict[str, list[str]]:
    empty = tmp / "empty-root"
    empty.mkdir()
    return {
        "run --check": ["run", "--check", "--root", str(tmp / "fresh")],
        "replay": ["replay", "--weeks", "2", "--root", str(tmp / "replay"), "--window", "9"],
        "runs": ["runs", "--root", str(empty)],
        "report": ["report", "--root", str(empty)],
        "verify": ["verify", "--model", str(empty), "--data", str(empty)],
        "serve": ["serve", "--root", str(empty), "--port", "0"],
        "rollback": ["rollback", "--root", str(empty), "--clear"],
        "monitor": ["monitor", "--root", str(empty)],
        "compile": [
            "compile",
            "--image",
            "registry.example/taxi:1",
            "--pipeline-root",
            "gs://bucket/root",
            "--data-root",
            "gs://bucket/data",
            "--serving-dir",
            "gs://bucket/serving",
            "--output",
            str(tmp / "pipeline.yaml"),
        ],
        "manifest": ["manifest", "--serving", "--storage-uri", "gs://bucket/serving/big_tipper"],
        "deploy": ["deploy", "--host", "http://127.0.0.1:9", "--package", str(tmp / "missing.yaml")],
        "kfp-run": ["kfp-run", str(tmp / "missing.yaml"), "--run-root", str(tmp / "kfp")],
    }


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PYTHONWARNINGS"))}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quiet")
    return {name: run(argv, tmp) for name, argv in invocations(tmp).items()}


def test_every_command_is_covered():
    from pipeline.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    covered = {name.split()[0] for name in invocations_names()}
    assert set(commands) - covered <= {"schedule", "receive-logs"}, set(commands) - covered


def invocations_names() -> list[str]:
    return [
        "run --check",
        "replay",
        "runs",
        "report",
        "verify",
        "serve",
        "rollback",
        "monitor",
        "compile",
        "manifest",
        "deploy",
        "kfp-run",
    ]


@pytest.mark.parametrize("name", invocations_names())
def test_stderr_holds_only_the_commands_own_lines(results, name):
    result = results[name]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    noisy = [line for line in lines if NOISE.search(line) and not OWN.match(line)]
    assert noisy == [], f"{name}: library output on the console:\n" + "\n".join(noisy[:10])
    assert all(OWN.match(line) for line in lines), f"{name}: unexpected stderr lines: {lines}"
    assert result.stdout or lines, f"{name} said nothing at all"


def test_verbose_puts_the_library_lines_back(tmp_path):
    quiet = run(["runs", "--root", str(tmp_path)], tmp_path)
    loud = run(["runs", "--root", str(tmp_path), "--verbose"], tmp_path)
    assert quiet.returncode == loud.returncode
    assert not any(NOISE.search(line) for line in quiet.stderr.splitlines())
    assert any(NOISE.search(line) for line in loud.stderr.splitlines()), loud.stderr
    logs = list((tmp_path / "logs").glob("cli-runs-*.log"))
    assert logs and NOISE.search(logs[0].read_text()), "the quiet run's library lines are in its log"
