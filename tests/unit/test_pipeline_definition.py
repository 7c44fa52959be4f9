"""create_pipeline(): the DAG's shape, the gates' wiring and the evaluation config."""

import pytest
import tensorflow_model_analysis as tfma
from pipeline_nodes import PIPELINE_NODE_IDS

from pipeline import local_runner
from pipeline.code_version import code_fingerprint
from pipeline.config import PipelineConfig
from pipeline.eval_config import make_eval_config
from pipeline.pipeline import CODE_VERSION_KEY

EXPECTED_ORDER = list(PIPELINE_NODE_IDS)


def test_dag_order_and_gate_wiring(tmp_path):
    pipeline = local_runner.build(PipelineConfig(root=tmp_path))
    ids = [c.id for c in pipeline.components]  # topologically sorted by TFX
    assert sorted(ids) == sorted(EXPECTED_ORDER)
    assert ids.index("AnomalyGate") < ids.index("Transform")
    by_id = {c.id: c for c in pipeline.components}
    assert by_id["AnomalyGate"] in by_id["Transform"].upstream_nodes
    assert by_id["Evaluator"] in by_id["AtomicPusher"].upstream_nodes
    # The Pusher needs both blessings: the Evaluator's and the serving gate's.
    pusher_inputs = by_id["AtomicPusher"].inputs
    assert pusher_inputs["model_blessing"].producer_component_id == "Evaluator"
    assert pusher_inputs["infra_blessing"].producer_component_id == "ServingGate"
    gate_inputs = by_id["ServingGate"].inputs
    assert gate_inputs["evaluation"].producer_component_id == "Evaluator"
    assert gate_inputs["model"].producer_component_id == "Trainer"
    assert by_id["ServingGate"].exec_properties["metric_tolerance"] == 0.005
    fingerprint = code_fingerprint()
    assert by_id["Transform"].exec_properties["custom_config"]
    assert fingerprint in by_id["Transform"].exec_properties["custom_config"]
    assert fingerprint in by_id["Trainer"].exec_properties["custom_config"]
    assert CODE_VERSION_KEY in by_id["Trainer"].exec_properties["custom_config"]


def test_thresholds_apply_to_the_overall_slice_only():
    config = make_eval_config(auc_threshold=0.93, regression_tolerance=0.02)
    (auc,) = (
        m
        for m in config.metrics_specs[0].metrics
        if m.class_name == "BatchedAUC" and "auc_pr" not in m.config
    )
    assert not auc.HasField("threshold")
    (per_slice,) = auc.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.93
    assert per_slice.threshold.change_threshold.absolute.value == -0.02
    slices = [list(s.feature_keys) for s in config.slicing_specs]
    assert slices == [[], ["payment_type"], ["trip_start_hour"], ["trip_start_day"]]
    names = {m.class_name for m in config.metrics_specs[0].metrics}
    stock = {"ExampleCount", "BinaryAccuracy", "AUC", "Precision", "Recall", "Calibration"}
    assert {"Batched" + name for name in stock} <= names
    # The batched classes come from tfma_batched.metrics and keep TFMA's metric names.
    from tensorflow_model_analysis.metrics import metric_specs

    from tfma_batched import metrics as batched_metrics

    instance = metric_specs.metric_instance(auc)
    assert isinstance(instance, batched_metrics.BatchedAUC) and instance.name == "auc"
    assert {m.module for m in config.metrics_specs[0].metrics} == {"tfma_batched.metrics"}
    stock_config = make_eval_config(auc_threshold=0.93, regression_tolerance=0.02, batched=False)
    assert stock <= {m.class_name for m in stock_config.metrics_specs[0].metrics}


def test_calibration_bounds_gate_the_overall_slice():
    (calibration,) = (
        m
        for m in make_eval_config(0.9, 0.01, calibration_tolerance=0.1).metrics_specs[0].metrics
        if m.class_name == "BatchedCalibration"
    )
    (per_slice,) = calibration.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]
    bounds = per_slice.threshold.value_threshold
    assert (bounds.lower_bound.value, bounds.upper_bound.value) == pytest.approx((0.9, 1.1))
    (unbounded,) = (
        m
        for m in make_eval_config(0.9, 0.01).metrics_specs[0].metrics
        if m.class_name == "BatchedCalibration"
    )
    assert not unbounded.per_slice_thresholds


def test_code_fingerprint_follows_the_source(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    before = code_fingerprint(tmp_path)
    assert code_fingerprint(tmp_path) == before
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_fingerprint(tmp_path) != before


def test_schema_is_staged_by_content(tmp_path):
    schema = tmp_path / "schema.pbtxt"
    schema.write_text("feature { name: 'a' type: INT }\n")
    first = local_runner.stage_schema(schema, tmp_path / "staged")
    assert local_runner.stage_schema(schema, tmp_path / "staged") == first
    schema.write_text("feature { name: 'b' type: INT }\n")
    assert local_runner.stage_schema(schema, tmp_path / "staged") != first


def test_host_arguments_are_hidden_from_tfx_flag_parsing(monkeypatch):
    import sys

    seen = []
    monkeypatch.setattr(sys, "argv", ["pytest", "-v", "-x"])
    monkeypatch.setattr(local_runner.LocalDagRunner, "run", lambda self, p: seen.append(list(sys.argv)))
    local_runner.run_pipeline(object())
    assert seen == [["pytest"]]
    assert sys.argv == ["pytest", "-v", "-x"]


def test_warm_start_adds_a_resolver_feeding_the_trainers_base_model(tmp_path):
    cold = {c.id for c in local_runner.build(PipelineConfig(root=tmp_path)).components}
    assert "warm_start_model_resolver" not in cold
    warm = local_runner.build(PipelineConfig(root=tmp_path, warm_start=True))
    by_id = {c.id: c for c in warm.components}
    assert by_id["Trainer"].inputs["base_model"].producer_component_id == "warm_start_model_resolver"
    assert by_id["Trainer"].exec_properties["custom_config"]
    assert '"warm_start": true' in by_id["Trainer"].exec_properties["custom_config"]


def test_a_tfjob_setting_swaps_in_the_tfjob_trainer_under_the_same_node_id(tmp_path):
    import json

    from components.tfjob_trainer.executor import TFJOB_KEY
    from components.tfjob_trainer.executor import Executor as TFJobExecutor

    config = PipelineConfig(root=tmp_path)
    in_process = {c.id: c for c in local_runner.build(config).components}["Trainer"]
    assert in_process.executor_spec.executor_class is not TFJobExecutor
    pipeline = local_runner.build(
        config, tfjob={"image": "registry/taxi:1", "workers": 3, "gpus_per_worker": 1}
    )
    trainer = {c.id: c for c in pipeline.components}["Trainer"]
    assert trainer.executor_spec.executor_class is TFJobExecutor
    settings = json.loads(trainer.exec_properties["custom_config"])[TFJOB_KEY]
    assert settings == {"image": "registry/taxi:1", "workers": 3, "gpus_per_worker": 1}
    with pytest.raises(ValueError, match="workers must be >= 1"):
        local_runner.build(config, tfjob={"image": "i", "workers": 0})


def test_every_stage_runs_in_one_process_and_the_evaluator_batched(tmp_path):
    """One Beam process for every stage at every size.

    The batched Evaluator is faster in one process than TFMA's stock path was on two
    (benchmarks/README.md), so the Evaluator carries the pipeline's Beam options and
    nothing of its own.
    """
    from pipeline import local_runner
    from pipeline.config import PipelineConfig

    config = PipelineConfig(root=tmp_path, window_spans=None)
    built = {c.id: c for c in local_runner.build(config).components}
    evaluator = built["Evaluator"]
    assert list(evaluator.executor_spec.beam_pipeline_args) == list(
        built["Transform"].executor_spec.beam_pipeline_args
    )
    assert "--direct_num_workers=1" in evaluator.executor_spec.beam_pipeline_args
    assert evaluator.exec_properties["module_path"] == "models.evaluator"


def test_a_large_window_runs_the_reading_stages_on_two_threads(tmp_path, monkeypatch):
    """From THREADED_BEAM_MIN_BYTES of CSV on, ExampleGen, StatisticsGen and Transform (only) thread."""
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    from pipeline.pipeline import THREADED_STAGES

    def options(component):
        return PipelineOptions(list(component.executor_spec.beam_pipeline_args)).view_as(DirectOptions)

    config = PipelineConfig(root=tmp_path, window_spans=None)
    small = {c.id: c for c in local_runner.build(config).components}
    assert all(options(small[i]).direct_running_mode == "in_memory" for i in THREADED_STAGES)
    csv_bytes = sum(f.stat().st_size for f in (tmp_path / "data").glob("span-*/*.csv"))
    monkeypatch.setattr(local_runner, "THREADED_BEAM_MIN_BYTES", csv_bytes)  # the whole window: enough
    large = {c.id: c for c in local_runner.build(config).components}
    for node in THREADED_STAGES:
        assert options(large[node]).direct_running_mode == "multi_threading"
        assert options(large[node]).direct_num_workers == 2
    assert options(large["Evaluator"]).direct_running_mode == "in_memory"
    # The default window (fewer spans) holds less than the whole data: not threaded.
    default = {c.id: c for c in local_runner.build(PipelineConfig(root=tmp_path)).components}
    assert options(default["Transform"]).direct_running_mode == "in_memory"
    # Options chosen on the command line are kept as given.
    chosen = PipelineConfig(
        root=tmp_path, window_spans=None, beam_args=("--direct_num_workers=1",), beam_args_given=True
    )
    assert not local_runner.threaded_beam_args(chosen, local_runner.check_arguments(chosen))
