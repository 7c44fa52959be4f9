"""Executor: TFX's ImportSchemaGen executor with relative schema paths taken from the project."""

from __future__ import annotations

import os

from tfx.components.schema_gen.import_schema_gen import executor as tfx_executor
from tfx.types import standard_component_specs

import schemas

# The folder that holds the `schemas` package: the project's root (checkout or image).
PROJECT_DIR = os.path.dirname(os.path.dirname(schemas.__file__))


def project_path(path: str) -> str:
    """`path` unchanged if absolute or a URI (gs://, ram://), else under the project's root."""
    if "://" in path or path.startswith(os.sep):
        return path
    return os.path.join(PROJECT_DIR, path)


class Executor(tfx_executor.Executor):
    """Copies the schema file into the Schema artifact, resolving a relative path first."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX's name)
        key = standard_component_specs.SCHEMA_FILE_KEY
        exec_properties = {**exec_properties, key: project_path(str(exec_properties.get(key) or ""))}
        super().Do(input_dict, output_dict, exec_properties)
