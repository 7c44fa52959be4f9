"""ImportProjectSchemaGen: a relative schema path is the project's, whatever the working directory."""

from __future__ import annotations

from pathlib import Path

from tfx.types import standard_artifacts

from components.schema_import.executor import Executor, project_path

REPO = Path(__file__).resolve().parents[2]


def test_relative_paths_are_the_projects_and_others_unchanged():
    assert project_path("schemas/schema.pbtxt") == str(REPO / "schemas" / "schema.pbtxt")
    assert project_path("/abs/schema.pbtxt") == "/abs/schema.pbtxt"
    assert project_path("gs://bucket/schema.pbtxt") == "gs://bucket/schema.pbtxt"


def test_the_compiled_relative_schema_is_imported_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # Not the project: TFX's own executor would find nothing here.
    schema = standard_artifacts.Schema()
    schema.uri = str(tmp_path / "schema-out")
    Executor().Do({}, {"schema": [schema]}, {"schema_file": "schemas/schema.pbtxt"})
    copied = (tmp_path / "schema-out" / "schema.pbtxt").read_text()
    assert copied == (REPO / "schemas" / "schema.pbtxt").read_text()
