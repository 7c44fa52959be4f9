"""TFX's own StatisticsGen, Transform and Evaluator executors, with `FileBatchTFExampleRecord`.

Each class is TFX's executor, unchanged but for the TFXIO it reads tf.Examples through: the
statistics (TFDV), the analyzers (TFT) and the metrics (TFMA) are TFX's, in TFX's Beam
pipelines, on the same record batches. All three build their TFXIO inside `Do` through
`tfxio_utils.make_tfxio` (Transform's `_CreateTFXIO` belongs to a `TransformProcessor` that
`Do` creates, so it offers no hook either), so for the length of their `Do` that one
function hands out the file-batch form of what it made (only a `TFExampleRecord`; any other
format passes through as it was).
"""

from __future__ import annotations

import contextlib
import logging

from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.components.transform import executor as transform_executor
from tfx.components.util import tfxio_utils
from tfx.proto import transform_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils
from tfx_bsl.tfxio import tf_example_record

from components.file_batch_reads.tfxio import FileBatchTFExampleRecord
from components.shared import model_found, releases_memory, split_files
from models import record_counts

# Transform's analyzers see every training example up to this many, a seeded uniform sample of
# this many beyond (`analysis_sample_rate`): means, variances, 1%-quantiles and top-k
# vocabularies of a million examples are those of ten million to within what the model can
# tell (`python benchmarks/bench_scale.py` prints AUC and calibration at every size, and each
# stage's seconds). Up to 100x the sample (a million training trips) nothing changes.
ANALYSIS_EXAMPLES = 2**20


def file_batch_form(tfxio, sample_rate: float = 1.0):
    """`tfxio` read a file at a time if it is exactly a `TFExampleRecord`, else itself."""
    if type(tfxio) is tf_example_record.TFExampleRecord:
        return FileBatchTFExampleRecord.from_tfxio(tfxio, sample_rate)
    return tfxio


@contextlib.contextmanager
def file_batch_tfxio(sample_rate: float = 1.0):
    """While inside, `tfxio_utils.make_tfxio` returns the file-batch form of its TFXIO."""
    make_tfxio = tfxio_utils.make_tfxio

    def make_file_batch_tfxio(*args, **kwargs):
        return file_batch_form(make_tfxio(*args, **kwargs), sample_rate)

    tfxio_utils.make_tfxio = make_file_batch_tfxio
    try:
        yield
    finally:
        tfxio_utils.make_tfxio = make_tfxio


class StatisticsGenExecutor(statistics_gen_executor.Executor):
    """TFX's StatisticsGen executor, reading a file at a time."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        with file_batch_tfxio():
            return super().Do(input_dict, output_dict, exec_properties)


class EvaluatorExecutor(evaluator_executor.Executor):
    """TFX's Evaluator executor, reading a file at a time.

    A baseline from a PushedModelResolver that found no pushed model (Kubeflow's first run)
    is dropped, so the Evaluator runs without one exactly as after an empty resolver node.
    """

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)
        if baseline and not all(model_found(model) for model in baseline):
            input_dict = {
                k: v for k, v in input_dict.items() if k != standard_component_specs.BASELINE_MODEL_KEY
            }
        with file_batch_tfxio():
            return super().Do(input_dict, output_dict, exec_properties)


def analysis_sample_rate(input_dict, output_dict, exec_properties) -> float:
    """The share of the analyzed splits' examples Transform's analyzers see (1: all of them).

    `ANALYSIS_EXAMPLES` over the splits' size, from the record counts ExampleGen wrote; 1
    when a split's size is not recorded, or when Transform also writes transformed examples
    (those must be every example, and they are read through the same TFXIO).
    """
    if output_dict.get(standard_component_specs.TRANSFORMED_EXAMPLES_KEY):
        return 1.0
    splits_config = transform_pb2.SplitsConfig()
    if exec_properties.get(standard_component_specs.SPLITS_CONFIG_KEY):
        proto_utils.json_to_proto(exec_properties[standard_component_specs.SPLITS_CONFIG_KEY], splits_config)
    splits = list(splits_config.analyze) or ["train"]
    total = 0
    for examples in input_dict.get(standard_component_specs.EXAMPLES_KEY, []):
        for split in splits:
            counts = record_counts.recorded_counts(split_files(examples, split))
            if counts is None:
                return 1.0
            total += sum(counts)
    return min(1.0, ANALYSIS_EXAMPLES / total) if total else 1.0


class TransformExecutor(transform_executor.Executor):
    """TFX's Transform executor, reading a file at a time; its analyzers see at most a sample."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        rate = analysis_sample_rate(input_dict, output_dict, exec_properties)
        if rate < 1.0:
            logging.info("Transform analyzes a seeded uniform sample of %.4f of the examples", rate)
        with file_batch_tfxio(rate):
            return super().Do(input_dict, output_dict, exec_properties)
