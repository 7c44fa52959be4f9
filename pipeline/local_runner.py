"""Local runner: resolve paths under the run root, prepare the data, run with LocalDagRunner."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # Must precede the first TensorFlow import.

from tfx.dsl.io import fileio  # noqa: E402
from tfx.orchestration import metadata  # noqa: E402
from tfx.orchestration.local.local_dag_runner import LocalDagRunner  # noqa: E402

from components.example_gen.driver import SPAN_SPEC, available_spans  # noqa: E402
from data import embedded  # noqa: E402
from models import distribution, trainer  # noqa: E402
from pipeline.code_version import FINGERPRINTED_PACKAGES, code_fingerprint  # noqa: E402
from pipeline.config import (  # noqa: E402
    BEAM_JOB_ENDPOINT_ENV,
    BEAM_WORKER_POOL_ENV,
    PORTABLE_JOB_TIMEOUT_S,
    THREADED_BEAM_ARGS,
    THREADED_BEAM_MIN_BYTES,
    ConfigError,
    PipelineConfig,
    is_uri,
)
from pipeline.pipeline import SPAN_PATTERN, create_pipeline  # noqa: E402
from schemas import SCHEMA_PATH  # noqa: E402


def stage_schema(schema_path: Path, staging_dir: Path) -> Path:
    """Copy the schema to a content-addressed path and return it.

    ImportSchemaGen's cache key is the schema *path*; staging by content hash makes an edited
    schema a new input (re-validated), while an unchanged one stays cached.
    """
    content = Path(schema_path).read_bytes()
    target = staging_dir / hashlib.sha256(content).hexdigest()[:16] / "schema.pbtxt"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, target)
    return target


# Beam options that tell a runner which Python code its workers need.
DEPENDENCY_FLAGS = (
    "--extra_package",
    "--extra_packages",
    "--setup_file",
    "--requirements_file",
    "--sdk_container_image",
    "--worker_harness_container_image",
)
SETUP_FILE = Path(__file__).resolve().parent.parent / "setup.py"


def with_dependency_flags(beam_args: tuple[str, ...] | list[str]) -> list[str]:
    """Add `--setup_file=<this project>` unless the Beam args already say how to ship code.

    Without one of these flags, every Beam-based TFX component re-packages the whole installed
    TFX into an sdist before it starts (seconds each, five times a run: `make bench` prints
    every component's seconds), for a package the DirectRunner never uses and that would lack
    this project's own code on a remote runner.
    This project's setup.py is what a remote runner's workers actually need.
    """
    args = list(beam_args)
    named = [a.split("=")[0] for a in args if isinstance(a, str)]  # placeholders name no flag
    if SETUP_FILE.is_file() and not any(name in DEPENDENCY_FLAGS for name in named):
        args.append(f"--setup_file={SETUP_FILE}")
    return args


def runner_beam_args(config: PipelineConfig) -> list:
    """The Beam options of `config`'s runner, before the dependency flags.

    DirectRunner: the beam args. Portable: the runner, its job endpoint, the worker pool as an
    EXTERNAL environment, `--sdk_worker_parallelism` and a job timeout long enough for the
    longest stage, then the `--beam-arg` options. Without a `beam_job_endpoint` the run's own
    servers' addresses are TFX placeholders of two environment variables
    (`pipeline.ops.beam_portable` sets them), resolved as each component starts: the pipeline
    holds no port, so TFX's cache key (which covers the Beam options) is the same every run.
    """
    if config.beam_runner == "direct":
        return list(config.beam_args)
    if config.beam_job_endpoint:
        job_endpoint, pool = config.beam_job_endpoint, config.beam_environment_config
    else:
        from tfx.dsl.placeholder import placeholder as ph

        job_endpoint = ph.environment_variable(BEAM_JOB_ENDPOINT_ENV)
        pool = ph.environment_variable(BEAM_WORKER_POOL_ENV)
    args = [
        "--runner=PortableRunner",
        "--job_endpoint=" + job_endpoint,
        f"--sdk_worker_parallelism={config.beam_workers}",
        f"--job_server_timeout={PORTABLE_JOB_TIMEOUT_S}",
    ]
    if pool:
        args += ["--environment_type=EXTERNAL", "--environment_config=" + pool]
    return args + list(config.runner_beam_args)


def threaded_beam_args(config: PipelineConfig, spans: list[int]) -> list[str]:
    """Beam options for the stages that gain from two threads, when the window is large enough.

    ExampleGen, StatisticsGen and Transform spend most of their time in C++ that releases
    the GIL (Arrow's CSV reader, tfx_bsl's encoder and decoder, zlib), so the DirectRunner's
    `multi_threading` mode with two workers shortens them at volume; below
    `THREADED_BEAM_MIN_BYTES` of CSV its fixed costs outweigh that (the figures:
    benchmarks/README.md, "Where the floor is"). Threads, not processes: they share the one
    copy of TensorFlow and the rest. The Evaluator is left alone: it gained nothing. Nothing
    when the Beam options were chosen (`--beam-arg`) or the runner is not the DirectRunner.
    """
    if config.beam_runner != "direct" or config.beam_args_given:
        return []
    root = str(config.span_data_root).rstrip("/")
    window = _window(config, spans)
    size = sum(
        fileio.stat(path).length
        for span in window
        for path in fileio.glob(f"{root}/{SPAN_PATTERN.replace(SPAN_SPEC, str(span))}")
    )
    return list(THREADED_BEAM_ARGS) if size >= THREADED_BEAM_MIN_BYTES else []


def code_version(run_fn: str) -> str:
    """Fingerprint of the project's code, plus the run_fn's own module when it lives elsewhere."""
    module = run_fn.rpartition(".")[0]
    if module.split(".")[0] in FINGERPRINTED_PACKAGES:
        return code_fingerprint()
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin:
        raise FileNotFoundError(f"run_fn module {module!r} cannot be imported")
    digest = hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()[:8]
    return f"{code_fingerprint()}-{digest}"


def model_arguments(config: PipelineConfig) -> dict:
    """The create_pipeline() arguments every runner takes from `config` as they are.

    The span window, training and the thresholds; paths, code version and Beam differ per runner.
    """
    return dict(
        first_span=config.first_span,
        last_span=config.last_span,
        window_spans=config.window_spans,
        run_fn=config.run_fn,
        train_steps=config.train_steps,
        eval_steps=config.eval_steps,
        trainer_config={
            trainer.EPOCHS_KEY: config.epochs,
            trainer.BATCH_SIZE_KEY: config.batch_size,
            trainer.STEPS_FROM_DATA_KEY: config.train_steps_from_data,
            trainer.MAX_TRAIN_EXAMPLES_KEY: config.max_train_examples,
            distribution.STRATEGY_KEY: config.strategy,
            distribution.MIXED_PRECISION_KEY: config.mixed_precision,
            distribution.XLA_KEY: config.xla,
        },
        auc_threshold=config.auc_threshold,
        regression_tolerance=config.regression_tolerance,
        calibration_tolerance=config.calibration_tolerance,
        gate_tolerance=config.gate_tolerance,
        edge_accuracy_tolerance=config.edge_accuracy_tolerance,
        edge_auc_tolerance=config.edge_auc_tolerance,
        accept_drift=config.accept_drift,
        min_span_rows=config.min_span_rows,
        warm_start=config.warm_start,
    )


def check_arguments(
    config: PipelineConfig, explicit_window: bool = False, spans: list[int] | None = None
) -> list[int]:
    """Refuse arguments that contradict the data root or the environment; return the spans present.

    Runs before anything else, so a contradiction costs no pipeline work.

    Args:
        config: the run's configuration.
        explicit_window: the window was asked for (`--window N`), not the default: a window
            larger than the spans present is then a contradiction, while the default window
            simply takes what there is (the first weeks of a new feed).
        spans: the spans the data root will hold, when they are not on disk yet (the embedded
            sample before its first run); None reads them from the data root.

    Raises:
        ConfigError: one line naming the argument and what contradicts it.
    """
    root = config.span_data_root
    if spans is None:
        spans = _spans_on_disk(root)
    present = (
        f"spans present: {spans[0]}-{spans[-1]}"
        if spans == list(range(spans[0], spans[-1] + 1))
        else f"spans present: {spans}"
    )
    for option, span in (("--first-span", config.first_span), ("--last-span", config.last_span)):
        if span is not None and span not in spans:
            raise ConfigError(f"{option} {span} is not in {root} ({present})")
    if explicit_window and config.first_span is None and config.window_spans:
        usable = [s for s in spans if config.last_span is None or s <= config.last_span]
        if config.window_spans > len(usable):
            raise ConfigError(
                f"--window {config.window_spans} is larger than the {len(usable)} spans there are ({present})"
            )
    try:
        distribution.strategy_kind(config.strategy, distribution.tf_config(), gpus=0)
    except distribution.StrategyError as error:
        raise ConfigError(f"--strategy {config.strategy}: {error}") from None
    return spans


def _spans_on_disk(root: Path | str) -> list[int]:
    if is_uri(root):
        if not _uri_is_folder(root, "--data-root"):
            raise ConfigError(f"--data-root {root}: no such folder")
    elif not root.is_dir():
        raise ConfigError(f"--data-root {root}: no such folder")
    elif not os.access(root, os.R_OK | os.X_OK):
        raise ConfigError(f"--data-root {root}: not readable by this user")
    spans = available_spans(str(root), SPAN_PATTERN)
    if not spans:
        raise ConfigError(
            f"--data-root {root} holds no span (expected {SPAN_PATTERN.replace('{SPAN}', '<k>')})"
        )
    return spans


def _uri_is_folder(uri: str, option: str) -> bool:
    """Whether `uri` is a folder, asked of its file system (which raises when unreachable)."""
    try:
        return fileio.exists(uri) and fileio.isdir(uri)  # isdir answers False where exists raises
    except Exception as error:  # noqa: BLE001 (each file system raises its own errors)
        raise ConfigError(f"{option} {uri}: {type(error).__name__}: {error}") from None


def _check_writable(root: Path | str, option: str = "--root") -> None:
    """The run root, or the folder it will be created in, must be writable by this user.

    A URI (a bucket) is only asked whether its file system answers: whether this user may
    write there shows at the first write (a check that writes would leave a trace).
    """
    if is_uri(root):
        _uri_is_folder(root, option)
        return
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{option} {root}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the run root" if existing == root else f"{existing}, where the run root would be created,"
        raise ConfigError(f"{option} {root}: {what} is not writable by this user")


def preflight(config: PipelineConfig, explicit_window: bool = False) -> str:
    """`run --check`: every check a run makes before its first component, and nothing else.

    The run root must be writable, the data root must hold spans (or the embedded sample must
    be where the installed `tfx` ships it), the window and the strategy must fit. Nothing is
    written. Returns one line saying what the run would use.

    Raises:
        ConfigError, DataError: one line naming the problem.
    """
    _check_writable(config.root)
    if config.artifact_root is not None:
        _check_writable(config.artifact_root, "artifact_root")
    if config.uses_embedded_data:
        source = embedded.taxi_sample_path()
        on_disk = config.span_data_root.is_dir() and available_spans(str(config.span_data_root), SPAN_PATTERN)
        spans = check_arguments(
            config, explicit_window, spans=None if on_disk else list(range(1, embedded.DEFAULT_NUM_SPANS + 1))
        )
        data = f"the embedded sample ({source})"
    else:
        spans = check_arguments(config, explicit_window)
        data = str(config.span_data_root)
    window = _window(config, spans)
    artifacts = f"; artifacts {config.artifact_root}" if config.artifact_root is not None else ""
    return (
        f"Pre-flight OK: root {config.root} writable{artifacts}; data {data}, spans {_span_list(spans)}; "
        f"this run would use spans {_span_list(window)}"
    )


def _window(config: PipelineConfig, spans: list[int]) -> list[int]:
    """The spans a run with `config` takes from `spans` (the ExampleGen driver's rule)."""
    last = config.last_span if config.last_span is not None else spans[-1]
    usable = [s for s in spans if s <= last]
    if config.first_span is not None:
        return [s for s in usable if s >= config.first_span]
    return usable[-config.window_spans :] if config.window_spans else usable


def _span_list(spans: list[int]) -> str:
    if spans and spans == list(range(spans[0], spans[-1] + 1)) and len(spans) > 2:
        return f"{spans[0]}-{spans[-1]}"
    return ",".join(map(str, spans))


def build(
    config: PipelineConfig,
    schema_path: Path = SCHEMA_PATH,
    tfjob: dict | None = None,
    explicit_window: bool = False,
):
    """Prepare the run root and return the pipeline for `config`.

    Arguments that contradict the data or the environment are refused first (`check_arguments`).

    `tfjob` (TFJob settings) makes the Trainer submit its training to a Kubernetes cluster
    instead of training in this process (see `create_pipeline`).
    """
    if config.uses_embedded_data:
        embedded.materialize_spans(config.span_data_root)
    spans = check_arguments(config, explicit_window)
    config.metadata_path.parent.mkdir(parents=True, exist_ok=True)
    return create_pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=str(config.pipeline_root),
        data_root=str(config.span_data_root),
        schema_path=str(stage_schema(schema_path, config.staged_schema_dir)),
        serving_dir=str(config.serving_dir),
        code_version=code_version(config.run_fn),
        **model_arguments(config),
        beam_pipeline_args=with_dependency_flags(runner_beam_args(config)),
        threaded_beam_args=threaded_beam_args(config, spans),
        metadata_connection_config=metadata.sqlite_metadata_connection_config(str(config.metadata_path)),
        tfjob=tfjob,
    )


@contextlib.contextmanager
def _program_name_only_argv():
    """Hide the host program's arguments from TFX while a pipeline runs.

    TFX's Beam executors parse `sys.argv + beam_args` as absl flags (b/174174381), so a host
    argument that absl knows swallows the next Beam option: under `pytest -v`, `-v` is absl's
    `--verbosity` and the run fails with "flag --verbosity=--direct_running_mode=...".
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def run_pipeline(tfx_pipeline) -> None:
    """Run a built pipeline to completion with LocalDagRunner (raises if a component fails)."""
    with _program_name_only_argv():
        LocalDagRunner().run(tfx_pipeline)


def run(config: PipelineConfig) -> None:
    """Build and run the pipeline for `config`."""
    run_pipeline(build(config))
