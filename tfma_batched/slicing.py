"""The slicing extractor: each batch split into one extract per slice key, with that slice's rows.

`slice_batches` takes the place of TFMA's unbatch and slice-key steps; `default_extractors`
is TFMA's extractor list with those two steps replaced by it. The slice keys are TFMA's own
(`slicer.get_slices_for_features_dicts`), computed once per distinct value of a slice's
columns, the rows grouped with numpy (row by row where a column is multi-valued, NaN, or one
TFMA would read from the transformed features). Design: `docs/batched-evaluator.md`.
"""

from __future__ import annotations

from typing import Any, Iterable

import apache_beam as beam
import numpy as np
import pandas as pd
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.api import types
from tensorflow_model_analysis.extractors import (
    extractor,
    slice_key_extractor,
    unbatch_extractor,
)
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import util

from tfma_batched.limits import check_eval_config

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


def default_extractors(eval_shared_model, eval_config, tensor_adapter_config=None):
    """TFMA's default extractors up to the predictions, then `slice_batches`.

    Args:
        eval_shared_model: the model(s), as for `tfma.default_extractors`.
        eval_config: the eval config; its unsupported options are refused (`limits`).
        tensor_adapter_config: as for `tfma.default_extractors`.

    Returns:
        TFMA's extractors, its unbatch and slice-key steps replaced by `slice_batches`.
    """
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
    # Codes by hashing (pandas' factorize), not by sorting: np.unique sorts a batch's byte
    # strings with Python comparisons, most of the slicing's time (benchmarks/bench_evaluator.py).
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
