"""The serving gate's checks: replay examples through a loaded model's signatures, judge the answers.

Used by the ServingGate executor (in the pipeline, before every push) and by
`python -m pipeline verify` (any SavedModel with our signatures). The model is loaded as a
server loads it, `tf.saved_model.load`: signatures only, no Python model code.

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

import dataclasses
import json
import math
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from models import features
from models.signatures import EXAMPLES_INPUT, PREDICTION_KEY, RAW_SIGNATURE, SERVING_SIGNATURE
from serving.requests import (
    ReplayDataError,
    ServingInputError,
    check_raw_request,
    examples_to_raw,
    labels_of,
    raw_input_specs,
)

PASS, FAIL, SKIPPED = "pass", "fail", "skipped"
DEFAULT_METRIC_TOLERANCE = 0.005
# Both signatures run the same float32 graph on the same values: any real skew is far larger.
DEFAULT_PARITY_TOLERANCE = 1e-5
REPLAY_BATCH_SIZE = 1024
# At volume the replay's calls, not its examples, were the gate's cost: one pass over the
# 100x eval split (500,000 trips) takes serving_default 4.0 s and serving_raw 4.6 s in
# batches of 1,024, 2.4 s and 2.3 s in 64 batches of 7,813 (`bench_gate.py
# --pass-batch-sizes`; the same answers: the batching check holds them to 1e-5). So a pass
# takes at most this many calls, in batches of up to MAX_REPLAY_BATCH_SIZE; up to 65,536
# examples the batch stays REPLAY_BATCH_SIZE.
REPLAY_CALLS = 64
MAX_REPLAY_BATCH_SIZE = 16_384
# The same example scored in two batchings by the same float32 graph: measured differences on
# our model are 0 or within a few float32 ulps of a probability (< 1e-6); a batch-dependence
# bug moves predictions by 1e-2 and more.
DEFAULT_BATCH_TOLERANCE = 1e-5
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
# The Evaluator's metric names (TFMA) and the figures the gate computes for them.
EVALUATOR_METRICS = {"binary_accuracy": "accuracy", "auc": "auc"}
CLASSIFICATION_THRESHOLD = 0.5


@dataclasses.dataclass
class Check:
    """One check's outcome: its status, a sentence saying why, and its figures."""

    name: str
    status: str
    detail: str
    figures: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Verdict:
    """Every check on one model; it blesses only when none failed."""

    model: str
    examples: int
    checks: list[Check]
    tolerances: dict
    gate: str = "Serving gate"
    # Each signature's predictions on the replay, in order (not part of the JSON verdict).
    answers: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def blessed(self) -> bool:
        return all(check.status != FAIL for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]

    def summary(self) -> str:
        """One line: passed, or refused with each failed check's reason."""
        if self.blessed:
            return f"passed ({len(self.checks)} checks on {self.examples} examples)"
        return "refused: " + "; ".join(f"{c.name}: {c.detail}" for c in self.failures)

    def to_dict(self) -> dict:
        return {
            "blessed": self.blessed,
            "model": self.model,
            "examples": self.examples,
            "tolerances": self.tolerances,
            "checks": [dataclasses.asdict(check) for check in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=_json_default)

    def format(self) -> str:
        """The verdict for people: the outcome, then one line per check."""
        outcome = (
            "PASSED"
            if self.blessed
            else f"REFUSED ({len(self.failures)} of {len(self.checks)} checks failed)"
        )
        lines = [f"{self.gate} on {self.model} ({self.examples} examples): {outcome}"]
        width = max(len(check.name) for check in self.checks)
        for check in self.checks:
            lines.append(f"  [{check.status.upper():<7}] {check.name:<{width}}  {check.detail}")
        return "\n".join(lines)


def _json_default(value):
    if isinstance(value, np.floating | np.integer):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _finite_or_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


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


def _replay_rows(name: str, call, inputs_of, batches: list[np.ndarray]) -> SignatureReplay:
    """`_replay` over batches of row indices; `inputs_of(rows)` builds one call's inputs."""
    return _replay(name, call, ((len(rows), inputs_of(rows)) for rows in batches))


def _chunks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[start : start + size] for start in range(0, len(rows), size)]


def batch_plans(count: int, batch_size: int, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """The batchings the gate compares with the in-order replay in batches of `batch_size`.

    Batches of 1, 2 and 7 over a seeded sample of `BATCH_PROBE_SAMPLE` examples; batches of
    64 over the first `MEDIUM_BATCH_SAMPLE`; every example again in a seeded shuffled order,
    `batch_size` a call.
    """
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(count, size=min(BATCH_PROBE_SAMPLE, count), replace=False))
    plans = {str(size): _chunks(sample, size) for size in SMALL_BATCH_SIZES}
    plans[str(MEDIUM_BATCH_SIZE)] = _chunks(np.arange(min(count, MEDIUM_BATCH_SAMPLE)), MEDIUM_BATCH_SIZE)
    plans[f"{batch_size} shuffled"] = _chunks(rng.permutation(count), batch_size)
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
    serialized: Sequence[bytes],
    evaluator_figures: dict[str, float] | None = None,
    metric_tolerance: float = DEFAULT_METRIC_TOLERANCE,
    parity_tolerance: float = DEFAULT_PARITY_TOLERANCE,
    batch_size: int | None = None,
    batch_tolerance: float = DEFAULT_BATCH_TOLERANCE,
) -> Verdict:
    """Load `model_dir` as a server would and run every check on the replay of `serialized`.

    Args:
        model_dir: a SavedModel folder.
        serialized: the tf.Examples to replay (the eval split in the pipeline).
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

    examples = np.array(list(serialized), dtype=object)
    batch_size = batch_size or replay_batch_size(len(examples))
    in_order = list(_chunks(np.arange(len(examples)), batch_size))
    callers = {SERVING_SIGNATURE: serialized_caller(model, examples)}
    serialized_replay = _replay_rows(SERVING_SIGNATURE, *callers[SERVING_SIGNATURE], in_order)
    try:
        callers[RAW_SIGNATURE] = raw_caller(model, specs, examples_to_raw(examples, specs))
        raw_replay = _replay_rows(RAW_SIGNATURE, *callers[RAW_SIGNATURE], in_order)
    except (ReplayDataError, ServingInputError) as error:
        raw_replay = SignatureReplay(RAW_SIGNATURE, error=f"the replay cannot build raw requests: {error}")
    replays = [serialized_replay, raw_replay]

    verdict.checks.append(_shape_check(replays))
    served = [r for r in replays if r.predictions is not None]
    verdict.answers = {r.name: r.predictions for r in served}
    verdict.checks.append(_finite_check(served))
    clean = [r for r in served if np.isfinite(r.predictions).all()]
    verdict.checks.append(_parity_check(serialized_replay, raw_replay, parity_tolerance))
    plans = batch_plans(len(examples), batch_size)
    started = time.perf_counter()
    batch_check = _batch_invariance_check(clean, callers, plans, batch_size, batch_tolerance)
    batch_check.figures["seconds"] = round(time.perf_counter() - started, 3)  # its share of the gate
    verdict.checks.append(batch_check)
    verdict.checks.append(_degenerate_check(clean))
    verdict.checks.append(_metrics_check(clean, labels_of(examples), evaluator_figures, metric_tolerance))
    return verdict


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
        "max_abs_difference": _finite_or_none(largest),
        "examples_differing": differing,
        "worst_example": worst,
        "worst_pair": [
            _finite_or_none(serialized.predictions[worst]),
            _finite_or_none(raw.predictions[worst]),
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
    callers: dict,
    plans: dict[str, list[np.ndarray]],
    batch_size: int,
    tolerance: float,
) -> Check:
    """Each signature's answers under every batching in `plans` vs its in-order replay."""
    if not clean:
        return Check("batch_invariance", SKIPPED, "no finite (N, 1) predictions to compare")
    problems, figures = [], {"batchings": list(plans), "sample": BATCH_PROBE_SAMPLE}
    largest = 0.0
    for reference in clean:
        call, inputs_of = callers[reference.name]
        per_plan, disagree, worst = {}, [], None  # worst: (difference, plan, example, value)
        for plan, batches in plans.items():
            replay = _replay_rows(reference.name, call, inputs_of, batches)
            if replay.predictions is None:
                problem = replay.error or f"shape {replay.bad_shape} for a batch of {replay.batch}"
                per_plan[plan] = {"error": problem}
                problems.append(f"{reference.name} in batches of {plan}: {problem}")
                continue
            rows = np.concatenate(batches)
            difference = np.abs(replay.predictions - reference.predictions[rows])
            difference = np.where(np.isnan(difference), np.inf, difference)
            at = int(difference.argmax())
            per_plan[plan] = {
                "examples": len(rows),
                "max_abs_difference": _finite_or_none(float(difference[at])),
                "worst_example": int(rows[at]),
            }
            if difference[at] > tolerance:
                disagree.append(plan)
            largest = max(largest, float(difference[at]))
            if worst is None or difference[at] > worst[0]:
                worst = (float(difference[at]), plan, int(rows[at]), float(replay.predictions[at]))
        figures[reference.name] = per_plan
        if worst and disagree:
            gap, plan, example, value = worst
            expected = reference.predictions[example]
            problems.append(
                f"{reference.name}: example {example} scored {expected:.4f} in order in batches of "
                f"{batch_size} but {value:.4f} in batches of {plan} (largest difference {gap:.4g}); "
                f"batchings that disagree: {', '.join(disagree)}"
            )
    figures["max_abs_difference"] = _finite_or_none(largest)
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
            "auc": _finite_or_none(auc(labels, replay.predictions)),
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
