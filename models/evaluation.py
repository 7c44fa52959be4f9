"""Evaluator user code: TFMA's slices and metrics, computed a batch of examples at a time.

TFMA's stock path unbatches every eval example into an extract of its own, fans each one out
to its 4 slices and adds it to every metric combiner one at a time: about 1,000 eval rows/s
per process, whatever the model costs (profile in the README, "At real volume"). Here the
Evaluator keeps TFMA's extractors up to the model's predictions (batched, as TFMA runs
them), and three things change:

1. `custom_extractors` replaces TFMA's unbatch and slice-key steps with `slice_batches`: each
   batch is split into one extract per slice key, holding the labels, predictions and
   example weights of that slice's rows (batch-major arrays). The slice keys are TFMA's own
   (`slicer.get_slices_for_features_dicts`), computed once per distinct value of a slice's
   columns, the rows grouped with numpy (row by row where a column is multi-valued, NaN, or
   one TFMA would read from the transformed features).
2. The metrics named in the eval config come from this module: TFMA's own metric classes,
   whose per-example combiners (example count, the calibration histogram behind AUC and
   AUC-PR, the confusion matrices at fixed thresholds behind accuracy, precision and recall,
   the label/prediction sums behind calibration and the means) are swapped for subclasses
   that add a whole batch with numpy. Everything derived from them (AUC, thresholds, the
   comparison with the baseline, the blessing) is TFMA's code, unchanged.
3. `custom_eval_shared_model` hands TFMA the SavedModel with its signatures callable the way
   TFMA calls them (one positional tensor of serialized examples): TensorFlow refuses that
   call against the structured, keyword-only signature first, formats every serialized
   example of the batch into the error message, then falls back to the flat signature. That
   refusal was two thirds of the Evaluator's inference time. The wrapper passes the tensor by
   its one input name: the same function, the same outputs.

Same slices, same metric keys, same figures: `tests/unit/test_evaluation.py` holds each
batched combiner to TFMA's per-example one and the slicing to TFMA's per-example slice keys;
`tests/e2e/test_pipeline_e2e.py` compares the pipeline's Evaluator output with TFMA's stock
path on the same model and eval split, every metric of every slice. Still a Beam pipeline of
TFMA transforms, so it scales out as the stock Evaluator does.

Limits, refused with a clear error rather than computed differently: an eval config with
`min_slice_size` (TFMA would count extracts, not examples), SQL slices, cross slices,
query keys and confidence intervals.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pandas as pd
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.contrib.aggregates import binary_confusion_matrices as bcm
from tensorflow_model_analysis.extractors import (
    extractor,
    slice_key_extractor,
    unbatch_extractor,
)
from tensorflow_model_analysis.metrics import (
    binary_confusion_matrices,
    calibration,
    calibration_histogram,
    example_count,
    metric_types,
    metric_util,
)
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import util

# The module the eval config's MetricConfigs name (`module=`), so TFMA builds ours.
METRICS_MODULE = __name__

# The stage name of TFMA's slice-key extractor, which this replaces: TFMA's metrics evaluator
# runs after the stage of that name.
SLICE_BATCHES_STAGE_NAME = slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME

# What a slice's extract keeps: all the metrics read. Features, transformed features and
# the serialized inputs stay behind (they were only needed to find each row's slices).
_BATCH_KEYS = (
    constants.LABELS_KEY,
    constants.PREDICTIONS_KEY,
    constants.EXAMPLE_WEIGHTS_KEY,
)


class UnsupportedEvalConfig(ValueError):
    """An eval config option the batched Evaluator would compute differently from TFMA."""


def check_eval_config(eval_config: tfma.EvalConfig) -> None:
    """Refuse the options whose meaning changes when an extract holds a batch."""
    problems = []
    if eval_config.options.min_slice_size.value > 1:
        problems.append("options.min_slice_size (TFMA would count batches, not examples)")
    if eval_config.cross_slicing_specs:
        problems.append("cross_slicing_specs")
    if any(spec.slice_keys_sql for spec in eval_config.slicing_specs):
        problems.append("slicing_specs[].slice_keys_sql")
    for spec in eval_config.metrics_specs:
        if spec.query_key:
            problems.append("metrics_specs[].query_key")
    if eval_config.options.compute_confidence_intervals.value:
        problems.append("options.compute_confidence_intervals")
    if problems:
        raise UnsupportedEvalConfig(
            "the batched Evaluator (models/evaluation.py) does not support "
            + ", ".join(problems)
            + "; use TFMA's stock extractors for this eval config"
        )


def custom_extractors(eval_shared_model, eval_config, tensor_adapter_config=None):
    """The TFX Evaluator's hook: TFMA's extractors up to the predictions, then `SliceBatches`."""
    check_eval_config(eval_config)
    stock = tfma.default_extractors(
        eval_shared_model=eval_shared_model,
        eval_config=eval_config,
        tensor_adapter_config=tensor_adapter_config,
    )
    replaced = {
        unbatch_extractor.UNBATCH_EXTRACTOR_STAGE_NAME,
        slice_key_extractor.SLICE_KEY_EXTRACTOR_STAGE_NAME,
    }
    missing = replaced - {e.stage_name for e in stock}
    if missing:
        raise RuntimeError(f"TFMA's default extractors lack {sorted(missing)}: cannot replace them")
    return [e for e in stock if e.stage_name not in replaced] + [slice_batches(eval_config)]


class _KeywordSignature:
    """A loaded signature, also callable with its one input given positionally."""

    def __init__(self, function):
        self._function = function
        _, keywords = function.structured_input_signature
        self._only_input = next(iter(keywords)) if len(keywords) == 1 else None

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and self._only_input is not None:
            return self._function(**{self._only_input: args[0]})
        return self._function(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._function, name)


class _KeywordSignatures:
    """A loaded SavedModel whose `signatures` are `_KeywordSignature`s; the rest is the model."""

    def __init__(self, model):
        self._model = model
        self.signatures = {name: _KeywordSignature(fn) for name, fn in model.signatures.items()}

    def __getattr__(self, name):
        return getattr(self._model, name)


class _KeywordSignaturesLoader:
    """A picklable construct_fn: TFMA's own loader, its model wrapped."""

    def __init__(self, construct_fn):
        self._construct_fn = construct_fn

    def __call__(self):
        return _KeywordSignatures(self._construct_fn())


def custom_eval_shared_model(eval_saved_model_path, model_name, eval_config, **kwargs):
    """The TFX Evaluator's hook: TFMA's shared model, its signatures called by input name."""
    shared = tfma.default_eval_shared_model(
        eval_saved_model_path=eval_saved_model_path,
        model_name=model_name,
        eval_config=eval_config,
        **kwargs,
    )
    if shared.model_type != tfma.TF_GENERIC:
        return shared
    loader = types.ModelLoader(
        construct_fn=_KeywordSignaturesLoader(shared.model_loader.construct_fn),
        tags=shared.model_loader.tags,
    )
    return shared._replace(model_loader=loader)


def slice_batches(eval_config: tfma.EvalConfig) -> extractor.Extractor:
    """Extractor: a batched extract in, one extract per slice key of its rows out."""
    specs = [slicer_lib.SingleSliceSpec(spec=spec) for spec in eval_config.slicing_specs]
    specs = specs or [slicer_lib.SingleSliceSpec()]
    return extractor.Extractor(
        stage_name=SLICE_BATCHES_STAGE_NAME,
        ptransform=beam.ParDo(_SliceBatchesFn(eval_config, specs)),
    )


def _batch_size(extract: types.Extracts) -> int:
    record_batch = extract.get(constants.ARROW_RECORD_BATCH_KEY)
    if record_batch is not None:
        return record_batch.num_rows
    return len(extract[constants.INPUT_KEY])


def _slicing_columns(specs: list[slicer_lib.SingleSliceSpec]) -> set[str]:
    columns = set()
    for spec in specs:
        columns.update(spec._columns)  # noqa: SLF001 (TFMA keeps them private)
        columns.update(column for column, _ in spec._features)  # noqa: SLF001
    return columns


def _only(values: dict | None, columns: set[str]) -> dict:
    return {k: v for k, v in (values or {}).items() if k in columns}


def _take(value: Any, rows: np.ndarray) -> Any:
    """The rows of a batch-major value (nested dicts of arrays, as TFMA's extracts hold)."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {k: _take(v, rows) for k, v in value.items()}
    return np.asarray(value)[rows]


def _simple_column(name: str, features_dicts: list[dict], raw: dict, size: int):
    """(values, present, one_row) of a raw column holding at most one value a row, else None.

    `one_row(i)` is row i's value as TFMA's per-example split gives it (a (1,) array, or an
    empty one where the value is missing). None sends the spec down the per-row path: a
    column TFMA would take from the transformed features, a multi-valued one, NaNs.
    """
    if any(name in d for d in features_dicts) or name not in raw:
        return None
    value = raw[name]
    if isinstance(value, np.ndarray) and value.shape in ((size,), (size, 1)):
        values = value.reshape(size)
        present = np.ones(size, dtype=bool)

        def one_row(i):
            return values[i : i + 1]

    elif isinstance(value, types.VarLenTensorValue):
        row_of = np.asarray(value.indices)[:, 0] if len(value.values) else np.zeros(0, np.int64)
        counts = np.bincount(row_of, minlength=size)
        if counts.size != size or (counts.size and counts.max() > 1):
            return None
        source = np.asarray(value.values)
        values = np.empty(size, dtype=source.dtype)
        values[row_of] = source
        present = counts == 1

        def one_row(i):
            return values[i : i + 1] if present[i] else source[:0]

    else:
        return None
    if values.dtype.kind == "f" and np.isnan(values[present]).any():
        return None
    return values, present, one_row


def _group_rows(spec, columns: set[str], features_dicts: list[dict], raw: dict, size: int):
    """[(slice key, rows)] of one spec: rows grouped by their values with numpy.

    TFMA's slice keys are computed once per distinct value. None where the per-row path
    must decide.
    """
    simple = {}
    for name in sorted(columns):
        column = _simple_column(name, features_dicts, raw, size)
        if column is None:
            return None
        simple[name] = column
    # Codes by hashing (pandas' factorize), not by sorting: np.unique sorted a batch's byte
    # strings with Python comparisons, 90% of the slicing's time at 100x.
    codes = np.zeros((size, len(simple)), dtype=np.int64)
    for position, (values, present, _) in enumerate(simple.values()):
        codes[:, position] = -1
        if present.any():
            codes[present, position] = pd.factorize(values[present])[0]
    if len(simple) == 1:
        group_of = codes[:, 0] + 1  # 0: the value is missing
    elif simple:
        _, group_of = np.unique(codes, axis=0, return_inverse=True)
        group_of = group_of.reshape(-1)
    else:
        group_of = np.zeros(size, dtype=np.int64)
    order = np.argsort(group_of, kind="stable")
    bounds = np.cumsum(np.bincount(group_of))
    groups = []
    start = 0
    for end in bounds.tolist():
        rows = order[start:end]
        start = end
        if not rows.size:
            continue
        first = int(rows[0])
        row = {name: one_row(first) for name, (_, _, one_row) in simple.items()}
        for slice_key in set(slicer_lib.get_slices_for_features_dicts([], row, [spec])):
            groups.append((slice_key, rows))
    return groups


class _SliceBatchesFn(beam.DoFn):
    """Split each batch into one extract per slice key, with the rows of that slice."""

    def __init__(self, eval_config: tfma.EvalConfig, specs: list[slicer_lib.SingleSliceSpec]):
        self._eval_config = eval_config
        self._specs = specs
        self._columns = _slicing_columns(specs)
        self._spec_columns = [(spec, _slicing_columns([spec])) for spec in specs]
        self._model_names = [spec.name for spec in eval_config.model_specs]

    def _features_dicts(self, extract: types.Extracts) -> tuple[list[dict], dict]:
        """The slicing columns, batched, where TFMA's slice-key extractor looks for them."""
        transformed = extract.get(constants.TRANSFORMED_FEATURES_KEY)
        features_dicts = []
        if transformed is not None:
            if len(self._model_names) <= 1:
                features_dicts.append(_only(transformed, self._columns))
            else:
                for name in self._model_names:
                    if name in transformed:
                        features_dicts.append(_only(transformed[name], self._columns))
        raw = _only(extract.get(constants.FEATURES_KEY), self._columns)
        return features_dicts, raw

    def _rows_by_slice(self, extract: types.Extracts, size: int) -> dict[Any, np.ndarray]:
        """Slice key -> the sorted row numbers of the batch that TFMA puts in that slice."""
        features_dicts, raw = self._features_dicts(extract)
        parts: dict[Any, list[np.ndarray]] = {}
        general = []
        for spec, columns in self._spec_columns:
            groups = _group_rows(spec, columns, features_dicts, raw, size)
            if groups is None:
                general.append(spec)
                continue
            for slice_key, rows in groups:
                parts.setdefault(slice_key, []).append(rows)
        if general:
            for slice_key, rows in self._rows_by_slice_per_row(general, features_dicts, raw, size).items():
                parts.setdefault(slice_key, []).append(np.asarray(rows, dtype=np.int64))
        # A row reaches a slice once, however many specs name it (TFMA takes a set per example).
        return {slice_key: np.unique(np.concatenate(rows)) for slice_key, rows in parts.items()}

    def _rows_by_slice_per_row(self, specs, features_dicts, raw, size) -> dict[Any, list[int]]:
        """The general case: TFMA's own per-example split, then its slice keys row by row."""
        columns = _slicing_columns(specs)
        batched = {"raw": _only(raw, columns)}
        batched.update({f"t{i}": _only(d, columns) for i, d in enumerate(features_dicts)})
        rows = util.split_extracts(batched) if columns else [{} for _ in range(size)]
        if len(rows) != size:
            raise ValueError(f"slicing columns hold {len(rows)} rows in a batch of {size}")
        by_slice: dict[Any, list[int]] = {}
        for index, row in enumerate(rows):
            row_dicts = [row.get(f"t{i}", {}) for i in range(len(features_dicts))]
            for slice_key in set(
                slicer_lib.get_slices_for_features_dicts(row_dicts, row.get("raw", {}), specs)
            ):
                by_slice.setdefault(slice_key, []).append(index)
        return by_slice

    def process(self, extract: types.Extracts) -> Iterable[types.Extracts]:
        size = _batch_size(extract)
        if size == 0:
            return
        for slice_key, indices in self._rows_by_slice(extract, size).items():
            out = {key: _take(extract.get(key), indices) for key in _BATCH_KEYS if key in extract}
            out[constants.SLICE_KEY_TYPES_KEY] = slicer_lib.slice_keys_to_numpy_array([slice_key])
            yield out


# ---------------------------------------------------------------------------------------------
# Metric combiners that add a batch at a time.


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


def evaluate(
    *,
    model_path: str,
    example_patterns: list[str],
    schema,
    eval_config: tfma.EvalConfig,
    output_path: str,
    batched: bool,
    baseline_path: str | None = None,
    tfxio_type: type | None = None,
) -> None:
    """Run TFMA on gzipped tf.Example files as the TFX Evaluator does, batched or stock.

    `eval_config` as the Evaluator receives it (before defaults); with `baseline_path` the
    candidate is compared with that model, as with a blessed baseline; `tfxio_type` reads the
    files (tfx_bsl's `TFExampleRecord` when None). The benchmark and the tests run both paths
    on the same rows with this.
    """
    from tfx_bsl.tfxio import tf_example_record

    config = tfma.utils.update_eval_config_with_defaults(
        eval_config, has_baseline=baseline_path is not None, rubber_stamp=True
    )
    make_model = custom_eval_shared_model if batched else tfma.default_eval_shared_model
    models = [
        make_model(
            eval_saved_model_path=baseline_path if spec.is_baseline else model_path,
            model_name=spec.name,
            eval_config=config,
        )
        for spec in config.model_specs
    ]
    source = (tfxio_type or tf_example_record.TFExampleRecord)(
        file_pattern=example_patterns, schema=schema, raw_record_column_name=tfma.ARROW_INPUT_COLUMN
    )
    adapter = source.TensorAdapterConfig()
    shared = models[0] if len(models) == 1 else models
    extractors = custom_extractors(shared, config, adapter) if batched else None
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | "Read" >> source.BeamSource()
            | "Evaluate"
            >> tfma.ExtractEvaluateAndWriteResults(
                eval_shared_model=shared,
                eval_config=config,
                extractors=extractors,
                output_path=output_path,
                tensor_adapter_config=adapter,
            )
        )


def metric_values(output_path: str) -> dict[tuple[str, str], float]:
    """(slice, metric key) -> value of every scalar metric in a TFMA output folder."""
    values = {}
    for metrics in tfma.load_metrics(output_path):
        slice_key = str(metrics.slice_key)
        for item in metrics.metric_keys_and_values:
            if item.value.HasField("double_value"):
                values[(slice_key, str(item.key))] = item.value.double_value.value
    return values
