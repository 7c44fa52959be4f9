"""The web gate's judgement of browser answers: each way a TF.js model goes wrong is refused for its reason.

The answers here are arrays shaped as `serving.web_browser` hands them back; the real browser
runs are in tests/unit/test_web_browser.py, tests/unit/test_web_export.py and the e2e runs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from serving import web_gate_checks
from serving.gate_verdict import FAIL, PASS

TRIPS, MARKERS, SINGLE = 400, 34, 16


@dataclasses.dataclass
class Run:
    backend: str
    predictions: np.ndarray
    singles: np.ndarray
    error: str | None = None


def _reference():
    rng = np.random.default_rng(0)
    reference = rng.uniform(0.01, 0.99, TRIPS + MARKERS).astype(np.float32)
    labels = (rng.uniform(size=TRIPS) < reference[:TRIPS]).astype(np.int64)
    return reference, labels


def _runs(reference, **changes):
    runs = {}
    for backend in ("cpu", "wasm", "webgl"):
        answers = reference + np.float32(2e-7)
        runs[backend] = Run(backend, answers, answers[:SINGLE].copy())
    for backend, change in changes.items():
        change(runs[backend])
    return runs


def _judge(runs, reference, labels):
    markers = [f"feature_{i // 2}" for i in range(MARKERS)]
    return web_gate_checks.run_web_checks(runs, reference, labels, TRIPS, markers, SINGLE, 1e-5)


def _status(verdict) -> dict[str, str]:
    return {check.name: check.status for check in verdict.checks}


def test_answers_within_float_rounding_pass_every_check():
    reference, labels = _reference()
    verdict = _judge(_runs(reference), reference, labels)
    assert verdict.blessed, verdict.format()
    assert set(_status(verdict).values()) == {PASS}
    assert set(_status(verdict)) == {
        "backends", "output_shape", "finite", "batch_invariance", "agreement", "missing_markers"
    }  # fmt: skip
    agreement = next(c for c in verdict.checks if c.name == "agreement")
    assert agreement.figures["webgl"]["max_abs_difference"] < 1e-6
    assert agreement.figures["cpu"]["auc"] == agreement.figures["saved_model"]["auc"]


def _set(index, value):
    def change(run):
        run.predictions = run.predictions.copy()
        run.predictions[index] = value

    return change


def test_each_fault_is_refused_by_its_check():
    reference, labels = _reference()
    cases = {
        "backends": {"webgl": lambda r: setattr(r, "backend", "cpu")},  # silent fallback
        "output_shape": {"wasm": lambda r: setattr(r, "predictions", r.predictions[:-1])},
        "finite": {"webgl": _set(3, np.nan)},
        "agreement": {"cpu": _set(10, reference[10] + 0.2)},
        "missing_markers": {"wasm": _set(TRIPS + 5, reference[TRIPS + 5] + 0.01)},
        "batch_invariance": {"cpu": lambda r: setattr(r, "singles", r.singles + 0.001)},
    }
    for check, change in cases.items():
        verdict = _judge(_runs(reference, **change), reference, labels)
        assert not verdict.blessed, check
        assert _status(verdict)[check] == FAIL, (check, verdict.format())


def test_a_backend_error_is_named_and_the_rest_still_judged():
    reference, labels = _reference()
    runs = _runs(
        reference, wasm=lambda r: setattr(r, "error", "Kernel 'Foo' not registered for backend 'wasm'")
    )
    verdict = _judge(runs, reference, labels)
    backends = next(c for c in verdict.checks if c.name == "backends")
    assert backends.status == FAIL and "wasm: Kernel 'Foo'" in backends.detail
    assert "wasm" not in next(c for c in verdict.checks if c.name == "agreement").figures


def test_a_marker_failure_names_the_feature():
    reference, labels = _reference()
    verdict = _judge(_runs(reference, cpu=_set(TRIPS + 7, 0.5)), reference, labels)
    markers = next(c for c in verdict.checks if c.name == "missing_markers")
    assert "feature_3" in markers.detail


def test_a_threshold_crossing_within_the_per_trip_tolerance_still_fails_on_accuracy():
    reference, labels = _reference()
    reference[0] = np.float32(0.5 + 3e-6)

    def across(run):  # 6e-6 from the SavedModel: inside the 1e-5 tolerance, across 0.5
        run.predictions = reference.copy()
        run.predictions[0] = np.float32(0.5 - 3e-6)
        run.singles = run.predictions[:SINGLE].copy()

    verdict = _judge(_runs(reference, cpu=across), reference, labels)
    agreement = next(c for c in verdict.checks if c.name == "agreement")
    assert agreement.figures["cpu"]["max_abs_difference"] < 1e-5
    assert agreement.status == FAIL and "cpu: accuracy" in agreement.detail


def test_the_refusal_when_the_gate_cannot_run_is_not_a_blessing():
    verdict = web_gate_checks.browser_refusal("m", 10, "chromium is not installed", {})
    assert not verdict.blessed and "chromium" in verdict.summary()
