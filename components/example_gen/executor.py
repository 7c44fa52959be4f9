"""Executor: TFX's CSV-to-tf.Example conversion over the files of several span patterns."""

from __future__ import annotations

import os

import apache_beam as beam
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.io import fileio
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx_bsl.coders import csv_decoder

from components.anomaly_gate.executor import DataAnomalyError
from components.example_gen.driver import PATTERN_SEPARATOR, SPANS_PROPERTY
from data.checks import SpanDataError, check_span
from models import features


def match_files(input_base: str, split_pattern: str) -> list[list[str]]:
    """Files of every per-span pattern joined in `split_pattern`, one list per span, in span order."""
    files = []
    for pattern in split_pattern.split(PATTERN_SEPARATOR):
        matched = sorted(fileio.glob(os.path.join(input_base, pattern)))
        if not matched:
            raise RuntimeError(f"split pattern {pattern} matches no file under {input_base}")
        files.append(matched)
    return files


def check_window(spans: list[int | None], files_by_span: list[list[str]]) -> dict:
    """Every span's files read once, strictly (`data.checks`); span -> rows.

    Raises:
        DataAnomalyError: naming span, file, line, column and value of the first problem, so
            the run stops as a data-gate stop before any Beam work.
    """
    try:
        return {span: check_span(span, files) for span, files in zip(spans, files_by_span)}
    except SpanDataError as error:
        raise DataAnomalyError(
            f"{error}; the run stops before any statistics and nothing is pushed"
        ) from None


class _WindowCsvToExample(beam.PTransform):
    """Like TFX's `_CsvToExample`, but over several patterns; the headers must all agree.

    Column types come from `models.features` when it knows every column; otherwise they
    are inferred over the whole window, so a column that happens to hold only whole numbers
    in one span keeps the type the other spans give it.
    """

    def __init__(self, exec_properties: dict, split_pattern: str):
        by_span = match_files(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
        spans = [int(s) for s in str(exec_properties.get(SPANS_PROPERTY) or "").split(",") if s]
        check_window(spans if len(spans) == len(by_span) else [None] * len(by_span), by_span)
        self._files = [path for files in by_span for path in files]

    def expand(self, pipeline):
        column_names = io_utils.load_csv_column_names(self._files[0])
        for path in self._files[1:]:
            names = io_utils.load_csv_column_names(path)
            if names != column_names:
                missing = sorted(set(column_names) - set(names))
                extra = sorted(set(names) - set(column_names))
                raise DataAnomalyError(
                    f"span file {path} has a different header from {self._files[0]}: "
                    f"missing columns {missing}, extra columns {extra}; the run stops before any "
                    "statistics and nothing is pushed"
                )
        # Reuses TFX's own CSV readers (private names, pinned by the lock file).
        lines = (
            pipeline
            | "CreateFilenames" >> beam.Create(self._files)
            | "ReadFromText" >> beam.ParDo(csv_executor._ReadCsvRecordsFromTextFile())
            | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
            | "ExtractParsedCSVLines" >> beam.Keys()
        )
        known = known_column_infos(column_names)
        if known is not None:
            return lines | "ToTFExample" >> beam.ParDo(csv_executor._ParsedCsvToTfExample(), known)
        column_infos = beam.pvalue.AsSingleton(
            lines
            | "InferColumnTypes"
            >> beam.CombineGlobally(csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True))
        )
        return lines | "ToTFExample" >> beam.ParDo(csv_executor._ParsedCsvToTfExample(), column_infos)


def known_column_infos(column_names: list[str]) -> list[csv_decoder.ColumnInfo] | None:
    """Column types from `models.features` when it knows every column, else None (infer).

    Known types skip a whole inference pass over the data, and a span whose fares happen to
    be whole numbers is still read as FLOAT.
    """
    types = {c: csv_decoder.ColumnType.INT for c in features.RAW_INT_COLUMNS}
    types.update({c: csv_decoder.ColumnType.FLOAT for c in features.RAW_FLOAT_COLUMNS})
    types.update({c: csv_decoder.ColumnType.STRING for c in features.RAW_STRING_COLUMNS})
    if not all(name in types for name in column_names):
        return None
    return [csv_decoder.ColumnInfo(name, types[name]) for name in column_names]


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """CSV ExampleGen executor reading a window of spans."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _WindowCsvToExample
