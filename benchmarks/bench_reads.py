"""What reading a split of tf.Examples costs: tfx_bsl's record-wise TFXIO vs the file-wise one.

Both read the same split of a finished run (its ExampleGen output and schema: `make run`, or
a `bench_scale.py` run at 10x or 100x) into Arrow record batches in a Beam pipeline (one
process, in memory, as the pipeline's stages run), with the raw-record column as the
Evaluator asks, and count the rows. Also how fast zlib deflates those records at the level
ExampleGen writes (1) and TensorFlow's default (6). Prints medians.

    .venv/bin/python benchmarks/bench_reads.py --root runs/bench-scale/ours-100x/pipeline
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_evaluator import _newest  # noqa: E402 (a run's newest artifact folder)


def read_rows(source) -> int:
    """Rows the source's BeamSource yields, read in a one-process Beam pipeline."""
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    rows = beam.metrics.Metrics.counter("bench_reads", "rows")

    def count(batch):
        rows.inc(batch.num_rows)

    pipeline = beam.Pipeline(argv=["--direct_running_mode=in_memory", "--direct_num_workers=1"])
    _ = pipeline | source.BeamSource() | beam.Map(count)
    result = pipeline.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_name("rows"))["counters"]
    return sum(counter.committed for counter in counters)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path("runs/default/pipeline"), help="a run's pipeline root"
    )
    parser.add_argument("--split", default="eval")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from tensorflow_metadata.proto.v0 import schema_pb2
    from tfx.utils import io_utils
    from tfx_bsl.tfxio import tf_example_record

    from components.file_batch_reads.tfxio import FileBatchTFExampleRecord
    from data.tfrecords import read_tfrecords

    split = _newest(args.root, f"*ExampleGen/examples/*/Split-{args.split}")
    schema = io_utils.parse_pbtxt_file(
        str(_newest(args.root, "ImportSchemaGen/schema/*/schema.pbtxt")), schema_pb2.Schema()
    )
    pattern = str(split / "*")
    stock = tf_example_record.TFExampleRecord(pattern, schema=schema, raw_record_column_name="__raw__")
    readers = {"record-wise (tfx_bsl)": stock, "file-wise (ours)": FileBatchTFExampleRecord.from_tfxio(stock)}
    print(f"split {split}")
    for name, source in readers.items():
        seconds, rows = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            rows = read_rows(source)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"  {name:22s} {rows:,} rows, median {median:6.2f} s ({runs}); {rows / median:9,.0f} rows/s")

    payload = b"".join(read_tfrecords(sorted(str(p) for p in split.iterdir())))
    for level in (1, 6):
        start = time.perf_counter()
        deflated = zlib.compress(payload, level)
        seconds = time.perf_counter() - start
        print(
            f"  zlib level {level}: {len(payload) / seconds / 1e6:5.0f} MB/s deflate, "
            f"{len(deflated) / len(payload):.3f} of {len(payload) / 1e6:,.0f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
