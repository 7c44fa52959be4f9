"""The web gate's checks: a TensorFlow.js model's answers in Chromium, judged against the SavedModel.

Used by the WebExport executor. The browser run itself (`serving.web_browser`) hands back,
per TF.js backend, the answers on the gate's trips (the eval split or its sample, then the
missing-marker trips), in batches and one trip at a time. Checks, each pass / fail / skipped:

- backends: every backend asked for loaded the model and ran it as itself (TF.js falls back
  to another backend silently when one cannot start);
- output_shape: one answer per trip on every backend;
- finite: no NaN or infinity;
- batch_invariance: a trip's answer alone equals its answer in a batch;
- agreement: per trip within `max_difference` of the SavedModel's `serving_raw` answer, and
  accuracy and AUC equal to 4 decimals, on every backend;
- missing_markers: each raw feature set to its missing marker on a few trips answers as the
  SavedModel does for the same raw trips (within `max_difference`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from serving.gate_checks import accuracy, auc
from serving.gate_verdict import FAIL, PASS, SKIPPED, Check, Verdict, finite_or_none

WEB_GATE = "Web gate"
# How a verdict that did not run the browser begins (the model will not be pushed anyway).
NOT_RUN = "not run: "


def browser_refusal(name: str, examples: int, reason: str, tolerances: dict) -> Verdict:
    """The verdict when the gate cannot run (no Chromium, no npm packages, no conversion)."""
    return Verdict(name, examples, [Check("backends", FAIL, reason)], tolerances, gate=WEB_GATE)


def run_web_checks(
    runs: Mapping[str, object],
    reference: np.ndarray,
    labels: np.ndarray | None,
    trips: int,
    marker_features: list[str],
    single: int,
    max_difference: float,
    name: str = "the web model",
) -> Verdict:
    """Judge the browser's answers.

    Args:
        runs: backend asked for -> its run (`serving.web_browser.BackendRun`: backend,
            predictions, singles, error).
        reference: the SavedModel's `serving_raw` answers on every trip the browser ran
            (the gate's trips, then the marker trips).
        labels: the labels of the first `trips` trips (None: accuracy and AUC not compared).
        trips: how many of the answers are the gate's trips; the rest are marker trips.
        marker_features: the feature set to its missing marker, for each marker trip.
        single: how many leading trips the browser also ran one at a time.
        max_difference: largest accepted |TF.js - SavedModel| per trip.
        name: what the verdict calls the model.
    """
    tolerances = {"max_difference": max_difference, "metrics_decimals": 4}
    verdict = Verdict(name, trips, [], tolerances, gate=WEB_GATE)
    reference = np.asarray(reference, np.float64)
    total = len(reference)
    problems = {b: r.error for b, r in runs.items() if r.error}
    problems.update({b: f"ran as '{r.backend}'" for b, r in runs.items() if not r.error and r.backend != b})
    verdict.checks.append(
        Check("backends", FAIL, "; ".join(f"{b}: {p}" for b, p in problems.items()))
        if problems
        else Check("backends", PASS, f"{', '.join(runs)} loaded and ran the model", {"backends": list(runs)})
    )
    ran = {b: r for b, r in runs.items() if b not in problems}
    shapes = {b: np.asarray(r.predictions).shape for b, r in ran.items()}
    wrong = {b: s for b, s in shapes.items() if s != (total,)}
    verdict.checks.append(
        Check(
            "output_shape",
            FAIL,
            f"expected ({total},) answers: " + ", ".join(f"{b} {s}" for b, s in wrong.items()),
        )
        if wrong
        else Check("output_shape", PASS if ran else SKIPPED, f"{total} answers on every backend that ran")
    )
    ran = {b: r for b, r in ran.items() if b not in wrong}
    bad = {b: int((~np.isfinite(np.asarray(r.predictions, np.float64))).sum()) for b, r in ran.items()}
    bad = {b: n for b, n in bad.items() if n}
    verdict.checks.append(
        Check("finite", FAIL, ", ".join(f"{b}: {n} NaN/inf answers" for b, n in bad.items()))
        if bad
        else Check("finite", PASS if ran else SKIPPED, "every answer finite")
    )
    ran = {b: r for b, r in ran.items() if b not in bad}
    if not ran:
        return verdict
    verdict.checks.append(_batch_check(ran, single, max_difference))
    verdict.checks.append(_agreement_check(ran, reference[:trips], labels, trips, max_difference))
    verdict.checks.append(_marker_check(ran, reference, trips, marker_features, max_difference))
    verdict.answers = {b: np.asarray(r.predictions, np.float32) for b, r in ran.items()}
    return verdict


def _batch_check(ran: Mapping[str, object], single: int, tolerance: float) -> Check:
    figures, failed = {}, []
    for backend, run in ran.items():
        singles = np.asarray(run.singles, np.float64)
        if singles.shape != (single,):
            failed.append(
                f"{backend}: {singles.shape[0] if singles.ndim else 0} single-trip answers for {single}"
            )
            continue
        difference = float(
            np.abs(singles - np.asarray(run.predictions, np.float64)[:single]).max(initial=0.0)
        )
        figures[backend] = difference
        if difference > tolerance:
            failed.append(f"{backend}: a trip alone differs from itself in a batch by {difference:.3g}")
    if failed:
        return Check("batch_invariance", FAIL, "; ".join(failed) + f" (tolerance {tolerance:g})", figures)
    worst = max(figures.values(), default=0.0)
    return Check(
        "batch_invariance", PASS, f"{single} trips alone vs batched: largest difference {worst:.3g}", figures
    )


def _agreement_check(
    ran: Mapping[str, object], reference: np.ndarray, labels: np.ndarray | None, trips: int, tolerance: float
) -> Check:
    figures: dict = {}
    failed = []
    saved = None
    if labels is not None:
        saved = {"accuracy": accuracy(labels, reference), "auc": finite_or_none(auc(labels, reference))}
        figures["saved_model"] = saved
    for backend, run in ran.items():
        answers = np.asarray(run.predictions, np.float64)[:trips]
        difference = np.abs(answers - reference)
        worst = int(difference.argmax()) if trips else 0
        entry = {
            "max_abs_difference": float(difference.max(initial=0.0)),
            "mean_abs_difference": float(difference.mean()) if trips else 0.0,
            "worst_example": worst,
        }
        if entry["max_abs_difference"] > tolerance:
            failed.append(
                f"{backend}: trip {worst} answers {answers[worst]:.6f}, "
                f"the SavedModel {reference[worst]:.6f} "
                f"(difference {entry['max_abs_difference']:.3g} > {tolerance:g})"
            )
        if saved is not None:
            entry["accuracy"] = accuracy(labels, answers)
            entry["auc"] = finite_or_none(auc(labels, answers))
            for metric in ("accuracy", "auc"):
                ours, theirs = entry[metric], saved[metric]
                if ours is None or theirs is None or round(ours, 4) != round(theirs, 4):
                    failed.append(
                        f"{backend}: {metric} {ours} vs the SavedModel's {theirs} (not equal to 4 decimals)"
                    )
        figures[backend] = entry
    largest = max((figures[b]["max_abs_difference"] for b in ran), default=0.0)
    if failed:
        return Check("agreement", FAIL, "; ".join(failed), figures)
    metrics = (
        f"; accuracy {saved['accuracy']:.4f}, AUC {saved['auc'] or math.nan:.4f} on every backend, "
        "as the SavedModel's"
        if saved is not None
        else "; no labels"
    )
    return Check(
        "agreement",
        PASS,
        f"{trips} trips on {', '.join(ran)}: largest difference from the SavedModel {largest:.3g}{metrics}",
        figures,
    )


def _marker_check(
    ran: Mapping[str, object], reference: np.ndarray, trips: int, marker_features: list[str], tolerance: float
) -> Check:
    if not marker_features:
        return Check("missing_markers", SKIPPED, "no marker trips")
    features = np.array(marker_features)
    figures, failed = {}, []
    for backend, run in ran.items():
        difference = np.abs(np.asarray(run.predictions, np.float64)[trips:] - reference[trips:])
        worst = int(difference.argmax())
        figures[backend] = {
            "max_abs_difference": float(difference[worst]),
            "worst_feature": str(features[worst]),
        }
        if difference[worst] > tolerance:
            off = sorted(set(features[difference > tolerance]))
            failed.append(
                f"{backend}: missing {', '.join(off)} answered off by up to {difference[worst]:.3g}"
            )
    if failed:
        return Check("missing_markers", FAIL, "; ".join(failed) + f" (tolerance {tolerance:g})", figures)
    return Check(
        "missing_markers",
        PASS,
        f"{len(set(marker_features))} features, each missing on "
        f"{len(features) // len(set(marker_features))} trips: answered as the SavedModel does",
        figures,
    )
