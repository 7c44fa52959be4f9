"""The edge gate's checks: replay examples through a TFLite model's `serving_raw` signature, judge it.

Used by the EdgeExport executor (in the pipeline, before the edge model may be pushed) and by
`python -m pipeline verify --model X.tflite`. The model runs in the TensorFlow Lite
interpreter with builtin kernels only (the standalone edge runtime runs the same kernels;
the tests run the pushed model there too).

Checks, each pass / fail / skipped, with its figures:
- builtin_ops: the flatbuffer has a `serving_raw` signature taking one [N] input per raw
  serving feature, answering `probabilities`, and runs builtin ops only (no Flex or custom op);
- output_shape, finite, batch_invariance, not_degenerate: as the serving gate's
  (`serving.gate_checks`), over the same batchings;
- agreement: against the SavedModel's `serving_raw` answers on the same examples, the
  per-example differences (largest, mean) and accuracy within `accuracy_tolerance`, AUC
  within `auc_tolerance` of the SavedModel's (skipped without a SavedModel or labels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import features
from models.edge import builtin_ops
from models.signatures import PREDICTION_KEY, RAW_SIGNATURE
from serving.gate_checks import (
    IN_ORDER,
    _batch_invariance_check,
    _degenerate_check,
    _finite_check,
    _shape_check,
    accuracy,
    auc,
    replay_labels,
)
from serving.gate_defaults import DEFAULT_BATCH_TOLERANCE
from serving.gate_defaults import DEFAULT_EDGE_ACCURACY_TOLERANCE as DEFAULT_ACCURACY_TOLERANCE
from serving.gate_defaults import DEFAULT_EDGE_AUC_TOLERANCE as DEFAULT_AUC_TOLERANCE
from serving.gate_verdict import FAIL, PASS, SKIPPED, Check, Verdict, finite_or_none
from serving.replay_data import labels_of
from serving.replay_source import ReplaySource
from serving.signature_replay import (
    SignatureReplay,
    batch_plans,
    chunks,
    in_order,
    raw_inputs,
    replay_batch_size,
    replay_passes,
)

EDGE_REPLAY = f"edge {RAW_SIGNATURE}"
# The interpreter's threads: its default is one, which leaves the other core idle while the
# replay waits on it (benchmarks/README.md, "What makes it fast"); the answers are the same to
# the last bit: int8 kernels do integer arithmetic whatever the split of the work.
INTERPRETER_THREADS = min(4, os.cpu_count() or 1)


def edge_input_specs(runner) -> dict[str, tf.TensorSpec]:
    """Feature name -> [None] TensorSpec of a TFLite signature runner's inputs."""
    return {
        name: tf.TensorSpec([None], tf.as_dtype(detail["dtype"]), name=name)
        for name, detail in runner.get_input_details().items()
    }


def _structure_check(flatbuffer: bytes) -> tuple[Check, object | None]:
    """builtin_ops: the signature, its inputs and output, and no op outside TFLite's builtins."""
    try:
        interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=INTERPRETER_THREADS)
        ops = builtin_ops(flatbuffer)
    except (ValueError, RuntimeError) as error:
        return Check("builtin_ops", FAIL, f"the TFLite model does not load: {error}"), None
    problems = []
    signatures = interpreter.get_signature_list()
    if RAW_SIGNATURE not in signatures:
        return Check(
            "builtin_ops", FAIL, f"no '{RAW_SIGNATURE}' signature (it has {sorted(signatures)})"
        ), None
    runner = interpreter.get_signature_runner(RAW_SIGNATURE)
    inputs = runner.get_input_details()
    expected = set(features.serving_raw_features())
    if set(inputs) != expected:
        problems.append(
            f"'{RAW_SIGNATURE}' inputs differ from the raw serving features: "
            f"missing {sorted(expected - set(inputs))}, unexpected {sorted(set(inputs) - expected)}"
        )
    not_vectors = sorted(n for n, d in inputs.items() if list(d["shape_signature"]) != [-1])
    if not_vectors:
        problems.append(f"inputs {not_vectors} are not declared with shape (N,)")
    if PREDICTION_KEY not in runner.get_output_details():
        problems.append(f"no '{PREDICTION_KEY}' output")
    if "CUSTOM" in ops:
        problems.append("it runs custom (Flex) ops, which the standalone edge runtime lacks")
    figures = {"ops": sorted(ops), "bytes": len(flatbuffer), "raw_inputs": sorted(inputs)}
    if problems:
        return Check("builtin_ops", FAIL, "; ".join(problems), figures), None
    detail = f"{RAW_SIGNATURE}({len(inputs)} raw features) -> {PREDICTION_KEY}; {len(ops)} builtin op types"
    return Check("builtin_ops", PASS, detail, figures), runner


def conversion_refusal(
    name: str,
    examples: int,
    error: Exception,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
) -> Verdict:
    """The verdict on a model that did not convert: builtin_ops fails with the converter's words."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = " ".join(lines[:3])[:600] or type(error).__name__
    return Verdict(
        name,
        examples,
        [Check("builtin_ops", FAIL, f"it does not convert to TFLite with builtin ops only: {detail}")],
        {"accuracy": accuracy_tolerance, "auc": auc_tolerance},
        gate="Edge gate",
    )


def saved_model_answers(
    model_dir: str | os.PathLike, raw: dict[str, np.ndarray], signature=None
) -> np.ndarray:
    """The SavedModel's `serving_raw` probabilities (N,) for dense raw features.

    `signature`: the model's `serving_raw`, already loaded (a caller answering block by block
    loads the model once).
    """
    signature = signature or tf.saved_model.load(str(model_dir)).signatures[RAW_SIGNATURE]
    count = len(next(iter(raw.values())))
    out = []
    for rows in chunks(np.arange(count), replay_batch_size(count)):
        answer = signature(**{k: tf.constant(v[rows]) for k, v in raw.items()})[PREDICTION_KEY].numpy()
        if answer.shape != (len(rows), 1):
            raise ValueError(
                f"the SavedModel {model_dir} answered shape {answer.shape} for {len(rows)} examples, "
                f"expected ({len(rows)}, 1)"
            )
        out.append(answer[:, 0])
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def run_edge_checks(
    flatbuffer: bytes,
    serialized: Sequence[bytes] | ReplaySource,
    reference: str | os.PathLike | np.ndarray | None = None,
    accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
    auc_tolerance: float = DEFAULT_AUC_TOLERANCE,
    batch_size: int | None = None,
    batch_tolerance: float = DEFAULT_BATCH_TOLERANCE,
    name: str = "the edge model",
) -> Verdict:
    """Run every edge check on the replay of `serialized` through the TFLite model `flatbuffer`.

    Args:
        flatbuffer: the TFLite model.
        serialized: the tf.Examples to replay (the eval split in the pipeline).
        reference: the SavedModel it was converted from (a folder), or that model's
            `serving_raw` probabilities on `serialized`; None skips the agreement check.
        accuracy_tolerance: largest accepted |edge - SavedModel| accuracy.
        auc_tolerance: largest accepted |edge - SavedModel| AUC.
        batch_size: examples per call in the in-order replay (None: the serving gate's
            `replay_batch_size`).
        batch_tolerance: largest accepted difference between two batchings of one example.
        name: what the verdict calls the model (its path).

    Returns:
        The verdict; never raises for a faulty model.
    """
    tolerances = {
        "accuracy": accuracy_tolerance,
        "auc": auc_tolerance,
        "batch": batch_tolerance,
    }
    verdict = Verdict(name, len(serialized), [], tolerances, gate="Edge gate")
    structure, runner = _structure_check(flatbuffer)
    verdict.checks.append(structure)
    if runner is None:
        return verdict
    source = serialized if isinstance(serialized, ReplaySource) else ReplaySource.from_examples(serialized)
    specs = edge_input_specs(runner)
    batch_size = batch_size or replay_batch_size(source.count)
    inputs_of = raw_inputs(source, specs)
    caller = (lambda **inputs: runner(**inputs), inputs_of)
    source.keep("labels", labels_of)  # read while the replay holds each block
    plans = batch_plans(source.count, batch_size, block_sizes=source.sizes)
    # One pass over the blocks: while a block is held, its rows in order, then in each batching.
    passes = replay_passes(
        {EDGE_REPLAY: caller},
        {IN_ORDER: in_order(source.count, batch_size, source.sizes), **plans},
        source.sizes,
    )
    replay = passes.pop(IN_ORDER)[EDGE_REPLAY]
    verdict.checks.append(_shape_check([replay]))
    if replay.error and replay.error.startswith("the replay cannot build raw requests"):
        return verdict
    served = [replay] if replay.predictions is not None else []
    verdict.checks.append(_finite_check(served))
    clean = [r for r in served if np.isfinite(r.predictions).all()]
    verdict.checks.append(_batch_invariance_check(clean, plans, passes, batch_size, batch_tolerance))
    verdict.checks.append(_degenerate_check(clean))
    if isinstance(reference, str | os.PathLike):
        try:
            signature = tf.saved_model.load(str(reference)).signatures[RAW_SIGNATURE]
            reference = np.concatenate(
                [
                    saved_model_answers(reference, inputs_of(np.arange(start, start + size)), signature)
                    for start, size in zip(source.starts, source.sizes)
                ]
            )
        except (ValueError, tf.errors.OpError) as error:
            reason = str(error).strip().splitlines()[0]
            verdict.checks.append(
                Check("agreement", FAIL, f"no SavedModel answers to compare with: {reason}")
            )
            return verdict
    verdict.checks.append(
        _agreement_check(clean, reference, replay_labels(source), accuracy_tolerance, auc_tolerance)
    )
    return verdict


def _agreement_check(
    clean: list[SignatureReplay],
    reference: np.ndarray | None,
    labels: np.ndarray | None,
    accuracy_tolerance: float,
    auc_tolerance: float,
) -> Check:
    if not clean:
        return Check("agreement", SKIPPED, "no finite (N, 1) predictions to compare")
    edge = clean[0].predictions
    figures = {}
    if labels is not None:
        figures["edge"] = {"accuracy": accuracy(labels, edge), "auc": finite_or_none(auc(labels, edge))}
    own = (
        f"accuracy {figures['edge']['accuracy']:.4f}, AUC {figures['edge']['auc'] or math.nan:.4f}"
        if labels is not None
        else "no labels"
    )
    if reference is None:
        return Check("agreement", SKIPPED, f"no SavedModel to compare with (edge model: {own})", figures)
    reference = np.asarray(reference, dtype=np.float64)
    if reference.shape != edge.shape:
        return Check(
            "agreement",
            FAIL,
            f"the SavedModel answered {reference.shape[0]} examples, the edge model {edge.shape[0]}",
            figures,
        )
    difference = np.abs(edge - reference)
    worst = int(difference.argmax())
    figures.update(
        {
            "max_abs_difference": float(difference[worst]),
            "mean_abs_difference": float(difference.mean()),
            "worst_example": worst,
            "worst_pair": [float(reference[worst]), float(edge[worst])],
        }
    )
    differences = (
        f"per-example difference largest {difference[worst]:.4f} (example {worst}: "
        f"{reference[worst]:.4f} vs {edge[worst]:.4f}), mean {difference.mean():.5f}"
    )
    if labels is None:
        return Check("agreement", SKIPPED, f"no labels to score ({differences})", figures)
    figures["saved_model"] = {
        "accuracy": accuracy(labels, reference),
        "auc": finite_or_none(auc(labels, reference)),
    }
    problems = []
    for metric, tolerance in (("accuracy", accuracy_tolerance), ("auc", auc_tolerance)):
        ours, theirs = figures["edge"][metric], figures["saved_model"][metric]
        if ours is None or theirs is None or abs(ours - theirs) > tolerance:
            shown = [f"{v:.4f}" if v is not None else "undefined" for v in (ours, theirs)]
            problems.append(f"{metric} {shown[0]} vs the SavedModel's {shown[1]} (tolerance {tolerance:g})")
    saved = figures["saved_model"]
    summary = (
        f"edge {own}; SavedModel accuracy {saved['accuracy']:.4f}, AUC {saved['auc'] or math.nan:.4f}; "
        f"{differences}"
    )
    if problems:
        return Check("agreement", FAIL, "; ".join(problems) + f" ({differences})", figures)
    return Check("agreement", PASS, summary, figures)
