"""Bad weeks of data: the data gate stops the run before training, names the problem and pushes nothing.

Two of the shared runs bring a bad span-9 (an unknown payment_type; a missing column). Then
one run per way a span file arrives broken (header only, not UTF-8, cut mid-row, ...), each on
a fresh root serving a copy of the pushed model: exit status, message, ML Metadata record and
served versions. Run as a new user would (`python -m pipeline`, no Makefile environment), a
data error is one line on stderr, and contradictory arguments are refused before any work.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from e2e_support import run_cli, serving_versions

from data import embedded
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_USAGE

pytestmark = pytest.mark.e2e


def test_anomalous_span_stops_the_run_before_transform(runs):
    anomaly = runs["anomaly"]
    assert anomaly.status == EXIT_DATA_GATE
    assert "payment_type" in anomaly.stderr
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in anomaly.stderr
    assert "Bitcoin" in anomaly.stderr
    states = {n.node_id: n.state for n in anomaly.report.nodes}
    assert states["AnomalyGate"] == "failed"
    assert "Transform" not in states and "AtomicPusher" not in states
    assert anomaly.versions == runs["cold"].versions  # the served model stays where it is
    assert anomaly.report.spans == "6,7,8,9"


def test_span_missing_a_column_stops_the_run_naming_it(runs):
    missing = runs["missing_column"]
    assert missing.status == EXIT_DATA_GATE
    assert "missing columns ['company']" in missing.stderr
    assert missing.versions == runs["cold"].versions


def _raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _csv_edit(edit):
    def write(span: Path, good: Path) -> None:
        frame = pd.read_csv(good, dtype=str, keep_default_na=False)
        edit(frame).to_csv(span / embedded.SPAN_FILE_NAME, index=False)

    return write


def _bytes_edit(edit):
    def write(span: Path, good: Path) -> None:
        (span / embedded.SPAN_FILE_NAME).write_bytes(edit(_raw_lines(good)))

    return write


def _latin1_company(lines: list[bytes]) -> bytes:
    lines = list(lines)
    lines[77] = lines[77].rstrip(b"\n") + b"\n"
    cells = lines[77].decode().rstrip("\n").split(",")
    cells[-1] = "Caf\xe9 Cab"  # company is the last column of the embedded spans
    lines[77] = ",".join(cells).encode("latin-1") + b"\n"
    return b"".join(lines)


def _negative_miles(frame):
    rows = frame.index[: int(len(frame) * 0.4)]
    frame.loc[rows, "trip_miles"] = "-3.5"
    return frame


BAD_SPANS = {
    "header_only": (_bytes_edit(lambda lines: lines[0]), "span 9: .*data.csv has a header but no rows"),
    "not_utf8": (_bytes_edit(_latin1_company), r"line 78, column 'company': bytes b'\\xe9' are not UTF-8"),
    "cut_mid_row": (
        _bytes_edit(lambda lines: b"".join(lines[:200]) + b",".join(lines[200].split(b",")[:15])),
        r"span 9: .*data.csv, line 201: 15 of 18 columns \(cut short\)",
    ),
    "not_a_number": (
        _csv_edit(lambda f: f.assign(fare=f["fare"].where(f.index % 50 != 7, "N/A"))),
        r"line 9, column 'fare': 'N/A' is not a valid float.*bad values in all",
    ),
    "renamed_column": (
        _csv_edit(lambda f: f.rename(columns={"company": "operator"})),
        r"line 1: the header does not hold the schema's columns: "
        r"missing columns \['company'\], unknown columns \['operator'\]",
    ),
    "header_mid_file": (
        _bytes_edit(lambda lines: b"".join(lines[:300] + [lines[0]] + lines[300:])),
        r"line 301: the header row again",
    ),
    "extra_column": (_csv_edit(lambda f: f.assign(surge="1.5")), r"unknown columns \['surge'\]"),
    "negative_miles": (_csv_edit(_negative_miles), r"trip_miles"),
    "no_csv": (
        lambda span, good: (span / "README").write_text("export failed"),
        r"span folder .*span-9 holds no file",
    ),
    "zero_bytes": (_bytes_edit(lambda lines: b""), r"data.csv is empty \(0 bytes\)"),
    "too_few_rows": (
        _bytes_edit(lambda lines: b"".join(lines[:301])),
        r"span 9 has 300 rows, fewer than the 800",
    ),
}


@pytest.fixture(scope="module")
def bad_data(runs, tmp_path_factory):
    """A fresh root serving a copy of the pushed model, and one data root per bad span-9."""
    root = tmp_path_factory.mktemp("bad-data")
    serving = PipelineConfig(root=root).serving_dir
    shutil.copytree(PipelineConfig(root=runs["root"]).serving_dir, serving)
    roots = {}
    for case, (write, _) in BAD_SPANS.items():
        data = root / f"data-{case}"
        shutil.copytree(runs["root"] / "data", data)
        (data / "span-9").mkdir()
        write(data / "span-9", data / "span-8" / embedded.SPAN_FILE_NAME)
        roots[case] = data
    return root, roots


@pytest.mark.parametrize("case", sorted(BAD_SPANS))
def test_a_bad_span_stops_as_a_data_error_naming_it(bad_data, case):
    root, data_roots = bad_data
    before = serving_versions(root)
    outcome = run_cli(root, "--data-root", str(data_roots[case]))
    assert outcome.status == EXIT_DATA_GATE, outcome.stdout + outcome.stderr
    assert re.search(BAD_SPANS[case][1], outcome.stderr), outcome.stderr
    assert "STOPPED by the " in outcome.stderr and "Traceback" not in outcome.stderr + outcome.stdout
    assert re.search(r"^Stopped by the (data|drift) gate: ", outcome.stdout, re.M), outcome.stdout  # summary
    assert outcome.report.stopped and re.search(BAD_SPANS[case][1], outcome.report.stopped)  # in ML Metadata
    assert serving_versions(root) == before and before
    assert "Pushed:" not in outcome.stdout


def test_the_cli_console_is_quiet_without_the_makefiles_environment(bad_data, tmp_path):
    """`python -m pipeline` as a new user runs it: no TF/cuDNN lines, no warnings, one error line."""
    import os
    import subprocess
    import sys

    root, data_roots = bad_data
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PYTEST"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--root",
            str(root),
            "--data-root",
            str(data_roots["cut_mid_row"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == EXIT_DATA_GATE, result.stdout + result.stderr
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(stderr) == 1 and stderr[0].startswith("STOPPED by the data gate: span 9: "), stderr
    assert not re.search(r"cuDNN|cuBLAS|Warning|WARNING|absl|E0000|I0000", result.stdout)
    assert "Library logs and warnings: " in result.stdout
    # Contradictory arguments are refused before any work, in one line, exit 2.
    for argv, message in (
        (["--window", "12"], "--window 12 is larger than the 9 spans there are"),
        (["--last-span", "30"], "--last-span 30 is not in"),
        (["--strategy", "multi_worker"], "--strategy multi_worker: strategy 'multi_worker' needs TF_CONFIG"),
    ):
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--root",
                str(tmp_path),
                "--data-root",
                str(root / "data-not_utf8"),
                *argv,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
        assert message in refused.stderr and refused.stdout == "", (refused.stdout, refused.stderr)
