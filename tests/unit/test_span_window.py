"""The span window of the ExampleGen driver: all, static range or rolling, with clear errors."""

import pytest
from tfx.proto import range_config_pb2

from components.example_gen.driver import SpanWindowError, available_spans, select_window
from pipeline.pipeline import span_range


def static(start, end):
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=start, end_span_number=end)
    )


def test_available_spans_parses_folder_numbers(tmp_path):
    for span in (1, 2, 10):
        (tmp_path / f"span-{span}").mkdir()
        (tmp_path / f"span-{span}" / "data.csv").write_text("x\n")
    (tmp_path / "span-x").mkdir()
    (tmp_path / "span-3").mkdir()  # no CSV: not a span
    assert available_spans(str(tmp_path), "span-{SPAN}/*.csv") == [1, 2, 10]


def test_pattern_needs_exactly_one_span_placeholder(tmp_path):
    with pytest.raises(SpanWindowError, match="exactly once"):
        available_spans(str(tmp_path), "span/*.csv")


def test_window_kinds():
    spans = [1, 2, 3, 5, 8]
    assert select_window(spans, None) == spans
    assert select_window(spans, static(2, 5)) == [2, 3, 5]
    rolling = range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=2))
    assert select_window(spans, rolling) == [5, 8]


def test_empty_window_names_the_available_spans():
    with pytest.raises(SpanWindowError, match=r"available spans: \[1, 2\]"):
        select_window([1, 2], static(5, 6))
    with pytest.raises(SpanWindowError, match="after its end"):
        select_window([1, 2], static(3, 1))


def test_span_range_from_cli_values():
    assert span_range(None, None) is None
    window = span_range(3, None)
    assert window.static_range.start_span_number == 3
    assert select_window([1, 2, 3, 4], window) == [3, 4]
    assert select_window([1, 2, 3, 4], span_range(None, 2)) == [1, 2]


def test_rolling_window_takes_the_newest_spans():
    assert select_window([1, 2, 3, 4, 5, 6], span_range(None, None, 4)) == [3, 4, 5, 6]
    assert select_window([1, 2], span_range(None, None, 4)) == [1, 2]  # first weeks: what exists
    assert select_window([1, 2, 3, 4, 5, 6], span_range(None, 5, 2)) == [4, 5]
    assert select_window([1, 2, 3, 4, 5, 6], span_range(2, 3, 4)) == [2, 3]  # explicit range wins


def test_every_column_gets_its_type_from_features_and_unknown_ones_are_refused(tmp_path):
    """Types come from `models.features`; a column the schema does not know is refused.

    No inference pass: the strict span check refuses an unknown column before anything reads
    the data (issue 15), so there is nothing left to infer.
    """
    import pyarrow as pa
    import pytest

    from components.example_gen.executor import arrow_column_types
    from data.span_checks import SpanDataError, check_span_file
    from models import features

    types = arrow_column_types()
    assert set(types) == set(features.RAW_COLUMNS)
    assert (types["fare"], types["trip_start_hour"], types["company"]) == (
        pa.float32(),
        pa.int64(),
        pa.binary(),
    )
    path = tmp_path / "data.csv"
    path.write_text(",".join([*features.RAW_COLUMNS, "driver_rating"]) + "\n")
    with pytest.raises(SpanDataError, match=r"unknown columns \['driver_rating'\]"):
        check_span_file(path)
