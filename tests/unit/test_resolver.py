"""Baseline choice: the newest blessed model that is not the candidate.

Locally from ML Metadata (the resolver strategy); on Kubeflow from the Pusher's records in the
serving dir (the container resolver).
"""

import json
from pathlib import Path

from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.resolver import spec
from components.resolver.executor import Executor, pick_baseline
from components.resolver.strategy import latest_blessed_other_model
from components.shared import model_found


def model(artifact_id: int):
    artifact = standard_artifacts.Model()
    artifact.id = artifact_id
    return artifact


def blessing(model_id: int, blessed: bool):
    artifact = standard_artifacts.ModelBlessing()
    artifact.set_int_custom_property("current_model_id", model_id)
    artifact.set_int_custom_property("blessed", int(blessed))
    return artifact


def test_newest_blessed_model_other_than_the_candidate():
    models = [model(1), model(2), model(3), model(4)]
    blessings = [blessing(1, True), blessing(2, True), blessing(3, False), blessing(4, True)]
    chosen, chosen_blessing = latest_blessed_other_model(models, blessings, [models[3]])
    assert chosen.id == 2  # 4 is the candidate itself, 3 was not blessed
    assert chosen_blessing.get_int_custom_property("current_model_id") == 2


def test_no_baseline_on_the_first_run():
    assert latest_blessed_other_model([model(1)], [], [model(1)]) is None
    assert latest_blessed_other_model([model(1)], [blessing(1, True)], [model(1)]) is None


# The container resolver (Kubeflow): the newest pushed model other than the candidate.


def _push(serving: Path, version: int, model_uri: str) -> None:
    folder = serving / str(version)
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(f"model {version}".encode())
    (folder / "variables" / "variables.index").write_bytes(b"index")
    record = {"version": version, "model_uri": model_uri, "pushed_at": 1.0, "edge": None}
    (folder / "assets.extra").mkdir()
    (folder / "assets.extra" / "push_record.json").write_text(json.dumps(record))


def _resolve(serving: Path, output: Path, candidate_uri: str | None):
    out = standard_artifacts.Model()
    out.uri = str(output)
    inputs = {}
    if candidate_uri is not None:
        candidate = standard_artifacts.Model()
        candidate.uri = candidate_uri
        inputs[spec.CANDIDATE_KEY] = [candidate]
    Executor().Do(inputs, {spec.MODEL_KEY: [out]}, {spec.SERVING_DIR_KEY: str(serving)})
    return out


def test_pick_baseline_skips_the_candidates_own_push():
    records = [{"version": 1, "model_uri": "r/a"}, {"version": 2, "model_uri": "r/b/"}]
    assert pick_baseline(records, "r/b")["version"] == 1
    assert pick_baseline(records, "r/c")["version"] == 2
    assert pick_baseline(records, None)["version"] == 2  # warm start: no candidate
    assert pick_baseline(records[:1], "r/a") is None


def test_container_resolver_copies_the_newest_other_push_as_a_model(tmp_path):
    serving = tmp_path / "serving"
    _push(serving, 100, "root/Trainer/1/model")
    _push(serving, 200, "root/Trainer/2/model")
    (serving / "edge").mkdir()  # Not a version.
    out = _resolve(serving, tmp_path / "out", "root/Trainer/2/model")
    assert model_found(out) and out.get_int_custom_property(spec.PUSHED_VERSION_PROPERTY) == 100
    assert out.get_string_custom_property(spec.SOURCE_MODEL_URI_PROPERTY) == "root/Trainer/1/model"
    # Laid out as a Trainer's Model: what the Evaluator and the Trainer's warm start read.
    copied = Path(path_utils.serving_model_path(out.uri))
    assert (copied / "saved_model.pb").read_bytes() == b"model 100"
    assert (copied / "variables" / "variables.index").read_bytes() == b"index"


def test_container_resolver_finds_nothing_before_the_first_push(tmp_path):
    out = _resolve(tmp_path / "no-serving-yet", tmp_path / "out", "root/Trainer/1/model")
    assert not model_found(out)
    assert "no pushed version" in out.get_string_custom_property(spec.REASON_PROPERTY)
    assert list((tmp_path / "out").iterdir()) == []
    # The only push is the candidate's own (a cached Trainer): no baseline either.
    _push(tmp_path / "serving", 5, "root/Trainer/1/model")
    assert not model_found(_resolve(tmp_path / "serving", tmp_path / "out2", "root/Trainer/1/model"))


def test_the_evaluator_runs_without_a_baseline_the_resolver_did_not_find(monkeypatch):
    from tfx.components.evaluator import executor as evaluator_executor

    from components.file_batch_reads.executor import EvaluatorExecutor

    seen = {}
    monkeypatch.setattr(evaluator_executor.Executor, "Do", lambda self, i, o, e: seen.update(i))
    empty = standard_artifacts.Model()
    empty.set_int_custom_property(spec.FOUND_PROPERTY, 0)
    EvaluatorExecutor().Do({"model": [model(1)], "baseline_model": [empty]}, {}, {})
    assert "baseline_model" not in seen
    present = standard_artifacts.Model()
    present.set_int_custom_property(spec.FOUND_PROPERTY, 1)
    EvaluatorExecutor().Do({"model": [model(1)], "baseline_model": [present]}, {}, {})
    assert seen["baseline_model"] == [present]
