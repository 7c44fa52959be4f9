"""DriftGate on the embedded spans: real weeks pass, drifted weeks stop the run naming the features.

Statistics are TFDV's, computed from real span CSVs written to a temp folder; the thresholds are
the ones in `schemas/schema.pbtxt`.
"""

from __future__ import annotations

import json
import os
import shutil

import pandas as pd
import pytest
from tfx.types import standard_artifacts

from components.drift_gate import drift, spec
from components.drift_gate.executor import DriftError, Executor
from components.example_gen.driver import SPANS_PROPERTY
from data import embedded
from pipeline.config import PipelineConfig
from schemas import SCHEMA_PATH, load_schema

PATTERN = "span-{SPAN}/*.csv"


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    numbers = embedded.materialize_spans(root)
    return root, numbers


def invert_payment_types(frame: pd.DataFrame) -> pd.DataFrame:
    """Cash trips become card trips and card trips cash: the proportions swap."""
    cash, card = frame["payment_type"] == "Cash", frame["payment_type"] == "Credit Card"
    frame.loc[cash, "payment_type"], frame.loc[card, "payment_type"] = "Credit Card", "Cash"
    return frame


def fares_times_ten(frame: pd.DataFrame) -> pd.DataFrame:
    frame["fare"] = frame["fare"] * 10
    return frame


def drifted_span(root, edit, number: int = 9) -> None:
    frame = pd.read_csv(root / "span-8" / embedded.SPAN_FILE_NAME)
    (root / f"span-{number}").mkdir(exist_ok=True)
    edit(frame).to_csv(root / f"span-{number}" / embedded.SPAN_FILE_NAME, index=False)


def statistics(root, span: int):
    return drift.span_statistics(drift.span_files(str(root), PATTERN, span))


def test_every_real_week_is_within_the_thresholds(spans):
    """The thresholds come from these very distances (1.5x the largest): no real week trips them."""
    root, numbers = spans
    schema = load_schema()
    measured = set()
    for previous, current in zip(numbers, numbers[1:]):
        distances = drift.distances(statistics(root, current), statistics(root, previous), schema)
        assert not [d.describe() for d in distances if d.drifted], (previous, current)
        measured |= {d.feature for d in distances}
    assert {"payment_type", "company", "fare", "trip_miles", "trip_start_hour"} <= measured
    assert "trip_start_month" not in measured  # months differ by construction; no comparator


@pytest.mark.parametrize(
    ("edit", "feature", "measure"),
    [(invert_payment_types, "payment_type", "L-infinity"), (fares_times_ten, "fare", "Jensen-Shannon")],
)
def test_a_drifted_week_exceeds_its_threshold(spans, tmp_path, edit, feature, measure):
    root, _ = spans
    data = tmp_path / "data"
    shutil.copytree(root / "span-8", data / "span-8")
    drifted_span(data, edit)
    distances = drift.distances(statistics(data, 9), statistics(data, 8), load_schema())
    drifted = {d.feature: d for d in distances if d.drifted}
    assert set(drifted) == {feature}
    assert drifted[feature].measure == measure
    assert drifted[feature].value > 1.5 * drifted[feature].threshold


def gate_inputs(tmp_path, data_root, window: str, accept: bool):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.set_string_custom_property(SPANS_PROPERTY, window)
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema")
    os.makedirs(schema.uri)
    shutil.copy(SCHEMA_PATH, os.path.join(schema.uri, "schema.pbtxt"))
    report = standard_artifacts.ExampleAnomalies()
    report.uri = str(tmp_path / "drift")
    properties = {
        spec.DATA_ROOT_KEY: str(data_root),
        spec.SPAN_PATTERN_KEY: PATTERN,
        spec.ACCEPT_DRIFT_KEY: int(accept),
        spec.MIN_SPAN_ROWS_KEY: PipelineConfig.min_span_rows,
    }
    return (
        {spec.EXAMPLES_KEY: [examples], spec.SCHEMA_KEY: [schema]},
        {spec.DRIFT_KEY: [report]},
        properties,
        report,
    )


def test_executor_stops_a_drifted_span_naming_features_and_distances(spans, tmp_path):
    root, _ = spans
    data = tmp_path / "data"
    shutil.copytree(root / "span-8", data / "span-8")
    drifted_span(data, lambda f: fares_times_ten(invert_payment_types(f)))
    inputs, outputs, properties, report = gate_inputs(tmp_path, data, "6,7,8,9", accept=False)
    with pytest.raises(DriftError) as error:
        Executor().Do(inputs, outputs, properties)
    message = str(error.value)
    assert "span 9 drifted from span 8 beyond the schema's thresholds in 2 features" in message
    assert "payment_type: L-infinity" in message and "fare: Jensen-Shannon" in message
    assert "--accept-drift" in message
    assert report.get_int_custom_property(spec.DRIFT_DETECTED_PROPERTY) == 1


def test_accept_drift_lets_it_through_and_records_it(spans, tmp_path):
    root, _ = spans
    data = tmp_path / "data"
    shutil.copytree(root / "span-8", data / "span-8")
    drifted_span(data, fares_times_ten)
    inputs, outputs, properties, report = gate_inputs(tmp_path, data, "9", accept=True)
    Executor().Do(inputs, outputs, properties)
    assert report.get_int_custom_property(spec.DRIFT_ACCEPTED_PROPERTY) == 1
    assert report.get_string_custom_property(spec.COMPARED_SPANS_PROPERTY) == "8,9"
    assert report.get_string_custom_property(spec.DRIFT_SUMMARY_PROPERTY).startswith("fare: Jensen-Shannon")
    recorded = json.loads((tmp_path / "drift" / spec.DRIFT_FILE_NAME).read_text())
    assert recorded["drifted"] == ["fare"] and recorded["accepted"] is True
    assert {d["feature"] for d in recorded["distances"]} >= {"fare", "payment_type"}


def test_the_first_span_has_nothing_to_compare_with(spans, tmp_path):
    root, _ = spans
    inputs, outputs, properties, report = gate_inputs(tmp_path, root, "1", accept=False)
    Executor().Do(inputs, outputs, properties)
    assert report.get_int_custom_property(spec.DRIFT_DETECTED_PROPERTY) == 0
    assert "first" in report.get_string_custom_property(spec.DRIFT_SUMMARY_PROPERTY)


def test_examples_without_their_window_are_named_not_misread(spans, tmp_path):
    root, _ = spans
    inputs, outputs, properties, _ = gate_inputs(tmp_path, root, "", accept=False)
    with pytest.raises(ValueError, match="carries no 'spans' property"):
        Executor().Do(inputs, outputs, properties)


@pytest.mark.parametrize("rows, span", [(0, 9), (300, 9)])
def test_a_thin_or_empty_newest_span_stops_instead_of_passing(spans, tmp_path, rows, span):
    root, _ = spans
    data = tmp_path / "data"
    shutil.copytree(root / "span-8", data / "span-8")
    drifted_span(data, lambda f: f.head(rows))
    inputs, outputs, properties, _ = gate_inputs(tmp_path, data, "6,7,8,9", accept=False)
    with pytest.raises(DriftError, match=rf"span {span} has {rows} rows, fewer than the 800"):
        Executor().Do(inputs, outputs, properties)
    # The threshold is an execution property: a smaller one lets the 300-row week be compared.
    if rows:
        properties[spec.MIN_SPAN_ROWS_KEY] = 200
        Executor().Do(inputs, outputs, properties)


def test_a_comparison_of_zero_features_is_an_error(spans, tmp_path):
    root, _ = spans
    inputs, outputs, properties, _ = gate_inputs(tmp_path, root, "7,8", accept=False)
    schema_file = tmp_path / "schema" / "schema.pbtxt"
    schema = load_schema(schema_file)
    for feature in schema.feature:
        feature.ClearField("drift_comparator")
    from google.protobuf import text_format

    schema_file.write_text(text_format.MessageToString(schema))
    with pytest.raises(DriftError, match="0 features compared"):
        Executor().Do(inputs, outputs, properties)
