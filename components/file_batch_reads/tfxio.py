"""A TFXIO for tf.Examples in TFRecord files that reads a whole file per Beam element.

tfx_bsl's `TFExampleRecord` reads with Beam's `ReadFromTFRecord`: one Beam element per record,
each record read by Python code (two buffered reads through Beam's gzip wrapper, two CRCs,
the splittable-DoFn bookkeeping), then `BatchElements` and a 10%-sampled per-row profile of
every batch. At 100x the sample that input path, not the statistics, analyzers or metrics,
was most of StatisticsGen, Transform and the Evaluator (benchmarks/README.md).

`FileBatchTFExampleRecord.BeamSource` is the same data in the same Arrow form: the file
names are the Beam elements (`beam.Create` reshuffles them, so on Dataflow or Flink the
files spread over the workers), TensorFlow's C++ record reader reads each file (it checks
the CRCs too), and tfx_bsl's own decoder turns every `batch_size` records into a record
batch, with the raw-record column when one is asked for. Everything else (schema, Arrow
schema, tensor representations, projections, the tf.data paths) is `TFExampleRecord`'s.
"""

from __future__ import annotations

import os
import zlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
from tfx_bsl.coders import example_coder
from tfx_bsl.tfxio import record_based_tfxio, tf_example_record

from data.tfrecords import iter_tfrecords

# Records per record batch when the caller asks for no size: the batch tfx_bsl's byte-size
# batching flag gives records of our size (20 MiB a batch, each record counted as at least
# 2,560 bytes). With that flag against Beam's adaptive 1 to 1,000, on the record-wise reader,
# the Evaluator ran faster at 100x (its seconds: `make bench-scale`).
DEFAULT_BATCH_RECORDS = 8192


def matching_files(file_patterns: list[str]) -> list[str]:
    """Every file the patterns match (sorted), or an error naming the patterns."""
    import tensorflow as tf

    files = sorted({f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)})
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {file_patterns}")
    return files


class ReadDecodeFile(beam.DoFn):
    """One TFRecord file of tf.Examples -> Arrow record batches of up to `batch_size` rows.

    With `sample_rate` below 1, each record is kept with that probability, before it is
    decoded (decoding is most of the cost), by draws seeded from the file's name: the same
    records every run, whatever the worker or the order the files come in.
    """

    def __init__(
        self,
        schema: bytes | None,
        raw_record_column_name: str | None,
        batch_size: int,
        sample_rate: float = 1.0,
    ):
        self._schema = schema
        self._raw_record_column_name = raw_record_column_name
        self._batch_size = batch_size
        self._sample_rate = sample_rate
        self._decoder = None

    def setup(self):
        self._decoder = (
            example_coder.ExamplesToRecordBatchDecoder(self._schema)
            if self._schema
            else example_coder.ExamplesToRecordBatchDecoder()
        )

    def _decode(self, records: list[bytes]) -> pa.RecordBatch:
        batch = self._decoder.DecodeBatch(records)
        if self._raw_record_column_name is not None:
            batch = record_based_tfxio.AppendRawRecordColumn(batch, self._raw_record_column_name, records)
        return batch

    def process(self, path: str):
        records = []
        for record in self._records(path):
            records.append(record)
            if len(records) == self._batch_size:
                yield self._decode(records)
                records = []
        if records:
            yield self._decode(records)

    def _records(self, path: str):
        if self._sample_rate >= 1.0:
            yield from iter_tfrecords([path])
            return
        draws = np.random.default_rng(zlib.crc32(os.path.basename(path).encode()))
        chunk: list[bytes] = []
        for record in iter_tfrecords([path]):
            chunk.append(record)
            if len(chunk) == SAMPLE_CHUNK:
                yield from _kept(chunk, draws, self._sample_rate)
                chunk = []
        yield from _kept(chunk, draws, self._sample_rate)


# Records whose keep-or-drop draws are taken at once (the draws do not depend on it).
SAMPLE_CHUNK = 8192


def _kept(records: list[bytes], draws: np.random.Generator, rate: float) -> list[bytes]:
    keep = draws.random(len(records)) < rate
    return [record for record, kept in zip(records, keep) if kept]


class FileBatchTFExampleRecord(tf_example_record.TFExampleRecord):
    """`TFExampleRecord` whose Beam source reads and decodes a whole file per element."""

    sample_rate: float = 1.0  # below 1: a seeded uniform sample of the records (`ReadDecodeFile`)

    @classmethod
    def from_tfxio(
        cls, tfxio: tf_example_record.TFExampleRecord, sample_rate: float = 1.0
    ) -> FileBatchTFExampleRecord:
        """The same files, schema, raw-record column and telemetry names, read file-wise."""
        made = cls(
            file_pattern=list(tfxio._file_pattern),  # noqa: SLF001 (tfx_bsl keeps it private)
            schema=tfxio._schema,  # noqa: SLF001
            raw_record_column_name=tfxio.raw_record_column_name,
            telemetry_descriptors=tfxio.telemetry_descriptors,
        )
        made.sample_rate = sample_rate
        return made

    def BeamSource(self, batch_size: int | None = None) -> beam.PTransform:  # noqa: N802 (TFXIO's name)
        files = matching_files(self._file_pattern)
        schema = self._schema.SerializeToString() if self._schema is not None else None
        read = ReadDecodeFile(
            schema, self.raw_record_column_name, batch_size or DEFAULT_BATCH_RECORDS, self.sample_rate
        )

        @beam.ptransform_fn
        @beam.typehints.with_output_types(pa.RecordBatch)
        def _read_file_batches(pipeline):
            return pipeline | "Files" >> beam.Create(files) | "ReadDecode" >> beam.ParDo(read)

        return _read_file_batches()

    def _ProjectImpl(self, tensor_names: list[str]) -> FileBatchTFExampleRecord:  # noqa: N802
        return self.from_tfxio(super()._ProjectImpl(tensor_names), self.sample_rate)
