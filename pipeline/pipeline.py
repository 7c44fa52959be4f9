"""The one DAG definition: `create_pipeline()`. Every runner (local, Kubeflow) calls it.

It reads no environment and no global config: callers pass everything in.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow_model_analysis as tfma
from tfx.components import Evaluator, ExampleValidator, StatisticsGen, Trainer, Transform
from tfx.orchestration import data_types
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, range_config_pb2, trainer_pb2
from tfx.utils import proto_utils

from components.anomaly_gate.component import AnomalyGate
from components.drift_gate.component import DriftGate
from components.edge_export.component import EdgeExport
from components.example_gen.component import SpanWindowCsvExampleGen
from components.file_batch_reads.component import read_file_batches
from components.pusher.component import AtomicPusher
from components.resolver.component import make_baseline_resolver, make_warm_start_resolver
from components.schema_import.component import ImportProjectSchemaGen
from components.serving_gate.component import ServingGate
from components.tfjob_trainer.component import TFJobTrainer
from components.tfjob_trainer.executor import TFJOB_KEY
from components.tfjob_trainer.kubernetes import TFJobSettings
from components.web_export.component import WebExport
from models import evaluator as evaluator_hooks
from models import features
from models.trainer import WARM_START_KEY
from pipeline.eval_config import make_eval_config

PREPROCESSING_FN = "models.transform.preprocessing_fn"
SPAN_PATTERN = "span-{SPAN}/*.csv"
# The stages `threaded_beam_args` apply to (node ids).
THREADED_STAGES = ("SpanWindowCsvExampleGen", "StatisticsGen", "Transform")
LABEL_KEY = features.LABEL_KEY
CODE_VERSION_KEY = "code_version"

# Settings a scheduled Kubeflow run can change without recompiling (`runtime_parameters=True`):
# name -> what it sets. Proto-valued ones take the proto's JSON.
RUNTIME_PARAMETERS = {
    "train-args": 'Trainer TrainArgs as JSON, e.g. {"num_steps": 400}',
    "range-config": 'ExampleGen span window as JSON: {"rolling_range": {"num_spans": 4}}; {} = all',
    "eval-config": "Evaluator's TFMA EvalConfig as JSON: the AUC floor, regression tolerance and "
    "calibration bounds live here",
    "gate-tolerance": "largest served-vs-evaluated accuracy/AUC gap the serving gate accepts",
    "accept-drift": "1 lets a drifted span through (recorded), 0 stops the run",
}


def _runtime(enabled: bool, name: str, value):
    """`value`, or a RuntimeParameter named `name` defaulting to it (protos as JSON strings)."""
    if not enabled:
        return value
    assert name in RUNTIME_PARAMETERS, name
    if value is None:
        return data_types.RuntimeParameter(name=name, ptype=str, default="{}")
    if hasattr(value, "DESCRIPTOR"):
        return data_types.RuntimeParameter(name=name, ptype=str, default=proto_utils.proto_to_json(value))
    return data_types.RuntimeParameter(name=name, ptype=type(value), default=value)


def span_range(
    first_span: int | None, last_span: int | None, window: int | None = None
) -> range_config_pb2.RangeConfig | None:
    """RangeConfig for the ExampleGen window; None means every available span.

    With `first_span`, the spans from it to `last_span` (or the newest). Otherwise the newest
    `window` spans up to `last_span` (or the newest available); no window means all of them.
    """
    if first_span is not None or (last_span is not None and not window):
        return range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(
                start_span_number=first_span or 0,
                end_span_number=last_span if last_span is not None else 2**31 - 1,
            )
        )
    if last_span is not None:
        return range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(
                start_span_number=max(0, last_span - window + 1), end_span_number=last_span
            )
        )
    if window:
        return range_config_pb2.RangeConfig(rolling_range=range_config_pb2.RollingRange(num_spans=window))
    return None


class DataStage(NamedTuple):
    """ExampleGen and the gates its data passes before any training."""

    example_gen: SpanWindowCsvExampleGen
    statistics_gen: StatisticsGen
    schema_gen: ImportProjectSchemaGen
    example_validator: ExampleValidator
    anomaly_gate: AnomalyGate
    drift_gate: DriftGate

    @property
    def examples(self):
        return self.example_gen.outputs["examples"]

    @property
    def schema(self):
        return self.schema_gen.outputs["schema"]


class TrainingStage(NamedTuple):
    transform: Transform
    warm_start_resolver: object | None
    trainer: Trainer


class EvaluationStage(NamedTuple):
    baseline: object
    evaluator: Evaluator
    serving_gate: ServingGate
    edge_export: EdgeExport
    web_export: WebExport


def data_stage(
    *,
    data_root: str,
    schema_path: str,
    span_window: range_config_pb2.RangeConfig | None,
    accept_drift: bool,
    min_span_rows: int,
    runtime_parameters: bool,
) -> DataStage:
    """ExampleGen over the span window; statistics, schema, anomalies and drift, each a gate."""
    example_gen = SpanWindowCsvExampleGen(
        input_base=data_root,
        input_config=example_gen_pb2.Input(
            splits=[example_gen_pb2.Input.Split(name="all", pattern=SPAN_PATTERN)]
        ),
        output_config=example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                    example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1),
                ]
            )
        ),
        range_config=_runtime(runtime_parameters, "range-config", span_window),
    )
    # StatisticsGen, Transform and the Evaluator are TFX's, reading tf.Examples a file per Beam
    # element instead of a record per element (components/file_batch_reads).
    statistics_gen = read_file_batches(StatisticsGen(examples=example_gen.outputs["examples"]))
    schema_gen = ImportProjectSchemaGen(schema_file=schema_path)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])
    drift_gate = DriftGate(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        data_root=data_root,
        span_pattern=SPAN_PATTERN,
        accept_drift=_runtime(runtime_parameters, "accept-drift", int(accept_drift)),
        min_span_rows=min_span_rows,
    )
    drift_gate.add_upstream_node(anomaly_gate)  # Schema violations first: they say more than drift.
    return DataStage(example_gen, statistics_gen, schema_gen, example_validator, anomaly_gate, drift_gate)


def training_stage(
    data: DataStage,
    *,
    run_fn: str,
    train_steps: int,
    eval_steps: int,
    trainer_config: dict,
    code_version: str,
    warm_start: bool,
    tfjob: dict | None,
    runtime_parameters: bool,
    portable_resolvers: bool = False,
    serving_dir: str = "",
) -> TrainingStage:
    """Transform (analysis only) and the Trainer, in-process or as a TFJob; optional warm start."""
    transform = read_file_batches(
        Transform(
            examples=data.examples,
            schema=data.schema,
            preprocessing_fn=PREPROCESSING_FN,
            custom_config={CODE_VERSION_KEY: code_version},
            # The Trainer applies the Transform graph itself (see models/trainer.py): writing
            # transformed examples, the analyzer cache and post-transform statistics each cost
            # more than they save (benchmarks/bench_pipeline.py times the stages).
            materialize=False,
            disable_analyzer_cache=True,
            disable_statistics=True,
        )
    )
    transform.add_upstream_node(data.anomaly_gate)
    transform.add_upstream_node(data.drift_gate)
    warm_start_resolver = make_warm_start_resolver(portable_resolvers, serving_dir) if warm_start else None
    if tfjob:
        TFJobSettings(**{k: v for k, v in tfjob.items() if k not in ("api_server", "poll_s")})
    trainer = (TFJobTrainer if tfjob else Trainer)(
        run_fn=run_fn,
        base_model=warm_start_resolver.outputs["model"] if warm_start_resolver else None,
        examples=data.examples,
        transform_graph=transform.outputs["transform_graph"],
        schema=data.schema,
        train_args=_runtime(runtime_parameters, "train-args", trainer_pb2.TrainArgs(num_steps=train_steps)),
        eval_args=trainer_pb2.EvalArgs(num_steps=eval_steps),
        custom_config={
            **trainer_config,
            CODE_VERSION_KEY: code_version,
            WARM_START_KEY: warm_start,
            **({TFJOB_KEY: dict(tfjob)} if tfjob else {}),
        },
    ).with_id("Trainer")
    return TrainingStage(transform, warm_start_resolver, trainer)


def evaluation_stage(
    data: DataStage,
    trainer: Trainer,
    *,
    eval_config: tfma.EvalConfig,
    gate_tolerance: float,
    edge_accuracy_tolerance: float,
    edge_auc_tolerance: float,
    portable_resolvers: bool,
    runtime_parameters: bool,
    serving_dir: str = "",
) -> EvaluationStage:
    """The Evaluator against the latest blessed model, then the serving gate, the edge and web exports."""
    model = trainer.outputs["model"]
    baseline = make_baseline_resolver(model, portable=portable_resolvers, serving_dir=serving_dir)
    evaluator = read_file_batches(
        Evaluator(
            examples=data.examples,
            model=model,
            baseline_model=baseline.outputs["model"],
            eval_config=_runtime(runtime_parameters, "eval-config", eval_config),
            example_splits=["eval"],
            # Slices and metrics a batch at a time (TFMA's own, batched: tfma_batched).
            module_path=evaluator_hooks.__name__,
        )
    )
    serving_gate = ServingGate(
        model=model,
        examples=data.examples,
        evaluation=evaluator.outputs["evaluation"],
        metric_tolerance=_runtime(runtime_parameters, "gate-tolerance", float(gate_tolerance)),
    )
    edge_export = EdgeExport(
        model=model,
        examples=data.examples,
        serving_blessing=serving_gate.outputs["blessing"],
        accuracy_tolerance=float(edge_accuracy_tolerance),
        auc_tolerance=float(edge_auc_tolerance),
    )
    web_export = WebExport(
        model=model,
        examples=data.examples,
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_gate.outputs["blessing"],
    )
    return EvaluationStage(baseline, evaluator, serving_gate, edge_export, web_export)


def push_stage(trainer: Trainer, evaluation: EvaluationStage, serving_dir: str) -> AtomicPusher:
    """The Pusher: the SavedModel when both the Evaluator and the serving gate bless it."""
    return AtomicPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluation.evaluator.outputs["blessing"],
        infra_blessing=evaluation.serving_gate.outputs["blessing"],
        edge_model=evaluation.edge_export.outputs["edge_model"],
        web_model=evaluation.web_export.outputs["web_model"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    )


def create_pipeline(
    *,
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    schema_path: str,
    serving_dir: str,
    first_span: int | None,
    last_span: int | None,
    window_spans: int | None,
    run_fn: str,
    train_steps: int,
    eval_steps: int,
    trainer_config: dict,
    code_version: str,
    auc_threshold: float,
    regression_tolerance: float,
    calibration_tolerance: float,
    gate_tolerance: float,
    accept_drift: bool,
    edge_accuracy_tolerance: float,
    edge_auc_tolerance: float,
    min_span_rows: int,
    warm_start: bool,
    beam_pipeline_args: list[str],
    threaded_beam_args: list[str] | None = None,
    metadata_connection_config=None,
    enable_cache: bool = True,
    tfjob: dict | None = None,
    runtime_parameters: bool = False,
    portable_resolvers: bool = False,
) -> tfx_pipeline.Pipeline:
    """Build the taxi pipeline from its four stages.

    Data (ExampleGen over the span window, StatisticsGen, ImportSchemaGen, ExampleValidator,
    AnomalyGate, DriftGate) -> training (Transform, Trainer) -> evaluation (baseline resolver,
    Evaluator, ServingGate, EdgeExport, WebExport) -> AtomicPusher (pushes the SavedModel only
    when the Evaluator and the ServingGate both bless; beside it the int8 edge model and the
    TF.js web model, each when its own gate blessed it). Every default lives in
    `pipeline.config.PipelineConfig`.

    Args:
        pipeline_name: name recorded in ML Metadata.
        pipeline_root: folder (or bucket URI) for the artifacts.
        data_root: folder holding `span-<k>/*.csv`.
        schema_path: the curated schema (.pbtxt).
        serving_dir: TF Serving model base path; pushed versions go below it.
        first_span: oldest span of the window; None for the oldest available.
        last_span: newest span of the window (inclusive); None for the newest available.
        window_spans: without `first_span`, train on this many newest spans (None: all).
        run_fn: the Trainer's `run_fn`, by dotted path.
        train_steps: Trainer training steps.
        eval_steps: Trainer evaluation steps.
        trainer_config: Trainer custom_config (epochs, batch size, model hyper-parameters).
        code_version: fingerprint of the user code; a new value re-runs Transform and Trainer.
        auc_threshold: overall AUC the candidate must reach to be blessed.
        regression_tolerance: largest AUC drop against the baseline that still blesses.
        calibration_tolerance: overall calibration must lie within [1 - this, 1 + this] to bless.
        gate_tolerance: largest gap between the served predictions' accuracy/AUC and the
            Evaluator's that the serving gate accepts.
        accept_drift: let a span that drifted beyond the schema's thresholds through (recorded).
        edge_accuracy_tolerance: largest int8-vs-SavedModel accuracy gap the edge gate accepts.
        edge_auc_tolerance: largest int8-vs-SavedModel AUC gap the edge gate accepts.
        min_span_rows: fewer rows in the newest or the previous span stop the run at the DriftGate.
        warm_start: start training from the latest blessed model's weights (adds a resolver).
        beam_pipeline_args: Beam options for the Beam-based components.
        threaded_beam_args: Beam options added for ExampleGen, StatisticsGen and Transform
            only (`THREADED_STAGES`: the DirectRunner's threads at volume,
            `pipeline.local_runner.threaded_beam_args`); they override `beam_pipeline_args`.
        metadata_connection_config: ML Metadata connection (None for orchestrators that own it).
        enable_cache: reuse results of executions whose inputs did not change.
        tfjob: train in a Kubeflow TFJob of several workers instead of in the Trainer's own
            process: `kubernetes.TFJobSettings` fields (components.tfjob_trainer), plus `api_server` and
            `poll_s`; None (the default) trains in-process.
        runtime_parameters: make the settings in RUNTIME_PARAMETERS runtime parameters whose
            defaults are the values given here (Kubeflow: a recurring run can change them).
        portable_resolvers: container tasks instead of resolver nodes, for orchestrators that
            run only container and importer executors (open-source Kubeflow Pipelines): the
            baseline (and the warm start) is the newest model the Pusher pushed to
            `serving_dir` other than the candidate (components/resolver).

    Returns:
        The TFX pipeline.
    """
    data = data_stage(
        data_root=data_root,
        schema_path=schema_path,
        span_window=span_range(first_span, last_span, window_spans),
        accept_drift=accept_drift,
        min_span_rows=min_span_rows,
        runtime_parameters=runtime_parameters,
    )
    training = training_stage(
        data,
        run_fn=run_fn,
        train_steps=train_steps,
        eval_steps=eval_steps,
        trainer_config=trainer_config,
        code_version=code_version,
        warm_start=warm_start,
        tfjob=tfjob,
        runtime_parameters=runtime_parameters,
        portable_resolvers=portable_resolvers,
        serving_dir=serving_dir,
    )
    evaluation = evaluation_stage(
        data,
        training.trainer,
        eval_config=make_eval_config(
            auc_threshold, regression_tolerance, calibration_tolerance=calibration_tolerance
        ),
        gate_tolerance=gate_tolerance,
        edge_accuracy_tolerance=edge_accuracy_tolerance,
        edge_auc_tolerance=edge_auc_tolerance,
        portable_resolvers=portable_resolvers,
        runtime_parameters=runtime_parameters,
        serving_dir=serving_dir,
    )
    pusher = push_stage(training.trainer, evaluation, serving_dir)
    for component in (*data, training.transform):
        if threaded_beam_args and component.id in THREADED_STAGES:
            component.with_beam_pipeline_args(list(threaded_beam_args))
    return tfx_pipeline.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            *data,
            training.transform,
            *([training.warm_start_resolver] if training.warm_start_resolver else []),
            training.trainer,
            *evaluation,
            pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args),
    )
