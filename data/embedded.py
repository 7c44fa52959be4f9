"""Turn the taxi sample shipped in the installed `tfx` package into weekly-style spans.

The sample (15,002 trips, 2013-2016) is sorted by `trip_start_timestamp` and cut into
consecutive spans `span-1` ... `span-N`, one CSV each, so that span k is strictly older than
span k+1, as a weekly feed would be. Nothing is downloaded and nothing is committed.

Files are only (re)written when their content would change: CsvExampleGen fingerprints its
input by size and mtime, so rewriting identical bytes would defeat the pipeline cache.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pandas as pd

from models import features

SPAN_DIR_PATTERN = re.compile(r"^span-(\d+)$")
SPAN_FILE_NAME = "data.csv"
DEFAULT_NUM_SPANS = 8


class DataError(ValueError):
    """The input data cannot be turned into spans (missing file, missing columns, ...)."""


def taxi_sample_path() -> Path:
    """Path of the Chicago taxi CSV that ships inside the installed `tfx` package."""
    import tfx  # Imported here: the package is heavy and only its location is needed.

    path = Path(tfx.__file__).parent / "examples/chicago_taxi_pipeline/data/simple/data.csv"
    if not path.is_file():
        raise DataError(f"the taxi sample is not where tfx {tfx.__version__} should ship it: {path}")
    return path


def read_raw_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a taxi CSV with the column types of `models.features`.

    Raises:
        DataError: if the file is missing or lacks any of the raw columns.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such CSV file: {path}")
    frame = pd.read_csv(path, dtype={c: "string" for c in features.RAW_STRING_COLUMNS})
    missing = [c for c in features.RAW_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the taxi columns {missing}")
    frame = frame[list(features.RAW_COLUMNS)]
    for column in features.RAW_INT_COLUMNS:
        frame[column] = _as_nullable_int(frame[column], column, path)
    for column in features.RAW_FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="raise").astype("float64")
    return frame


def _as_nullable_int(column: pd.Series, name: str, path: Path) -> pd.Series:
    values = pd.to_numeric(column, errors="raise")
    fractional = values.notna() & (values != values.round())
    if fractional.any():
        raise DataError(f"{path}: column {name!r} should hold integers, got {values[fractional].iloc[0]}")
    return values.round().astype("Int64")


def split_into_spans(frame: pd.DataFrame, num_spans: int) -> list[pd.DataFrame]:
    """Sort trips by start time and cut them into `num_spans` consecutive, near-equal spans."""
    if num_spans < 1:
        raise DataError(f"num_spans must be >= 1, got {num_spans}")
    if len(frame) < num_spans:
        raise DataError(f"cannot cut {len(frame)} rows into {num_spans} spans")
    ordered = frame.sort_values(features.TIMESTAMP_KEY, kind="stable").reset_index(drop=True)
    bounds = [round(i * len(ordered) / num_spans) for i in range(num_spans + 1)]
    return [ordered.iloc[bounds[i] : bounds[i + 1]] for i in range(num_spans)]


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Serialize a span: floats always with a decimal point, integers without, blanks for missing."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6f")
    return buffer.getvalue().encode()


def write_if_changed(path: Path, content: bytes) -> bool:
    """Write `content` to `path` unless it already holds exactly that; return whether it wrote."""
    if path.is_file() and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)  # Atomic: a reader never sees half a span.
    return True


def materialize_spans(
    data_root: str | os.PathLike,
    num_spans: int = DEFAULT_NUM_SPANS,
    source: str | os.PathLike | None = None,
) -> list[int]:
    """Write the embedded sample as `<data_root>/span-<k>/data.csv` for k = 1..num_spans.

    Args:
        data_root: folder that receives one sub-folder per span.
        num_spans: how many consecutive spans to cut the trips into.
        source: CSV to cut; defaults to the sample shipped inside `tfx`.

    Returns:
        The span numbers written (or already present with identical content).
    """
    frame = read_raw_csv(source or taxi_sample_path())
    root = Path(data_root)
    for number, span in enumerate(split_into_spans(frame, num_spans), start=1):
        write_if_changed(root / f"span-{number}" / SPAN_FILE_NAME, to_csv_bytes(span))
    return list(range(1, num_spans + 1))


def available_spans(data_root: str | os.PathLike) -> list[int]:
    """Span numbers present under `data_root` (folders `span-<k>` holding a CSV), sorted."""
    root = Path(data_root)
    if not root.is_dir():
        return []
    spans = []
    for child in root.iterdir():
        match = SPAN_DIR_PATTERN.match(child.name)
        if match and child.is_dir() and any(child.glob("*.csv")):
            spans.append(int(match.group(1)))
    return sorted(spans)
