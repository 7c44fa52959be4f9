"""The batched Evaluator (`tfma_batched`): TFMA's own figures, a batch at a time.

Each batched combiner is held to TFMA's stock combiner fed the same rows one example at a
time (as TFMA's unbatch step feeds them), on edge values too; the slicing to TFMA's own
per-example slice keys; the signature wrapper to the signature it wraps; the Evaluator's
hooks (`models/evaluator.py`) to TFX's module contract.
"""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from tensorflow.python.eager.polymorphic_function import function_type_utils
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import util

from models import evaluator
from tfma_batched import limits, metrics, model_wrapper, slicing

MODEL = "candidate"
EVAL_CONFIG = tfma.EvalConfig(model_specs=[tfma.ModelSpec(name=MODEL, label_key="big_tipper")])

# (stock TFMA metric, its batched form, constructor arguments): every metric the pipeline's
# eval config names.
METRICS = [
    (tfma.metrics.ExampleCount, metrics.BatchedExampleCount, {}),
    (tfma.metrics.BinaryAccuracy, metrics.BatchedBinaryAccuracy, {}),
    (tfma.metrics.AUC, metrics.BatchedAUC, {"num_thresholds": 1000}),
    (tfma.metrics.AUC, metrics.BatchedAUC, {"curve": "PR", "name": "auc_pr", "num_thresholds": 1000}),
    (tfma.metrics.Precision, metrics.BatchedPrecision, {}),
    (tfma.metrics.Recall, metrics.BatchedRecall, {}),
    (tfma.metrics.Calibration, metrics.BatchedCalibration, {}),
    (tfma.metrics.MeanLabel, metrics.BatchedMeanLabel, {}),
    (tfma.metrics.MeanPrediction, metrics.BatchedMeanPrediction, {}),
]


def _inputs(labels, predictions, weights=None) -> metric_types.StandardMetricInputs:
    return metric_types.StandardMetricInputs(
        {
            constants.LABELS_KEY: {MODEL: labels},
            constants.PREDICTIONS_KEY: {MODEL: predictions},
            constants.EXAMPLE_WEIGHTS_KEY: None if weights is None else {MODEL: weights},
        }
    )


def _combiners(metric, **kwargs):
    computations = metric.computations(
        eval_config=EVAL_CONFIG, model_names=[MODEL], output_names=[""], **kwargs
    )
    return [c for c in computations if isinstance(c, metric_types.MetricComputation)]


def _plain(value):
    """Accumulator outputs as nested lists/dicts of floats, for an approximate comparison."""
    if dataclasses.is_dataclass(value):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if hasattr(value, "_asdict"):
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__slots__") and not isinstance(value, int | float | np.generic):
        return {k: _plain(getattr(value, k)) for k in value.__slots__}
    if hasattr(value, "__dict__") and not isinstance(value, int | float | np.generic):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


def _assert_close(a, b, path="output"):
    if isinstance(a, dict):
        assert set(a) == set(b), f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            _assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float | int | np.floating | np.integer) and not isinstance(a, bool):
        assert b == pytest.approx(a, rel=1e-9, abs=1e-9), f"{path}: {a} vs {b}"
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def _run_both(stock_metric, batched_metric, labels, predictions, weights=None, batches=(1, 7, 100)):
    """Each combiner's output: stock fed one example at a time, batched fed `batches` sizes."""
    example_weighted = weights is not None
    stock = _combiners(stock_metric, example_weighted=example_weighted)
    batched = _combiners(batched_metric, example_weighted=example_weighted)
    assert len(stock) == len(batched) > 0
    for s, b in zip(stock, batched):
        assert type(b.combiner) is not type(s.combiner), "not swapped for its batched form"
        assert isinstance(b.combiner, type(s.combiner)) and b.keys == s.keys
        acc_s = s.combiner.create_accumulator()
        for i in range(len(labels)):
            w = None if weights is None else weights[i : i + 1]
            acc_s = s.combiner.add_input(acc_s, _inputs(labels[i : i + 1], predictions[i : i + 1], w))
        accumulators, start, sizes = [], 0, list(batches)
        while start < len(labels):
            size = sizes[len(accumulators) % len(sizes)]
            rows = slice(start, start + size)
            w = None if weights is None else weights[rows]
            acc = b.combiner.create_accumulator()
            acc = b.combiner.add_input(acc, _inputs(labels[rows], predictions[rows, None], w))
            # Beam compacts an accumulator before it leaves a stage: every other one here.
            accumulators.append(b.combiner.compact(acc) if len(accumulators) % 2 else acc)
            start += size
        acc_b = b.combiner.merge_accumulators(accumulators)
        _assert_close(_plain(s.combiner.extract_output(acc_s)), _plain(b.combiner.extract_output(acc_b)))


@pytest.fixture
def rows():
    rng = np.random.default_rng(7)
    n = 600
    labels = rng.integers(0, 2, n).astype(np.int64)
    predictions = rng.random(n).astype(np.float32)
    # Bucket and threshold edges: 0, 1, exactly 0.5, a value just above, outside [0, 1].
    predictions[:6] = [0.0, 1.0, 0.5, np.nextafter(np.float32(0.5), np.float32(1)), -0.25, 1.5]
    return labels, predictions


def _metric_id(value) -> str:
    return getattr(value, "__name__", "")


@pytest.mark.parametrize("stock_metric, batched_metric, kwargs", METRICS, ids=_metric_id)
def test_batched_metrics_equal_tfmas_per_example_figures(rows, stock_metric, batched_metric, kwargs):
    labels, predictions = rows
    _run_both(stock_metric(**kwargs), batched_metric(**kwargs), labels, predictions)


@pytest.mark.parametrize("stock_metric, batched_metric, kwargs", METRICS[1:4] + METRICS[6:], ids=_metric_id)
def test_fractional_labels_and_example_weights_match_too(rows, stock_metric, batched_metric, kwargs):
    _, predictions = rows
    rng = np.random.default_rng(11)
    labels = rng.random(len(predictions))  # fractional labels in [0, 1], some exactly 0 or 1
    labels[::5] = 0.0
    labels[1::5] = 1.0
    weights = rng.random(len(predictions)) * 3
    weights[::7] = 0.0
    _run_both(stock_metric(**kwargs), batched_metric(**kwargs), labels, predictions, weights)


def test_example_count_counts_the_rows_of_each_batch():
    (computation,) = _combiners(metrics.BatchedExampleCount())
    combiner = computation.combiner
    acc = combiner.create_accumulator()
    for size in (1, 5, 1000):
        acc = combiner.add_input(acc, _inputs(np.zeros(size), np.zeros((size, 1), np.float32)))
    assert combiner.extract_output(acc)[computation.keys[0]] == 1006


def test_a_nan_prediction_fails_as_in_tfma():
    labels = np.array([1, 0, 1])
    predictions = np.array([0.2, np.nan, 0.9], np.float32)
    for metric in (tfma.metrics.AUC(), metrics.BatchedAUC()):
        (histogram,) = (c for c in _combiners(metric) if "histogram" in c.keys[0].name)
        with pytest.raises(ValueError, match="NaN"):
            acc = histogram.combiner.create_accumulator()
            for i in range(3):  # stock: one at a time; batched: the whole batch falls back
                acc = histogram.combiner.add_input(acc, _inputs(labels[i:], predictions[i:, None]))


def test_a_combiner_without_a_batched_form_is_refused():
    computation = metric_types.MetricComputation(
        keys=[metric_types.MetricKey(name="count")],
        preprocessors=None,
        combiner=beam.combiners.CountCombineFn(),
    )
    with pytest.raises(limits.UnsupportedEvalConfig, match="CountCombineFn"):
        metrics.batched_computations([computation])


@pytest.mark.parametrize(
    "edit, named",
    [
        (lambda c: None, None),  # the plain config
        (lambda c: setattr(c.options.min_slice_size, "value", 10), "min_slice_size"),
        (lambda c: c.cross_slicing_specs.add(), "cross_slicing_specs"),
        (lambda c: c.slicing_specs.add(slice_keys_sql="SELECT 1"), "slice_keys_sql"),
        (lambda c: c.metrics_specs.add(query_key="q"), "query_key"),
        (lambda c: setattr(c.options.compute_confidence_intervals, "value", True), "confidence"),
    ],
)
def test_eval_config_options_that_would_count_batches_are_refused(edit, named):
    config = tfma.EvalConfig()
    config.CopyFrom(EVAL_CONFIG)
    edit(config)
    if named is None:
        limits.check_eval_config(config)  # the plain config passes
        return
    with pytest.raises(limits.UnsupportedEvalConfig, match=named):
        limits.check_eval_config(config)


def _batched_extract(n: int, case: str) -> dict:
    rng = np.random.default_rng(3)
    payments = [np.array([v], dtype=object) for v in rng.choice([b"Cash", b"Credit Card", b"No Charge"], n)]
    payments[3] = np.array([], dtype=object)  # a missing value: in no payment_type slice
    if case == "multi_valued":  # TFMA puts the row in one slice per value
        payments[5] = np.array([b"Cash", b"No Charge"], dtype=object)
    extract = {
        constants.FEATURES_KEY: {
            "payment_type": types.VarLenTensorValue.from_dense_rows(payments),
            "trip_start_hour": rng.integers(0, 24, (n, 1)),
            "fare": rng.random((n, 1)).astype(np.float32),
        },
        constants.LABELS_KEY: {MODEL: np.arange(n)},  # the row numbers, to see which rows went where
        constants.PREDICTIONS_KEY: {MODEL: rng.random((n, 1)).astype(np.float32)},
        constants.INPUT_KEY: np.array([b"x"] * n, dtype=object),
    }
    if case == "transformed":  # TFMA slices on a transformed feature of the same name first
        extract[constants.TRANSFORMED_FEATURES_KEY] = {"trip_start_hour": rng.integers(0, 3, n)}
    return extract


@pytest.mark.parametrize("case", ["single_valued", "multi_valued", "transformed"])
def test_slice_batches_gives_each_slice_exactly_tfmas_rows(case, monkeypatch):
    config = tfma.EvalConfig()
    config.CopyFrom(EVAL_CONFIG)
    config.slicing_specs.add()
    config.slicing_specs.add(feature_keys=["payment_type"])
    config.slicing_specs.add(feature_keys=["trip_start_hour"])
    config.slicing_specs.add(feature_keys=["payment_type", "trip_start_hour"])
    config.slicing_specs.add(feature_keys=["trip_start_hour"], feature_values={"payment_type": "Cash"})
    specs = [slicer_lib.SingleSliceSpec(spec=s) for s in config.slicing_specs]
    n = 300
    extract = _batched_extract(n, case)

    expected: dict = {}
    for row, single in enumerate(util.split_extracts(extract)):  # TFMA's per-example path
        transformed = [single[constants.TRANSFORMED_FEATURES_KEY]] if case == "transformed" else []
        keys = slicer_lib.get_slices_for_features_dicts(transformed, single[constants.FEATURES_KEY], specs)
        for key in set(keys):
            expected.setdefault(key, []).append(row)

    if case == "single_valued":  # one value a row: grouped with numpy, never row by row

        def per_row(*args):
            raise AssertionError("single-valued columns took the per-row path")

        monkeypatch.setattr(slicing._SliceBatchesFn, "_rows_by_slice_per_row", per_row)
    outputs = list(slicing._SliceBatchesFn(config, specs).process(extract))
    got = {}
    for out in outputs:
        (key,) = out[constants.SLICE_KEY_TYPES_KEY]
        assert key not in got, f"slice {key} emitted twice"
        got[key] = out[constants.LABELS_KEY][MODEL].tolist()
        rows = np.asarray(got[key])
        np.testing.assert_array_equal(
            out[constants.PREDICTIONS_KEY][MODEL], extract[constants.PREDICTIONS_KEY][MODEL][rows]
        )
        assert constants.FEATURES_KEY not in out  # only what the metrics read travels on
    assert got == expected
    assert () in got and len(got[()]) == n  # the overall slice holds every row
    assert not any(3 in rows for key, rows in got.items() if "payment_type" in dict(key))
    if case == "multi_valued":
        assert 5 in got[(("payment_type", "Cash"),)] and 5 in got[(("payment_type", "No Charge"),)]
    if case == "transformed":
        assert {dict(k)["trip_start_hour"] for k in got if "trip_start_hour" in dict(k)} == {0, 1, 2}


def test_keyword_signature_passes_a_positional_tensor_by_its_input_name(tmp_path, monkeypatch):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            return {"length": tf.strings.length(examples)}

    module = Module()
    tf.saved_model.save(module, str(tmp_path), signatures={"serving_default": module.serve})
    loaded = tf.saved_model.load(str(tmp_path))
    wrapped = model_wrapper._KeywordSignaturesLoader(lambda: loaded)()
    batch = tf.constant([b"a", b"abc"])

    refusals = []
    bind = function_type_utils.bind_function_inputs

    def counting_bind(*args, **kwargs):
        try:
            return bind(*args, **kwargs)
        except TypeError:
            refusals.append(1)
            raise

    monkeypatch.setattr(function_type_utils, "bind_function_inputs", counting_bind)
    loaded.signatures["serving_default"](batch)  # TFMA's call, unwrapped: refused, then the flat path
    assert refusals, "TensorFlow no longer refuses a positional call: the wrapper may go"
    refusals.clear()
    out = wrapped.signatures["serving_default"](batch)
    assert not refusals
    assert out["length"].numpy().tolist() == [1, 3]
    assert wrapped.signatures["serving_default"].structured_input_signature == (
        loaded.signatures["serving_default"].structured_input_signature
    )


def test_combiners_sharing_one_extract_each_read_their_own_arrays(rows):
    """TFMA hands every combiner the same extract: the arrays cached on it are per model.

    Per weighting and per fractional split too: never one combiner's arrays for another's.
    """
    labels, predictions = rows
    weights = np.linspace(0.0, 2.0, len(labels))
    both = {
        MODEL: (labels, predictions[:, None]),
        "baseline": (1 - labels, 1 - predictions[:, None]),  # another model, other answers
    }
    element = metric_types.StandardMetricInputs(
        {
            constants.LABELS_KEY: {m: v[0] for m, v in both.items()},
            constants.PREDICTIONS_KEY: {m: v[1] for m, v in both.items()},
            constants.EXAMPLE_WEIGHTS_KEY: {m: weights for m in both},
        }
    )
    for metric in (
        metrics.BatchedAUC(),
        metrics.BatchedMeanPrediction(),
        metrics.BatchedBinaryAccuracy(),
    ):
        for weighted in (False, True):
            for model in both:
                shared_computations = metric.computations(
                    eval_config=EVAL_CONFIG, model_names=[model], output_names=[""], example_weighted=weighted
                )
                for computation in shared_computations:
                    if not isinstance(computation, metric_types.MetricComputation):
                        continue
                    combiner = computation.combiner
                    alone = metric_types.StandardMetricInputs(
                        {k: v for k, v in element.items() if k != metrics._ARRAYS_CACHE_KEY}
                    )
                    expected = combiner.extract_output(
                        combiner.add_input(combiner.create_accumulator(), alone)
                    )
                    got = combiner.extract_output(combiner.add_input(combiner.create_accumulator(), element))
                    _assert_close(_plain(expected), _plain(got))
    assert len(element[metrics._ARRAYS_CACHE_KEY]) >= 4  # the arrays were shared, not recomputed


def test_the_evaluator_module_offers_tfx_both_hooks():
    """TFX's Evaluator finds its hooks by name in the module `module_path` names."""
    from tfx.components.util import udf_utils

    properties = {"module_path": evaluator.__name__}
    assert udf_utils.try_get_fn(properties, "custom_extractors") is evaluator.custom_extractors
    assert udf_utils.try_get_fn(properties, "custom_eval_shared_model") is evaluator.custom_eval_shared_model
    config = tfma.EvalConfig()
    config.CopyFrom(EVAL_CONFIG)
    config.cross_slicing_specs.add()
    with pytest.raises(limits.UnsupportedEvalConfig, match="cross_slicing_specs"):
        evaluator.custom_extractors(eval_shared_model=None, eval_config=config)
