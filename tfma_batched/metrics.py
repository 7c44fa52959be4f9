"""TFMA's metric classes in batched form, and the combiners that add a batch at a time.

The eval config names the `Batched*` classes of this module (`METRICS_MODULE`): TFMA's own
metric classes, whose per-example combiners (example count, the calibration histogram behind
AUC and AUC-PR, the confusion matrices at fixed thresholds behind accuracy, precision and
recall, the label/prediction sums behind calibration and the means) are swapped for
subclasses that add a whole batch with numpy. Everything derived from them (AUC, thresholds,
the comparison with the baseline, the blessing) is TFMA's code, unchanged.
Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

import copy

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as bcm
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration,
    calibration_histogram,
    example_count,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.utils import util

from tfma_batched.limits import UnsupportedEvalConfig

# The module the eval config's MetricConfigs name (`module=`), so TFMA builds ours.
METRICS_MODULE = __name__


def _model_arrays(element, combiner, example_weighted: bool):
    """(labels, predictions, weights) of one model as flat float64 arrays.

    None where TFMA's per-row path must decide: shapes that are not one value a row (sub
    keys, class weights and aggregation are sent there by `_batch_arrays`).
    """
    key = combiner._key  # noqa: SLF001
    results = list(
        metric_util.to_label_prediction_example_weight(
            element,
            eval_config=combiner._eval_config,  # noqa: SLF001
            model_name=key.model_name,
            output_name=key.output_name,
            example_weighted=example_weighted,
            flatten=False,
            squeeze=False,
            allow_none=True,
        )
    )
    if len(results) != 1:
        return None
    label, prediction, weight = results[0]
    if label is None or prediction is None:
        return None
    label = np.asarray(label, dtype=np.float64).reshape(-1)
    prediction = np.asarray(prediction, dtype=np.float64).reshape(-1)
    weight = np.asarray(weight, dtype=np.float64).reshape(-1)
    if label.size != prediction.size:
        return None
    if weight.size == 1:
        weight = np.full(prediction.size, weight[0])
    elif weight.size != prediction.size:
        return None
    return label, prediction, weight


# Every combiner of a slice's extract reads the same arrays: computed once per model, kept on
# the extract (a dict TFMA builds for the combiners and drops after them).
_ARRAYS_CACHE_KEY = "_batched_metric_arrays"


def _batch_arrays(element, combiner, example_weighted: bool, fractional: bool = False):
    """`_model_arrays`, computed once per element and model.

    `fractional`: TFMA's fractional split of them (None when a label is outside [0, 1]:
    TFMA's per-row path raises its own error).
    """
    key = combiner._key  # noqa: SLF001
    if key.sub_key or getattr(combiner, "_aggregation_type", None):
        return None
    if getattr(combiner, "_class_weights", None):
        return None
    try:  # StandardMetricInputs: a MutableMapping over the extract, not a dict
        cache = element[_ARRAYS_CACHE_KEY]
    except KeyError:
        cache = element[_ARRAYS_CACHE_KEY] = {}
    cache_key = (key.model_name, key.output_name, key.sub_key, example_weighted, fractional)
    if cache_key not in cache:
        arrays = _model_arrays(element, combiner, example_weighted)
        if arrays is not None and fractional:
            arrays = _fractional(*arrays) if _labels_in_unit_interval(arrays[0]) else None
        cache[cache_key] = arrays
    return cache[cache_key]


def _fractional(label, prediction, weight):
    """TFMA's fractional-label split, for a batch.

    Each row becomes (0, p, w(1-l)) and (1, p, w*l), the parts of weight 0 dropped (as
    `metric_util._yield_fractional_labels` drops them).
    """
    negative = weight * (1 - label)
    positive = weight * label
    keep_negative = negative != 0
    keep_positive = positive != 0
    return (
        np.concatenate([np.zeros(keep_negative.sum()), np.ones(keep_positive.sum())]),
        np.concatenate([prediction[keep_negative], prediction[keep_positive]]),
        np.concatenate([negative[keep_negative], positive[keep_positive]]),
    )


def _labels_in_unit_interval(label: np.ndarray) -> bool:
    return bool(np.all((label >= 0) & (label <= 1)))


class _BatchedCalibrationHistogramCombiner(calibration_histogram._CalibrationHistogramCombiner):  # noqa: SLF001
    """TFMA's calibration histogram, a batch added with numpy (same buckets, same sums).

    The accumulator is dense: rows weighted labels, weighted predictions, weighted examples
    and entries, one column per bucket (TFMA's dict of Bucket objects cost more to pickle
    between Beam stages than the histogram did to compute). `compact` keeps the buckets that
    have entries, as TFMA's dict holds them; `extract_output` gives TFMA's sorted Buckets.
    """

    def _width(self) -> int:
        return self._num_buckets + 2

    def create_accumulator(self):
        return np.zeros((4, self._width()))

    def _dense(self, accumulator) -> np.ndarray:
        if isinstance(accumulator, np.ndarray):
            return accumulator
        if isinstance(accumulator, tuple):  # compacted: (bucket ids, their 4 rows)
            ids, rows = accumulator
            dense = self.create_accumulator()
            dense[:, ids] = rows
            return dense
        dense = self.create_accumulator()  # TFMA's own dict of Buckets
        for bucket in accumulator.values():
            dense[:, bucket.bucket_id] += (
                bucket.weighted_labels,
                bucket.weighted_predictions,
                bucket.weighted_examples,
                1.0,
            )
        return dense

    def add_input(self, accumulator, element):
        accumulator = self._dense(accumulator)
        arrays = None
        if self._prediction_based_bucketing:
            arrays = _batch_arrays(element, self, self._example_weighted, self._fractional_labels)
        if arrays is not None and not np.all(np.isfinite(arrays[1])):
            arrays = None  # TFMA's per-row path raises its own error for the row
        if arrays is None:
            return accumulator + self._dense(super().add_input({}, element))
        label, prediction, weight = arrays
        position = (prediction - self._left) / self._range * self._num_buckets + 1
        index = np.where(
            position < 0,
            0,
            np.where(position >= self._num_buckets + 1, self._num_buckets + 1, position.astype(np.int64)),
        ).astype(np.int64)
        width = self._width()
        accumulator[0] += np.bincount(index, weights=label * weight, minlength=width)
        accumulator[1] += np.bincount(index, weights=prediction * weight, minlength=width)
        accumulator[2] += np.bincount(index, weights=weight, minlength=width)
        accumulator[3] += np.bincount(index, minlength=width)
        return accumulator

    def merge_accumulators(self, accumulators):
        result = None
        for accumulator in accumulators:
            dense = self._dense(accumulator)
            result = dense.copy() if result is None else result + dense
        return result if result is not None else self.create_accumulator()

    def compact(self, accumulator):
        dense = self._dense(accumulator)
        ids = np.flatnonzero(dense[3])
        return ids, dense[:, ids]

    def extract_output(self, accumulator):
        dense = self._dense(accumulator)
        ids = np.flatnonzero(dense[3])
        columns = dense[:3, ids].T.tolist()
        buckets = [
            calibration_histogram.Bucket(bucket_id, wl, wp, we)
            for bucket_id, (wl, wp, we) in zip(ids.tolist(), columns)
        ]
        return {self._key: buckets}


class _BatchedBinaryConfusionMatrixCombiner(binary_confusion_matrices._BinaryConfusionMatrixCombiner):  # noqa: SLF001
    """TFMA's confusion matrices at fixed thresholds (accuracy, precision, recall), batched.

    The same counts per threshold as `BinaryConfusionMatrices.add_input`, a batch at a time.
    """

    def add_input(self, accumulator, element):
        fractional = self._enable_fractional_labels
        arrays = None
        if not self._example_id_key:
            arrays = _batch_arrays(element, self, self._example_weighted, fractional)
        if arrays is None:
            return super().add_input(accumulator, element)
        label, prediction, weight = arrays
        matrices = self._binary_confusion_matrices
        for threshold in matrices._thresholds:  # noqa: SLF001
            positive = label == 1.0 if fractional else label > threshold
            predicted = prediction > threshold
            entry = bcm._ThresholdEntry(  # noqa: SLF001
                bcm.Matrix(
                    tp=float(weight[positive & predicted].sum()),
                    tn=float(weight[~positive & ~predicted].sum()),
                    fp=float(weight[~positive & predicted].sum()),
                    fn=float(weight[positive & ~predicted].sum()),
                ),
                tp_examples=[],
                tn_examples=[],
                fp_examples=[],
                fn_examples=[],
            )
            accumulator[threshold] = matrices._merge_entry(accumulator, threshold, entry)  # noqa: SLF001
        return accumulator


_Sums = calibration._WeightedLabelsPredictionsExamplesCombiner  # noqa: SLF001


class _BatchedWeightedLabelsPredictionsExamplesCombiner(_Sums):
    """TFMA's label/prediction/example sums (calibration, the means), a batch at a time."""

    def add_input(self, accumulator, element):
        arrays = _batch_arrays(element, self, self._example_weighted)
        if arrays is None:
            return super().add_input(accumulator, element)
        label, prediction, weight = arrays
        accumulator.total_weighted_examples += float(np.sum(weight))
        accumulator.total_weighted_labels += float(np.sum(label * weight))
        accumulator.total_weighted_predictions += float(np.sum(prediction * weight))
        return accumulator


class _BatchedExampleCountCombiner(example_count._ExampleCountCombiner):  # noqa: SLF001
    """TFMA's example count, where one input is a batch: the rows, not 1 per input."""

    def add_input(self, accumulator, element):
        if self._example_weighted and element.example_weight is not None:
            return super().add_input(accumulator, element)
        prediction = element.prediction
        if isinstance(prediction, dict) and self._model_name:
            prediction = util.get_by_keys(prediction, [self._model_name], optional=True)
        if isinstance(prediction, dict) and self._output_name:
            prediction = util.get_by_keys(prediction, [self._output_name], optional=True)
        if isinstance(prediction, dict) or prediction is None:
            raise ValueError(
                f"example_count: no batch of predictions for model {self._model_name!r}, "
                f"output {self._output_name!r} in the extract"
            )
        prediction = np.asarray(prediction)
        return accumulator + (prediction.shape[0] if prediction.ndim else 1)


_BATCHED = {
    binary_confusion_matrices._BinaryConfusionMatrixCombiner: _BatchedBinaryConfusionMatrixCombiner,  # noqa: SLF001
    calibration_histogram._CalibrationHistogramCombiner: _BatchedCalibrationHistogramCombiner,  # noqa: SLF001
    _Sums: _BatchedWeightedLabelsPredictionsExamplesCombiner,
    example_count._ExampleCountCombiner: _BatchedExampleCountCombiner,  # noqa: SLF001
}


def batched_computations(computations: metric_types.MetricComputations) -> metric_types.MetricComputations:
    """TFMA's computations with each per-example combiner swapped for its batched subclass.

    A computation whose combiner has no batched form is refused: it would count each batch
    as one example.
    """
    result = []
    for computation in computations:
        if isinstance(computation, metric_types.MetricComputation):
            batched = _BATCHED.get(type(computation.combiner))
            if batched is None and type(computation.combiner) not in _BATCHED.values():
                raise UnsupportedEvalConfig(
                    f"no batched form of TFMA combiner {type(computation.combiner).__name__} "
                    f"(metric keys {computation.keys})"
                )
            if batched is not None:
                combiner = copy.copy(computation.combiner)
                combiner.__class__ = batched
                computation = metric_types.MetricComputation(
                    keys=computation.keys, preprocessors=computation.preprocessors, combiner=combiner
                )
        result.append(computation)
    return result


# TFMA resolves a class name it has registered to its own class, whatever the config's
# module says: the batched forms need names of their own (the metric keys are TFMA's).
BATCHED_PREFIX = "Batched"


def _batched_metric(base: type) -> type:
    """A subclass of TFMA metric `base` (same metric name, same config) computed on batches."""

    def computations(self, *args, **kwargs):
        return batched_computations(base.computations(self, *args, **kwargs))

    return type(
        BATCHED_PREFIX + base.__name__, (base,), {"computations": computations, "__module__": __name__}
    )


BatchedExampleCount = _batched_metric(tfma.metrics.ExampleCount)
BatchedBinaryAccuracy = _batched_metric(tfma.metrics.BinaryAccuracy)
BatchedAUC = _batched_metric(tfma.metrics.AUC)
BatchedPrecision = _batched_metric(tfma.metrics.Precision)
BatchedRecall = _batched_metric(tfma.metrics.Recall)
BatchedCalibration = _batched_metric(tfma.metrics.Calibration)
BatchedMeanLabel = _batched_metric(tfma.metrics.MeanLabel)
BatchedMeanPrediction = _batched_metric(tfma.metrics.MeanPrediction)
