"""Embedded data: spans cut in time order from the sample shipped in tfx, written only on change."""

import pandas as pd
import pytest

from data import embedded
from models import features


@pytest.fixture(scope="module")
def sample():
    return embedded.read_raw_csv(embedded.taxi_sample_path())


def test_sample_ships_with_tfx(sample):
    assert len(sample) == 15002
    assert list(sample.columns) == list(features.RAW_COLUMNS)


def test_spans_are_consecutive_in_time_and_cover_every_trip(sample):
    spans = embedded.split_into_spans(sample, 8)
    assert len(spans) == 8
    assert sum(len(s) for s in spans) == len(sample)
    assert max(len(s) for s in spans) - min(len(s) for s in spans) <= 1
    for older, newer in zip(spans, spans[1:]):
        assert older[features.TIMESTAMP_KEY].max() <= newer[features.TIMESTAMP_KEY].min()


def test_csv_keeps_integer_and_float_columns_distinguishable(sample):
    text = embedded.to_csv_bytes(sample.head(3)).decode()
    header, first = text.splitlines()[:2]
    values = dict(zip(header.split(","), first.split(",")))
    assert "." in values["fare"] and "." not in values["trip_start_hour"]


def test_materialize_writes_once_and_keeps_mtimes(tmp_path):
    written = embedded.materialize_spans(tmp_path, num_spans=4)
    assert written == [1, 2, 3, 4] == embedded.available_spans(tmp_path)
    path = tmp_path / "span-2" / embedded.SPAN_FILE_NAME
    before = path.stat().st_mtime_ns
    embedded.materialize_spans(tmp_path, num_spans=4)
    assert path.stat().st_mtime_ns == before  # identical content is not rewritten
    total = sum(len(pd.read_csv(tmp_path / f"span-{k}" / embedded.SPAN_FILE_NAME)) for k in written)
    assert total == 15002


def test_missing_column_is_named(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("fare,tips\n1.0,0.0\n")
    with pytest.raises(embedded.DataError, match="lacks the taxi columns .*payment_type"):
        embedded.read_raw_csv(bad)


def test_missing_file_and_bad_span_count_are_named(tmp_path):
    with pytest.raises(embedded.DataError, match="no such CSV file"):
        embedded.read_raw_csv(tmp_path / "nope.csv")
    with pytest.raises(embedded.DataError, match="num_spans must be >= 1"):
        embedded.split_into_spans(pd.DataFrame({features.TIMESTAMP_KEY: [1]}), 0)
