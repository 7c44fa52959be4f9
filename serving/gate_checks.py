"""The serving gate's checks: replay examples through a loaded model's signatures, judge the answers.

Used by the ServingGate executor (in the pipeline, before every push) and by
`python -m pipeline verify` (any SavedModel with our signatures). The model is loaded as a
server loads it, `tf.saved_model.load`: signatures only, no Python model code. The replay
itself (callers, batchings) is `serving/signature_replay.py`; the verdict `serving/gate_verdict.py`.

Checks, each pass / fail / skipped, with its figures:
- signatures: `serving_default` (serialized examples) and `serving_raw` (one [None] input per
  raw serving feature) exist with the contracted inputs and output;
- output_shape: each signature answers (N, 1) for N examples; anything else ((N,), (N, N),
  (1, 1) ...) is what broadcasting or a dropped axis produces;
- finite: no NaN or Inf, and probabilities within [0, 1];
- parity: the raw signature agrees with the serialized one on every example (train/serve
  preprocessing skew otherwise);
- batch_invariance: every prediction is the same whether its example is sent alone, in
  batches of 2, 7 or 64, or in a shuffled batch of the largest size (an answer that depends
  on the rest of its batch: a (N,) meeting a (N, 1) inside the graph, batch statistics, order);
- not_degenerate: the predictions are not one value for every example;
- metrics: accuracy and AUC computed from the served predictions agree with the Evaluator's
  overall figures within a tolerance (skipped where there is no Evaluator or no label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import features
from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, RAW_SIGNATURE, SERVING_SIGNATURE
from serving.gate_defaults import DEFAULT_BATCH_TOLERANCE, DEFAULT_METRIC_TOLERANCE, DEFAULT_PARITY_TOLERANCE
from serving.gate_verdict import FAIL, PASS, SKIPPED, Check, Verdict, finite_or_none
from serving.replay_data import labels_of
from serving.replay_source import ReplaySource
from serving.request_checks import raw_input_specs
from serving.signature_replay import (
    BATCH_PROBE_SAMPLE,
    SignatureReplay,
    batch_plans,
    in_order,
    raw_caller,
    replay_batch_size,
    replay_passes,
    serialized_caller,
)

# The pass every other batching is compared with (`replay_passes`' tag for it).
IN_ORDER = "in order"

# The Evaluator's metric names (TFMA) and the figures the gate computes for them.
EVALUATOR_METRICS = {"binary_accuracy": "accuracy", "auc": "auc"}
CLASSIFICATION_THRESHOLD = 0.5


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC (Mann-Whitney, ties counted half); NaN when one class is absent."""
    from scipy.stats import rankdata  # scipy ships with the TFX stack (TFMA needs it).

    labels = np.asarray(labels).astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """Share of examples whose thresholded prediction (> 0.5, as TFMA and Keras) equals the label."""
    return float(np.mean((np.asarray(scores) > CLASSIFICATION_THRESHOLD) == np.asarray(labels).astype(bool)))


def _signature_check(model) -> tuple[Check, dict | None]:
    signatures = getattr(model, "signatures", {})
    problems = [
        f"no '{name}' signature" for name in (SERVING_SIGNATURE, RAW_SIGNATURE) if name not in signatures
    ]
    specs = None
    if SERVING_SIGNATURE in signatures:
        inputs = raw_input_specs(signatures[SERVING_SIGNATURE])
        if set(inputs) != {EXAMPLES_INPUT} or inputs[EXAMPLES_INPUT].dtype != tf.string:
            problems.append(f"'{SERVING_SIGNATURE}' takes {inputs}, not one string tensor '{EXAMPLES_INPUT}'")
    if RAW_SIGNATURE in signatures:
        specs = raw_input_specs(signatures[RAW_SIGNATURE])
        expected = set(features.serving_raw_features())
        if set(specs) != expected:
            problems.append(
                f"'{RAW_SIGNATURE}' inputs differ from the raw serving features: "
                f"missing {sorted(expected - set(specs))}, unexpected {sorted(set(specs) - expected)}"
            )
        not_vectors = sorted(name for name, spec in specs.items() if spec.shape.as_list() != [None])
        if not_vectors:
            problems.append(
                f"'{RAW_SIGNATURE}' inputs {not_vectors} are not declared with shape (None,): "
                "a [None, 1] input meeting a [None] one broadcasts"
            )
    for name in (SERVING_SIGNATURE, RAW_SIGNATURE):
        if name in signatures and PREDICTION_KEY not in signatures[name].structured_outputs:
            problems.append(f"'{name}' has no '{PREDICTION_KEY}' output")
    if problems:
        return Check("signatures", FAIL, "; ".join(problems)), None
    detail = (
        f"{SERVING_SIGNATURE}(examples) and {RAW_SIGNATURE}({len(specs)} raw features) -> {PREDICTION_KEY}"
    )
    return Check("signatures", PASS, detail, {"raw_inputs": sorted(specs)}), specs


def run_checks(
    model_dir: str,
    serialized: Sequence[bytes] | ReplaySource,
    evaluator_figures: dict[str, float] | None = None,
    metric_tolerance: float = DEFAULT_METRIC_TOLERANCE,
    parity_tolerance: float = DEFAULT_PARITY_TOLERANCE,
    batch_size: int | None = None,
    batch_tolerance: float = DEFAULT_BATCH_TOLERANCE,
) -> Verdict:
    """Load `model_dir` as a server would and run every check on the replay of `serialized`.

    Args:
        model_dir: a SavedModel folder.
        serialized: the tf.Examples to replay (the eval split in the pipeline), in memory or
            a `ReplaySource` that holds a block of them at a time (every example is replayed).
        evaluator_figures: the Evaluator's overall metrics by TFMA name (`auc`,
            `binary_accuracy`); None skips the metrics check.
        metric_tolerance: largest accepted |served - Evaluator| for accuracy and AUC.
        parity_tolerance: largest accepted |raw - serialized| for one prediction.
        batch_size: examples per signature call (the largest batch the gate sends); None:
            `replay_batch_size(len(serialized))`.
        batch_tolerance: largest accepted difference between two batchings of one example.

    Returns:
        The verdict; never raises for a faulty model (a model that does not load fails the
        `signatures` check).
    """
    tolerances = {"metric": metric_tolerance, "parity": parity_tolerance, "batch": batch_tolerance}
    verdict = Verdict(model=str(model_dir), examples=len(serialized), checks=[], tolerances=tolerances)
    try:
        model = tf.saved_model.load(str(model_dir))
    except (OSError, ValueError, tf.errors.OpError) as error:
        verdict.checks.append(Check("signatures", FAIL, f"the SavedModel does not load: {error}"))
        return verdict
    signature_check, specs = _signature_check(model)
    verdict.checks.append(signature_check)
    if specs is None:
        return verdict

    source = serialized if isinstance(serialized, ReplaySource) else ReplaySource.from_examples(serialized)
    batch_size = batch_size or replay_batch_size(source.count)
    callers = {
        SERVING_SIGNATURE: serialized_caller(model, source),
        RAW_SIGNATURE: raw_caller(model, specs, source),
    }
    source.keep("labels", labels_of)  # read while the replay holds each block
    plans = batch_plans(source.count, batch_size, block_sizes=source.sizes)
    # One pass over the blocks: while a block is held, its rows in order, then in each batching.
    passes = replay_passes(
        callers, {IN_ORDER: in_order(source.count, batch_size, source.sizes), **plans}, source.sizes
    )
    replayed = passes.pop(IN_ORDER)
    serialized_replay, raw_replay = replayed[SERVING_SIGNATURE], replayed[RAW_SIGNATURE]
    replays = [serialized_replay, raw_replay]

    verdict.checks.append(_shape_check(replays))
    served = [r for r in replays if r.predictions is not None]
    verdict.answers = {r.name: r.predictions for r in served}
    verdict.checks.append(_finite_check(served))
    clean = [r for r in served if np.isfinite(r.predictions).all()]
    verdict.checks.append(_parity_check(serialized_replay, raw_replay, parity_tolerance))
    verdict.checks.append(_batch_invariance_check(clean, plans, passes, batch_size, batch_tolerance))
    verdict.checks.append(_degenerate_check(clean))
    verdict.checks.append(_metrics_check(clean, replay_labels(source), evaluator_figures, metric_tolerance))
    return verdict


def replay_labels(source: ReplaySource) -> np.ndarray | None:
    """The big-tipper label of every example of `source`, block by block; None without tips."""
    source.keep("labels", labels_of)
    labels = source.kept("labels")
    return None if any(block is None for block in labels) else np.concatenate(labels)


def _shape_check(replays: list[SignatureReplay]) -> Check:
    problems, figures = [], {}
    for replay in replays:
        if replay.error:
            problems.append(f"{replay.name} failed: {replay.error}")
            figures[replay.name] = {"error": replay.error}
        elif replay.bad_shape is not None:
            why = (
                "only broadcasting makes an (N, N) answer"
                if replay.bad_shape == (replay.batch, replay.batch)
                else "the (N, 1) contract is broken"
            )
            problems.append(
                f"{replay.name} returned shape {replay.bad_shape} for {replay.batch} examples, "
                f"expected ({replay.batch}, 1): {why}"
            )
            figures[replay.name] = {"shape": list(replay.bad_shape), "batch": replay.batch}
        else:
            figures[replay.name] = {"shape": [len(replay.predictions), 1]}
    if problems:
        return Check("output_shape", FAIL, "; ".join(problems), figures)
    answered = (
        "both signatures answer" if len(replays) == 2 else f"{', '.join(r.name for r in replays)} answers"
    )
    return Check("output_shape", PASS, f"{answered} (N, 1)", figures)


def _finite_check(served: list[SignatureReplay]) -> Check:
    if not served:
        return Check("finite", SKIPPED, "no signature produced predictions of shape (N, 1)")
    problems, figures = [], {}
    for replay in served:
        values = replay.predictions
        nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
        finite = values[np.isfinite(values)]
        outside = int(((finite < 0) | (finite > 1)).sum())
        figures[replay.name] = {"nan": nan, "inf": inf, "outside_0_1": outside}
        if nan or inf or outside:
            problems.append(
                f"{replay.name}: {nan} NaN, {inf} Inf, {outside} outside [0, 1] of {len(values)} predictions"
            )
    if problems:
        return Check("finite", FAIL, "; ".join(problems), figures)
    return Check("finite", PASS, "every prediction is a finite probability", figures)


def _parity_check(serialized: SignatureReplay, raw: SignatureReplay, tolerance: float) -> Check:
    if serialized.predictions is None or raw.predictions is None:
        return Check("parity", SKIPPED, "needs (N, 1) predictions from both signatures")
    difference = np.abs(serialized.predictions - raw.predictions)
    if np.isnan(difference).any():
        nan_rows = int(np.isnan(difference).sum())
        difference = np.where(np.isnan(difference), np.inf, difference)
    else:
        nan_rows = 0
    largest = float(difference.max())
    differing = int((difference > tolerance).sum())
    worst = int(difference.argmax())
    figures = {
        "max_abs_difference": finite_or_none(largest),
        "examples_differing": differing,
        "worst_example": worst,
        "worst_pair": [
            finite_or_none(serialized.predictions[worst]),
            finite_or_none(raw.predictions[worst]),
        ],
    }
    if differing:
        return Check(
            "parity",
            FAIL,
            f"{differing} of {len(difference)} examples differ by more than {tolerance:g} between "
            f"{RAW_SIGNATURE} and {SERVING_SIGNATURE} (largest {largest:.4g}, example {worst}: "
            f"{serialized.predictions[worst]:.4f} vs {raw.predictions[worst]:.4f}"
            + (f"; {nan_rows} NaN in one only" if nan_rows else "")
            + "): train/serve preprocessing skew",
            figures,
        )
    return Check(
        "parity", PASS, f"raw and serialized predictions agree (largest difference {largest:.2g})", figures
    )


def _batch_invariance_check(
    clean: list[SignatureReplay],
    plans: dict[str, list[np.ndarray]],
    passes: dict[str, dict[str, SignatureReplay]],
    batch_size: int,
    tolerance: float,
) -> Check:
    """Each signature's answers under every batching in `plans` vs its in-order replay.

    `passes`: plan -> signature -> its replay of that plan's batches (`replay_passes`).
    """
    if not clean:
        return Check("batch_invariance", SKIPPED, "no finite (N, 1) predictions to compare")
    problems, figures = [], {"batchings": list(plans), "sample": BATCH_PROBE_SAMPLE}
    # Its share of the gate: the seconds the batchings' calls took.
    none = {r.name: SignatureReplay(r.name, predictions=np.zeros(0)) for r in clean}  # a plan without batches
    passes = {plan: passes.get(plan, none) for plan in plans}
    figures["seconds"] = round(sum(passes[plan][r.name].seconds for plan in plans for r in clean), 3)
    largest = 0.0
    per_plan = {r.name: {} for r in clean}
    disagree = {r.name: [] for r in clean}
    worst = dict.fromkeys(per_plan)  # name -> (difference, plan, example, value)
    for plan, batches in plans.items():
        replayed = passes[plan]
        rows = np.concatenate(batches) if batches else np.zeros(0, dtype=int)
        for reference in clean:
            replay = replayed[reference.name]
            if replay.predictions is None:
                problem = replay.error or f"shape {replay.bad_shape} for a batch of {replay.batch}"
                per_plan[reference.name][plan] = {"error": problem}
                problems.append(f"{reference.name} in batches of {plan}: {problem}")
                continue
            difference = np.abs(replay.predictions - reference.predictions[rows])
            difference = np.where(np.isnan(difference), np.inf, difference)
            at = int(difference.argmax())
            per_plan[reference.name][plan] = {
                "examples": len(rows),
                "max_abs_difference": finite_or_none(float(difference[at])),
                "worst_example": int(rows[at]),
            }
            if difference[at] > tolerance:
                disagree[reference.name].append(plan)
            largest = max(largest, float(difference[at]))
            if worst[reference.name] is None or difference[at] > worst[reference.name][0]:
                worst[reference.name] = (
                    float(difference[at]),
                    plan,
                    int(rows[at]),
                    float(replay.predictions[at]),
                )
    for reference in clean:
        figures[reference.name] = per_plan[reference.name]
        if worst[reference.name] and disagree[reference.name]:
            gap, plan, example, value = worst[reference.name]
            expected = reference.predictions[example]
            problems.append(
                f"{reference.name}: example {example} scored {expected:.4f} in order in batches of "
                f"{batch_size} but {value:.4f} in batches of {plan} (largest difference {gap:.4g}); "
                f"batchings that disagree: {', '.join(disagree[reference.name])}"
            )
    figures["max_abs_difference"] = finite_or_none(largest)
    if problems:
        return Check(
            "batch_invariance",
            FAIL,
            "; ".join(problems) + f" (tolerance {tolerance:g}): the answer depends on the rest of its batch",
            figures,
        )
    return Check(
        "batch_invariance",
        PASS,
        f"same answers alone and in batches of {', '.join(plans)} (largest difference {largest:.2g})",
        figures,
    )


def _degenerate_check(clean: list[SignatureReplay]) -> Check:
    if not clean:
        return Check("not_degenerate", SKIPPED, "no finite (N, 1) predictions to judge")
    problems, figures = [], {}
    for replay in clean:
        values = replay.predictions
        distinct = int(np.unique(values).size)
        spread = float(values.std())
        figures[replay.name] = {"distinct_values": distinct, "std": spread, "mean": float(values.mean())}
        if distinct == 1 or spread < 1e-6:
            problems.append(f"{replay.name} predicts {values[0]:.4f} for every one of {len(values)} examples")
    if problems:
        return Check("not_degenerate", FAIL, "; ".join(problems), figures)
    return Check("not_degenerate", PASS, "predictions vary across examples", figures)


def _metrics_check(
    clean: list[SignatureReplay],
    labels: np.ndarray | None,
    evaluator: dict[str, float] | None,
    tolerance: float,
) -> Check:
    if not clean:
        return Check("metrics", SKIPPED, "no finite (N, 1) predictions to score")
    if labels is None:
        return Check("metrics", SKIPPED, "the replay data has no label source (tips)")
    figures = {"positives": int(labels.sum())}
    for replay in clean:
        figures[replay.name] = {
            "accuracy": accuracy(labels, replay.predictions),
            "auc": finite_or_none(auc(labels, replay.predictions)),
        }
    served = "; ".join(
        f"{r.name} accuracy {figures[r.name]['accuracy']:.4f}, AUC {figures[r.name]['auc'] or math.nan:.4f}"
        for r in clean
    )
    if not evaluator:
        return Check("metrics", SKIPPED, f"no Evaluator figures to compare with ({served})", figures)
    figures["evaluator"] = {ours: evaluator.get(theirs) for theirs, ours in EVALUATOR_METRICS.items()}
    problems = []
    for theirs, ours in EVALUATOR_METRICS.items():
        reference = evaluator.get(theirs)
        if reference is None:
            problems.append(f"the Evaluator reported no {theirs}")
            continue
        for replay in clean:
            value = figures[replay.name][ours]
            if value is None or abs(value - reference) > tolerance:
                problems.append(
                    f"{replay.name} {ours} {value if value is None else round(value, 4)} vs Evaluator "
                    f"{reference:.4f} (tolerance {tolerance:g})"
                )
    if problems:
        return Check(
            "metrics", FAIL, "served figures disagree with the Evaluator: " + "; ".join(problems), figures
        )
    return Check(
        "metrics",
        PASS,
        f"{served}; Evaluator accuracy {figures['evaluator']['accuracy']:.4f}, "
        f"AUC {figures['evaluator']['auc']:.4f} (tolerance {tolerance:g})",
        figures,
    )
