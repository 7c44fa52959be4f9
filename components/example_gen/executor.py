"""Executor: CSV spans to tf.Examples batch-wise (Arrow + tfx_bsl in C++), over a window of spans."""

from __future__ import annotations

import bisect
import hashlib
import io
import os

import apache_beam as beam
import numpy as np
import pyarrow as pa
from pyarrow import csv as pcsv
from tfx.components.example_gen import base_example_gen_executor, utils, write_split
from tfx.components.example_gen import driver as tfx_driver
from tfx.components.util import examples_utils
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.coders import example_coder

from components.example_gen.driver import PATTERN_SEPARATOR, SPAN_SPEC, SPANS_PROPERTY, resolve_window
from components.shared import DataAnomalyError, releases_memory
from data.span_checks import SpanDataError, check_span
from data.tfrecords import write_tfrecords
from models import features
from models.record_counts import write_record_counts


def match_files(input_base: str, split_pattern: str) -> list[list[str]]:
    """Files of every per-span pattern joined in `split_pattern`, one list per span, in span order."""
    files = []
    for pattern in split_pattern.split(PATTERN_SEPARATOR):
        matched = sorted(fileio.glob(os.path.join(input_base, pattern)))
        if not matched:
            raise RuntimeError(f"split pattern {pattern} matches no file under {input_base}")
        files.append(matched)
    return files


def resolve_window_here(exec_properties: dict, examples) -> dict:
    """The exec properties with the span window resolved, when no driver resolved it.

    Locally `SpanWindowDriver` resolves the window before the executor runs. On Kubeflow
    Pipelines no driver runs (the open-source backend has no pre-cache-check hook), so the
    patterns still hold `{SPAN}`: the window is resolved here, by the same `resolve_window`,
    and the output artifact gets what the driver would have set (span, version, input
    fingerprint, `spans`); the task's ExecutorOutput carries them downstream.
    """
    input_config = example_gen_pb2.Input()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
    if not any(SPAN_SPEC in split.pattern for split in input_config.splits):
        return exec_properties
    resolved = resolve_window(exec_properties)
    tfx_driver.update_output_artifact(exec_properties=resolved, output_artifact=examples.mlmd_artifact)
    examples.set_string_custom_property(SPANS_PROPERTY, resolved[SPANS_PROPERTY])
    return resolved


def check_window(spans: list[int | None], files_by_span: list[list[str]]) -> dict:
    """Every span's files read once, strictly (`data.span_checks`); span -> rows.

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


# Rows per Arrow record batch (and per output file): big enough that per-batch costs vanish,
# small enough that a worker holds a few tens of MB at a time.
ROWS_PER_BATCH = 65_536
# Chunks parsed by one read_csv call, and the bytes read from a file at a time: a worker
# holds one group of rows (half a million), never a whole span file.
PARSE_GROUP_BATCHES = 8
READ_BYTES = 32 * 2**20

# zlib level 1, not TensorFlow's default 6: on our tf.Examples level 1 deflates several times
# faster for files only a little larger, and readers inflate both alike (`python
# benchmarks/bench_reads.py` prints both levels' speed and size).
GZIP_LEVEL = 1


def arrow_column_types() -> dict[str, pa.DataType]:
    """The Arrow type of each raw column, from `models.features` (no inference pass)."""
    arrow = {"int": pa.int64(), "float": pa.float32(), "string": pa.binary()}
    return {name: arrow[kind] for name, kind in features.RAW_COLUMN_KINDS.items()}


def _as_list_column(column: pa.ChunkedArray) -> pa.LargeListArray:
    """One value per row -> a list column; an empty cell becomes an empty list.

    That is what TFX's CsvExampleGen writes for a blank cell (a feature with an empty value
    list), so statistics, the schema's presence constraints and parsing see the same data.
    """
    values = column.combine_chunks()
    present = values.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(present, out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), values.drop_null())


def _row_groups(path: str, group_rows: int):
    """(header line, up to `group_rows` non-blank row lines) of one CSV file, group by group.

    The file is read in blocks of `READ_BYTES`, so what one file costs in memory is a group,
    not the file (a 1,000x span is 1.9 million rows: its bytes, its lines and its Arrow table
    held at once were most of ExampleGen's peak).
    """
    with fileio.open(path, "rb") as handle:
        header = handle.readline()
        pending: list[bytes] = []
        tail = b""
        while True:
            block = handle.read(READ_BYTES)
            if not block:
                break
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            pending.extend(line for line in lines if line.strip(b"\r"))
            while len(pending) >= group_rows:
                yield header, pending[:group_rows]
                pending = pending[group_rows:]
        if tail.strip(b"\r"):
            pending.append(tail)
        if pending:
            yield header, pending


def csv_chunks(path: str, rows_per_batch: int = ROWS_PER_BATCH, group_batches: int = PARSE_GROUP_BATCHES):
    """(raw row lines, Arrow record batch of list columns) for each chunk of one CSV file.

    The raw lines are each row's partition key (see `split_of`). A quoted field holding a
    newline would make lines and rows disagree: the chunk is then refused by name rather
    than split by guesswork. Chunks are `rows_per_batch` rows, counted from the file's first
    row whatever the groups it is parsed in.
    """
    types = arrow_column_types()
    # A blank cell, and only a blank cell, is missing (Arrow's default also takes "N/A", "NA").
    options = pcsv.ConvertOptions(
        column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False
    )
    first = 0
    # One parse per group of `group_batches` chunks, sliced into chunks after: on Python 3.10
    # every read_csv call walks the garbage collector's referrers (pyarrow's SignalStopHandler,
    # bpo-42248), a fixed cost per call that grows with what TensorFlow loads.
    for header, rows in _row_groups(path, rows_per_batch * group_batches):
        table = pcsv.read_csv(io.BytesIO(header + b"\n".join(rows) + b"\n"), convert_options=options)
        if table.num_rows != len(rows):
            raise DataAnomalyError(
                f"{path}: lines {first + 1}..{first + len(rows)} after the header hold "
                f"{table.num_rows} CSV rows, not {len(rows)} (a quoted field spans lines?); "
                "the run stops before any statistics"
            )
        names = sorted(table.column_names)
        for start in range(0, len(rows), rows_per_batch):
            chunk = table.slice(start, rows_per_batch)
            columns = [_as_list_column(chunk[n]) for n in names]
            yield rows[start : start + rows_per_batch], pa.RecordBatch.from_arrays(columns, names)
        first += len(rows)


def split_of(line: bytes, buckets: list[int]) -> int:
    """The output split of one row: TFX's hash-bucket rule, applied to the row's CSV bytes."""
    bucket = int.from_bytes(hashlib.sha256(line).digest(), "big") % buckets[-1]
    return bisect.bisect(buckets, bucket)


class _CsvToExampleShards(beam.DoFn):
    """One CSV file -> (split index, shard name, serialized tf.Examples) per chunk and split.

    Decoding (Arrow's CSV reader) and encoding (tfx_bsl's RecordBatchToExamplesEncoder) are
    C++ over whole batches; Python touches each row once, to hash it into its split.
    """

    def __init__(self, buckets: list[int], rows_per_batch: int):
        self._buckets = buckets
        self._rows_per_batch = rows_per_batch

    def process(self, element):
        file_index, path = element
        encoder = example_coder.RecordBatchToExamplesEncoder()
        for chunk, (lines, batch) in enumerate(csv_chunks(path, self._rows_per_batch)):
            records = encoder.encode(batch)
            by_split: dict[int, list[bytes]] = {}
            for line, record in zip(lines, records):
                by_split.setdefault(split_of(line, self._buckets), []).append(record)
            for split, split_records in sorted(by_split.items()):
                yield split, f"{file_index:05d}-{chunk:05d}", split_records


class _WriteShard(beam.DoFn):
    """Writes one shard of one split as a gzipped TFRecord file (the layout TFX components read)."""

    def __init__(self, split_uris: list[str]):
        self._split_uris = split_uris

    def process(self, element):
        split, shard, records = element
        path = os.path.join(self._split_uris[split], f"data_tfrecord-{shard}.gz")
        write_tfrecords(path, records, compression_level=GZIP_LEVEL)
        yield path, len(records)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    """CSV ExampleGen executor reading a window of spans, batch-wise.

    Every span file is checked strictly first (`check_window`), then a Beam pipeline reads
    the files in Arrow record batches, encodes them to tf.Examples in C++, assigns each row
    to its split by TFX's hash-bucket rule and writes each batch's share of a split as one
    gzipped TFRecord file, then every file's record count beside the split folders
    (`models.record_counts`, for the Trainer's plan). Same output contract as TFX's
    CsvExampleGen (split folders of gzipped tf.Examples, an empty value list for a blank
    cell); the work per row is C++ but for one hash, and no step holds more than a batch (no
    Reshuffle of the whole data set).
    """

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        raise NotImplementedError("this executor reads CSV batch-wise in its own Do")

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        exec_properties = resolve_window_here(exec_properties, examples)
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if len(input_config.splits) != 1 or not output_config.split_config.splits:
            raise ValueError("SpanWindowCsvExampleGen takes one input split and hash-bucket output splits")
        split_names = utils.generate_output_split_names(input_config, output_config)
        examples.split_names = artifact_utils.encode_split_names(split_names)
        split_uris = [artifact_utils.get_split_uri([examples], name) for name in split_names]
        for uri in split_uris:
            fileio.makedirs(uri)

        by_span = match_files(
            exec_properties[standard_component_specs.INPUT_BASE_KEY], input_config.splits[0].pattern
        )
        spans = [int(s) for s in str(exec_properties.get(SPANS_PROPERTY) or "").split(",") if s]
        check_window(spans if len(spans) == len(by_span) else [None] * len(by_span), by_span)
        files = [path for span_files in by_span for path in span_files]
        buckets = [int(b) for b in np.cumsum([s.hash_buckets for s in output_config.split_config.splits])]
        with self._make_beam_pipeline() as pipeline:
            _ = (
                pipeline
                | "Files" >> beam.Create(list(enumerate(files)))
                | "CsvToExamples"
                >> beam.ParDo(_CsvToExampleShards([int(b) for b in buckets], ROWS_PER_BATCH))
                | "WriteShards" >> beam.ParDo(_WriteShard(split_uris))
                | "Counts" >> beam.combiners.ToDict()
                | "WriteCounts" >> beam.Map(lambda counts: write_record_counts(examples.uri, counts))
            )
        examples_utils.set_payload_format(examples, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
        examples_utils.set_file_format(
            examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP)
        )
