"""A Trainer `run_fn` that plans its training from the exact number of training examples.

The real `run_fn` plans from `models.trainer.estimate_records`, which scales one file's record
count by the gzipped files' bytes. Those bytes depend on the order of the features inside each
serialized tf.Example, and that order is whatever the encoding process's protobuf map gives
(the same examples, a different byte string from one process to the next). The plan (the
shuffle buffer) then differs between two runs whose ExampleGen ran in different processes, and
so does the model. The portable-runner e2e test compares a run whose ExampleGen ran in an SDK
worker with one whose ExampleGen ran in the test's own process, so it trains with this run_fn:
the real one, with the count made exact.
"""

from __future__ import annotations

import tensorflow as tf

from models import trainer


def exact_records(files: list[str]) -> int:
    return sum(1 for _ in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def run_fn(fn_args) -> None:
    """The real run_fn, planning from an exact count of the training examples."""
    original = trainer.estimate_records
    trainer.estimate_records = exact_records
    try:
        trainer.run_fn(fn_args)
    finally:
        trainer.estimate_records = original
