"""SpanWindowCsvExampleGen component class.

No spec.py: it keeps CsvExampleGen's spec and arguments (input_base, input_config,
output_config, range_config); only the driver and executor differ.
"""

from tfx.components import CsvExampleGen
from tfx.dsl.components.base import executor_spec

from components.example_gen.driver import SpanWindowDriver
from components.example_gen.executor import Executor


class SpanWindowCsvExampleGen(CsvExampleGen):
    """CsvExampleGen whose range_config may span several spans (static or rolling)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
    DRIVER_CLASS = SpanWindowDriver
