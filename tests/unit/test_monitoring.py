"""Monitoring pieces on real data: skew distances, prediction drift, labels, the rules file, options."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from data import embedded
from monitoring import drift, quality, skew
from monitoring.report import MonitorError
from pipeline.cli import main
from pipeline.cli.monitoring import parse_since
from pipeline.ops.exit_codes import EXIT_OK, EXIT_USAGE
from schemas import load_schema
from serving.replay_data import csv_to_examples

RULES = Path(__file__).resolve().parents[2] / "kubeflow" / "prometheus-rules.yml"


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    embedded.materialize_spans(root)
    examples = {k: csv_to_examples(root / f"span-{k}" / embedded.SPAN_FILE_NAME) for k in range(1, 9)}
    training = skew.examples_statistics([e for k in range(4, 8) for e in examples[k]])
    return root, examples, training


def edited_examples(root: Path, tmp_path: Path, edit) -> list[bytes]:
    frame = pd.read_csv(root / "span-8" / embedded.SPAN_FILE_NAME, dtype=str, keep_default_na=False)
    path = tmp_path / "edited.csv"
    edit(frame).to_csv(path, index=False)
    return csv_to_examples(path)


def test_a_real_held_out_week_is_within_every_skew_threshold(spans):
    _, examples, training = spans
    distances = skew.skew_distances(skew.examples_statistics(examples[8]), training, load_schema())
    assert len(distances) == len(skew.skew_features(load_schema())) == 14
    assert not [d.describe() for d in distances if d.skewed]


def test_fares_in_cents_and_upper_cased_companies_cross_their_thresholds(spans, tmp_path):
    root, _, training = spans

    def cents(frame):
        frame["fare"] = [f"{float(v) * 100:.2f}" if v else v for v in frame["fare"]]
        return frame

    def upper(frame):
        frame["company"] = frame["company"].str.upper()
        return frame

    schema = load_schema()
    found = skew.skew_distances(
        skew.examples_statistics(edited_examples(root, tmp_path, cents)), training, schema
    )
    assert [d.feature for d in found if d.skewed] == ["fare"]
    found = skew.skew_distances(
        skew.examples_statistics(edited_examples(root, tmp_path, upper)), training, schema
    )
    (company,) = (d for d in found if d.skewed)
    assert company.feature == "company" and company.measure == "L-infinity" and company.value > 0.3
    assert re.fullmatch(r"company: L-infinity 0\.\d{3} > 0\.140", company.describe())


def test_prediction_drift_is_a_jensen_shannon_divergence_over_ten_bins():
    rng = np.random.default_rng(0)
    same = rng.uniform(0, 1, 5000)
    assert drift.prediction_drift(same, same) == 0.0
    assert drift.prediction_drift(rng.uniform(0, 0.1, 1000), rng.uniform(0.9, 1.0, 1000)) == pytest.approx(
        1.0
    )
    assert (
        drift.prediction_drift(rng.uniform(0, 1, 2000), rng.uniform(0, 1, 2000))
        < drift.PREDICTION_DRIFT_THRESHOLD
    )


def test_the_live_window_exports_distances_and_the_mean_against_the_versions_reference(spans):
    from prometheus_client import REGISTRY

    _, examples, training = spans
    live = skew.RollingSkew(lambda version: skew.Reference(training, 0.42), load_schema(), window=1000)
    batch = examples[8][:500]
    live.observe(batch, np.full(500, 0.3), np.full(500, 5))
    assert live.update() == []  # 500 < MIN_SERVED_EXAMPLES: nothing computed yet
    assert REGISTRY.get_sample_value("taxi_serving_skew_window_examples") == 500
    live.observe(examples[8][500:1500], np.full(1000, 0.3), np.full(1000, 5))
    found = live.update()
    assert len(found) == 14 and not [d for d in found if d.skewed]
    fare = REGISTRY.get_sample_value(
        "taxi_serving_feature_skew", {"feature": "fare", "measure": "Jensen-Shannon"}
    )
    assert fare == next(d.value for d in found if d.feature == "fare")
    assert REGISTRY.get_sample_value("taxi_serving_skew_window_examples") == 1000  # the window's size
    assert REGISTRY.get_sample_value("taxi_serving_prediction_mean") == pytest.approx(0.3)
    assert REGISTRY.get_sample_value("taxi_serving_prediction_mean_reference") == pytest.approx(0.42)


def test_labels_come_keyed_by_trip_id_or_by_span_file_and_line(tmp_path):
    keyed = tmp_path / "outcomes.csv"
    keyed.write_text("trip_id,tips,fare\nA-1,2.5,10.0\nA-2,0,\n")
    assert quality.load_labels(keyed) == {"A-1": (2.5, 10.0), "A-2": (0.0, None)}
    span = tmp_path / "span-9"
    span.mkdir()
    (span / "data.csv").write_text("fare,tips,company\n10.0,3.0,Flash\n5.0,0.0,\n")
    labels = quality.load_labels(span)
    assert labels == {"span-9/data.csv:2": (3.0, 10.0), "span-9/data.csv:3": (0.0, 5.0)}
    assert quality.trip_key(span / "data.csv", 2) == "span-9/data.csv:2"
    (tmp_path / "bad.csv").write_text("trip_id,fare\n1,2\n")
    with pytest.raises(MonitorError, match=r"bad.csv: no 'tips' column \(columns: \['trip_id', 'fare'\]\)"):
        quality.load_labels(tmp_path / "bad.csv")
    with pytest.raises(MonitorError, match="no CSV file there"):
        quality.load_labels(tmp_path / "nowhere")


def test_since_is_iso_8601_and_a_bad_value_is_named():
    assert parse_since("1970-01-01T00:00:01Z") == 1_000_000
    assert parse_since("1970-01-01T00:00:01") == 1_000_000  # no zone: UTC
    assert parse_since("1970-01-01T01:00:01+01:00") == 1_000_000
    with pytest.raises(ValueError, match=r"--since 'last tuesday' is not an ISO-8601 time"):
        parse_since("last tuesday")


def test_monitor_without_logged_predictions_is_a_usage_error_not_healthy(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["monitor", "--root", str(tmp_path)]) == EXIT_USAGE
    assert f"error: no logged predictions under {tmp_path / 'prediction-logs'}" in err.getvalue()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["monitor", "--root", str(tmp_path), "--since", "yesterday"]) == EXIT_USAGE
    assert "is not an ISO-8601 time" in err.getvalue()


def test_the_alerting_rules_name_only_metrics_the_server_exports():
    from prometheus_client import REGISTRY, Gauge

    import serving.prediction_log  # noqa: F401 - registers the log counters
    import serving.server  # noqa: F401 - registers the serving metrics

    skew._gauges(Gauge)
    exported = set()
    for family in REGISTRY.collect():
        exported.update(sample.name for sample in family.samples)
        exported.add(family.name + ("_total" if family.type == "counter" else ""))
    rules = yaml.safe_load(RULES.read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "TaxiFeatureSkew",
        "TaxiPredictionMeanShift",
        "TaxiPredictionLogDropping",
    }
    for rule in rules:
        names = set(re.findall(r"\b(taxi_[a-z_]+)\b", rule["expr"]))
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: prometheus)")
def test_promtool_accepts_the_rules_file():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_kserve_manifest_adds_the_inference_logger(tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            [
                "manifest",
                "--serving",
                "--storage-uri",
                "gs://b/serving/big_tipper",
                "--log-url",
                "http://sink.default/",
            ]
        )
    assert status == EXIT_OK
    predictor = yaml.safe_load(out.getvalue())["spec"]["predictor"]
    assert predictor["logger"] == {"mode": "all", "url": "http://sink.default/"}
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["manifest", "--serving", "--storage-uri", "gs://b/x", "--log-url", "sink"]) == EXIT_USAGE
    assert "--log-url must be an http:// or https:// URL, got 'sink'" in err.getvalue()


def test_the_scheduled_run_carries_the_webhook(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_ALERT_WEBHOOK", "http://hooks.example/taxi")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schedule", "--root", str(tmp_path), "--print"]) == EXIT_OK
    assert "--alert-webhook http://hooks.example/taxi" in out.getvalue()
