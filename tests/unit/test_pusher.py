"""AtomicPusher: growing integer versions, atomic placement, and no push without a blessing."""

import os

import pytest
from tfx.types import standard_artifacts

from components.pusher.executor import Executor, atomic_copy_tree, existing_versions, next_version

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
