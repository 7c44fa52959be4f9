"""Baseline choice: the newest blessed model that is not the candidate."""

from tfx.types import standard_artifacts

from components.resolver.strategy import latest_blessed_other_model


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
