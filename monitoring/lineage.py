"""What a pushed version came from, read from ML Metadata's lineage.

A served version number leads to the PushedModel artifact that recorded it (`pushed_version`),
to the Pusher execution that wrote it, to the model it pushed, to the Trainer execution that
made that model and the raw examples it trained on, and from those examples to the
StatisticsGen output (the training statistics the skew check compares served requests with)
and from the model to the Evaluator's evaluation of it (the figures served quality is held to).

Read only: `open_store` opens the run root's SQLite store as `pipeline/ops/run_history.py`
does (the monitoring layer sits below `pipeline`, so it cannot borrow that module's).
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

INPUT, OUTPUT = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT


class LineageError(LookupError):
    """A version's lineage cannot be followed (not pushed under this root, or a link missing)."""


@dataclasses.dataclass(frozen=True)
class VersionLineage:
    """The artifacts behind one pushed version (URIs; None where the run made none)."""

    version: int
    pushed_path: str
    model_uri: str
    examples_uri: str
    statistics_uri: str | None
    evaluation_uri: str | None
    span: int | None = None  # the newest span the model was trained on (ExampleGen's `span`)

    def training_statistics_path(self) -> str | None:
        """The train split's TFDV statistics file of the examples the model was trained on."""
        if not self.statistics_uri:
            return None
        path = os.path.join(self.statistics_uri, "Split-train", "FeatureStats.pb")
        return path if os.path.exists(path) else None

    def eval_files(self) -> list[str]:
        """The eval split's TFRecord files the Evaluator scored."""
        return sorted(glob.glob(os.path.join(self.examples_uri, "Split-eval", "*")))


def open_store(metadata_path: str | Path) -> metadata_store.MetadataStore:
    """The SQLite ML Metadata store of a run root.

    Raises:
        FileNotFoundError: no store at `metadata_path`.
    """
    from tfx.orchestration import metadata

    path = Path(metadata_path)
    if not path.is_file():
        raise FileNotFoundError(f"no ML Metadata store at {path}: has the pipeline run under this root?")
    return metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))


def served_model_dir(lineage: VersionLineage, serving_dir: Path) -> str:
    """The SavedModel of a version: in the serving directory, where it was pushed, or the Trainer's.

    Raises:
        LineageError: none of them is there any more.
    """
    from serving.model_dirs import resolve_model_dir

    for candidate in (serving_dir / str(lineage.version), Path(lineage.pushed_path), Path(lineage.model_uri)):
        if candidate.is_dir():
            return str(resolve_model_dir(candidate))
    raise LineageError(f"version {lineage.version}: its model is gone ({lineage.pushed_path})")


def _key(event) -> str:
    return event.path.steps[0].key if event.path.steps else ""


def _linked(store, artifact_id: int, event_type: int) -> list[int]:
    """Executions that read (INPUT) or wrote (OUTPUT) an artifact, oldest first."""
    return sorted(
        {e.execution_id for e in store.get_events_by_artifact_ids([artifact_id]) if e.type == event_type}
    )


def _artifacts_of(store, execution_id: int, event_type: int, key: str) -> list:
    ids = [
        e.artifact_id
        for e in store.get_events_by_execution_ids([execution_id])
        if e.type == event_type and _key(e) == key
    ]
    return store.get_artifacts_by_id(ids) if ids else []


def version_lineage(metadata_path: str | Path, version: int) -> VersionLineage:
    """Follow version `version` back to its model, training data, statistics and evaluation.

    Raises:
        FileNotFoundError: no ML Metadata store at `metadata_path`.
        LineageError: the version was not pushed by a run recorded there, or a link is missing.
    """
    store = open_store(metadata_path)
    pushed = [
        a
        for a in store.get_artifacts_by_type("PushedModel")
        if a.custom_properties["pushed_version"].string_value == str(version)
    ]
    if not pushed:
        raise LineageError(f"version {version} was not pushed by a run recorded in {metadata_path}")
    pusher = _linked(store, pushed[-1].id, OUTPUT)
    models = _artifacts_of(store, pusher[-1], INPUT, "model") if pusher else []
    if not models:
        raise LineageError(f"version {version}: no model recorded as the Pusher's input")
    model = models[0]
    trainers = _linked(store, model.id, OUTPUT)
    examples = _artifacts_of(store, trainers[0], INPUT, "examples") if trainers else []
    if not examples:
        raise LineageError(f"version {version}: no examples recorded as the Trainer's input")
    statistics_uri = None
    for execution_id in reversed(_linked(store, examples[0].id, INPUT)):
        found = _artifacts_of(store, execution_id, OUTPUT, "statistics")
        if found:
            statistics_uri = found[0].uri
            break
    evaluation_uri = None
    for execution_id in reversed(_linked(store, model.id, INPUT)):
        if not any(a.id == model.id for a in _artifacts_of(store, execution_id, INPUT, "model")):
            continue  # The model was this Evaluator's baseline, not its candidate.
        found = _artifacts_of(store, execution_id, OUTPUT, "evaluation")
        if found:
            evaluation_uri = found[0].uri
            break
    return VersionLineage(
        version=version,
        pushed_path=pushed[-1].custom_properties["pushed_destination"].string_value,
        model_uri=model.uri,
        examples_uri=examples[0].uri,
        statistics_uri=statistics_uri,
        evaluation_uri=evaluation_uri,
        span=_span(examples[0]),
    )


def _span(examples) -> int | None:
    for properties in (examples.properties, examples.custom_properties):  # TFX 1.16: custom
        if "span" in properties:
            return properties["span"].int_value
    return None
