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

from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.statistics_gen import executor as statistics_gen_executor
from tfx.components.transform import executor as transform_executor
from tfx.components.util import tfxio_utils
from tfx.types import standard_component_specs
from tfx_bsl.tfxio import tf_example_record

from components.file_batch_reads.tfxio import FileBatchTFExampleRecord
from components.shared import model_found, releases_memory


def file_batch_form(tfxio):
    """`tfxio` read a file at a time if it is exactly a `TFExampleRecord`, else itself."""
    if type(tfxio) is tf_example_record.TFExampleRecord:
        return FileBatchTFExampleRecord.from_tfxio(tfxio)
    return tfxio


@contextlib.contextmanager
def file_batch_tfxio():
    """While inside, `tfxio_utils.make_tfxio` returns the file-batch form of its TFXIO."""
    make_tfxio = tfxio_utils.make_tfxio

    def make_file_batch_tfxio(*args, **kwargs):
        return file_batch_form(make_tfxio(*args, **kwargs))

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


class TransformExecutor(transform_executor.Executor):
    """TFX's Transform executor, reading a file at a time."""

    @releases_memory
    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802
        with file_batch_tfxio():
            return super().Do(input_dict, output_dict, exec_properties)
