"""AtomicPusher: growing integer versions, atomic placement, and no push without a blessing."""

import hashlib
import json
import os

import pytest
from tfx.types import standard_artifacts

from components.pusher import executor as pusher
from components.pusher.executor import Executor, atomic_copy_tree, existing_versions, next_version
from components.shared import EdgeModel, WebModel, read_push_records

PUSH_DESTINATION = '{"filesystem": {"base_directory": "%s"}}'


def test_version_is_the_time_unless_an_existing_version_is_newer(tmp_path):
    assert next_version(str(tmp_path / "none"), now=1000.7) == 1000
    (tmp_path / "2000").mkdir()
    (tmp_path / ".staging-5-1").mkdir()
    assert existing_versions(str(tmp_path)) == [2000]
    assert next_version(str(tmp_path), now=1000) == 2001  # clock behind: still grows


def test_copy_appears_complete_and_never_overwrites(tmp_path):
    source = tmp_path / "model"
    (source / "variables").mkdir(parents=True)
    (source / "saved_model.pb").write_bytes(b"graph")
    target = atomic_copy_tree(str(source), str(tmp_path / "serving"), 7)
    assert (tmp_path / "serving" / "7" / "saved_model.pb").read_bytes() == b"graph"
    assert os.listdir(tmp_path / "serving") == ["7"]  # no staging folder left behind
    with pytest.raises(OSError):
        atomic_copy_tree(str(source), str(tmp_path / "serving"), 7)
    assert os.listdir(tmp_path / "serving") == ["7"]
    assert target.endswith("/7")


def artifacts(tmp_path, blessed: bool):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    serving = tmp_path / "model" / "Format-Serving"
    serving.mkdir(parents=True)
    (serving / "saved_model.pb").write_bytes(b"graph")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    return model, blessing, pushed


def run_executor(tmp_path, blessed: bool):
    model, blessing, pushed = artifacts(tmp_path, blessed)
    base = tmp_path / "serving" / "big_tipper"
    Executor().Do(
        {"model": [model], "model_blessing": [blessing]},
        {"pushed_model": [pushed]},
        {"push_destination": PUSH_DESTINATION % base},
    )
    return pushed, base


def test_blessed_model_is_pushed_to_a_new_version(tmp_path):
    pushed, base = run_executor(tmp_path, blessed=True)
    assert pushed.get_int_custom_property("pushed") == 1
    version = pushed.get_string_custom_property("pushed_version")
    assert (base / version / "saved_model.pb").read_bytes() == b"graph"
    assert pushed.get_string_custom_property("pushed_destination") == str(base / version)


def test_unblessed_model_is_not_pushed(tmp_path):
    pushed, base = run_executor(tmp_path, blessed=False)
    assert pushed.get_int_custom_property("pushed") == 0
    assert not base.exists()


# ---------------------------------------------------------------- the edge model beside the version


def edge_model(tmp_path, blessed: bool, flatbuffer: bytes = b"TFL3-bytes", recorded_bytes=None):
    artifact = EdgeModel()
    artifact.uri = str(tmp_path / "edge_model")
    os.makedirs(artifact.uri)
    (tmp_path / "edge_model" / "model.tflite").write_bytes(flatbuffer)
    metadata = {"bytes": len(flatbuffer) if recorded_bytes is None else recorded_bytes, "variant": "int8"}
    (tmp_path / "edge_model" / "metadata.json").write_text(json.dumps(metadata))
    artifact.set_int_custom_property("blessed", int(blessed))
    artifact.set_string_custom_property("edge_verdict", "refused: agreement: auc 0.93 vs 0.94")
    return artifact


def run_with_edge(tmp_path, blessed: bool, edge):
    model, blessing, pushed = artifacts(tmp_path, blessed)
    base = tmp_path / "serving" / "big_tipper"
    Executor().Do(
        {"model": [model], "model_blessing": [blessing], "edge_model": [edge]},
        {"pushed_model": [pushed]},
        {"push_destination": PUSH_DESTINATION % base},
    )
    return pushed, base


def test_a_blessed_edge_model_lands_beside_the_version_with_its_metadata(tmp_path):
    pushed, base = run_with_edge(tmp_path, True, edge_model(tmp_path, blessed=True))
    version = pushed.get_string_custom_property("pushed_version")
    edge = base / "edge" / version
    assert (edge / "model.tflite").read_bytes() == b"TFL3-bytes"
    metadata = json.loads((edge / "metadata.json").read_text())
    assert metadata == {
        "bytes": 10,
        "variant": "int8",
        "version": int(version),
        "saved_model": str(base / version),
    }
    assert pushed.get_int_custom_property("edge_pushed") == 1
    assert pushed.get_string_custom_property("edge_destination") == str(edge)
    # TF Serving's versions are the integer folders only; no staging folder is left behind.
    assert existing_versions(str(base)) == [int(version)]
    assert sorted(os.listdir(base / "edge")) == [version]


def test_a_refused_edge_model_is_not_pushed_and_the_saved_model_still_is(tmp_path):
    pushed, base = run_with_edge(tmp_path, True, edge_model(tmp_path, blessed=False))
    version = pushed.get_string_custom_property("pushed_version")
    assert (base / version / "saved_model.pb").exists()
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_int_custom_property("edge_pushed") == 0
    assert not (base / "edge").exists()
    reason = pushed.get_string_custom_property("edge_reason")
    assert reason == "the edge gate refused it: refused: agreement: auc 0.93 vs 0.94"


def test_an_edge_model_whose_bytes_disagree_with_its_metadata_is_not_pushed(tmp_path):
    pushed, base = run_with_edge(tmp_path, True, edge_model(tmp_path, blessed=True, recorded_bytes=99))
    assert pushed.get_int_custom_property("pushed") == 1
    assert pushed.get_int_custom_property("edge_pushed") == 0
    assert "holds 10 bytes, its metadata says 99" in pushed.get_string_custom_property("edge_reason")
    assert not (base / "edge").exists()  # checked before anything is written


def test_no_edge_push_without_a_saved_model_push(tmp_path):
    pushed, base = run_with_edge(tmp_path, False, edge_model(tmp_path, blessed=True))
    assert pushed.get_int_custom_property("pushed") == 0
    assert not base.exists()


def test_each_version_records_its_model_and_whether_an_edge_model_came_with_it(tmp_path):
    pushed, base = run_with_edge(tmp_path, True, edge_model(tmp_path, blessed=False))
    version = int(pushed.get_string_custom_property("pushed_version"))
    (base / "1000").mkdir()  # pushed by another pusher: no record
    [record] = read_push_records(str(base))
    assert record["pushed_at"] > 0
    assert (record["version"], record["model_uri"]) == (version, str(tmp_path / "model"))
    assert record["edge"] is None
    assert (base / str(version) / "assets.extra" / "push_record.json").is_file()
    assert read_push_records(str(tmp_path / "nothing pushed yet")) == []


def test_an_edge_version_whose_saved_model_cannot_be_placed_is_removed(tmp_path, monkeypatch):
    base = tmp_path / "serving" / "big_tipper"
    (base / "5000").mkdir(parents=True)  # taken between choosing the version and the rename
    monkeypatch.setattr(pusher, "next_version", lambda _: 5000)
    with pytest.raises(FileExistsError):
        run_with_edge(tmp_path, True, edge_model(tmp_path, blessed=True))
    assert sorted(os.listdir(base)) == ["5000", "edge"]  # no staging folder left behind
    assert os.listdir(base / "edge") == []


# ---------------------------------------------------------------- the web model beside the version


def web_model(tmp_path, blessed: bool, tamper: bool = False):
    artifact = WebModel()
    artifact.uri = str(tmp_path / "web_model")
    folder = tmp_path / "web_model"
    folder.mkdir()
    files = {"model.json": b'{"modelTopology": {}}', "group1-shard1of1.bin": b"\x00\x01weights"}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    (folder / "encode.js").write_text("export function encodeColumns() {}\n")
    listed = {n: {"bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in files.items()}
    (folder / "metadata.json").write_text(json.dumps({"files": listed, "bytes": 31, "blessed": blessed}))
    if tamper:  # the shard changed after the gate passed it
        (folder / "group1-shard1of1.bin").write_bytes(b"\x00\x02weights")
    artifact.set_int_custom_property("blessed", int(blessed))
    artifact.set_string_custom_property("web_verdict", "refused: agreement: webgl: trip 3 answers 0.9")
    return artifact


def run_with_web(tmp_path, web):
    model, blessing, pushed = artifacts(tmp_path, True)
    base = tmp_path / "serving" / "big_tipper"
    Executor().Do(
        {"model": [model], "model_blessing": [blessing], "web_model": [web]},
        {"pushed_model": [pushed]},
        {"push_destination": PUSH_DESTINATION % base},
    )
    return pushed, base


def test_a_blessed_web_model_lands_beside_the_version_with_its_files_and_metadata(tmp_path):
    pushed, base = run_with_web(tmp_path, web_model(tmp_path, blessed=True))
    version = pushed.get_string_custom_property("pushed_version")
    web = base / "web" / version
    assert sorted(os.listdir(web)) == ["encode.js", "group1-shard1of1.bin", "metadata.json", "model.json"]
    assert (web / "group1-shard1of1.bin").read_bytes() == b"\x00\x01weights"
    metadata = json.loads((web / "metadata.json").read_text())
    assert metadata["version"] == int(version) and metadata["saved_model"] == str(base / version)
    assert pushed.get_int_custom_property("web_pushed") == 1
    assert pushed.get_string_custom_property("web_destination") == str(web)
    [record] = read_push_records(str(base))
    assert record["web"] == str(web) and record["edge"] is None
    assert existing_versions(str(base)) == [int(version)] and os.listdir(base / "web") == [version]


def test_a_refused_web_model_is_not_pushed_and_the_saved_model_still_is(tmp_path):
    pushed, base = run_with_web(tmp_path, web_model(tmp_path, blessed=False))
    assert pushed.get_int_custom_property("pushed") == 1 and pushed.get_int_custom_property("web_pushed") == 0
    assert pushed.get_string_custom_property("web_reason").startswith(
        "the web gate refused it: refused: agreement"
    )
    assert not (base / "web").exists()


def test_a_web_file_changed_after_the_gate_is_not_pushed(tmp_path):
    pushed, base = run_with_web(tmp_path, web_model(tmp_path, blessed=True, tamper=True))
    assert pushed.get_int_custom_property("pushed") == 1 and pushed.get_int_custom_property("web_pushed") == 0
    assert "group1-shard1of1.bin is not the file the web gate passed" in pushed.get_string_custom_property(
        "web_reason"
    )
    assert os.listdir(base / "web") == []  # the staging folder is gone
