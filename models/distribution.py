"""How the Trainer spreads work: one device, every local GPU, or every worker of a cluster.

TensorFlow's own engine does the synchronisation (`MirroredStrategy` all-reduces gradients
across local devices, `MultiWorkerMirroredStrategy` across processes); this module only picks
the strategy from what the environment says, and answers the questions `run_fn` asks of it:
how many replicas, whether this process is the chief (the only one that exports), where a
non-chief writes what it must write.

`TF_CONFIG` (set by the Kubeflow Training Operator, or by hand) looks like
`{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile

import tensorflow as tf

log = logging.getLogger(__name__)

# Trainer custom_config keys.
STRATEGY_KEY = "strategy"
MIXED_PRECISION_KEY = "mixed_precision"
XLA_KEY = "xla"
# Strategy names: AUTO picks by TF_CONFIG and the visible devices.
AUTO, ONE_DEVICE, MIRRORED, MULTI_WORKER = "auto", "one_device", "mirrored", "multi_worker"
STRATEGIES = (AUTO, ONE_DEVICE, MIRRORED, MULTI_WORKER)
# TF's public names (MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy).
STRATEGY_NAMES = {
    ONE_DEVICE: "the default strategy",
    MIRRORED: "MirroredStrategy",
    MULTI_WORKER: "MultiWorkerMirroredStrategy",
}


class StrategyError(ValueError):
    """The requested strategy does not fit the environment (the message says why)."""


def tf_config(environ: dict | None = None) -> dict:
    """The parsed TF_CONFIG ({} when unset).

    Raises:
        StrategyError: when TF_CONFIG is not valid JSON.
    """
    raw = (environ if environ is not None else os.environ).get("TF_CONFIG", "")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({error}): {raw[:200]!r}") from None


def cluster_size(config: dict) -> int:
    """Number of training processes in TF_CONFIG's cluster (chief and workers)."""
    cluster = config.get("cluster", {})
    return len(cluster.get("chief", [])) + len(cluster.get("worker", []))


def is_chief(config: dict) -> bool:
    """True for the process that exports: the chief, or worker 0 when the cluster has no chief."""
    if cluster_size(config) <= 1:
        return True
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def strategy_kind(requested: str, config: dict, gpus: int) -> str:
    """Which strategy to build: `requested`, or for AUTO what TF_CONFIG and the devices say.

    Mirrored and MultiWorkerMirrored are not interchangeable: several processes need the
    multi-worker one (a per-process MirroredStrategy would train N separate models), several
    devices in one process the mirrored one.

    Raises:
        StrategyError: for an unknown name, or a multi-worker request without a cluster.
    """
    if requested not in STRATEGIES:
        raise StrategyError(f"strategy must be one of {STRATEGIES}, got {requested!r}")
    workers = cluster_size(config)
    if requested == AUTO:
        if workers > 1:
            return MULTI_WORKER
        return MIRRORED if gpus > 1 else ONE_DEVICE
    if requested == MULTI_WORKER and workers < 2:
        raise StrategyError(
            f"strategy {MULTI_WORKER!r} needs TF_CONFIG naming at least 2 workers; it names {workers}"
        )
    if requested in (ONE_DEVICE, MIRRORED) and workers > 1:
        raise StrategyError(
            f"TF_CONFIG names {workers} workers but strategy {requested!r} would train each "
            f"process's model on its own: use {MULTI_WORKER!r} or 'auto'"
        )
    return requested


def build_strategy(requested: str = AUTO) -> tf.distribute.Strategy:
    """The strategy for this process; logs the choice and the replica count.

    Call it before anything else uses TensorFlow in a worker process: a multi-worker strategy
    cannot be created once the runtime has started (so a Trainer running inside LocalDagRunner,
    whose process has run other components, trains multi-worker only in processes of its own,
    e.g. TFJob pods).
    """
    config = tf_config()
    # Physical devices: listing them does not start the runtime, which MultiWorkerMirroredStrategy
    # must still find unstarted (it configures collective ops at start-up).
    gpus = tf.config.list_physical_devices("GPU")
    kind = strategy_kind(requested, config, len(gpus))
    if kind == MULTI_WORKER:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif kind == MIRRORED:
        devices = tf.config.list_logical_devices("GPU" if len(gpus) > 1 else "CPU")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
    else:
        strategy = tf.distribute.get_strategy()
    log.info(
        "training with %s (%s) on %d replica(s)%s",
        STRATEGY_NAMES[kind],
        kind,
        strategy.num_replicas_in_sync,
        f", task {config.get('task')}" if config else "",
    )
    return strategy


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """Shard by elements across workers (our few large files cannot be split by file)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def export_path(serving_model_dir: str, config: dict) -> str:
    """Where this process saves the model: the real path on the chief, a temp path elsewhere.

    Every worker must take part in saving (the variables are mirrored across them), but only
    the chief's copy is the model; the others write to a temporary folder and delete it.
    """
    if is_chief(config):
        return serving_model_dir
    return tempfile.mkdtemp(prefix=f"worker-{config.get('task', {}).get('index', 'x')}-export-")


def configure_precision_and_xla(mixed_precision: bool, xla: bool) -> None:
    """float16 compute (float32 variables) on GPU, and XLA JIT, when asked.

    Mixed precision is only set where a GPU exists: on CPU it is slower and changes nothing
    worth having. The model's output layer stays float32 (see models/model.py), so the
    shape and numerics contracts see float32 probabilities either way.
    """
    if mixed_precision:
        if tf.config.list_logical_devices("GPU"):
            tf.keras.mixed_precision.set_global_policy("mixed_float16")
            log.info("mixed precision: float16 compute, float32 variables")
        else:
            log.warning("mixed precision requested but no GPU is visible: training in float32")
    tf.config.optimizer.set_jit(bool(xla))
