"""Strict, cheap checks of span CSV files, run before any Beam work reads them.

CsvExampleGen's own reader fails deep inside Beam with messages that name neither the file
nor the line (`UnicodeDecodeError ... position 123`, `Invalid CSV line: [b'12', ...]`,
`could not convert string to float: b'N/A'`), or not at all (a header-only span becomes an
empty split and a model "on spans 5-8" is pushed). `check_span_file` reads each file once:
Arrow's C++ reader confirms a clean file; a file it doubts goes to a line-by-line reader that
names span, file, line, column and value for the first problems it finds: encoding, the
header against the schema's columns, a duplicated header row, the column count of every row,
every number, and at least one row.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from pathlib import Path

from models import features

# How many offending cells a message quotes (the count of all of them follows).
QUOTED_PROBLEMS = 3


class SpanDataError(ValueError):
    """A span file cannot be trusted; the message names the span, file, line, column and value."""


@dataclasses.dataclass(frozen=True)
class SpanFileSummary:
    path: str
    rows: int


def _is_int(cell: str) -> bool:
    try:
        int(cell)
    except ValueError:
        return False
    return True


def _is_float(cell: str) -> bool:
    try:
        value = float(cell)
    except ValueError:
        return False
    return math.isfinite(value)  # "nan" and "inf" parse, but no taxi value is either


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        line_start = data.rfind(b"\n", 0, error.start) + 1
        header = data[: data.find(b"\n")].decode("utf-8", "replace").split(",")
        column_index = data.count(b",", line_start, error.start)
        column = header[column_index] if column_index < len(header) else f"#{column_index + 1}"
        bad = data[error.start : error.end]
        raise SpanDataError(
            f"{where}, line {line}, column '{column}': bytes {bad!r} are not UTF-8 "
            f"(byte {error.start - line_start + 1} of the line)"
        ) from None


def _fast_rows(data: bytes) -> int | None:
    """Rows of a span that Arrow's C++ CSV reader finds clean, else None.

    Clean: the schema's columns, UTF-8 strings, every number parses and is finite, at least
    one row. None sends the file to the exact reader, which names what is wrong. This is the
    fast path: ExampleGen's rows/s in `benchmarks/bench_scale.py` include it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pcsv

    kinds = features.RAW_COLUMN_KINDS
    types = {
        name: {"int": pa.int64(), "float": pa.float64(), "string": pa.string()}[kind]
        for name, kind in kinds.items()
    }
    # Only a blank cell is missing: Arrow would otherwise read "N/A", "NA" or "null" as missing.
    options = pcsv.ConvertOptions(column_types=types, check_utf8=True, null_values=[""])
    try:
        table = pcsv.read_csv(io.BytesIO(data), convert_options=options)
    except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError):
        return None
    names = table.column_names
    if sorted(names) != sorted(kinds) or table.num_rows == 0:
        return None
    for name in features.RAW_FLOAT_COLUMNS:
        finite = pc.is_finite(table[name])
        if pc.any(pc.invert(pc.fill_null(finite, True))).as_py():
            return None
    return table.num_rows


def check_span_file(path: str | Path, span: int | None = None) -> SpanFileSummary:
    """Read one span CSV strictly; return its row count.

    A clean file is confirmed by Arrow's C++ reader; any doubt goes to the exact reader
    (Python's csv module, one pass), which finds and names the problem.

    Raises:
        SpanDataError: naming span, file, line, column and the offending values (the first
            `QUOTED_PROBLEMS` and a count) for the first kind of problem found.
    """
    import tensorflow as tf  # Imported here: tf.io.gfile reads bucket URIs (gs://) as local paths.

    path = str(path)
    where = f"span {span}: {path}" if span is not None else path
    with tf.io.gfile.GFile(path, "rb") as handle:
        data = handle.read()
    rows = _fast_rows(data) if data else None
    if rows is not None:
        return SpanFileSummary(path, rows)
    summary = _exact_check(data, path, where)
    # Arrow refused what the exact reader accepts (e.g. "1_000" for an int): ExampleGen reads
    # with Arrow, so this is a refusal too, in Arrow's words.
    raise SpanDataError(
        f"{where}: the CSV reader ExampleGen uses refuses it ({summary.rows} rows look valid line by line)"
    )


def _exact_check(data: bytes, path: str, where: str) -> SpanFileSummary:
    """The line-by-line reader: raises SpanDataError naming the first problem, else a summary."""
    if not data:
        raise SpanDataError(f"{where} is empty (0 bytes): not even a header row")
    reader = csv.reader(io.StringIO(_decode(data, where), newline=""))
    header = next(reader, None)
    kinds = features.RAW_COLUMN_KINDS
    expected = list(features.RAW_COLUMNS)
    if not header or set(header) != set(expected) or len(header) != len(expected):
        found = header or []
        raise SpanDataError(
            f"{where}, line 1: the header does not hold the schema's columns: missing columns "
            f"{sorted(set(expected) - set(found))}, unknown columns {sorted(set(found) - set(expected))}"
            + (
                f", duplicated {sorted({c for c in found if found.count(c) > 1})}"
                if len(found) != len(set(found))
                else ""
            )
        )
    numeric = [(i, name, kinds[name]) for i, name in enumerate(header) if kinds[name] != "string"]
    problems: list[str] = []
    count = rows = 0
    for row in reader:
        line = reader.line_num
        if not row:
            continue  # A blank line: CsvExampleGen skips it too.
        if len(row) != len(header):
            raise SpanDataError(
                f"{where}, line {line}: {len(row)} of {len(header)} columns "
                f"({'cut short' if len(row) < len(header) else 'too many'}): {','.join(row)[:120]!r}"
            )
        if row == header:
            raise SpanDataError(f"{where}, line {line}: the header row again (files concatenated?)")
        rows += 1
        for index, name, kind in numeric:
            cell = row[index]
            if cell and not (_is_int(cell) if kind == "int" else _is_float(cell)):
                count += 1
                if len(problems) < QUOTED_PROBLEMS:
                    problems.append(f"line {line}, column '{name}': {cell!r} is not a valid {kind}")
    if problems:
        more = f" ({count} bad values in all)" if count > len(problems) else ""
        raise SpanDataError(f"{where}: " + "; ".join(problems) + more)
    if rows == 0:
        raise SpanDataError(f"{where} has a header but no rows: the span is empty")
    return SpanFileSummary(path, rows)


def check_span(span: int | None, files: list[str]) -> int:
    """Check every file of one span; return its rows. A span with no rows at all is an error."""
    if not files:
        raise SpanDataError(f"span {span} has no data file")
    return sum(check_span_file(path, span).rows for path in files)
