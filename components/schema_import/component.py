"""ImportProjectSchemaGen component class.

No spec.py: it keeps ImportSchemaGen's spec and its one argument (`schema_file`); only the
executor differs. Its node id stays `ImportSchemaGen`.
"""

from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.base import executor_spec

from components.schema_import.executor import Executor


class ImportProjectSchemaGen(ImportSchemaGen):
    """ImportSchemaGen whose relative `schema_file` is a path inside the project."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, schema_file: str):
        super().__init__(schema_file=schema_file)
        self.with_id("ImportSchemaGen")
