"""Run history in a real (SQLite) ML Metadata store: a gate's stop is recorded on the run and read back."""

from __future__ import annotations

import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.ops import history


def store_with_run(path, run_id: str) -> metadata_store.MetadataStore:
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))
    type_id = store.put_context_type(metadata_store_pb2.ContextType(name=history.RUN_CONTEXT_TYPE))
    store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name=run_id)])
    return store


def test_a_recorded_stop_shows_in_the_status_and_the_summary(tmp_path):
    db = tmp_path / "metadata.db"
    store_with_run(db, "2026-11-24T10:00:00.000001")
    reason = "span 9: /d/span-9/data.csv has a header but no rows: the span is empty\n  second line"
    assert history.record_stop(db, "data gate", reason, since=time.time() - 5) == "2026-11-24T10:00:00.000001"
    report = history.load_report(db)
    assert report.stopped == f"data gate: {reason}"
    assert history.run_status(report) == "stopped by the data gate"
    summary = history.format_report(report).splitlines()
    assert (
        "Stopped by the data gate: span 9: /d/span-9/data.csv has a header but no rows: the span is empty"
        in summary
    )
    assert "  second line" in summary
    assert "stopped by the data gate" in history.format_runs(db)


def test_an_older_run_is_not_marked_for_a_stop_that_came_later(tmp_path):
    db = tmp_path / "metadata.db"
    store_with_run(db, "old-run")
    assert history.record_stop(db, "data gate", "why", since=time.time() + 60) is None
    assert history.load_report(db).stopped is None
