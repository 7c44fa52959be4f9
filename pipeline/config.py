"""Typed, frozen run configuration, validated on construction.

Everything a run writes lives under one root directory (`root`): span data, pipeline
artifacts, the ML Metadata store and the serving directory. The data, the artifacts and the
serving directory may live in a bucket instead (`data_root`, `artifact_root`: a URI such as
gs://...); the ML Metadata store stays a local SQLite file. Nothing here touches the disk.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from serving.gate_defaults import (
    DEFAULT_EDGE_ACCURACY_TOLERANCE,
    DEFAULT_EDGE_AUC_TOLERANCE,
    DEFAULT_METRIC_TOLERANCE,
)

DEFAULT_ROOT = Path("runs/default")
PIPELINE_NAME = "taxi_big_tipper"
MODEL_NAME = "big_tipper"
# Trainer user code, by dotted path (installed with the package, so it resolves in any container).
DEFAULT_RUN_FN = "models.trainer.run_fn"
# models.distribution's strategy names (not imported: that module imports TensorFlow).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
# In-memory DirectRunner: the embedded data is small, and worker processes would cost more
# in start-up and pickling than they save.
DEFAULT_BEAM_ARGS: tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
# ...but from this much CSV in the window on, ExampleGen, StatisticsGen and Transform run on two
# threads (`pipeline.local_runner.threaded_beam_args`; benchmarks/README.md, "Where the floor is").
THREADED_BEAM_MIN_BYTES = 64 * 2**20
THREADED_BEAM_ARGS: tuple[str, ...] = ("--direct_running_mode=multi_threading", "--direct_num_workers=2")
# `--beam`: the DirectRunner in this process, or Beam's portable runner (docs/beam-runners.md).
BEAM_RUNNERS = ("direct", "portable")
# Where a run's own job service and SDK worker pool listen (`pipeline.ops.beam_portable` sets
# them; each Beam component reads them as it starts, so the pipeline holds no port).
BEAM_JOB_ENDPOINT_ENV = "TAXI_PIPELINE_BEAM_JOB_ENDPOINT"
BEAM_WORKER_POOL_ENV = "TAXI_PIPELINE_BEAM_WORKER_POOL"
# The portable client waits this long for one Beam stage (its job's state stream has this
# deadline; Beam's own default of 60 s fails any longer stage with DEADLINE_EXCEEDED).
PORTABLE_JOB_TIMEOUT_S = 24 * 3600
# Options a portable run sets itself (`--beam-arg` may not contradict them).
PORTABLE_RUNNER_OPTIONS = ("--runner", "--job_endpoint", "--sdk_worker_parallelism")


# Fewer rows than this in either span the DriftGate compares stop the run: below it a random
# sample of a real, undrifted week crosses some drift threshold too often to tell a thin week
# from a drifted one (`python benchmarks/studies/drift_variation.py --min-rows --samples 40`).
DEFAULT_MIN_SPAN_ROWS = 800


class ConfigError(ValueError):
    """A configuration value is out of range; the message names the field and the value."""


def is_uri(path: str | Path) -> bool:
    """A file-system URI (gs://, s3://, ram://...), which only `fileio` can read, not a local path."""
    return "://" in str(path)


def _below(base: Path | str, *parts: str) -> Path | str:
    """`base`/parts: a Path below a local folder, a string below a URI."""
    return base.joinpath(*parts) if isinstance(base, Path) else "/".join([base.rstrip("/"), *parts])


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Settings of one pipeline run.

    Attributes:
        root: folder holding everything the run reads and writes.
        data_root: folder or URI of `span-<k>/` CSV folders; default `<root>/data` (the
            embedded data).
        artifact_root: folder or URI (a bucket, as on Kubeflow) that holds the pipeline
            artifacts (`pipeline/`) and the serving directory (`serving/`) instead of `root`;
            the ML Metadata store and the staged schema stay under `root`.
        first_span, last_span: span window (inclusive); None means the oldest / newest available.
        window_spans: unless `first_span` is set, train and evaluate on the newest this many
            spans (up to `last_span`); None for every span.
        train_steps, eval_steps: Trainer step counts. With `train_steps_from_data`,
            `train_steps` is the least: the Trainer reads the whole training split once (a
            small split several times, up to `train_steps`), sampling it uniformly when it
            holds more than `max_train_examples` (`models.trainer.plan_training`).
        epochs, batch_size: how `train_steps` are grouped, and the per-replica batch.
        auc_threshold: the Evaluator blesses only models whose overall AUC reaches this.
        regression_tolerance: largest AUC drop allowed against the last blessed model.
        calibration_tolerance: the Evaluator blesses only a model whose overall calibration
            (mean prediction / mean label) is within [1 - this, 1 + this].
        gate_tolerance: largest gap between the served predictions' accuracy/AUC and the
            Evaluator's that the serving gate accepts.
        edge_accuracy_tolerance, edge_auc_tolerance: largest accuracy / AUC gap between the
            int8 edge model and the SavedModel on the eval split that the edge gate accepts
            (a refusal stops the edge push only).
        accept_drift: let a span that drifted beyond the schema's thresholds through; the
            override is recorded in ML Metadata.
        min_span_rows: a compared span with fewer rows stops the run at the DriftGate.
        warm_start: start training from the latest blessed model's weights.
        strategy: auto (by TF_CONFIG and devices), one_device, mirrored or multi_worker.
        mixed_precision, xla: float16 compute on GPU; XLA JIT compilation.
        beam_args: Beam pipeline options, passed through to every Beam-based component.
        beam_runner: `direct` (the DirectRunner with `beam_args`) or `portable` (Beam's
            portable runner: a job server, SDK workers, `beam_args` added to its options).
        beam_workers: with `portable`, SDK worker processes per job (`--sdk_worker_parallelism`);
            one by default, like the DirectRunner's one process: on a machine of few cores more
            workers only compete for them (`python benchmarks/bench_portable.py --scales 10`).
        beam_job_endpoint: with `portable`, the `HOST:PORT` of a running job server (Flink's,
            Spark's); None: the run starts its own on 127.0.0.1, with a worker pool.
        beam_environment_config: with `beam_job_endpoint`, the `HOST:PORT` at which that
            server's workers reach an SDK worker pool (EXTERNAL environment).
        beam_args_given: the options were chosen (`--beam-arg`), even if equal to the
            defaults: then no component gets options of its own (the Evaluator's 2 processes
            at volume are for the defaults only).
        run_fn: the Trainer's `run_fn` as `package.module.function` (programmatic use: tests
            train deliberately broken models with their own).
    """

    root: Path = DEFAULT_ROOT
    data_root: Path | str | None = None
    artifact_root: Path | str | None = None
    first_span: int | None = None
    last_span: int | None = None
    window_spans: int | None = 4
    train_steps: int = 400
    train_steps_from_data: bool = True
    max_train_examples: int = 524_288
    eval_steps: int = 100
    epochs: int = 5
    batch_size: int = 128
    auc_threshold: float = 0.90
    regression_tolerance: float = 0.01
    calibration_tolerance: float = 0.1
    gate_tolerance: float = DEFAULT_METRIC_TOLERANCE
    edge_accuracy_tolerance: float = DEFAULT_EDGE_ACCURACY_TOLERANCE
    edge_auc_tolerance: float = DEFAULT_EDGE_AUC_TOLERANCE
    accept_drift: bool = False
    min_span_rows: int = DEFAULT_MIN_SPAN_ROWS
    warm_start: bool = False
    strategy: str = "auto"
    mixed_precision: bool = False
    xla: bool = False
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    beam_args_given: bool = False
    beam_runner: str = "direct"
    beam_workers: int = 1
    beam_job_endpoint: str | None = None
    beam_environment_config: str | None = None
    run_fn: str = DEFAULT_RUN_FN
    pipeline_name: str = PIPELINE_NAME
    model_name: str = MODEL_NAME

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root).absolute())
        for name in ("data_root", "artifact_root"):
            value = getattr(self, name)
            if value is not None and not is_uri(value):
                object.__setattr__(self, name, Path(value).absolute())
        object.__setattr__(self, "beam_args", tuple(self.beam_args))
        for name in (
            "train_steps",
            "eval_steps",
            "epochs",
            "batch_size",
            "min_span_rows",
            "max_train_examples",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.epochs > self.train_steps:
            raise ConfigError(f"epochs ({self.epochs}) cannot exceed train_steps ({self.train_steps})")
        if self.window_spans is not None and (
            not isinstance(self.window_spans, int) or self.window_spans < 1
        ):
            raise ConfigError(f"window_spans must be a positive integer or None, got {self.window_spans!r}")
        for name in ("first_span", "last_span"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.first_span is not None and self.last_span is not None and self.first_span > self.last_span:
            raise ConfigError(f"first_span ({self.first_span}) is after last_span ({self.last_span})")
        if not 0.0 <= self.auc_threshold <= 1.0:
            raise ConfigError(f"auc_threshold must be within [0, 1], got {self.auc_threshold!r}")
        if not 0.0 <= self.regression_tolerance <= 1.0:
            raise ConfigError(
                f"regression_tolerance must be within [0, 1], got {self.regression_tolerance!r}"
            )
        for name in ("pipeline_name", "model_name"):
            value = getattr(self, name)
            if not value or not all(c.isalnum() or c in "_-" for c in value):
                raise ConfigError(f"{name} must be letters, digits, '_' or '-', got {value!r}")
        for name in ("gate_tolerance", "edge_accuracy_tolerance", "edge_auc_tolerance"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be within [0, 1], got {value!r}")
        # Calibration is a ratio: a tolerance of 1 or more leaves no lower bound, and a large
        # one lets a deliberately weak model through (tests of what the other gates catch).
        if not self.calibration_tolerance >= 0.0:
            raise ConfigError(f"calibration_tolerance must be >= 0, got {self.calibration_tolerance!r}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        module, _, function = self.run_fn.rpartition(".")
        if not module or not function.isidentifier():
            raise ConfigError(
                f"run_fn must be a dotted path like package.module.function, got {self.run_fn!r}"
            )
        bad = [a for a in self.beam_args if not a.startswith("--")]
        if bad:
            raise ConfigError(f"beam args must look like --option=value, got {bad}")
        self._check_beam_runner()

    def _check_beam_runner(self) -> None:
        if self.beam_runner not in BEAM_RUNNERS:
            raise ConfigError(f"beam_runner must be one of {BEAM_RUNNERS}, got {self.beam_runner!r}")
        if not isinstance(self.beam_workers, int) or self.beam_workers < 1:
            raise ConfigError(f"beam_workers must be a positive integer, got {self.beam_workers!r}")
        for name in ("beam_job_endpoint", "beam_environment_config"):
            value = getattr(self, name)
            host, _, port = (value or "").rpartition(":")
            if value is not None and not (host and port.isdigit()):
                raise ConfigError(f"{name} must be HOST:PORT, got {value!r}")
        if self.beam_runner == "direct":
            if self.beam_job_endpoint or self.beam_environment_config:
                raise ConfigError("a job endpoint or a worker pool is for the portable runner only")
            return
        if self.beam_environment_config and not self.beam_job_endpoint:
            raise ConfigError(
                "beam_environment_config names a running worker pool, for a running job server "
                "(beam_job_endpoint); without one the run starts its own pool"
            )
        given = {a.split("=")[0] for a in self.beam_args} if self.beam_args_given else set()
        taken = PORTABLE_RUNNER_OPTIONS
        if not self.beam_job_endpoint or self.beam_environment_config:
            taken += ("--environment_type", "--environment_config")
        clash = sorted(given & set(taken))
        if clash:
            raise ConfigError(
                f"the portable runner sets {', '.join(clash)} itself: drop it from the beam args"
            )
        if self.beam_job_endpoint and not self.beam_environment_config and "--environment_type" not in given:
            raise ConfigError(
                "a job server's workers need an SDK environment: the worker pool's HOST:PORT "
                "(beam_environment_config), or --environment_type=... in the beam args"
            )

    @property
    def runner_beam_args(self) -> tuple[str, ...]:
        """The beam args to pass on as they are.

        All of them for the DirectRunner; for the portable runner only those chosen with
        `--beam-arg` (the DirectRunner's defaults do not apply to it).
        """
        if self.beam_runner == "direct" or self.beam_args_given:
            return self.beam_args
        return ()

    @property
    def span_data_root(self) -> Path | str:
        return self.data_root or self.root / "data"

    @property
    def uses_embedded_data(self) -> bool:
        return self.data_root is None

    @property
    def pipeline_root(self) -> Path | str:
        return _below(self.artifact_root or self.root, "pipeline")

    @property
    def metadata_path(self) -> Path:
        return self.root / "metadata" / "metadata.db"

    @property
    def serving_dir(self) -> Path | str:
        """`<root>/serving/<model name>`: TF Serving's model base path; versions go below it."""
        return _below(self.artifact_root or self.root, "serving", self.model_name)

    @property
    def staged_schema_dir(self) -> Path:
        return self.root / "schema"
