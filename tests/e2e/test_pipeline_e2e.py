"""End to end on the embedded data: real LocalDagRunner runs in one temp root, checked through ML Metadata.

One session fixture makes the runs in order and every test reads their record:
1. cold run (everything executes, the model is pushed);
2. the same command again (fully cached, no new version);
3. an unreachable AUC threshold (Evaluator re-runs, nothing is pushed);
4. a model whose raw signature skews `fare` (the Evaluator blesses it, the serving gate
   refuses it, nothing is pushed);
5. a new span with an unknown payment_type (the data gate stops the run before Transform);
6. a span with a missing column (stopped before any statistics);
7. a model that blends each prediction with its batch's mean (the Evaluator blesses it, the
   serving gate's batch_invariance check refuses it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import PIPELINE_NODE_IDS

from data import embedded
from models import features
from pipeline.cli import main
from pipeline.config import PipelineConfig
from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_OK, EXIT_SERVING_GATE, EXIT_USAGE
from pipeline.ops.run import run_command
from pipeline.ops.run_history import load_report

pytestmark = pytest.mark.e2e

ALL_NODES = set(PIPELINE_NODE_IDS)


@dataclasses.dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    versions: list[str]
    report: object


def serving_versions(root: Path) -> list[str]:
    """The SavedModel versions (integer folders; the edge models live in `edge/` beside them)."""
    base = PipelineConfig(root=root).serving_dir
    return sorted(p.name for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []


def edge_versions(root: Path) -> list[str]:
    base = PipelineConfig(root=root).serving_dir / "edge"
    return sorted(p.name for p in base.iterdir()) if base.is_dir() else []


def run_cli(root: Path, *extra: str, config: PipelineConfig | None = None) -> Outcome:
    """`python -m pipeline run` in-process; with `config`, the same run of a programmatic config."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run_command(config) if config else main(["run", "--root", str(root), *extra])
    return Outcome(
        status,
        out.getvalue(),
        err.getvalue(),
        serving_versions(root),
        load_report(PipelineConfig(root=root).metadata_path),
    )


def span_with(root: Path, name: str, edit) -> Path:
    """A data root with the embedded spans plus span-9, made from span-8 by `edit`."""
    data = root / name
    shutil.copytree(root / "data", data)
    frame = pd.read_csv(data / "span-8" / embedded.SPAN_FILE_NAME, dtype=str, keep_default_na=False)
    (data / "span-9").mkdir()
    edit(frame).to_csv(data / "span-9" / embedded.SPAN_FILE_NAME, index=False)
    return data


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("e2e")
    outcomes = {"cold": run_cli(root)}
    outcomes["cached"] = run_cli(root)
    outcomes["unreachable"] = run_cli(root, "--auc-threshold", "0.999")
    # skewed_trainer.py (beside this file) trains the real model but exports a raw signature
    # that scales fare by 100: a JSON client sending cents. serving_default is untouched.
    outcomes["skewed"] = run_cli(root, config=PipelineConfig(root=root, run_fn="skewed_trainer.run_fn"))

    def unknown_payment(frame):
        frame.loc[frame.index[::3], "payment_type"] = "Bitcoin"
        return frame

    outcomes["anomaly"] = run_cli(root, "--data-root", str(span_with(root, "data-anomaly", unknown_payment)))
    outcomes["missing_column"] = run_cli(
        root, "--data-root", str(span_with(root, "data-missing", lambda f: f.drop(columns=["company"])))
    )
    # batch_blend_trainer.py: the real model, exported with a (N, 1) + (N,) broadcast inside.
    outcomes["batch_blend"] = run_cli(
        root, config=PipelineConfig(root=root, run_fn="batch_blend_trainer.run_fn")
    )
    # The cold run's model again (Trainer cached), with edge tolerances no int8 model can meet:
    # the SavedModel is pushed, the edge model is not.
    outcomes["edge_refused"] = run_cli(root, "--edge-accuracy-tolerance", "0", "--edge-auc-tolerance", "0")
    outcomes["root"] = root
    return outcomes


def test_cold_run_executes_every_component_once(runs):
    cold = runs["cold"]
    assert cold.status == EXIT_OK, cold.stderr
    states = {n.node_id: n.state for n in cold.report.nodes}
    assert set(states) == ALL_NODES
    assert all(state == "ran" for state in states.values()), states
    assert cold.report.spans == "5,6,7,8"  # the default window: the newest 4 spans
    for node in ALL_NODES:  # live progress: a "started" and a "ran <seconds> s" line each
        assert re.search(rf"\] {node}\s+started$", cold.stdout, re.MULTILINE), node
        assert re.search(rf"\] {node}\s+ran\s+[\d.]+ s$", cold.stdout, re.MULTILINE), node


def test_model_quality_on_the_eval_split(runs):
    """On the default window (spans 5-8, 2015-16: a quarter more big tippers than 2013-14).

    All 8 spans give AUC 0.952 / accuracy 0.896 (see the benchmark); on this window always
    answering "no" scores 0.734, and the model must beat it by a wide margin.
    """
    overall = runs["cold"].report.overall
    assert overall["example_count"] > 2000  # eval split of the 4-span window
    assert overall["auc"] >= 0.92, overall
    assert overall["binary_accuracy"] >= (1 - overall["mean_label"]) + 0.10, overall
    assert runs["cold"].report.blessed is True
    assert "Blessed: yes" in runs["cold"].stdout


def test_summary_lists_slices(runs):
    report = runs["cold"].report
    slice_names = {name.split("=")[0] for name, _ in report.slices}
    assert slice_names == set(features.SLICE_FEATURES)
    assert "Weakest slices by AUC" in runs["cold"].stdout


def test_pushed_model_serves_probabilities_of_shape_n_by_1(runs):
    import numpy as np
    import tensorflow as tf

    cold = runs["cold"]
    assert len(cold.versions) == 1
    assert cold.report.pushed_new_version
    path = Path(cold.report.pushed_path)
    assert path.name == cold.versions[0] and path.parent == PipelineConfig(root=runs["root"]).serving_dir
    model = tf.saved_model.load(str(path))
    serve = model.signatures["serving_default"]
    trips = pd.read_csv(runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME).head(50)
    examples = [serialize(row) for _, row in trips.iterrows()]
    probabilities = serve(examples=tf.constant(examples))["probabilities"].numpy()
    assert probabilities.shape == (50, 1)
    assert np.isfinite(probabilities).all() and ((probabilities >= 0) & (probabilities <= 1)).all()
    # Cash trips almost never record a tip: the model must know it.
    cash = (trips["payment_type"] == "Cash").to_numpy()
    assert probabilities[cash].mean() < 0.1 < probabilities[~cash].mean()


def serialize(row) -> bytes:
    import tensorflow as tf

    feature = {}
    for key in features.serving_raw_features():
        value = row[key]
        if pd.isna(value):
            continue
        if key in features.RAW_STRING_COLUMNS:
            feature[key] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode()]))
        elif key in features.RAW_INT_COLUMNS:
            feature[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[key] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_second_run_is_fully_cached_and_pushes_nothing(runs):
    cached = runs["cached"]
    assert cached.status == EXIT_OK, cached.stderr
    states = {n.node_id: n.state for n in cached.report.nodes}
    assert states.pop("latest_blessed_model_resolver") == "ran"  # resolvers always resolve
    assert set(states.values()) == {"cached"}, states
    assert cached.versions == runs["cold"].versions
    assert "nothing new (cached run)" in cached.stdout


def test_unreachable_threshold_pushes_nothing(runs):
    unreachable = runs["unreachable"]
    assert unreachable.status == EXIT_OK, unreachable.stderr
    states = {n.node_id: n.state for n in unreachable.report.nodes}
    assert states["Trainer"] == "cached" and states["Evaluator"] == "ran"
    assert unreachable.report.blessed is False
    assert not unreachable.report.pushed_new_version
    assert unreachable.versions == runs["cold"].versions
    assert "Blessed: no" in unreachable.stdout and "0.999" in unreachable.stdout


def test_serving_gate_passes_the_real_model_with_the_evaluators_figures(runs):
    cold = runs["cold"]
    assert cold.report.gate_blessed is True
    assert "Serving gate: passed (7 checks on" in cold.stdout
    checks = {c["name"]: c for c in cold.report.gate_checks}
    assert {c["status"] for c in checks.values()} == {"pass"}
    metrics = checks["metrics"]["figures"]
    for ours, theirs in (("accuracy", "binary_accuracy"), ("auc", "auc")):
        for signature in ("serving_default", "serving_raw"):
            assert abs(metrics[signature][ours] - cold.report.overall[theirs]) <= 0.005
    assert checks["parity"]["figures"]["max_abs_difference"] <= 1e-5
    assert checks["parity"]["figures"]["examples_differing"] == 0


def test_serving_gate_refusal_pushes_nothing_and_says_why(runs):
    skewed = runs["skewed"]
    assert skewed.status == EXIT_SERVING_GATE, skewed.stdout + skewed.stderr
    states = {n.node_id: n.state for n in skewed.report.nodes}
    assert states["Trainer"] == "ran" and states["ServingGate"] == "ran"
    # The Evaluator alone would have pushed it: serving_default is the real model.
    assert skewed.report.blessed is True
    assert skewed.report.gate_blessed is False
    assert not skewed.report.pushed_new_version
    assert skewed.versions == runs["cold"].versions
    failed = [c["name"] for c in skewed.report.gate_checks if c["status"] == "fail"]
    assert "parity" in failed
    assert "Serving gate: REFUSED the push" in skewed.stdout
    assert "train/serve preprocessing skew" in skewed.stdout
    assert "Pushed: nothing (the serving gate refused it)" in skewed.stdout


def test_a_batch_dependent_model_fools_the_evaluator_but_not_the_serving_gate(runs):
    blend = runs["batch_blend"]
    assert blend.status == EXIT_SERVING_GATE, blend.stdout + blend.stderr
    states = {n.node_id: n.state for n in blend.report.nodes}
    assert states["Trainer"] == "ran" and states["Evaluator"] == "ran"
    assert blend.report.blessed is True  # the Evaluator scored the blended answers and passed them
    assert blend.report.gate_blessed is False
    assert not blend.report.pushed_new_version
    assert blend.versions == runs["cold"].versions
    checks = {c["name"]: c for c in blend.report.gate_checks}
    assert checks["batch_invariance"]["status"] == "fail"
    for name in ("signatures", "output_shape", "finite", "parity", "not_degenerate"):
        assert checks[name]["status"] == "pass", (name, checks[name]["detail"])
    detail = checks["batch_invariance"]["detail"]
    assert "serving_default: example " in detail and "batchings that disagree: 1, 2, 7, 64" in detail
    assert checks["batch_invariance"]["figures"]["max_abs_difference"] > 0.01
    assert "Serving gate: REFUSED the push" in blend.stdout
    assert "depends on the rest of its batch" in blend.stdout


def test_verify_passes_the_pushed_model_on_raw_csv_and_the_evaluator(runs, tmp_path):
    cold = runs["cold"]
    evaluation = next(
        node.outputs["evaluation"][0].uri for node in cold.report.nodes if node.node_id == "Evaluator"
    )
    examples = next(
        node.outputs["examples"][0].uri
        for node in cold.report.nodes
        if node.node_id == "SpanWindowCsvExampleGen"
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(
            ["verify", "--model", cold.report.pushed_path, "--data", examples, "--evaluation", evaluation]
        )
    assert status == EXIT_OK, out.getvalue()
    assert "[PASS   ] metrics" in out.getvalue()
    csv = runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME
    with contextlib.redirect_stdout(io.StringIO()):
        serving_dir = str(PipelineConfig(root=runs["root"]).serving_dir)
        assert main(["verify", "--model", serving_dir, "--data", str(csv)]) == EXIT_OK


def _node(outcome: Outcome, node_id: str):
    return next(node for node in outcome.report.nodes if node.node_id == node_id)


def test_the_batched_evaluator_reports_tfmas_stock_figures(runs, tmp_path):
    """The batched Evaluator (tfma_batched) against TFMA's own per-example path, on the same model and rows.

    The cold run's Evaluator output (batched, no baseline) equals a stock TFMA run; and with
    a baseline (the same model: diffs and both models' figures), batched equals stock too.
    Every slice, every metric key, every value: to 1e-5, as TFMA's adaptive batching feeds
    the model batches of other sizes from run to run, and float32 inference rounds a
    prediction differently by batch size (about 1e-7: it can move one across a histogram
    bucket edge). A wrong count or sum is off by far more. A metric undefined on a small
    slice (precision with no positive prediction) is NaN on both paths.
    """
    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils

    from pipeline.eval_config import make_eval_config
    from tfma_batched import harness as batched_evaluation

    cold = runs["cold"]
    model = Path(_node(cold, "Trainer").outputs["model"][0].uri) / "Format-Serving"
    examples = Path(_node(cold, "SpanWindowCsvExampleGen").outputs["examples"][0].uri) / "Split-eval"
    files = sorted(str(p) for p in examples.iterdir())
    schema_uri = _node(cold, "ImportSchemaGen").outputs["schema"][0].uri
    schema = io_utils.parse_pbtxt_file(str(Path(schema_uri) / "schema.pbtxt"), schema_pb2.Schema())
    pipeline_figures = batched_evaluation.metric_values(_node(cold, "Evaluator").outputs["evaluation"][0].uri)

    def run(batched: bool, baseline: bool) -> dict:
        out = tmp_path / f"batched={batched}-baseline={baseline}"
        batched_evaluation.evaluate(
            model_path=str(model),
            baseline_path=str(model) if baseline else None,
            example_patterns=files,
            schema=schema,
            eval_config=make_eval_config(0.5, 0.1, batched=batched),
            output_path=str(out),
            batched=batched,
        )
        return batched_evaluation.metric_values(str(out))

    def assert_same(expected: dict, got: dict) -> None:
        assert set(got) == set(expected)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5, nan_ok=True), key

    stock = run(batched=False, baseline=False)
    slices = {slice_key for slice_key, _ in stock}
    assert "" in slices  # overall
    for column, at_least in (("payment_type", 3), ("trip_start_hour", 24), ("trip_start_day", 7)):
        assert sum(f'column: "{column}"' in s for s in slices) >= at_least, column
    assert_same(stock, pipeline_figures)
    stock_with_baseline = run(batched=False, baseline=True)
    assert any("is_diff: true" in metric for _, metric in stock_with_baseline)
    assert_same(stock_with_baseline, run(batched=True, baseline=True))


def test_anomalous_span_stops_the_run_before_transform(runs):
    anomaly = runs["anomaly"]
    assert anomaly.status == EXIT_DATA_GATE
    assert "payment_type" in anomaly.stderr
    assert "ENUM_TYPE_UNEXPECTED_STRING_VALUES" in anomaly.stderr
    assert "Bitcoin" in anomaly.stderr
    states = {n.node_id: n.state for n in anomaly.report.nodes}
    assert states["AnomalyGate"] == "failed"
    assert "Transform" not in states and "AtomicPusher" not in states
    assert anomaly.versions == runs["cold"].versions  # the served model stays where it is
    assert anomaly.report.spans == "6,7,8,9"


def test_span_missing_a_column_stops_the_run_naming_it(runs):
    missing = runs["missing_column"]
    assert missing.status == EXIT_DATA_GATE
    assert "missing columns ['company']" in missing.stderr
    assert missing.versions == runs["cold"].versions


def raw_inputs(trips: pd.DataFrame) -> dict:
    """A raw-signature request for `trips`: blank cells become the missing markers."""
    import tensorflow as tf

    inputs = {}
    for key in features.serving_raw_features():
        column = trips[key]
        if key in features.RAW_STRING_COLUMNS:
            inputs[key] = tf.constant(column.fillna(features.MISSING_STRING).astype(str).tolist())
        elif key in features.RAW_INT_COLUMNS:
            inputs[key] = tf.constant(column.fillna(features.MISSING_INT).astype("int64").to_numpy())
        else:
            inputs[key] = tf.constant(column.astype("float32").to_numpy())  # NaN marks missing
    return inputs


@pytest.fixture(scope="module")
def served(runs):
    import tensorflow as tf

    model = tf.saved_model.load(runs["cold"].report.pushed_path)
    trips = pd.read_csv(runs["root"] / "data" / "span-8" / embedded.SPAN_FILE_NAME).head(40)
    return model, trips


def test_raw_signature_matches_the_examples_signature_with_missing_values(served):
    import numpy as np
    import tensorflow as tf

    model, trips = served
    assert trips[features.serving_raw_features()].isna().any(axis=1).sum() > 5  # gaps included
    raw = model.signatures["serving_raw"](**raw_inputs(trips))["probabilities"].numpy()
    examples = [serialize(row) for _, row in trips.iterrows()]
    parsed = model.signatures["serving_default"](examples=tf.constant(examples))["probabilities"].numpy()
    assert raw.shape == (len(trips), 1)
    np.testing.assert_allclose(raw, parsed, atol=1e-5)


@pytest.mark.parametrize("mistake", ["rank_2", "scalar", "missing", "batch"])
def test_raw_signature_refuses_malformed_requests_naming_the_feature(served, mistake):
    """The exported signature itself refuses a wrong rank, a missing feature or a batch mismatch."""
    import tensorflow as tf

    model, trips = served
    inputs = raw_inputs(trips)
    if mistake == "rank_2":
        inputs["fare"] = inputs["fare"][:, None]
    elif mistake == "scalar":
        inputs["fare"] = inputs["fare"][0]
    elif mistake == "missing":
        del inputs["fare"]
    else:
        inputs["fare"] = inputs["fare"][:-1]
    with pytest.raises((TypeError, tf.errors.InvalidArgumentError)) as error:
        model.signatures["serving_raw"](**inputs)
    assert "fare" in str(error.value)
    if mistake == "rank_2":
        assert f"Shape of tensor fare [{len(trips)},1] is not compatible with expected shape [?]" in str(
            error.value
        )


def test_request_check_names_a_wrong_dtype_for_the_real_model(served):
    """TensorFlow names a wrongly typed input by position; the request check names the feature."""
    from serving import request_checks as serving

    model, trips = served
    inputs = {k: v.numpy() for k, v in raw_inputs(trips).items()}
    inputs["trip_start_hour"] = inputs["trip_start_hour"].astype("float64")
    specs = serving.raw_input_specs(model.signatures["serving_raw"])
    with pytest.raises(
        serving.ServingInputError, match="feature 'trip_start_hour': wrong dtype: received float64"
    ):
        serving.check_raw_request(specs, inputs)


def test_runs_lists_every_run_with_its_status_from_ml_metadata(runs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["runs", "--root", str(runs["root"])]) == EXIT_OK
    rows = out.getvalue().splitlines()[1:]
    order = [
        "cold", "cached", "unreachable", "skewed", "anomaly", "missing_column", "batch_blend", "edge_refused",
    ]  # fmt: skip
    assert len(rows) == len(order)
    by_name = dict(zip(order, rows))
    for name in order:
        assert by_name[name].startswith(runs[name].report.run_id)
    assert "completed " in by_name["cold"] and by_name["cold"].endswith(runs["cold"].report.pushed_version)
    assert f"{runs['cold'].report.overall['auc']:6.4f}" in by_name["cold"]
    assert by_name["cached"].endswith(f"(cached: {runs['cold'].report.pushed_version})")
    assert " no " in by_name["unreachable"] and by_name["unreachable"].endswith("-")
    assert "completed, serving gate refused" in by_name["skewed"] and by_name["skewed"].endswith("-")
    assert "stopped by the data gate" in by_name["anomaly"]
    # A span file the strict reader refuses is a data-gate stop, recorded on the run (issue 15).
    assert "stopped by the data gate" in by_name["missing_column"]

    details = io.StringIO()
    with contextlib.redirect_stdout(details):
        assert main(["runs", "--root", str(runs["root"]), "show", runs["skewed"].report.run_id]) == EXIT_OK
    text = details.getvalue()
    assert "Status: completed, serving gate refused" in text
    assert "ServingGate (ran" in text and "out blessing: " in text
    assert "Per-slice metrics:" in text and "payment_type=Cash" in text
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["runs", "--root", str(runs["root"]), "show", "no-such-run"]) == EXIT_USAGE


# ---------------------------------------------------------------- serving over HTTP
# `python -m pipeline serve` as a subprocess on a free loopback port, serving a copy of the
# cold run's serving directory (so pushing and rolling back here disturbs no other test).


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port: int, path: str, body=None, content_type="application/json") -> tuple[int, object]:
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, json.loads(raw) if path != "/metrics" else raw.decode()
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    import subprocess
    import sys
    import time

    base = tmp_path_factory.mktemp("serving") / "big_tipper"
    shutil.copytree(PipelineConfig(root=runs["root"]).serving_dir, base)
    port = _free_port()
    log = open(base.parent / "serve.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "serve",
            "--serving-dir",
            str(base),
            "--port",
            str(port),
            "--poll-s",
            "0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 180
    while time.time() < deadline:
        assert process.poll() is None, (base.parent / "serve.log").read_text()
        try:
            if http(port, "/v1/models/big_tipper")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("serve did not come up in 180 s:\n" + (base.parent / "serve.log").read_text())
    yield port, base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def _json_raw(inputs: dict) -> dict:
    """A raw-signature request body: NaN (missing float) as null, arrays as lists."""
    import math

    body = {}
    for key, tensor in inputs.items():
        values = tensor.numpy().tolist()
        body[key] = [
            None if isinstance(v, float) and math.isnan(v) else v.decode() if isinstance(v, bytes) else v
            for v in values
        ]
    return body


def test_served_predictions_equal_the_saved_model_in_both_formats_and_signatures(served, server):
    import base64

    import numpy as np
    import tensorflow as tf

    model, trips = served
    port, _ = server
    expected = model.signatures["serving_raw"](**raw_inputs(trips))["probabilities"].numpy()
    columns = _json_raw(raw_inputs(trips))
    instances = [{k: columns[k][i] for k in columns} for i in range(len(trips))]
    examples = [{"b64": base64.b64encode(serialize(row)).decode()} for _, row in trips.iterrows()]
    parsed = model.signatures["serving_default"](
        examples=tf.constant([serialize(row) for _, row in trips.iterrows()])
    )["probabilities"].numpy()
    answers = {
        "raw rows": http(
            port, "/v1/models/big_tipper:predict", {"signature_name": "serving_raw", "instances": instances}
        ),
        "raw columns": http(
            port, "/v1/models/big_tipper:predict", {"signature_name": "serving_raw", "inputs": columns}
        ),
        "examples rows": http(port, "/v1/models/big_tipper:predict", {"instances": examples}),
        "examples columns": http(
            port,
            "/v1/models/big_tipper:predict",
            {"signature_name": "serving_default", "inputs": {"examples": examples}},
        ),
    }
    for name, (status, body) in answers.items():
        assert status == 200, (name, body)
        key = "predictions" if "rows" in name else "outputs"
        assert set(body) == {key}, name
        served_values = np.array(body[key])
        assert served_values.shape == (len(trips), 1), name
        np.testing.assert_allclose(
            served_values, parsed if name.startswith("examples") else expected, atol=1e-6
        )
    np.testing.assert_allclose(expected, parsed, atol=1e-5)
    status, body = http(port, "/v1/models/big_tipper")
    assert status == 200
    [version] = body["model_version_status"]
    assert version["state"] == "AVAILABLE" and version["status"]["error_code"] == "OK"


def _raw_body(trips, edit):
    columns = _json_raw(raw_inputs(trips.head(3)))
    body = {"signature_name": "serving_raw", "inputs": columns}
    edit(body, columns)
    return body


MALFORMED = {
    "missing feature": (lambda b, c: c.pop("fare"), "feature 'fare': missing from the request"),
    "wrong rank": (
        lambda b, c: c.__setitem__("fare", [[v] for v in c["fare"]]),
        "feature 'fare': wrong rank",
    ),
    "scalar": (lambda b, c: c.__setitem__("fare", 5.0), "feature 'fare': wrong rank"),
    "wrong type": (
        lambda b, c: c.__setitem__("trip_start_hour", ["ten"] * 3),
        "feature 'trip_start_hour': wrong dtype: received string",
    ),
    "number for a string": (
        lambda b, c: c.__setitem__("payment_type", [1, 2, 3]),
        "feature 'payment_type': wrong dtype",
    ),
    "empty batch": (lambda b, c: [c.__setitem__(k, []) for k in c], "empty batch"),
    "batch mismatch": (
        lambda b, c: c.__setitem__("fare", c["fare"][:2]),
        "batch size mismatch: received 2 values",
    ),
    "unexpected feature": (lambda b, c: c.__setitem__("tips", [1.0] * 3), "feature 'tips': not an input"),
    "unknown signature": (
        lambda b, c: b.__setitem__("signature_name", "predict"),
        "unknown signature_name 'predict'",
    ),
    "both formats": (lambda b, c: b.__setitem__("instances", []), 'exactly one of "instances"'),
}


@pytest.mark.parametrize("mistake", sorted(MALFORMED))
def test_malformed_requests_get_400_naming_the_problem(served, server, mistake):
    _, trips = served
    port, _ = server
    edit, message = MALFORMED[mistake]
    status, body = http(port, "/v1/models/big_tipper:predict", _raw_body(trips, edit))
    assert status == 400, body
    assert message in body["error"]


def test_malformed_bodies_and_examples_get_400(server):
    import base64

    port, _ = server
    for body, content_type, message in [
        (b"{not json", "application/json", "Unrecognized request format"),
        (b"{not json", "text/plain", "the body is not JSON"),
        (b"[1, 2]", "text/plain", "the body must be a JSON object"),
        ({"instances": [{"b64": "!!"}]}, "application/json", "example 0: invalid base64"),
        (
            {"instances": [{"b64": base64.b64encode(b"garbage").decode()}]},
            "application/json",
            "Could not parse example",
        ),
        ({"instances": ["plain"]}, "application/json", 'must be sent as {"b64"'),
        ({"instances": []}, "application/json", "empty batch"),
    ]:
        status, answer = http(port, "/v1/models/big_tipper:predict", body, content_type)
        assert status == 400, (body, answer)
        assert message in answer["error"], (body, answer)


def _push_copy(base: Path, source: int, version: int) -> None:
    """What the Pusher does: write the folder aside, then rename it into place."""
    staging = base / f".staging-{version}"
    shutil.copytree(base / str(source), staging)
    staging.rename(base / str(version))


def _served_version(port: int) -> int:
    return int(http(port, "/v1/models/big_tipper")[1]["model_version_status"][0]["version"])


def _wait_for_version(port: int, version: int, timeout_s: float = 60) -> None:
    import time

    deadline = time.time() + timeout_s
    while _served_version(port) != version:
        assert time.time() < deadline, f"still serving {_served_version(port)}, expected {version}"
        time.sleep(0.2)


def test_hot_swap_under_load_drops_nothing_and_rollback_follows(served, server):
    import threading
    import time

    _, trips = served
    port, base = server
    first = _served_version(port)
    body = {"signature_name": "serving_raw", "inputs": _json_raw(raw_inputs(trips.head(8)))}
    results, stop = [], threading.Event()

    def client():
        while not stop.is_set():
            try:
                results.append(http(port, "/v1/models/big_tipper:predict", body)[0])
            except Exception as error:  # noqa: BLE001 - a dropped connection is a failure to count
                results.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    _push_copy(base, first, first + 10)
    _wait_for_version(port, first + 10)
    # A broken push: the server logs it and keeps serving first + 10.
    (base / str(first + 20)).mkdir()
    (base / str(first + 20) / "saved_model.pb").write_bytes(b"not a SavedModel")
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert len(results) > 20 and set(results) == {200}, [r for r in results if r != 200][:5]
    assert _served_version(port) == first + 10
    metrics = http(port, "/metrics")[1]
    assert "taxi_serving_model_load_failures_total 1.0" in metrics
    assert (
        f"taxi_serving_model_version {float(first + 10)!r}" in metrics
        or "taxi_serving_model_version 1." in metrics
    )

    # rollback: pin the version before the selected one; serve follows; newer versions kept.
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["rollback", "--serving-dir", str(base), "--to", str(first)]) == EXIT_OK
    assert f"-> {first}" in out.getvalue()
    _wait_for_version(port, first)
    assert (base / str(first + 10)).is_dir() and (base / str(first + 20)).is_dir()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["rollback", "--serving-dir", str(base), "--clear"]) == EXIT_OK
    _wait_for_version(port, first + 10)  # The newest loadable one again (first + 20 is broken).
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert main(["rollback", "--serving-dir", str(base), "--to", "12345"]) == EXIT_USAGE
    assert "version 12345 is not in" in err.getvalue()


def test_metrics_count_requests_errors_and_latency(served, server):
    _, trips = served
    port, _ = server
    body = {"signature_name": "serving_raw", "inputs": _json_raw(raw_inputs(trips.head(2)))}
    assert http(port, "/v1/models/big_tipper:predict", body)[0] == 200
    assert http(port, "/v1/models/big_tipper:predict", {"signature_name": "nope", "instances": []})[0] == 400
    metrics = http(port, "/metrics")[1]
    assert re.search(
        r'taxi_serving_requests_total\{format="columnar",signature="serving_raw"\} [1-9]', metrics
    )
    assert re.search(r'taxi_serving_errors_total\{kind="signature"\} [1-9]', metrics)
    assert re.search(r'taxi_serving_request_latency_seconds_count\{signature="serving_raw"\} [1-9]', metrics)
    assert re.search(r'taxi_serving_http_responses_total\{code="400",route="predict"\} [1-9]', metrics)


# ---------------------------------------------------------------- the HTML report


@pytest.fixture(scope="module")
def html_report(runs, tmp_path_factory) -> tuple[Path, object]:
    """The report of the skewed run: evaluated, refused by the serving gate, after three others."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    skewed = runs["skewed"].report
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", "--root", str(runs["root"]), "--run", skewed.run_id, "--out", str(out)]) == 0
    return out, skewed


def test_report_figures_match_ml_metadata(runs, html_report):
    import html as html_lib

    out, skewed = html_report
    page = html_lib.unescape(out.read_text())
    assert "https://" not in page and "http://" not in page  # self-contained
    assert f"<th>AUC</th><td>{skewed.overall['auc']:.4f}" in page
    previous = runs["unreachable"].report  # the newest earlier evaluated run
    delta = skewed.overall["auc"] - previous.overall["auc"]
    assert f"{delta:+.4f} vs {previous.run_id}" in page
    assert "Serving gate: REFUSED the push" in page
    for check in skewed.gate_checks:
        assert f"<td>{check['name']}</td><td>{check['status']}</td>" in page
    for name in ("cold", "cached", "unreachable", "skewed"):  # the trend table: every run so far
        assert f"<td>{runs[name].report.run_id}</td>" in page
    assert "<td>completed, serving gate refused</td>" in page
    assert f"<td>{runs['cold'].report.pushed_version}</td></tr>" in page
    for feature in features.SLICE_FEATURES:
        assert f'data-chart="slices:{feature}"' in page
    weekday_aucs = [values["auc"] for name, values in skewed.slices if name.startswith("trip_start_day=")]
    assert f"{min(weekday_aucs):.3f} · " in page
    assert "Data statistics: span 8" in page and 'data-chart="hist:fare"' in page
    assert "Anomalies: none" in page and 'data-chart="drift"' in page


def test_report_renders_with_its_charts_in_headless_chromium(html_report, tmp_path):
    import json
    import shutil as sh
    import subprocess

    from PIL import Image

    browser = sh.which("chromium") or sh.which("chromium-browser") or sh.which("google-chrome")
    if browser is None:
        pytest.skip(
            "NO CHROMIUM ON THIS MACHINE: the report was not rendered (apt-get install chromium; CI does)"
        )
    out, _ = html_report
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,6000"]
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, f"--screenshot={screenshot}", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", out.as_uri()], check=True, capture_output=True, timeout=120, text=True
    ).stdout
    layout = json.loads(re.search(r'<pre id="layout">([^<]*)</pre>', dom).group(1))
    charts = {chart["chart"]: chart for chart in layout}
    assert {"trends", "drift", "hist:fare"} <= set(charts)
    assert {f"slices:{feature}" for feature in features.SLICE_FEATURES} <= set(charts)
    for name, chart in charts.items():
        assert chart["width"] > 0 and chart["height"] > 0, name
        assert chart["drawn"] >= 1, name
    assert charts["trends"]["drawn"] == charts["trends"]["marks"] == 8  # AUC and accuracy of 4 runs
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1200, 6000)
    colors = image.getcolors(maxcolors=1 << 20)
    assert len(colors) > 50  # text, tables and charts: not a blank page
    assert any(rgb == (0x4A, 0x7A, 0xB7) for _, rgb in colors)  # the bars' blue


# ---------------------------------------------------------------- bad weeks of data


def _raw_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _csv_edit(edit):
    def write(span: Path, good: Path) -> None:
        frame = pd.read_csv(good, dtype=str, keep_default_na=False)
        edit(frame).to_csv(span / embedded.SPAN_FILE_NAME, index=False)

    return write


def _bytes_edit(edit):
    def write(span: Path, good: Path) -> None:
        (span / embedded.SPAN_FILE_NAME).write_bytes(edit(_raw_lines(good)))

    return write


def _latin1_company(lines: list[bytes]) -> bytes:
    lines = list(lines)
    lines[77] = lines[77].rstrip(b"\n") + b"\n"
    cells = lines[77].decode().rstrip("\n").split(",")
    cells[-1] = "Caf\xe9 Cab"  # company is the last column of the embedded spans
    lines[77] = ",".join(cells).encode("latin-1") + b"\n"
    return b"".join(lines)


def _negative_miles(frame):
    rows = frame.index[: int(len(frame) * 0.4)]
    frame.loc[rows, "trip_miles"] = "-3.5"
    return frame


# span-9 broken one way per case -> the exit status and what the message must name.
BAD_SPANS = {
    "header_only": (_bytes_edit(lambda lines: lines[0]), "span 9: .*data.csv has a header but no rows"),
    "not_utf8": (_bytes_edit(_latin1_company), r"line 78, column 'company': bytes b'\\xe9' are not UTF-8"),
    "cut_mid_row": (
        _bytes_edit(lambda lines: b"".join(lines[:200]) + b",".join(lines[200].split(b",")[:15])),
        r"span 9: .*data.csv, line 201: 15 of 18 columns \(cut short\)",
    ),
    "not_a_number": (
        _csv_edit(lambda f: f.assign(fare=f["fare"].where(f.index % 50 != 7, "N/A"))),
        r"line 9, column 'fare': 'N/A' is not a valid float.*bad values in all",
    ),
    "renamed_column": (
        _csv_edit(lambda f: f.rename(columns={"company": "operator"})),
        r"line 1: the header does not hold the schema's columns: "
        r"missing columns \['company'\], unknown columns \['operator'\]",
    ),
    "header_mid_file": (
        _bytes_edit(lambda lines: b"".join(lines[:300] + [lines[0]] + lines[300:])),
        r"line 301: the header row again",
    ),
    "extra_column": (_csv_edit(lambda f: f.assign(surge="1.5")), r"unknown columns \['surge'\]"),
    "negative_miles": (_csv_edit(_negative_miles), r"trip_miles"),
    "no_csv": (
        lambda span, good: (span / "README").write_text("export failed"),
        r"span folder .*span-9 holds no file",
    ),
    "zero_bytes": (_bytes_edit(lambda lines: b""), r"data.csv is empty \(0 bytes\)"),
    "too_few_rows": (
        _bytes_edit(lambda lines: b"".join(lines[:301])),
        r"span 9 has 300 rows, fewer than the 800",
    ),
}


@pytest.fixture(scope="module")
def bad_data(runs, tmp_path_factory):
    """A fresh root serving a copy of the pushed model, and one data root per bad span-9."""
    root = tmp_path_factory.mktemp("bad-data")
    serving = PipelineConfig(root=root).serving_dir
    shutil.copytree(PipelineConfig(root=runs["root"]).serving_dir, serving)
    roots = {}
    for case, (write, _) in BAD_SPANS.items():
        data = root / f"data-{case}"
        shutil.copytree(runs["root"] / "data", data)
        (data / "span-9").mkdir()
        write(data / "span-9", data / "span-8" / embedded.SPAN_FILE_NAME)
        roots[case] = data
    return root, roots


@pytest.mark.parametrize("case", sorted(BAD_SPANS))
def test_a_bad_span_stops_as_a_data_error_naming_it(bad_data, case):
    root, data_roots = bad_data
    before = serving_versions(root)
    outcome = run_cli(root, "--data-root", str(data_roots[case]))
    assert outcome.status == EXIT_DATA_GATE, outcome.stdout + outcome.stderr
    assert re.search(BAD_SPANS[case][1], outcome.stderr), outcome.stderr
    assert "STOPPED by the " in outcome.stderr and "Traceback" not in outcome.stderr + outcome.stdout
    assert re.search(r"^Stopped by the (data|drift) gate: ", outcome.stdout, re.M), outcome.stdout  # summary
    assert outcome.report.stopped and re.search(BAD_SPANS[case][1], outcome.report.stopped)  # in ML Metadata
    assert serving_versions(root) == before and before
    assert "Pushed:" not in outcome.stdout


def test_a_default_runs_console_holds_only_progress_epochs_and_summary(runs):
    """Every cold-run line is ours: progress, Keras epochs, summary; library output went to the log."""
    cold = runs["cold"]
    ours = re.compile(
        r"^(Pipeline |\[\s*\d+/\d+\] |\d+/\d+ - |Epoch \d+/\d+$|Run |  \S|Drift: |Eval split|"
        r"Weakest slices|Blessed: |Serving gate: |Edge gate: |Pushed: |Edge model: |"
        r"Library logs and warnings: |Wall time |$)"
    )
    stray = [line for line in (cold.stdout + cold.stderr).splitlines() if not ours.match(line)]
    assert not stray, stray[:10]
    log = re.search(r"Library logs and warnings: (\S+)", cold.stdout).group(1)
    assert Path(log).name == f"{cold.report.run_id}.log"
    assert "ArtifactQuery" in Path(log).read_text()  # the noise is there, not on the console


def test_the_cli_console_is_quiet_without_the_makefiles_environment(bad_data, tmp_path):
    """`python -m pipeline` as a new user runs it: no TF/cuDNN lines, no warnings, one error line."""
    import os
    import subprocess
    import sys

    root, data_roots = bad_data
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PYTEST"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "--root",
            str(root),
            "--data-root",
            str(data_roots["cut_mid_row"]),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == EXIT_DATA_GATE, result.stdout + result.stderr
    stderr = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(stderr) == 1 and stderr[0].startswith("STOPPED by the data gate: span 9: "), stderr
    assert not re.search(r"cuDNN|cuBLAS|Warning|WARNING|absl|E0000|I0000", result.stdout)
    assert "Library logs and warnings: " in result.stdout
    # Contradictory arguments are refused before any work, in one line, exit 2.
    for argv, message in (
        (["--window", "12"], "--window 12 is larger than the 9 spans there are"),
        (["--last-span", "30"], "--last-span 30 is not in"),
        (["--strategy", "multi_worker"], "--strategy multi_worker: strategy 'multi_worker' needs TF_CONFIG"),
    ):
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "run",
                "--root",
                str(tmp_path),
                "--data-root",
                str(root / "data-not_utf8"),
                *argv,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert refused.returncode == EXIT_USAGE, refused.stderr
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()], refused.stderr
        assert message in refused.stderr and refused.stdout == "", (refused.stdout, refused.stderr)


# ---------------------------------------------------------------- the edge runtime (issue 18)


def _edge_runtime(model: Path, raw: dict, tmp_path: Path, name: str) -> dict:
    """Answers of `model` in the standalone edge runtime (.venv-edge: ai-edge-litert, no TensorFlow)."""
    import subprocess

    import numpy as np

    repo = Path(__file__).resolve().parents[2]
    edge_python = repo / ".venv-edge" / "bin" / "python"
    assert (
        edge_python.exists()
    ), "no edge venv: `make setup` builds .venv-edge (ai-edge-litert, no TensorFlow)"
    np.savez(tmp_path / f"{name}-inputs.npz", **raw)
    result = subprocess.run(
        [str(edge_python), str(repo / "tests" / "edge_runner.py"), str(model)]
        + [str(tmp_path / f"{name}-inputs.npz"), str(tmp_path / f"{name}-out.npz")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(np.load(tmp_path / f"{name}-out.npz"))


def test_the_pushed_edge_model_runs_in_the_edge_runtime_and_meets_the_int8_bars(runs, tmp_path):
    """The int8 model the Pusher wrote beside the cold run's version, judged on the eval split."""
    import json

    import numpy as np
    import tensorflow as tf

    from models.edge import INT8_OPS, builtin_ops, convert
    from serving.gate_checks import accuracy, auc
    from serving.replay_data import examples_to_raw, labels_of, load_replay_examples
    from serving.request_checks import serving_raw_specs

    cold = runs["cold"].report
    assert cold.edge_blessed is True and cold.edge_pushed is True, (cold.edge_summary, cold.edge_reason)
    folder = PipelineConfig(root=runs["root"]).serving_dir / "edge" / cold.pushed_version
    assert Path(cold.edge_path) == folder
    model = folder / "model.tflite"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == int(cold.pushed_version) and metadata["saved_model"] == cold.pushed_path
    assert metadata["bytes"] == model.stat().st_size == cold.edge_bytes
    assert metadata["variant"] == "int8"
    assert metadata["representative"] == {"split": "train", "trips": 100, "seed": 0}
    assert [i["name"] for i in metadata["inputs"]] == sorted(serving_raw_specs())
    assert f"Edge model: int8, {cold.edge_bytes:,} bytes -> {folder}" in runs["cold"].stdout

    flatbuffer = model.read_bytes()
    assert "CUSTOM" not in builtin_ops(flatbuffer) and INT8_OPS | {"QUANTIZE"} <= builtin_ops(flatbuffer)
    float32 = convert(cold.pushed_path, "float32")  # raises if any op needs Flex
    assert len(flatbuffer) <= 0.35 * len(float32), (len(flatbuffer), len(float32))

    # The eval split the gate replayed, through the edge runtime and through the SavedModel.
    examples_uri = next(
        a.uri for n in cold.nodes if n.node_id == "SpanWindowCsvExampleGen" for a in n.outputs["examples"]
    )
    examples = load_replay_examples(examples_uri, split="eval")
    raw = examples_to_raw(examples, serving_raw_specs())
    signature = tf.saved_model.load(cold.pushed_path).signatures["serving_raw"]
    expected = signature(**{k: tf.constant(v) for k, v in raw.items()})["probabilities"].numpy().ravel()
    answers = _edge_runtime(model, raw, tmp_path, "int8")
    edge = answers["batch"].ravel()
    # Missing markers included (the eval split has blank cells), batched and one at a time alike.
    assert any((v == -1).any() or (v.dtype.kind == "f" and np.isnan(v).any()) for v in raw.values())
    np.testing.assert_allclose(answers["single"].ravel(), edge, atol=1e-6)
    labels = labels_of(examples)
    assert abs(accuracy(labels, edge) - accuracy(labels, expected)) <= 0.01
    assert abs(auc(labels, edge) - auc(labels, expected)) <= 0.005
    # The gate measured (in TensorFlow's TFLite interpreter) what the edge runtime answers, up to
    # kernel rounding between the two builds (measured: AUC 1e-5 apart).
    gate = metadata["gate"]
    assert gate["examples"] == len(examples)
    assert gate["edge"]["auc"] == pytest.approx(auc(labels, edge), abs=1e-3)
    assert gate["max_abs_difference"] == pytest.approx(np.abs(edge - expected).max(), abs=0.02)

    # float32: the very graph of the SavedModel, answering the same in the edge runtime.
    (tmp_path / "float32.tflite").write_bytes(float32)
    same = _edge_runtime(tmp_path / "float32.tflite", {k: v[:300] for k, v in raw.items()}, tmp_path, "f32")
    np.testing.assert_allclose(same["batch"].ravel(), expected[:300], atol=1e-5)


def test_verify_runs_the_edge_gate_on_the_pushed_tflite(runs):
    cold = runs["cold"].report
    model = Path(cold.edge_path) / "model.tflite"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(["verify", "--model", str(model), "--data", str(runs["root"] / "data" / "span-8")])
    assert status == EXIT_OK, out.getvalue()
    text = out.getvalue()
    assert "[PASS   ] agreement" in text and f"Compared with the SavedModel at {cold.pushed_path}" in text


def test_a_batch_dependent_model_is_refused_at_the_edge_too(runs):
    blend = runs["batch_blend"].report
    states = {n.node_id: n.state for n in blend.nodes}
    assert states["EdgeExport"] == "ran"
    assert blend.edge_blessed is False
    failed = [c["name"] for c in blend.edge_checks if c["status"] == "fail"]
    assert "batch_invariance" in failed, blend.edge_checks
    assert "Edge gate: REFUSED the int8 edge model" in runs["batch_blend"].stdout
    assert edge_versions(runs["root"]) == [runs["cold"].report.pushed_version]


def test_an_edge_refusal_leaves_the_saved_model_push_alone_and_the_summary_says_so(runs):
    refused = runs["edge_refused"]
    assert refused.status == EXIT_OK, refused.stdout + refused.stderr
    states = {n.node_id: n.state for n in refused.report.nodes}
    # The cold run's model (Trainer cached); the Evaluator re-ran against the newer baseline.
    assert states["Trainer"] == "cached" and states["Transform"] == "cached", states
    assert states["EdgeExport"] == "ran" and states["AtomicPusher"] == "ran", states
    report = refused.report
    assert report.pushed_new_version and report.pushed_version not in runs["batch_blend"].versions
    assert refused.versions == sorted(runs["batch_blend"].versions + [report.pushed_version])
    assert report.edge_blessed is False and report.edge_pushed is False
    assert report.edge_reason.startswith("the edge gate refused it: refused: agreement:")
    assert edge_versions(runs["root"]) == [runs["cold"].report.pushed_version]
    assert f"Pushed: version {report.pushed_version}" in refused.stdout
    assert "Edge model: not pushed (the edge gate refused it" in refused.stdout
    assert "the SavedModel push above is unaffected" in refused.stdout
