"""Replaying examples through a model's signatures in batches: the gates' way of calling a model.

The serving gate (`serving/gate_checks.py`) and the edge gate (`serving/edge_gate_checks.py`)
send the same examples through a signature in order, then again under other batchings
(`batch_plans`), and compare the answers. A caller is a pair (signature, inputs for rows):
`serialized_caller` for `serving_default`, `raw_caller` for `serving_raw`; the edge gate
builds its own for the TFLite interpreter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, RAW_SIGNATURE, SERVING_SIGNATURE
from serving.request_checks import check_raw_request

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
    """What one signature answered over the replay: predictions (N,) or why there are none."""

    name: str
    predictions: np.ndarray | None = None
    bad_shape: tuple | None = None
    batch: int | None = None
    error: str | None = None


def _replay(name: str, call, inputs_by_batch) -> SignatureReplay:
    """Call one signature on each batch; stop at the first error or output not of shape (n, 1)."""
    outputs = []
    for size, inputs in inputs_by_batch:
        try:
            result = call(**inputs)
        except (tf.errors.OpError, TypeError, ValueError, RuntimeError) as error:
            message = getattr(error, "message", None) or str(error)
            return SignatureReplay(name, error=f"{type(error).__name__}: {message.splitlines()[0]}")
        if PREDICTION_KEY not in result:
            return SignatureReplay(name, error=f"no '{PREDICTION_KEY}' output (outputs: {sorted(result)})")
        value = np.array(result[PREDICTION_KEY])  # a copy: TFLite reuses its output buffers
        if value.shape != (size, 1):
            return SignatureReplay(name, bad_shape=tuple(value.shape), batch=size)
        outputs.append(value[:, 0])
    return SignatureReplay(name, predictions=np.concatenate(outputs).astype(np.float64))


def replay_rows(name: str, call, inputs_of, batches: list[np.ndarray]) -> SignatureReplay:
    """Replay `call` over batches of row indices; `inputs_of(rows)` builds one call's inputs."""
    return _replay(name, call, ((len(rows), inputs_of(rows)) for rows in batches))


def chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    """`rows` cut into consecutive batches of `size` (the last one shorter)."""
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def batch_plans(count: int, batch_size: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The batchings the gate compares with the in-order replay in batches of `batch_size`.

    Batches of 1, 2 and 7 over a seeded sample of `BATCH_PROBE_SAMPLE` examples; batches of
    64 over the first `MEDIUM_BATCH_SAMPLE`; every example again in a seeded shuffled order,
    `batch_size` a call.
    """
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(count, size=min(BATCH_PROBE_SAMPLE, count), replace=False))
    plans = {str(size): chunks(sample, size) for size in SMALL_BATCH_SIZES}
    plans[str(MEDIUM_BATCH_SIZE)] = chunks(np.arange(min(count, MEDIUM_BATCH_SAMPLE)), MEDIUM_BATCH_SIZE)
    plans[f"{batch_size} shuffled"] = chunks(rng.permutation(count), batch_size)
    return plans


def replay_batch_size(count: int) -> int:
    """Examples per call of the in-order and shuffled replays of `count` examples."""
    return int(min(MAX_REPLAY_BATCH_SIZE, max(REPLAY_BATCH_SIZE, -(-count // REPLAY_CALLS))))


def serialized_caller(model, examples: np.ndarray):
    """(signature, inputs for rows) replaying serialized `examples` through `serving_default`."""
    return (
        model.signatures[SERVING_SIGNATURE],
        lambda rows: {EXAMPLES_INPUT: tf.constant(list(examples[rows]))},
    )


def raw_caller(model, specs: dict, raw: dict[str, np.ndarray]):
    """(signature, inputs for rows) replaying raw-feature arrays through `serving_raw`.

    Each batch is checked as it is built: no tensor copy of the whole eval split.
    """
    return (
        model.signatures[RAW_SIGNATURE],
        lambda rows: check_raw_request(specs, {k: v[rows] for k, v in raw.items()}),
    )
