"""Reading tf.Examples a file per Beam element: the same record batches, and TFX's executors using it.

The source is held to tfx_bsl's own `TFExampleRecord` on the same files in one Beam pipeline
(every row, every column, the raw-record column), on gzipped and uncompressed files; the
StatisticsGen executor to TFX's stock one on a real ExampleGen output (the same statistics).
Transform and the Evaluator run with it in every end-to-end run, where the Evaluator's
figures are held to TFMA's stock path on the stock reader (tests/e2e).
"""

from __future__ import annotations

import os

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from google.protobuf import json_format, text_format
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from test_example_gen import run_executor
from tfx.components import Evaluator, StatisticsGen, Trainer
from tfx.components.statistics_gen import executor as stock_statistics_gen
from tfx.components.util import tfxio_utils
from tfx.types import artifact_utils, channel_utils, standard_artifacts, standard_component_specs
from tfx_bsl.tfxio import tf_example_record

from components.file_batch_reads import component as file_batch_component
from components.file_batch_reads import executor as file_batch
from components.file_batch_reads.tfxio import (
    DEFAULT_BATCH_RECORDS,
    FileBatchTFExampleRecord,
    matching_files,
)
from data import embedded
from data.tfrecords import tfrecord_compression, write_tfrecords
from serving.replay_data import csv_to_examples

SCHEMA_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "schemas", "schema.pbtxt")
RAW = "__raw_record__"


def schema() -> schema_pb2.Schema:
    with open(SCHEMA_FILE) as handle:
        return text_format.Parse(handle.read(), schema_pb2.Schema())


@pytest.fixture(scope="module")
def record_files(tmp_path_factory):
    """Span 8's tf.Examples in three files: two gzipped, one not (1,875 records)."""
    root = tmp_path_factory.mktemp("records")
    embedded.materialize_spans(root)
    records = csv_to_examples(root / "span-8" / embedded.SPAN_FILE_NAME)
    parts = [records[:700], records[700:1500], records[1500:]]
    names = ["part-0.gz", "part-1.gz", "part-2.tfrecord"]
    for name, part in zip(names, parts):
        write_tfrecords(root / name, part)  # compressed as tfrecord_compression(name) says
    return root, records


def _rows(batch) -> list[tuple]:
    """(raw record, every column's values) per row of a record batch."""
    rows = []
    for row in batch.to_pylist():
        values = tuple(sorted((k, None if v is None else tuple(v)) for k, v in row.items() if k != RAW))
        rows.append((row[RAW][0], values))
    return rows


def test_the_same_rows_and_columns_as_tfx_bsl_reads(record_files):
    root, records = record_files
    pattern = str(root / "part-*")
    stock = tf_example_record.TFExampleRecord(pattern, schema=schema(), raw_record_column_name=RAW)
    ours = FileBatchTFExampleRecord.from_tfxio(stock)
    assert ours.ArrowSchema().equals(stock.ArrowSchema())
    with TestPipeline() as pipeline:
        by_source = {
            name: pipeline
            | f"Read{name}" >> source.BeamSource(batch_size=256)
            | f"Rows{name}" >> beam.FlatMap(_rows)
            for name, source in (("stock", stock), ("ours", ours))
        }
        differ = (
            by_source
            | beam.CoGroupByKey()
            | beam.Filter(lambda kv: sorted(kv[1]["stock"]) != sorted(kv[1]["ours"]))
        )
        assert_that(differ, equal_to([]), label="every row the same")
        count = by_source["ours"] | "Count" >> beam.combiners.Count.Globally()
        assert_that(count, equal_to([len(records)]), label="every record once")


def test_batches_hold_at_most_the_size_asked_and_every_record(record_files):
    root, records = record_files
    source = FileBatchTFExampleRecord(str(root / "part-*"), schema=schema())
    with TestPipeline() as pipeline:
        sizes = pipeline | source.BeamSource(batch_size=256) | beam.Map(lambda b: b.num_rows)
        # Files of 700, 800 and 375 records in batches of up to 256: 3 + 4 + 2 batches.
        assert_that(sizes, equal_to([256, 256, 188, 256, 256, 256, 32, 256, 119]))
    with TestPipeline() as pipeline:
        sizes = pipeline | source.BeamSource() | beam.Map(lambda b: b.num_rows)
        assert_that(sizes, equal_to([700, 800, 375]))  # each file one batch under the default
    assert DEFAULT_BATCH_RECORDS == 8192


def test_a_projection_reads_file_wise_too(record_files):
    root, _ = record_files
    source = FileBatchTFExampleRecord(str(root / "part-*"), schema=schema())
    projected = source.Project(["fare", "company"])
    assert type(projected.projected) is FileBatchTFExampleRecord  # what its BeamSource reads with
    assert sorted(projected.ArrowSchema().names) == ["company", "fare"]
    with TestPipeline() as pipeline:
        columns = pipeline | projected.BeamSource() | beam.Map(lambda b: tuple(sorted(b.schema.names)))
        assert_that(columns, equal_to([("company", "fare")] * 3))


def test_names_what_it_cannot_read():
    assert tfrecord_compression("a/data_tfrecord-00000.gz") == "GZIP"
    assert tfrecord_compression("a/data.tfrecord") == ""
    with pytest.raises(ValueError, match=r"a/data\.bz2: a TFRecord file compressed"):
        tfrecord_compression("a/data.bz2")
    with pytest.raises(FileNotFoundError, match="no TFRecord files match .*nothing-here"):
        matching_files(["/tmp/nothing-here/*"])


def test_make_tfxio_is_swapped_only_inside_the_context(record_files):
    root, _ = record_files

    def made():
        return tfxio_utils.make_tfxio(
            file_pattern=str(root / "part-*"), telemetry_descriptors=[], payload_format=6, schema=schema()
        )

    assert type(made()) is tf_example_record.TFExampleRecord
    with file_batch.file_batch_tfxio():
        assert type(made()) is FileBatchTFExampleRecord
    assert type(made()) is tf_example_record.TFExampleRecord
    with pytest.raises(RuntimeError), file_batch.file_batch_tfxio():
        raise RuntimeError("a failing Do")
    assert type(made()) is tf_example_record.TFExampleRecord


def test_the_pipeline_s_readers_get_their_executors_and_keep_their_beam_args():
    examples = channel_utils.as_channel([standard_artifacts.Examples()])
    statistics_gen = StatisticsGen(examples=examples).with_beam_pipeline_args(["--direct_num_workers=1"])
    assert file_batch_component.read_file_batches(statistics_gen) is statistics_gen
    assert statistics_gen.executor_spec.executor_class is file_batch.StatisticsGenExecutor
    assert statistics_gen.executor_spec.beam_pipeline_args == ["--direct_num_workers=1"]
    evaluator = file_batch_component.read_file_batches(Evaluator(examples=examples))
    assert evaluator.executor_spec.executor_class is file_batch.EvaluatorExecutor
    with pytest.raises(TypeError, match="no file-batch executor for Trainer"):
        file_batch_component.read_file_batches(Trainer(run_fn="models.trainer.run_fn", examples=examples))


def _statistics(executor, examples, out) -> statistics_pb2.DatasetFeatureStatisticsList:
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(out)
    statistics.split_names = artifact_utils.encode_split_names(["train", "eval"])
    executor.Do(
        {standard_component_specs.EXAMPLES_KEY: [examples]},
        {standard_component_specs.STATISTICS_KEY: [statistics]},
        {standard_component_specs.EXCLUDE_SPLITS_KEY: "[]"},
    )
    result = {}
    for split in ("train", "eval"):
        path = os.path.join(artifact_utils.get_split_uri([statistics], split), "FeatureStats.pb")
        with open(path, "rb") as handle:
            result[split] = statistics_pb2.DatasetFeatureStatisticsList.FromString(handle.read())
    return result


def _approx(ours, theirs) -> bool:
    """Equal structures, numbers equal to 12 significant digits."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_approx(ours[k], theirs[k]) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_approx(a, b) for a, b in zip(ours, theirs))
    if isinstance(ours, float | int) and isinstance(theirs, float | int):
        return ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)
    return ours == theirs


def test_statistics_gen_computes_the_statistics_tfx_s_own_executor_does(tmp_path):
    data = tmp_path / "spans"
    embedded.materialize_spans(data)
    examples = run_executor(data, tmp_path / "examples", "7,8")
    stock = _statistics(stock_statistics_gen.Executor(), examples, tmp_path / "stock")
    ours = _statistics(file_batch.StatisticsGenExecutor(), examples, tmp_path / "ours")
    for split in ("train", "eval"):
        (stock_set,), (our_set,) = stock[split].datasets, ours[split].datasets
        assert our_set.num_examples == stock_set.num_examples > 1000
        assert len(our_set.features) == len(stock_set.features) == 18
        # Equal but for the last bits of float sums (batches of other sizes add in another order).
        assert _approx(json_format.MessageToDict(our_set), json_format.MessageToDict(stock_set)), split


@pytest.mark.parametrize("executor", sorted(file_batch_component.EXECUTORS))
def test_each_executor_s_do_builds_its_tfxio_file_wise(executor, monkeypatch):
    """What TFX's own Do (run as `super().Do`) gets from make_tfxio inside ours."""
    seen = []

    def stock_do(self, input_dict, output_dict, exec_properties):
        made = tfxio_utils.make_tfxio(
            file_pattern="/data/*.gz", telemetry_descriptors=[], payload_format=6, schema=schema()
        )
        seen.append(type(made))

    executor_class = file_batch_component.EXECUTORS[executor]
    monkeypatch.setattr(executor_class.__mro__[1], "Do", stock_do)
    executor_class().Do({}, {}, {})
    assert seen == [FileBatchTFExampleRecord]
    assert tfxio_utils.make_tfxio.__name__ == "make_tfxio"  # put back


def _read_raw(source, batch_size) -> list[bytes]:
    """The raw records `source`'s Beam source yields, every file through its DoFn, in order."""
    from components.file_batch_reads.tfxio import ReadDecodeFile

    read = ReadDecodeFile(source._schema.SerializeToString(), RAW, batch_size, source.sample_rate)
    read.setup()
    return [
        value[0]
        for path in matching_files(source._file_pattern)
        for batch in read.process(path)
        for value in batch.column(RAW).to_pylist()
    ]


def test_a_sample_rate_keeps_a_seeded_uniform_share_before_decoding(record_files):
    root, records = record_files
    pattern = str(root / "part-*")
    stock = tf_example_record.TFExampleRecord(pattern, schema=schema(), raw_record_column_name=RAW)
    sampled = FileBatchTFExampleRecord.from_tfxio(stock, sample_rate=0.25)
    kept = _read_raw(sampled, 256)
    assert 0.2 * len(records) < len(kept) < 0.3 * len(records)
    assert len(set(kept)) == len(kept) and set(kept) <= set(records)
    positions = sorted(records.index(record) for record in kept)
    assert positions[0] < 50 and positions[-1] > len(records) - 50  # all along every file
    assert sorted(kept) == sorted(_read_raw(sampled, 100))  # the same rows whatever the batches
    projected = sampled.Project(["fare"])
    assert projected.projected.sample_rate == 0.25
    assert len(_read_raw(FileBatchTFExampleRecord.from_tfxio(stock), 256)) == len(records)  # rate 1: all


def test_transform_analyzes_a_sample_only_past_analysis_examples(tmp_path, monkeypatch):
    spans = tmp_path / "spans"
    embedded.materialize_spans(spans)
    examples = run_executor(spans, tmp_path / "out", "7,8")
    train = sum(1 for _ in tfrecord_rows(examples, "train"))
    inputs = {standard_component_specs.EXAMPLES_KEY: [examples]}
    assert file_batch.analysis_sample_rate(inputs, {}, {}) == 1.0  # fewer than ANALYSIS_EXAMPLES
    monkeypatch.setattr(file_batch, "ANALYSIS_EXAMPLES", train // 4)
    assert file_batch.analysis_sample_rate(inputs, {}, {}) == pytest.approx((train // 4) / train)
    # Transformed examples to write: every example, whatever the size.
    wanted = {standard_component_specs.TRANSFORMED_EXAMPLES_KEY: [standard_artifacts.Examples()]}
    assert file_batch.analysis_sample_rate(inputs, wanted, {}) == 1.0


def tfrecord_rows(examples, split):
    import tensorflow as tf

    folder = artifact_utils.get_split_uri([examples], split)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".gz"):
            yield from tf.data.TFRecordDataset(os.path.join(folder, name), compression_type="GZIP")
