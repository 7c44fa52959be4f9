"""Trainer's `run_fn`: datasets in, fitted model and its serving signatures out.

`run_fn` only coordinates; each step is a small helper that tests call on its own:
`make_dataset` (tf.data input), `distribution.build_strategy`, `build_model`,
`training_callbacks`, `signatures.export_model` (the serving contract).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from tfx.components.trainer.fn_args_utils import FnArgs

from models import distribution, features, record_counts
from models.model import (
    ModelConfig,
    build_model,
    categorical_cardinalities,
    skip_autograph_for_graph_safe_packages,
)
from models.signatures import SERVING_SIGNATURE, export_model

log = logging.getLogger(__name__)


# Keys of Trainer's custom_config this module understands.
EPOCHS_KEY = "epochs"
BATCH_SIZE_KEY = "batch_size"
MODEL_CONFIG_KEY = "model"
# Sub-folder of the Trainer's model_run folder holding the fault-tolerance backup.
BACKUP_FOLDER = "backup"
# Start from the weights of the latest blessed model (Trainer's `base_model` input) when set.
WARM_START_KEY = "warm_start"
STEPS_FROM_DATA_KEY = "train_steps_from_data"
MAX_TRAIN_EXAMPLES_KEY = "max_train_examples"
DEFAULT_EPOCHS = 5
DEFAULT_BATCH_SIZE = 128
# Records parsed and transformed together (and cached as one batch).
PARSE_BATCH = 1024
# Files read at once, interleaved record by record.
INTERLEAVED_FILES = 64
DEFAULT_SHUFFLE_BUFFER = 20_000
# Memory the training shuffle may hold, and what one example costs there per feature (a
# scalar tensor of its own once unbatched).
SHUFFLE_BUFFER_BYTES = 256 * 2**20
SHUFFLE_BYTES_PER_FEATURE = 256
# Memory the cache of transformed batches may take, and what a value costs there.
CACHE_BYTES = 2**30
CACHED_BYTES_PER_FEATURE = 8
# Fixed seed for weights, dropout and shuffling: a re-run on the same data trains the same model.
SEED = 42


class TrainingPlan(NamedTuple):
    """How much of the training split the Trainer reads, and how.

    Attributes:
        steps: training steps (batches) in all.
        examples: the training split's size (`count_records`).
        stride: read every example (1), or one in `stride` of them, drawn at random across the
            whole split in a single pass (a uniform sample of every span and every file).
        cache: keep what one pass reads (the split, or the sample) in memory, transformed, for
            the passes after it (bounded by `CACHE_BYTES`).
        batch_shuffle_buffer: parse batches shuffled before they are unbatched: every batch of
            the cache, so each pass visits the window in a new order (a time-ordered file read
            in order would otherwise end every pass on the same few trips).
        shuffle_buffer: examples the shuffle after unbatching holds (`SHUFFLE_BUFFER_BYTES`).
    """

    steps: int
    examples: int
    stride: int
    cache: bool
    batch_shuffle_buffer: int
    shuffle_buffer: int


def count_records(files: list[str]) -> int:
    """Records in gzipped TFRecord `files`, counted in TensorFlow's C++ reader (nothing kept).

    Exact, not estimated from file sizes: the plan (stride, cache, buffers) follows from it, and
    a run must train the same model whichever process wrote the files (the compressed size of
    the same examples varies with the order a writer put their features in).
    """
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP", num_parallel_reads=tf.data.AUTOTUNE)
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1))


def split_size(files: list[str]) -> int:
    """Records in `files`: as their writer recorded them (our ExampleGen), else counted."""
    recorded = record_counts.recorded_count(files)
    return count_records(files) if recorded is None else recorded


def plan_training(
    examples: int,
    batch_size: int,
    train_steps: int,
    from_data: bool,
    max_examples: int,
    feature_count: int,
) -> TrainingPlan:
    """The steps and the sampling that cover the window (see `run_fn`).

    With `from_data`, the model sees the whole training split once (at least `train_steps`
    steps, so a small split is read several times), but no more than `max_examples` examples:
    past that the split is sampled uniformly, one pass, one example in `stride`. Without it,
    exactly `train_steps` steps (a deliberately short run stays short), sampled alike.
    `benchmarks/bench_learning_curve.py` measures eval AUC and calibration against the number
    of examples seen, which is what `max_examples`' default rests on.
    """
    if from_data:
        steps = max(train_steps, math.ceil(min(examples, max_examples) / batch_size))
    else:
        steps = train_steps
    wanted = steps * batch_size
    # ceil: a sample no larger than the steps need; `run_fn` repeats the input, so the last
    # steps draw afresh from a second pass rather than stop short.
    stride = math.ceil(examples / wanted) if examples > wanted else 1
    drawn = math.ceil(examples / stride)
    cache = drawn * feature_count * CACHED_BYTES_PER_FEATURE <= CACHE_BYTES
    batches = math.ceil(drawn / PARSE_BATCH)
    batch_buffer = (
        batches
        if cache
        else min(batches, CACHE_BYTES // (feature_count * CACHED_BYTES_PER_FEATURE * PARSE_BATCH))
    )
    buffer = min(drawn, SHUFFLE_BUFFER_BYTES // (feature_count * SHUFFLE_BYTES_PER_FEATURE))
    return TrainingPlan(
        steps=steps,
        examples=examples,
        stride=stride,
        cache=cache,
        batch_shuffle_buffer=max(1, batch_buffer),
        shuffle_buffer=max(1, buffer),
    )


def make_dataset(
    file_pattern: list[str] | str,
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool,
    seed: int | None = None,
    cache: bool = True,
    stride: int = 1,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    batch_shuffle_buffer: int = 1,
) -> tf.data.Dataset:
    """Raw examples -> Transform graph -> (features, label[batch, 1]) batches.

    Transform does not materialize transformed examples (writing them cost more than
    applying the graph here); the model trains on the output of the very graph it serves with.

    Order matters. With `shuffle`, the files are read in a seeded random order, interleaved
    (a time-ordered feed's oldest file is not read first and alone); with `stride` > 1 one
    pass over the split draws a uniform sample of it, in random order (`record_batches`).
    Then parse and transform a batch at a time, `cache` what a pass read (the split or the
    sample: later passes skip I/O, parsing and the Transform graph), then `shuffle` twice
    after the cache, so each pass gets a new order: whole batches over the cache
    (`batch_shuffle_buffer`), then examples after `unbatch` (`shuffle_buffer`); then `batch`,
    then `prefetch` last (so the next batch is ready while the model trains on this one).
    """
    skip_autograph_for_graph_safe_packages()
    raw_spec = tf_transform_output.raw_feature_spec()
    transform_layer = tf_transform_output.transform_features_layer()
    files = (
        tf.io.gfile.glob(file_pattern)
        if isinstance(file_pattern, str)
        else [f for pattern in file_pattern for f in tf.io.gfile.glob(pattern)]
    )
    if not files:
        raise ValueError(f"no examples match {file_pattern}")
    records = record_batches(files, shuffle=shuffle, seed=seed, stride=stride)
    dataset = records.map(lambda batch: _split_label(transform_layer(tf.io.parse_example(batch, raw_spec))))
    if cache:
        # Cached as batches: one tensor per feature per 1,024 examples. Cached after unbatch,
        # every example's every feature would be a tensor of its own, several times the bytes.
        dataset = dataset.cache()
    if shuffle and batch_shuffle_buffer > 1:
        dataset = dataset.shuffle(batch_shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.unbatch()
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def record_batches(files: list[str], shuffle: bool, seed: int | None, stride: int) -> tf.data.Dataset:
    """Serialized records of gzipped TFRecord `files` in batches of up to `PARSE_BATCH`.

    Every record (`stride` 1): with `shuffle`, files in a seeded random order, interleaved
    `INTERLEAVED_FILES` at a time. A sample (`stride` > 1): ceil(n / stride) of the split's n
    records drawn uniformly at random (seeded, without replacement) in one pass over the
    split, in a random order with `shuffle` (in file order without): every batch holds
    records of the whole window. The pass is TensorFlow's record iterator in Python, which
    hands over a record it then drops in a fraction of the time a tf.data pipeline takes
    (benchmarks/README.md, "What makes it fast").
    """
    if stride > 1:
        total = split_size(files)
        rows = np.random.default_rng(seed or 0).choice(total, size=math.ceil(total / stride), replace=False)
        rows = rows if shuffle else np.sort(rows)
        # One string tensor straight from the list (no NumPy copy between), the list dropped.
        drawn = tf.constant(records_at(files, rows))
        return tf.data.Dataset.from_tensor_slices(drawn).batch(PARSE_BATCH)
    names = tf.data.Dataset.from_tensor_slices(sorted(files))
    if shuffle:
        names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=False)
    records = names.interleave(
        lambda name: tf.data.TFRecordDataset(name, compression_type="GZIP"),
        cycle_length=min(len(files), INTERLEAVED_FILES),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return records.batch(PARSE_BATCH)


def records_at(files: list[str], rows) -> list[bytes]:
    """The records at positions `rows` of gzipped TFRecord `files` read as one sequence, in that order.

    One pass, in TensorFlow's C++ record iterator (CRCs checked); only the wanted records are kept.

    Raises:
        IndexError: naming the rows beyond the records there.
    """
    wanted = {int(row): index for index, row in enumerate(rows)}
    drawn: list[bytes | None] = [None] * len(wanted)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    position = 0
    for file in files:
        for record in tf.compat.v1.io.tf_record_iterator(file, options):
            index = wanted.get(position)
            if index is not None:
                drawn[index] = record
            position += 1
    missing = sorted(row for row, index in wanted.items() if drawn[index] is None)
    if missing:
        raise IndexError(f"rows {missing[:5]} are beyond the {position} records there")
    return drawn


def _files(patterns: list[str] | str) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))


def _split_label(batch: dict) -> tuple[dict, tf.Tensor]:
    batch = dict(batch)
    label = batch.pop(features.LABEL_KEY)
    # The label gets the model output's shape, [batch, 1], explicitly (one [1] per example
    # once unbatched): never leave it to broadcasting to reconcile (batch,) with (batch, 1).
    return batch, tf.reshape(tf.cast(label, tf.float32), [-1, 1])


def warm_start(model: tf.keras.Model, base_model_dir: str, tf_transform_output: tft.TFTransformOutput) -> str:
    """Copy a previous model's weights into `model`; return what was restored, for the log.

    Weights are matched by name. A vocabulary embedding is remapped row by row through the
    two vocabularies (each window computes its own, ordered by frequency: copying rows by
    position would hand one company's embedding to another); tokens new to this window keep
    their fresh initialisation. A weight whose shape changed otherwise (a layer resized) is
    left as initialised. The optimizer starts afresh.
    """
    base = tf.saved_model.load(base_model_dir)
    previous = {v.name: v.numpy() for v in base.signatures[SERVING_SIGNATURE].variables}
    restored, remapped, fresh = 0, [], []
    vocab_layers = {
        f"{features.transformed_name(k)}_embedding/embeddings:0": k for k in features.VOCABULARY_FEATURES
    }
    for variable in model.weights:
        old = previous.get(variable.name)
        if old is None:
            fresh.append(f"{variable.name} (not in the base model)")
        elif variable.name in vocab_layers:
            key = vocab_layers[variable.name]
            old_tokens = _asset_vocabulary(base_model_dir, features.vocabulary_name(key))
            new_tokens = tf_transform_output.vocabulary_by_name(features.vocabulary_name(key))
            variable.assign(_remap_rows(variable.numpy(), old, old_tokens, new_tokens))
            remapped.append(key)
        elif tuple(old.shape) == tuple(variable.shape):
            variable.assign(old)
            restored += 1
        else:
            fresh.append(f"{variable.name} (shape {old.shape} -> {tuple(variable.shape)})")
    return (
        f"warm start from {base_model_dir}: {restored} weights copied, vocabulary embeddings "
        f"remapped by token for {remapped}; fresh: {fresh or 'none'}"
    )


def _asset_vocabulary(model_dir: str, name: str) -> list[bytes]:
    with tf.io.gfile.GFile(f"{model_dir}/assets/{name}", "rb") as handle:
        return [line.rstrip(b"\n") for line in handle]


def _remap_rows(fresh, old, old_tokens: list[bytes], new_tokens: list[bytes]):
    """Rows of `old` moved to where each token sits in the new vocabulary; OOV rows kept last."""
    rows = fresh.copy()
    if old.shape[1:] != fresh.shape[1:]:
        return rows  # another embedding width: nothing can be carried over
    position = {token: i for i, token in enumerate(old_tokens)}
    for i, token in enumerate(new_tokens):
        if token in position and position[token] < len(old):
            rows[i] = old[position[token]]
    oov = min(len(old) - len(old_tokens), len(rows) - len(new_tokens))
    if oov > 0:
        rows[len(new_tokens) : len(new_tokens) + oov] = old[len(old_tokens) : len(old_tokens) + oov]
    return rows


def vocabulary_sizes(tf_transform_output: tft.TFTransformOutput) -> dict[str, int]:
    """Raw categorical key -> size of the vocabulary Transform computed for it."""
    return {
        key: tf_transform_output.vocabulary_size_by_name(features.vocabulary_name(key))
        for key in features.VOCABULARY_FEATURES
    }


def training_callbacks(fn_args: FnArgs) -> list[tf.keras.callbacks.Callback]:
    """Fault tolerance: a worker that dies and restarts resumes from the last finished epoch.

    The backup lives in the Trainer's `model_run` folder, which a restarted Trainer of the same
    execution sees again; Keras deletes it when training ends.
    """
    return [
        tf.keras.callbacks.BackupAndRestore(backup_dir=os.path.join(fn_args.model_run_dir, BACKUP_FOLDER))
    ]


def run_fn(fn_args: FnArgs) -> None:
    """TFX Trainer entry point: train on the train split, export to serving_model_dir (chief only)."""
    custom = fn_args.custom_config or {}
    # First, before anything else touches the TensorFlow runtime: MultiWorkerMirroredStrategy
    # must configure collective ops at program start-up.
    strategy = distribution.build_strategy(custom.get(distribution.STRATEGY_KEY, distribution.AUTO))
    epochs = int(custom.get(EPOCHS_KEY, DEFAULT_EPOCHS))
    batch_size = int(custom.get(BATCH_SIZE_KEY, DEFAULT_BATCH_SIZE))
    model_config = ModelConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in custom.get(MODEL_CONFIG_KEY, {}).items()}
    )
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    tf.keras.utils.set_random_seed(SEED)
    distribution.configure_precision_and_xla(
        bool(custom.get(distribution.MIXED_PRECISION_KEY)), bool(custom.get(distribution.XLA_KEY))
    )

    global_batch = batch_size * strategy.num_replicas_in_sync
    plan = plan_training(
        split_size(_files(fn_args.train_files)),
        global_batch,
        fn_args.train_steps,
        from_data=bool(custom.get(STEPS_FROM_DATA_KEY, False)),
        max_examples=int(custom.get(MAX_TRAIN_EXAMPLES_KEY, 0)) or 2**62,
        feature_count=len(tf_transform_output.transformed_feature_spec()),
    )
    log.info("training plan: %s", plan)
    train = distribution.shard_by_data(
        make_dataset(
            fn_args.train_files,
            tf_transform_output,
            global_batch,
            shuffle=True,
            seed=SEED,
            cache=plan.cache,
            stride=plan.stride,
            shuffle_buffer=plan.shuffle_buffer,
            batch_shuffle_buffer=plan.batch_shuffle_buffer,
        )
    )
    # Keras's validation: EvalArgs' steps (TFX's `eval_steps`), read once, so not cached; the
    # whole eval split would cost a large share of the Trainer at volume (bench_scale.py) for
    # figures only the epoch line shows (the Evaluator evaluates every eval example).
    evaluation = make_dataset(
        fn_args.eval_files, tf_transform_output, global_batch, shuffle=False, cache=False
    )
    if fn_args.eval_steps:
        evaluation = evaluation.take(fn_args.eval_steps)
    evaluation = distribution.shard_by_data(evaluation)
    with strategy.scope():
        model = build_model(categorical_cardinalities(vocabulary_sizes(tf_transform_output)), model_config)

    # A container resolver that found no pushed model hands over an empty folder.
    if custom.get(WARM_START_KEY) and fn_args.base_model and tf.io.gfile.exists(fn_args.base_model):
        log.info(warm_start(model, fn_args.base_model, tf_transform_output))
    steps_per_epoch = max(1, math.ceil(plan.steps / epochs))
    model.fit(
        train.repeat(),
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=evaluation,
        validation_freq=epochs,  # Once, at the end: the Evaluator does the real evaluation.
        callbacks=training_callbacks(fn_args),
        verbose=2,
    )
    # Every worker takes part in saving (variables are mirrored); only the chief's copy stays.
    path = distribution.export_path(fn_args.serving_model_dir, distribution.tf_config())
    export_model(model, tf_transform_output, path)
    if path != fn_args.serving_model_dir:
        shutil.rmtree(path, ignore_errors=True)
