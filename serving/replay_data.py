"""Replay data: the examples a gate or `verify` sends through a model, and what they say.

Replay data is our ExampleGen output (a split of an Examples artifact), a folder of TFRecord
files, or a CSV (file or folder) with the taxi columns; `load_replay_examples` reads any of
them as serialized tf.Examples, as CsvExampleGen writes them (`csv_to_examples`). From those,
`examples_to_raw` builds the dense raw-feature request that says the same thing (so both
signatures see one input) and `labels_of` the big-tipper label of each example.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from data.tfrecords import read_tfrecords
from models import features
from models.signatures import missing_marker


class ReplayDataError(ValueError):
    """Replay data cannot be read (missing path, missing columns, unparsable values)."""


# Examples parsed at a time: parsing a whole split at once (at the volumes of
# `benchmarks/bench_scale.py`) held a copy of every serialized example in one string tensor
# plus all the parsed values, memory that the allocator kept for the rest of the stage.
PARSE_CHUNK = 16_384


def _parsed_chunks(serialized: Sequence[bytes], parse_spec: dict):
    """(first row, tf.io.parse_example of the rows from there), chunk by chunk."""
    for start in range(0, len(serialized), PARSE_CHUNK):
        chunk = list(serialized[start : start + PARSE_CHUNK])
        yield start, len(chunk), tf.io.parse_example(tf.constant(chunk), parse_spec)


def examples_to_raw(serialized: Sequence[bytes], specs: Mapping[str, tf.TensorSpec]) -> dict[str, np.ndarray]:
    """Serialized tf.Examples -> the dense raw-feature request that says the same thing.

    An absent value becomes its dtype's missing marker, so the raw signature sees exactly
    what the serialized one parses.

    Raises:
        ReplayDataError: when an example holds several values for one feature or a value of
            another type than the signature's.
    """
    parse_spec = {name: tf.io.VarLenFeature(spec.dtype) for name, spec in specs.items()}
    count = len(serialized)
    raw = {}
    for name, spec in specs.items():
        dtype = spec.dtype
        raw[name] = np.full(
            count, missing_marker(dtype), dtype=object if dtype == tf.string else dtype.as_numpy_dtype
        )
    try:
        for start, _, parsed in _parsed_chunks(serialized, parse_spec):
            for name, sparse in parsed.items():
                indices = sparse.indices.numpy()
                if indices.size and indices[:, 1].max() > 0:
                    raise ReplayDataError(
                        f"feature '{name}' has several values in one example; one is expected"
                    )
                raw[name][start + indices[:, 0]] = sparse.values.numpy()
    except tf.errors.InvalidArgumentError as error:
        raise ReplayDataError(
            f"the examples do not parse with the signature's dtypes: {error.message}"
        ) from None
    return raw


def labels_of(serialized: Sequence[bytes]) -> np.ndarray | None:
    """The big-tipper label of each example, from its raw `tips` and `fare`; None without tips."""
    spec = {key: tf.io.VarLenFeature(tf.float32) for key in (features.TIPS_KEY, features.FARE_KEY)}
    dense = {key: np.full(len(serialized), math.nan, dtype=np.float32) for key in spec}
    for start, size, parsed in _parsed_chunks(serialized, spec):
        for key, value in parsed.items():
            dense[key][start : start + size] = tf.sparse.to_dense(
                tf.SparseTensor(value.indices, value.values, [size, 1]), default_value=math.nan
            ).numpy()[:, 0]
    if np.isnan(dense[features.TIPS_KEY]).all():
        return None
    return features.big_tipper(dense[features.TIPS_KEY], dense[features.FARE_KEY])


def csv_to_examples(path: str | os.PathLike) -> list[bytes]:
    """Rows of a taxi CSV -> serialized tf.Examples, as CsvExampleGen writes them.

    A blank cell is an absent feature. Every serving column must be there; `tips` (the
    label's source) may be absent, and then no metric can be computed from the replay.

    Raises:
        ReplayDataError: naming a missing column, or the column and row of a bad value.
    """
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as error:
        raise ReplayDataError(
            f"{path} is not a UTF-8 text CSV (byte {error.start}: {error.reason})"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ReplayDataError(f"{path} is not a readable CSV: {str(error).strip()}") from None
    missing = [c for c in features.serving_raw_features() if c not in frame.columns]
    if missing:
        raise ReplayDataError(f"{path} lacks the taxi columns {missing}")
    kinds = features.RAW_COLUMN_KINDS
    columns = [c for c in features.RAW_COLUMNS if c in frame.columns]
    records = []
    for row_number, row in enumerate(frame[columns].itertuples(index=False), start=2):
        example = tf.train.Example()
        for column, cell in zip(columns, row):
            if cell == "":
                continue
            feature = example.features.feature[column]
            try:
                if kinds[column] == "int":
                    feature.int64_list.value.append(int(cell))
                elif kinds[column] == "float":
                    feature.float_list.value.append(float(cell))
                else:
                    feature.bytes_list.value.append(cell.encode())
            except ValueError:
                raise ReplayDataError(
                    f"{path}, line {row_number}, column '{column}': {cell!r} is not a valid {kinds[column]}"
                ) from None
        records.append(example.SerializeToString())
    if not records:
        raise ReplayDataError(f"{path} holds no rows")
    return records


def load_replay_examples(path: str | os.PathLike, split: str = "eval") -> list[bytes]:
    """Serialized tf.Examples to replay, from a CSV file or folder, or TFRecords.

    `path` may be a CSV file, a folder of CSV files, an ExampleGen Examples artifact (its
    `Split-<split>/` is read) or a folder of TFRecord files (`*.gz` read as GZIP).

    Raises:
        ReplayDataError: when there is nothing readable at `path`.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".csv":
        return csv_to_examples(path)
    if not path.is_dir():
        raise ReplayDataError(
            f"no replay data at {path}: give a CSV file or a folder of CSV or TFRecord files"
        )
    split_dir = path / f"Split-{split}"
    if split_dir.is_dir():
        path = split_dir
    csvs = sorted(path.glob("*.csv"))
    if csvs:
        return [record for csv in csvs for record in csv_to_examples(csv)]
    tfrecords = sorted(p for p in path.iterdir() if p.is_file() and (p.suffix in (".gz", ".tfrecord")))
    if not tfrecords:
        raise ReplayDataError(f"{path} holds no CSV, Split-{split}/ or TFRecord (*.gz, *.tfrecord) files")
    records = read_tfrecords([str(p) for p in tfrecords])
    if not records:
        raise ReplayDataError(f"the TFRecord files under {path} hold no examples")
    return records
