"""The strict span reader: every kind of bad span file is refused naming span, file, line, column.

The corpus starts from a real embedded span (span 8) and breaks it one way per case; the good
span passes and reports its rows. The ExampleGen executor's window check turns a refusal into
a data-gate stop before any Beam work.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from components.example_gen import driver
from components.example_gen.executor import check_window
from components.shared import DataAnomalyError
from data import embedded
from data.span_checks import SpanDataError, check_span, check_span_file


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    embedded.materialize_spans(root)
    return root / "span-8" / embedded.SPAN_FILE_NAME


def lines_of(path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(tmp_path, content: bytes):
    path = tmp_path / "span-9" / "data.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path


def test_a_real_span_passes_with_its_rows(good):
    rows = len(pd.read_csv(good))
    assert check_span_file(good, 8).rows == rows > 1000
    assert check_span(8, [str(good)]) == rows


def test_header_only(good, tmp_path):
    path = write(tmp_path, lines_of(good)[0])
    with pytest.raises(SpanDataError, match=rf"span 9: {path} has a header but no rows: the span is empty"):
        check_span_file(path, 9)


def test_zero_byte_file(tmp_path):
    path = write(tmp_path, b"")
    with pytest.raises(SpanDataError, match=r"span 9: .*data.csv is empty \(0 bytes\)"):
        check_span_file(path, 9)


def test_non_utf8_bytes_name_line_and_column(good, tmp_path):
    lines = lines_of(good)
    header = lines[0].decode().rstrip("\n").split(",")
    row = lines[41].decode().rstrip("\n").split(",")
    row[header.index("company")] = "Taxi Aff\xe9iliation"
    lines[41] = ",".join(row).encode("latin-1") + b"\n"
    path = write(tmp_path, b"".join(lines))
    with pytest.raises(SpanDataError, match=r"line 42, column 'company': bytes b'\\xe9' are not UTF-8"):
        check_span_file(path, 9)


def test_a_file_cut_mid_row(good, tmp_path):
    lines = lines_of(good)
    cut = lines[100].split(b",")[:15]
    path = write(tmp_path, b"".join(lines[:100]) + b",".join(cut))
    with pytest.raises(SpanDataError, match=r"line 101: 15 of 18 columns \(cut short\)"):
        check_span_file(path, 9)


def test_not_a_number_names_line_column_value_and_count(good, tmp_path):
    frame = pd.read_csv(good, dtype=str, keep_default_na=False)
    frame.loc[[4, 9, 19, 29], "fare"] = "N/A"
    path = tmp_path / "fares.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(SpanDataError) as error:
        check_span_file(path, 9)
    message = str(error.value)
    assert f"span 9: {path}: line 6, column 'fare': 'N/A' is not a valid float" in message
    assert "line 11, column 'fare'" in message and "(4 bad values in all)" in message


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda f: f.rename(columns={"fare": "fare_usd"}),
            r"missing columns \['fare'\], unknown columns \['fare_usd'\]",
        ),
        (lambda f: f.assign(surge="1.0"), r"missing columns \[\], unknown columns \['surge'\]"),
    ],
    ids=["renamed", "extra"],
)
def test_a_header_that_is_not_the_schemas(good, tmp_path, edit, message):
    path = tmp_path / "header.csv"
    edit(pd.read_csv(good, dtype=str, keep_default_na=False)).to_csv(path, index=False)
    with pytest.raises(
        SpanDataError, match=r"line 1: the header does not hold the schema's columns: " + message
    ):
        check_span_file(path, 9)


def test_a_header_row_in_the_middle(good, tmp_path):
    lines = lines_of(good)
    path = write(tmp_path, b"".join(lines[:500] + [lines[0]] + lines[500:]))
    with pytest.raises(SpanDataError, match=r"line 501: the header row again"):
        check_span_file(path, 9)


def test_the_executor_check_is_a_data_gate_stop(good, tmp_path):
    path = write(tmp_path, lines_of(good)[0])
    with pytest.raises(DataAnomalyError, match=r"span 9: .* has a header but no rows.*nothing is pushed"):
        check_window([8, 9], [[str(good)], [str(path)]])
    assert check_window([8], [[str(good)]]) == {8: check_span_file(good).rows}


def test_a_span_folder_without_data_is_found(good, tmp_path):
    shutil.copytree(good.parent, tmp_path / "span-8")
    (tmp_path / "span-9").mkdir()
    (tmp_path / "span-9" / "notes.txt").write_text("the export failed")
    assert driver.span_folders_without_data(str(tmp_path), "span-{SPAN}/*.csv") == [str(tmp_path / "span-9")]
    assert driver.available_spans(str(tmp_path), "span-{SPAN}/*.csv") == [8]
    (tmp_path / "span-9" / "data.csv").write_bytes(good.read_bytes())
    assert driver.span_folders_without_data(str(tmp_path), "span-{SPAN}/*.csv") == []
