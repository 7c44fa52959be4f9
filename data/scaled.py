"""The embedded sample at real weekly volumes: every trip repeated with small jitter (benchmarks).

`scaled_frame(factor)` repeats each of the 15,002 trips `factor` times. Copy 0 is the trip as
it is; every other copy gets, from a seeded generator, the same relative jitter (+-2%) on
`fare` and `tips` (so tips / fare, hence the label, keeps its meaning), +-2% on `trip_miles`,
+-30 s on `trip_seconds` and 0-59 s on `trip_start_timestamp` (so spans keep their time order).
Categorical and location columns are copied as they are. The same factor and seed give the
same bytes, so a benchmark can regenerate its data instead of keeping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from data import embedded
from models import features

SEED = 20240601


def scaled_frame(factor: int, seed: int = SEED, source: str | os.PathLike | None = None) -> pd.DataFrame:
    """The sample repeated `factor` times with jitter (see the module docstring)."""
    return jittered_copies(embedded.read_raw_csv(source or embedded.taxi_sample_path()), factor, seed)


def jittered_copies(base: pd.DataFrame, factor: int, seed: int = SEED) -> pd.DataFrame:
    """`base` repeated `factor` times, every copy but the first jittered (module docstring)."""
    if factor < 1:
        raise embedded.DataError(f"factor must be >= 1, got {factor}")
    frame = pd.concat([base] * factor, ignore_index=True)
    copy = np.repeat(np.arange(factor), len(base))
    jittered = copy > 0
    rng = np.random.default_rng(seed)
    count = len(frame)
    money = np.where(jittered, 1 + rng.uniform(-0.02, 0.02, count), 1.0)
    frame["fare"] = frame["fare"] * money
    frame["tips"] = frame["tips"] * money
    frame["trip_miles"] = frame["trip_miles"] * np.where(jittered, 1 + rng.uniform(-0.02, 0.02, count), 1.0)
    seconds = frame["trip_seconds"] + np.where(jittered, rng.integers(-30, 31, count), 0)
    frame["trip_seconds"] = seconds.clip(lower=0)
    frame[features.TIMESTAMP_KEY] = frame[features.TIMESTAMP_KEY] + np.where(
        jittered, rng.integers(0, 60, count), 0
    )
    return frame


def write_scaled(
    data_root: str | os.PathLike, factor: int, num_spans: int = embedded.DEFAULT_NUM_SPANS, seed: int = SEED
) -> tuple[list[int], Path]:
    """Write `<data_root>/span-<k>/data.csv` (our pipeline) and `<data_root>/all/data.csv` (one file).

    Returns:
        The span numbers and the single-file folder (for pipelines that read one CSV).
    """
    frame = scaled_frame(factor, seed)
    root = Path(data_root)
    spans = embedded.split_into_spans(frame, num_spans)
    for number, span in enumerate(spans, start=1):
        embedded.write_if_changed(
            root / f"span-{number}" / embedded.SPAN_FILE_NAME, embedded.to_csv_bytes(span)
        )
    whole = root / "all"
    embedded.write_if_changed(whole / embedded.SPAN_FILE_NAME, embedded.to_csv_bytes(pd.concat(spans)))
    return list(range(1, num_spans + 1)), whole


def write_scaled_spans(
    data_root: str | os.PathLike, factor: int, num_spans: int = embedded.DEFAULT_NUM_SPANS, seed: int = SEED
) -> list[int]:
    """`<data_root>/span-<k>/data.csv` only, one span in memory at a time (1,000x and more).

    The sample is cut into its spans first and each span is scaled on its own (seed `seed + k`),
    then sorted by start time: a trip's copies start within a minute of it, so they stay in its
    span. Holds one scaled span, not the whole scaled sample; no single-file copy is written.
    """
    base = embedded.read_raw_csv(embedded.taxi_sample_path())
    root = Path(data_root)
    for number, span in enumerate(embedded.split_into_spans(base, num_spans), start=1):
        scaled = jittered_copies(span.reset_index(drop=True), factor, seed + number)
        scaled = scaled.sort_values(features.TIMESTAMP_KEY, kind="stable")
        embedded.write_if_changed(
            root / f"span-{number}" / embedded.SPAN_FILE_NAME, embedded.to_csv_bytes(scaled)
        )
        del scaled
    return list(range(1, num_spans + 1))
