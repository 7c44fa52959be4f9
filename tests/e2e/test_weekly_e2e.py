"""Weekly retraining end to end: a 4-week replay, then a drifted week stopped and knowingly accepted.

One session fixture in one temp root, all real LocalDagRunner runs, checked through ML Metadata:
1. `replay` of 4 weeks (span k arrives in week k; window of 4 spans); week 4 is trained with
   5 steps only (a runtime setting) and must not be pushed;
2. week 5's span arrives with fares multiplied by 10: the drift gate stops the run;
3. the same run with `--accept-drift` (and `--warm-start`) goes through; ML Metadata records
   the override and the model the Trainer started from.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tfx.utils import path_utils

from data import embedded
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_OK, EXIT_USAGE
from pipeline.ops.replay import replay
from pipeline.ops.run import run_command
from pipeline.ops.run_history import load_report

pytestmark = pytest.mark.e2e

WEEKS = 4
WORSE_WEEK = 4


def captured(fn, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = fn(*args, **kwargs)
    return result, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def weeks(tmp_path_factory):
    root = tmp_path_factory.mktemp("weekly")
    base = PipelineConfig(root=root)
    printed = io.StringIO()
    rows = replay(base, WEEKS, {WORSE_WEEK: 5}, out=printed)

    weekly = root / "weekly-data"
    # Read as text so every other column is written back byte for byte (ints stay ints).
    frame = pd.read_csv(root / "feed" / "span-5" / embedded.SPAN_FILE_NAME, dtype=str, keep_default_na=False)
    frame["fare"] = [f"{float(v) * 10:.2f}" if v else "" for v in frame["fare"]]
    (weekly / "span-5").mkdir()
    frame.to_csv(weekly / "span-5" / embedded.SPAN_FILE_NAME, index=False)
    config = PipelineConfig(root=root, data_root=weekly)
    drifted = captured(run_command, config)
    drifted_report = load_report(config.metadata_path)
    accepted = captured(
        run_command, PipelineConfig(root=root, data_root=weekly, accept_drift=True, warm_start=True)
    )
    accepted_report = load_report(config.metadata_path)
    return {
        "root": root,
        "rows": rows,
        "printed": printed.getvalue(),
        "drifted": drifted,
        "drifted_report": drifted_report,
        "accepted": accepted,
        "accepted_report": accepted_report,
        "serving": base.serving_dir,
    }


def test_each_week_trains_on_its_window_and_records_its_spans(weeks):
    rows = weeks["rows"]
    assert [row.spans for row in rows] == ["1", "1,2", "1,2,3", "1,2,3,4"]
    assert [row.span for row in rows] == [1, 2, 3, 4]  # ExampleGen's span property in ML Metadata
    assert all(row.status == EXIT_OK for row in rows)
    # New data every week: only the schema import is reused.
    assert all(row.cached == ["ImportSchemaGen"] for row in rows[1:])


def test_the_baseline_is_the_previous_weeks_blessed_model(weeks):
    rows = weeks["rows"]
    assert rows[0].baseline is None and rows[0].pushed_version
    for previous, week in zip(rows[: WORSE_WEEK - 1], rows[1:WORSE_WEEK]):
        assert previous.pushed_version, previous.outcome
        assert week.baseline == previous.candidate
    assert rows[WORSE_WEEK - 1].baseline == rows[WORSE_WEEK - 2].candidate


def test_versions_only_grow_and_the_worse_week_is_not_pushed(weeks):
    rows = weeks["rows"]
    pushed = [int(row.pushed_version) for row in rows if row.pushed_version]
    assert pushed == sorted(pushed) and len(set(pushed)) == len(pushed) == WORSE_WEEK - 1
    worse = rows[WORSE_WEEK - 1]
    assert worse.blessed is False and worse.pushed_version is None
    assert worse.auc < rows[WORSE_WEEK - 2].auc - 0.05
    assert "not pushed: not blessed" in worse.outcome and "auc change vs baseline" in worse.outcome
    served = sorted(int(p.name) for p in weeks["serving"].iterdir() if p.name.isdigit())
    accepted = weeks["accepted_report"]
    later = [int(accepted.pushed_version)] if accepted.pushed_new_version else []
    assert served == pushed + later  # the week-5 run (drift accepted) comes after the replay
    # Each edge model sits beside a pushed version of its own week (a week's edge gate may refuse).
    edge = weeks["serving"] / "edge"
    edge_versions = sorted(int(p.name) for p in edge.iterdir()) if edge.is_dir() else []
    assert edge_versions and set(edge_versions) <= set(served)


def test_the_replay_prints_one_row_per_week(weeks):
    lines = weeks["printed"].splitlines()
    assert lines[0].split()[:4] == ["week", "spans", "AUC", "acc"]
    rows = [line for line in lines if line[:4].strip().isdigit()]
    assert [int(line.split()[0]) for line in rows] == list(range(1, WEEKS + 1))
    assert "pushed" in rows[0] and "not pushed: not blessed" in rows[WORSE_WEEK - 1]
    assert "cached: ImportSchemaGen" in weeks["printed"]
    assert (weeks["root"] / "replay" / "week-1.log").read_text().count("Pushed: version") == 1


def test_a_drifted_week_stops_the_run_naming_the_feature(weeks):
    status, _, err = weeks["drifted"]
    assert status == EXIT_DATA_GATE
    assert "span 5 drifted from span 4 beyond the schema's thresholds" in err
    assert "fare: Jensen-Shannon" in err and "--accept-drift" in err
    states = {n.node_id: n.state for n in weeks["drifted_report"].nodes}
    assert states["DriftGate"] == "failed" and "Transform" not in states


def test_accept_drift_lets_it_through_and_records_the_override(weeks):
    status, out, _ = weeks["accepted"]
    assert status == EXIT_OK, out
    report = weeks["accepted_report"]
    states = {n.node_id: n.state for n in report.nodes}
    assert states["DriftGate"] == "ran" and states["Transform"] == "ran"
    assert report.drift_accepted is True
    assert "Drift: ACCEPTED by --accept-drift: fare: Jensen-Shannon" in out
    assert report.spans == "2,3,4,5"


def test_replay_refuses_a_used_root_and_bad_week_settings(weeks, tmp_path):
    status, _, err = captured(main, ["replay", "--weeks", "2", "--root", str(weeks["root"])])
    assert status == EXIT_USAGE and "already holds pipeline runs" in err
    status, _, err = captured(main, ["replay", "--weeks", "99", "--root", str(tmp_path / "r")])
    assert status == EXIT_USAGE and "--weeks must be within 1..8" in err
    status, _, err = captured(
        main, ["replay", "--weeks", "2", "--root", str(tmp_path / "s"), "--week-train-steps", "x"]
    )
    assert status == EXIT_USAGE and "WEEK=STEPS" in err
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_warm_start_trains_from_the_latest_blessed_model(weeks):
    trainer = next(n for n in weeks["accepted_report"].nodes if n.node_id == "Trainer")
    assert trainer.state == "ran"
    latest_blessed = weeks["rows"][WORSE_WEEK - 2].candidate  # week 4 was not blessed
    assert [a.uri for a in trainer.inputs["base_model"]] == [latest_blessed]


def test_warm_start_copies_weights_and_remaps_embeddings_by_token(weeks):
    """Week 1's model (vocabulary of span 1) into a model for week 4's window (spans 1-4)."""
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    from models import features
    from models.model import build_model, categorical_cardinalities
    from models.trainer import vocabulary_sizes, warm_start

    rows = weeks["rows"]
    base_dir = path_utils.serving_model_dir(rows[0].candidate)
    week4 = load_report(PipelineConfig(root=weeks["root"]).metadata_path, rows[WORSE_WEEK - 1].run_id)
    transform = next(n for n in week4.nodes if n.node_id == "Transform")
    tft_output = tft.TFTransformOutput(transform.outputs["transform_graph"][0].uri)
    model = build_model(categorical_cardinalities(vocabulary_sizes(tft_output)))
    message = warm_start(model, base_dir, tft_output)
    assert "18 weights copied" in message and "fresh: none" in message
    assert "vocabulary embeddings remapped by token for ['company', 'payment_type']" in message

    base = tf.saved_model.load(base_dir)
    old = {v.name: v.numpy() for v in base.signatures["serving_default"].variables}
    new = {w.name: w.numpy() for w in model.weights}
    np.testing.assert_array_equal(new["dense_1/kernel:0"], old["dense_1/kernel:0"])
    key = "company"
    name = f"{features.transformed_name(key)}_embedding/embeddings:0"
    old_tokens = (Path(base_dir) / "assets" / features.vocabulary_name(key)).read_bytes().split(b"\n")
    new_tokens = tft_output.vocabulary_by_name(features.vocabulary_name(key))
    moved = [t for t in new_tokens if t in old_tokens and new_tokens.index(t) != old_tokens.index(t)]
    assert moved, "the two windows order the companies differently"
    for token in moved:
        np.testing.assert_array_equal(new[name][new_tokens.index(token)], old[name][old_tokens.index(token)])
