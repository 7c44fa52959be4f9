"""Replaying examples through a model's signatures in batches: the gates' way of calling a model.

The serving gate (`serving/gate_checks.py`) and the edge gate (`serving/edge_gate_checks.py`)
send the same examples through a signature in order, then again under other batchings
(`batch_plans`), and compare the answers. A caller is a pair (signature, inputs for rows):
`serialized_caller` for `serving_default`, `raw_caller` for `serving_raw`; the edge gate
builds its own for the TFLite interpreter.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, RAW_SIGNATURE, SERVING_SIGNATURE
from serving.replay_data import ReplayDataError, examples_to_raw
from serving.replay_source import ReplaySource
from serving.request_checks import ServingInputError, check_raw_request

REPLAY_BATCH_SIZE = 1024
# At volume the replay's calls, not its examples, are the gate's cost, and fewer, larger
# batches give the same answers (the batching check holds them to its tolerance): see
# `benchmarks/bench_gate.py --pass-batch-sizes`. So a pass takes at most this many calls, in
# batches of up to MAX_REPLAY_BATCH_SIZE; up to 65,536 examples the batch stays
# REPLAY_BATCH_SIZE.
REPLAY_CALLS = 64
MAX_REPLAY_BATCH_SIZE = 16_384
# Small batchings (1, 2, 7) run on a seeded sample of this many examples: each is one call per
# 1, 2 or 7 examples, and this class of bug moves every example of a mixed batch, so a sample
# shows it (every example is still replayed in a shuffled full batch).
BATCH_PROBE_SAMPLE = 64
SMALL_BATCH_SIZES = (1, 2, 7)
MEDIUM_BATCH_SIZE = 64
# Batches of 64 run on the first this many examples (all of them up to 4,096): one call per
# 64, which at 100x the sample (500,000 eval trips) would be 7,800 calls per signature for
# what 64 calls already show.
MEDIUM_BATCH_SAMPLE = 4096


@dataclasses.dataclass
class SignatureReplay:
    """What one signature answered over the replay: predictions (N,) or why there are none.

    `seconds`: time spent building its inputs and calling it in this replay (a block loaded
    by its batches counts here).
    """

    name: str
    predictions: np.ndarray | None = None
    bad_shape: tuple | None = None
    batch: int | None = None
    error: str | None = None
    seconds: float = 0.0


def _answer(name: str, call, inputs_of, rows) -> np.ndarray | SignatureReplay:
    """One call's predictions (n,), or the `SignatureReplay` saying why there are none."""
    try:
        inputs = inputs_of(rows)
    except (ReplayDataError, ServingInputError) as error:
        return SignatureReplay(name, error=f"the replay cannot build raw requests: {error}")
    try:
        result = call(**inputs)
    except (tf.errors.OpError, TypeError, ValueError, RuntimeError) as error:
        message = getattr(error, "message", None) or str(error)
        return SignatureReplay(name, error=f"{type(error).__name__}: {message.splitlines()[0]}")
    if PREDICTION_KEY not in result:
        return SignatureReplay(name, error=f"no '{PREDICTION_KEY}' output (outputs: {sorted(result)})")
    value = np.array(result[PREDICTION_KEY])  # a copy: TFLite reuses its output buffers
    if value.shape != (len(rows), 1):
        return SignatureReplay(name, bad_shape=tuple(value.shape), batch=len(rows))
    return value[:, 0]


def replay_passes(
    callers: dict, passes: dict[str, list[np.ndarray]], block_sizes: list[int] | None = None
) -> dict[str, dict[str, SignatureReplay]]:
    """Call every signature in `callers` on every batch of every pass, in one pass over the blocks.

    `callers`: name -> (call, inputs for rows); `passes`: pass name -> its batches of rows,
    each batch inside one block of `block_sizes` (`in_order`, `batch_plans`). The batches are
    called block by block (within a block, the passes in the order given, each pass's
    batches in its own order), and every signature takes a batch before the next one is
    built: a `ReplaySource` loads each block once for all of it. Returns pass -> signature ->
    what it answered, its predictions in the pass's own batch order. A signature stops within
    a pass at its first error or output not of shape (n, 1); the other passes, and the other
    signatures, go on.
    """
    outputs = {tag: {name: [None] * len(batches) for name in callers} for tag, batches in passes.items()}
    seconds = {tag: dict.fromkeys(callers, 0.0) for tag in passes}
    failed: dict[str, dict[str, SignatureReplay]] = {tag: {} for tag in passes}
    for tag, index in _block_order(passes, block_sizes):
        rows = passes[tag][index]
        for name, (call, inputs_of) in callers.items():
            if name in failed[tag]:
                continue
            started = time.perf_counter()
            answer = _answer(name, call, inputs_of, rows)
            seconds[tag][name] += time.perf_counter() - started
            if isinstance(answer, SignatureReplay):
                failed[tag][name] = answer
            else:
                outputs[tag][name][index] = answer
    replays: dict[str, dict[str, SignatureReplay]] = {}
    for tag in passes:
        replays[tag] = {}
        for name in callers:
            answers = outputs[tag][name]
            replay = failed[tag].get(name) or SignatureReplay(
                name, predictions=np.concatenate(answers).astype(np.float64) if answers else np.zeros(0)
            )
            replay.seconds = seconds[tag][name]
            replays[tag][name] = replay
    return replays


def _block_order(passes: dict[str, list[np.ndarray]], block_sizes: list[int] | None) -> list[tuple[str, int]]:
    """(pass, batch index) of every batch, ordered by the block its rows lie in (stable)."""
    tagged = [(tag, index) for tag, batches in passes.items() for index in range(len(batches))]
    if not block_sizes or len(block_sizes) == 1:
        return tagged
    bounds = np.cumsum(block_sizes)

    def block(item):
        rows = passes[item[0]][item[1]]
        return int(np.searchsorted(bounds, rows[0], side="right")) if len(rows) else 0

    return sorted(tagged, key=block)


def replay_together(callers: dict, batches) -> dict[str, SignatureReplay]:
    """Call every signature in `callers` on each batch of rows, batch by batch (one pass)."""
    return replay_passes(callers, {"": list(batches)})[""]


def replay_rows(name: str, call, inputs_of, batches: list[np.ndarray]) -> SignatureReplay:
    """Replay `call` over batches of row indices; `inputs_of(rows)` builds one call's inputs."""
    return replay_together({name: (call, inputs_of)}, batches)[name]


def chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """`rows` cut into consecutive batches of `size` (the last one shorter)."""
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def _within_blocks(rows: np.ndarray, size: int, block_sizes: list[int] | None) -> list[np.ndarray]:
    """`chunks(rows, size)`, cut also where `rows` pass into another block (order kept)."""
    if not block_sizes or len(block_sizes) == 1:
        return chunks(rows, size)
    bounds = np.cumsum(block_sizes)
    block = np.searchsorted(bounds, rows, side="right")
    cuts = np.flatnonzero(np.diff(block)) + 1
    return [batch for run in np.split(rows, cuts) for batch in chunks(run, size)]


def in_order(count: int, batch_size: int, block_sizes: list[int] | None = None) -> list[np.ndarray]:
    """Every row in order, `batch_size` a call, no batch across a block."""
    return _within_blocks(np.arange(count), batch_size, block_sizes)


def batch_plans(
    count: int, batch_size: int, seed: int = 0, block_sizes: list[int] | None = None
) -> dict[str, list[np.ndarray]]:
    """The batchings the gate compares with the in-order replay in batches of `batch_size`.

    Batches of 1, 2 and 7 over a seeded sample of `BATCH_PROBE_SAMPLE` examples of one block;
    batches of 64 over the first `MEDIUM_BATCH_SAMPLE`; every example again in a seeded
    shuffled order, `batch_size` a call. With `block_sizes` (a `ReplaySource`'s), no batch
    spans two blocks: the examples are shuffled within each block, the blocks taken in a
    seeded order, so a pass loads each block once; one block is a shuffle of every example.
    """
    rng = np.random.default_rng(seed)
    sizes = list(block_sizes) if block_sizes else [count]
    starts = np.cumsum([0, *sizes])[:-1]
    probed = int(rng.integers(len(sizes))) if len(sizes) > 1 else 0
    start, size = int(starts[probed]), sizes[probed]
    sample = start + np.sort(rng.choice(size, size=min(BATCH_PROBE_SAMPLE, size), replace=False))
    plans = {str(small): chunks(sample, small) for small in SMALL_BATCH_SIZES}
    plans[str(MEDIUM_BATCH_SIZE)] = _within_blocks(
        np.arange(min(count, MEDIUM_BATCH_SAMPLE)), MEDIUM_BATCH_SIZE, sizes
    )
    if len(sizes) == 1:
        shuffled = chunks(rng.permutation(count), batch_size)
    else:
        shuffled = [
            batch
            for block in rng.permutation(len(sizes))
            for batch in chunks(starts[block] + rng.permutation(sizes[block]), batch_size)
        ]
    plans[f"{batch_size} shuffled"] = shuffled
    return plans


def replay_batch_size(count: int) -> int:
    """Examples per call of the in-order and shuffled replays of `count` examples."""
    return int(min(MAX_REPLAY_BATCH_SIZE, max(REPLAY_BATCH_SIZE, -(-count // REPLAY_CALLS))))


def serialized_caller(model, examples):
    """(signature, inputs for rows) replaying serialized `examples` through `serving_default`.

    `examples`: an array of serialized tf.Examples, or a `ReplaySource` (a block at a time).
    """
    if isinstance(examples, ReplaySource):
        source = examples

        def inputs_of(rows):
            block, local = source.local(rows)
            return {EXAMPLES_INPUT: tf.constant(list(source.examples(block)[local]))}

        return model.signatures[SERVING_SIGNATURE], inputs_of
    return (
        model.signatures[SERVING_SIGNATURE],
        lambda rows: {EXAMPLES_INPUT: tf.constant(list(examples[rows]))},
    )


def raw_inputs(source: ReplaySource, specs: dict):
    """Inputs for rows: the dense raw features of `specs`, built a block at a time."""

    def inputs_of(rows):
        block, local = source.local(rows)
        raw = source.derived(
            block, ("raw", tuple(sorted(specs))), lambda examples: examples_to_raw(examples, specs)
        )
        return {k: v[local] for k, v in raw.items()}

    return inputs_of


def raw_caller(model, specs: dict, raw):
    """(signature, inputs for rows) replaying raw-feature arrays through `serving_raw`.

    `raw`: dense arrays of every example, or a `ReplaySource` whose blocks are turned into
    them one at a time. Each batch is checked as it is built: no tensor copy of the whole split.
    """
    if isinstance(raw, ReplaySource):
        inputs_of = raw_inputs(raw, specs)
        return model.signatures[RAW_SIGNATURE], lambda rows: check_raw_request(specs, inputs_of(rows))
    return (
        model.signatures[RAW_SIGNATURE],
        lambda rows: check_raw_request(specs, {k: v[rows] for k, v in raw.items()}),
    )
