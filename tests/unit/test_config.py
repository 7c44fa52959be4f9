"""PipelineConfig: every path under the root, and a clear error for each bad value."""

from pathlib import Path

import pytest

from pipeline.config import ConfigError, PipelineConfig


def test_everything_lives_under_the_root(tmp_path):
    config = PipelineConfig(root=tmp_path / "r")
    root = (tmp_path / "r").absolute()
    for path in (config.span_data_root, config.pipeline_root, config.metadata_path, config.serving_dir):
        assert root in path.parents
    assert config.serving_dir == root / "serving" / "big_tipper"
    assert config.uses_embedded_data


def test_relative_roots_become_absolute():
    assert PipelineConfig(root="some/dir").root == Path("some/dir").absolute()


def test_explicit_data_root_is_used(tmp_path):
    config = PipelineConfig(root=tmp_path, data_root=tmp_path / "feed")
    assert config.span_data_root == tmp_path / "feed"
    assert not config.uses_embedded_data


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("train_steps", 0, "train_steps must be a positive integer, got 0"),
        ("epochs", -1, "epochs must be a positive integer"),
        ("batch_size", 1.5, "batch_size must be a positive integer"),
        ("auc_threshold", 1.2, "auc_threshold must be within [0, 1], got 1.2"),
        ("regression_tolerance", -0.1, "regression_tolerance must be within [0, 1]"),
        ("gate_tolerance", 2.0, "gate_tolerance must be within [0, 1], got 2.0"),
        ("first_span", -3, "first_span must be a non-negative integer"),
        ("model_name", "my model", "model_name must be letters"),
        ("beam_args", ("direct_num_workers=2",), "beam args must look like --option=value"),
    ],
)
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ConfigError) as error:
        PipelineConfig(**{field: value})
    assert message in str(error.value)


def test_span_window_must_be_ordered():
    with pytest.raises(ConfigError, match=r"first_span \(5\) is after last_span \(2\)"):
        PipelineConfig(first_span=5, last_span=2)


def test_epochs_cannot_exceed_steps():
    with pytest.raises(ConfigError, match="epochs"):
        PipelineConfig(train_steps=3, epochs=4)


def test_config_is_frozen():
    config = PipelineConfig()
    with pytest.raises(AttributeError):
        config.train_steps = 5


def test_strategy_names_match_the_distribution_module():
    from models import distribution
    from pipeline import config

    assert config.STRATEGIES == distribution.STRATEGIES
    with pytest.raises(ConfigError, match="strategy must be one of"):
        PipelineConfig(strategy="parameter_server")
