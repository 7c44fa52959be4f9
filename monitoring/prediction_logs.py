"""Prediction logs, the reading half: what the served versions answered, column-wise.

The model server and the KServe logger receiver write the logs (`serving/prediction_log.py`,
which documents the format); `read_logs` reads them back for `python -m pipeline monitor`,
closed files and the complete records of the one still being written (`read_records` of
`data/tfrecords.py` leaves out its torn tail), with the log-only fields taken out of each
example so that what remains is the request as the model saw it.

The server rotates and caps files while this reads: a file listed open and closed since is
read under its closed name, one seen open and closed is read once, one removed since is
skipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from data.tfrecords import read_records
from serving.prediction_log import (
    KEY,
    META_FEATURES,
    MODEL_VERSION,
    OPEN_SUFFIX,
    PREDICTION,
    REQUEST_ID,
    SIGNATURE,
    SUFFIX,
    TIME_US,
    key_text,
)


@dataclasses.dataclass
class LoggedExamples:
    """Logged examples and their log-only fields, column-wise."""

    serialized: list[bytes]  # the raw features only (log-only fields removed)
    predictions: np.ndarray
    versions: np.ndarray
    signatures: list[str]
    times_us: np.ndarray
    request_ids: list[str]
    keys: list[str | None]

    def __len__(self) -> int:
        return len(self.serialized)

    def select(self, mask: np.ndarray) -> LoggedExamples:
        idx = np.flatnonzero(mask)
        return LoggedExamples(
            [self.serialized[i] for i in idx],
            self.predictions[idx],
            self.versions[idx],
            [self.signatures[i] for i in idx],
            self.times_us[idx],
            [self.request_ids[i] for i in idx],
            [self.keys[i] for i in idx],
        )


def log_files(folder: str | os.PathLike) -> list[Path]:
    """Closed and open log files, oldest first."""
    folder = Path(folder)
    # The open files first: one closed between the two listings then shows in both (and is
    # kept once, closed), never in neither.
    by_stem = {p.name.removesuffix(OPEN_SUFFIX): p for p in folder.glob(f"predictions-*{OPEN_SUFFIX}")}
    by_stem.update({p.name.removesuffix(SUFFIX): p for p in folder.glob(f"predictions-*{SUFFIX}")})
    return [by_stem[stem] for stem in sorted(by_stem)]


def _listed_records(path: Path) -> list[bytes]:
    """The records of a listed file, read under its closed name if the server closed it since.

    Empty when it is gone (removed by the size or age cap after it was listed).
    """
    for candidate in (path, path.with_name(path.name.removesuffix(OPEN_SUFFIX) + SUFFIX)):
        try:
            return list(read_records(candidate))
        except FileNotFoundError:
            continue
    return []


def read_logs(folder: str | os.PathLike, since_us: int | None = None) -> LoggedExamples:
    """Every logged example under `folder` (answered at or after `since_us`, when given)."""
    import tensorflow as tf

    columns = {
        name: [] for name in ("serialized", "predictions", "versions", "signatures", "times", "ids", "keys")
    }
    for path in log_files(folder):
        for record in _listed_records(path):
            example = tf.train.Example.FromString(record)
            fields = example.features.feature
            time_us = fields[TIME_US].int64_list.value[0]
            if since_us is not None and time_us < since_us:
                continue
            columns["predictions"].append(fields[PREDICTION].float_list.value[0])
            columns["versions"].append(fields[MODEL_VERSION].int64_list.value[0])
            columns["signatures"].append(fields[SIGNATURE].bytes_list.value[0].decode())
            columns["times"].append(time_us)
            columns["ids"].append(fields[REQUEST_ID].bytes_list.value[0].decode())
            key = key_text(fields[KEY].bytes_list.value) if KEY in fields else None
            columns["keys"].append(key)
            for name in META_FEATURES:
                if name in fields:
                    del fields[name]
            columns["serialized"].append(example.SerializeToString())
    return LoggedExamples(
        columns["serialized"],
        np.asarray(columns["predictions"], dtype=np.float64),
        np.asarray(columns["versions"], dtype=np.int64),
        columns["signatures"],
        np.asarray(columns["times"], dtype=np.int64),
        columns["ids"],
        columns["keys"],
    )
