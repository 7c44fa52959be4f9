"""Strategy choice from TF_CONFIG and devices; who is the chief; where a non-chief exports."""

from __future__ import annotations

import json
import os

import pytest

from models import distribution as d

TWO_WORKERS = {"cluster": {"worker": ["localhost:1", "localhost:2"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize(
    ("requested", "config", "gpus", "kind"),
    [
        ("auto", {}, 0, d.ONE_DEVICE),
        ("auto", {}, 1, d.ONE_DEVICE),
        ("auto", {}, 4, d.MIRRORED),
        ("auto", TWO_WORKERS, 0, d.MULTI_WORKER),
        ("auto", TWO_WORKERS, 4, d.MULTI_WORKER),  # processes decide before devices
        ("mirrored", {}, 0, d.MIRRORED),  # e.g. logical CPU devices
        ("multi_worker", TWO_WORKERS, 0, d.MULTI_WORKER),
        ("one_device", {"cluster": {"worker": ["a:1"]}}, 2, d.ONE_DEVICE),
    ],
)
def test_strategy_kind(requested, config, gpus, kind):
    assert d.strategy_kind(requested, config, gpus) == kind


@pytest.mark.parametrize(
    ("requested", "config", "message"),
    [
        ("multi_worker", {}, "needs TF_CONFIG naming at least 2 workers; it names 0"),
        ("mirrored", TWO_WORKERS, "would train each process's model on its own"),
        ("ps", {}, "strategy must be one of"),
    ],
)
def test_mismatched_strategy_is_refused_with_the_reason(requested, config, message):
    with pytest.raises(d.StrategyError, match=message):
        d.strategy_kind(requested, config, 0)


def test_tf_config_parsing_and_chief():
    assert d.tf_config({}) == {}
    assert d.tf_config({"TF_CONFIG": json.dumps(TWO_WORKERS)}) == TWO_WORKERS
    with pytest.raises(d.StrategyError, match="TF_CONFIG is not valid JSON"):
        d.tf_config({"TF_CONFIG": "{worker"})
    assert d.is_chief({})
    assert not d.is_chief(TWO_WORKERS)
    assert d.is_chief({**TWO_WORKERS, "task": {"type": "worker", "index": 0}})
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w:1"]}, "task": {"type": "worker", "index": 0}}
    assert not d.is_chief(with_chief)
    assert d.is_chief({**with_chief, "task": {"type": "chief", "index": 0}})


def test_only_the_chief_exports_to_the_real_path(tmp_path):
    real = str(tmp_path / "serving")
    assert d.export_path(real, {}) == real
    other = d.export_path(real, TWO_WORKERS)
    assert other != real and os.path.isdir(other) and "worker-1-export-" in other
    os.rmdir(other)
