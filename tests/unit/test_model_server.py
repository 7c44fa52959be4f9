"""The model server's versions, pins and request handling, on small real SavedModels.

The models come from `tests/model_zoo.py` (tf.Modules with the project's two signatures, the
correct one through the real Transform-free parsing); the HTTP layer is tested end to end
with the pipeline-trained model in tests/e2e/test_server_e2e.py.
"""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pytest
import tensorflow as tf
from model_zoo import BATCH_FAULTS, save_zoo_model

from serving import probe, versions
from serving import server as model_server
from serving.server import VersionWatcher, predict
from serving.tf_serving_rest import BadRequest, raw_features


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    return {
        "good": save_zoo_model(str(root / "good")),
        "nan": save_zoo_model(str(root / "nan"), "nan"),
        "flat": save_zoo_model(str(root / "flat"), "flat_output"),
        **{fault: save_zoo_model(str(root / fault), fault) for fault in BATCH_FAULTS},
    }


def push(base, source, version):
    shutil.copytree(source, base / str(version))


def test_watcher_serves_the_newest_loadable_version_and_follows_pins(zoo, tmp_path):
    base = tmp_path / "big_tipper"
    push(base, zoo["good"], 1)
    watcher = VersionWatcher(base)
    assert watcher.refresh() and watcher.current.version == 1
    push(base, zoo["good"], 2)
    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
    push(base, zoo["nan"], 4)  # loads, but its smoke test answers NaN
    assert watcher.refresh() and watcher.current.version == 2  # 4 and 3 fail, 2 is next best
    assert not watcher.refresh()  # failures are remembered, not retried every poll
    assert versions.pin_version(base, 1, "test") == (4, 1)
    assert watcher.refresh() and watcher.current.version == 1
    assert (base / "4").is_dir() and (base / "2").is_dir()  # nothing deleted
    versions.pin_version(base, None)
    assert watcher.refresh() and watcher.current.version == 2
    with pytest.raises(versions.VersionError, match=r"version 9 is not in .*pushed versions: \[1, 2, 3, 4\]"):
        versions.pin_version(base, 9)


@pytest.mark.parametrize("fault", BATCH_FAULTS)
def test_a_version_whose_answer_depends_on_its_batch_is_not_swapped_in(zoo, tmp_path, fault, caplog):
    base = tmp_path / "big_tipper"
    push(base, zoo["good"], 1)
    watcher = VersionWatcher(base)
    assert watcher.refresh() and watcher.current.version == 1
    failures = model_server.LOAD_FAILURES._value.get()
    push(base, zoo[fault], 2)  # shape, finiteness and the one-example smoke test all pass
    with caplog.at_level("ERROR", logger="taxi.model_server"):
        assert not watcher.refresh()
    assert watcher.current.version == 1
    assert model_server.LOAD_FAILURES._value.get() == failures + 1
    assert "version 2 failed to load (batch probe: serving_" in caplog.text
    assert "depends on the rest of its batch" in caplog.text


def test_the_batch_probe_rows_come_from_the_schema(zoo):
    specs = model_server.raw_input_specs(tf.saved_model.load(zoo["good"]).signatures["serving_raw"])
    rows = probe.probe_rows(specs)
    assert set(rows) == set(specs) and all(len(v) == probe.PROBE_ROWS for v in rows.values())
    assert {b"Cash", b"Credit Card"} <= set(rows["payment_type"])  # the domain's values, cycled
    assert len(set(rows["payment_type"])) > 2 and len(set(rows["fare"])) == probe.PROBE_ROWS
    assert 0 < rows["fare"].min() and rows["fare"].max() <= 300  # realistic fares, not 0..1000's ends
    assert set(rows["trip_start_hour"]) <= set(range(24))
    assert (rows["pickup_census_tract"] == -1).all()  # no domain: missing
    assert probe.batch_probe(*_signatures(zoo["good"])[:2], specs, 1e-5) <= 1e-5


def _loaded(zoo, tmp_path, name="good"):
    base = tmp_path / name
    push(base, zoo[name], 7)
    return model_server.LoadedVersion(7, *_signatures(base / "7"))


def _signatures(path):
    model = tf.saved_model.load(str(path))
    raw = model.signatures["serving_raw"]
    return model.signatures["serving_default"], raw, model_server.raw_input_specs(raw), model


def _instances(loaded, count=3):
    row = {}
    for name, spec in loaded.raw_specs.items():
        row[name] = "Cash" if spec.dtype == tf.string else (1 if spec.dtype.is_integer else 2.5)
    return [dict(row) for _ in range(count)]


def test_row_and_columnar_formats_answer_like_the_signature(zoo, tmp_path):
    loaded = _loaded(zoo, tmp_path)
    rows = _instances(loaded)
    rows[1]["fare"] = None  # missing
    answer = predict(loaded, {"signature_name": "serving_raw", "instances": rows})
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    assert predict(loaded, {"signature_name": "serving_raw", "inputs": columns}) == {
        "outputs": answer["predictions"]
    }
    tensors = model_server.check_raw_request(
        loaded.raw_specs, raw_features("columnar", columns, loaded.raw_specs)[0]
    )
    expected = loaded.raw_fn(**tensors)["probabilities"].numpy()
    np.testing.assert_allclose(np.array(answer["predictions"]), expected)
    assert np.array(answer["predictions"]).shape == (3, 1)


def test_examples_signature_takes_base64(zoo, tmp_path):
    loaded = _loaded(zoo, tmp_path)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"fare": tf.train.Feature(float_list=tf.train.FloatList(value=[9.0]))}
        )
    ).SerializeToString()
    b64 = {"b64": base64.b64encode(example).decode()}
    rows = predict(loaded, {"instances": [b64, {"examples": b64}]})
    assert np.array(rows["predictions"]).shape == (2, 1)
    assert predict(loaded, {"inputs": {"examples": [b64]}}) == {"outputs": rows["predictions"][:1]}


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{", "the body is not JSON"),
        ([1], "the body must be a JSON object"),
        ({"instances": [], "inputs": {}}, 'exactly one of "instances"'),
        ({"instances": [], "extra": 1}, "unknown request field(s) ['extra']"),
        ({"signature_name": "serve", "instances": [{}]}, "unknown signature_name 'serve'"),
        ({"instances": ["abc"]}, 'must be sent as {"b64"'),
        ({"signature_name": "serving_raw", "instances": [{"fare": 1.0}]}, "instance 0: feature"),
        ({"signature_name": "serving_raw", "instances": [3]}, "instance 0 must be an object"),
        ({"signature_name": "serving_raw", "inputs": [1, 2]}, '"inputs" must be an object'),
    ],
)
def test_malformed_requests_are_named(zoo, tmp_path, body, message):
    loaded = _loaded(zoo, tmp_path)
    with pytest.raises(BadRequest) as error:
        predict(loaded, body)
    assert message in str(error.value)


def test_a_model_answering_the_wrong_shape_is_an_error_not_an_answer(zoo, tmp_path):
    loaded = _loaded(zoo, tmp_path, "flat")  # answers (N,) instead of (N, 1)
    with pytest.raises(RuntimeError, match=r"answered shape \(3,\) for 3 examples; expected \(3, 1\)"):
        predict(loaded, {"signature_name": "serving_raw", "instances": _instances(loaded)})


def test_run_summary_says_when_a_rollback_pin_keeps_the_new_push_from_serving(tmp_path):
    from pipeline.ops.run_history import NodeRun, RunReport, format_report

    base = tmp_path / "big_tipper"
    for version in (5, 6):
        (base / str(version)).mkdir(parents=True)
        (base / str(version) / "saved_model.pb").write_bytes(b"")
    pusher = NodeRun("AtomicPusher", "ran", 1.0, outputs={"pushed_model": []})
    report = RunReport("run", [pusher], {}, [], True, [], "6", str(base / "6"), None)
    assert "rollback pins" not in format_report(report)
    versions.pin_version(base, 5, "test")
    assert "Note: a rollback pins version 5: `serve` keeps serving it" in format_report(report)
