"""Run history in a real (SQLite) ML Metadata store: a gate's stop is recorded on the run and read back."""

from __future__ import annotations

import time

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from pipeline.ops import run_history


def store_with_run(path, run_id: str) -> metadata_store.MetadataStore:
    store = metadata_store.MetadataStore(metadata.sqlite_metadata_connection_config(str(path)))
    type_id = store.put_context_type(metadata_store_pb2.ContextType(name=run_history.RUN_CONTEXT_TYPE))
    store.put_contexts([metadata_store_pb2.Context(type_id=type_id, name=run_id)])
    return store


def test_a_recorded_stop_shows_in_the_status_and_the_summary(tmp_path):
    db = tmp_path / "metadata.db"
    store_with_run(db, "2026-11-24T10:00:00.000001")
    reason = "span 9: /d/span-9/data.csv has a header but no rows: the span is empty\n  second line"
    assert (
        run_history.record_stop(db, "data gate", reason, since=time.time() - 5)
        == "2026-11-24T10:00:00.000001"
    )
    report = run_history.load_report(db)
    assert report.stopped == f"data gate: {reason}"
    assert run_history.run_status(report) == "stopped by the data gate"
    summary = run_history.format_report(report).splitlines()
    assert (
        "Stopped by the data gate: span 9: /d/span-9/data.csv has a header but no rows: the span is empty"
        in summary
    )
    assert "  second line" in summary
    assert "stopped by the data gate" in run_history.format_runs(db)


def test_an_older_run_is_not_marked_for_a_stop_that_came_later(tmp_path):
    db = tmp_path / "metadata.db"
    store_with_run(db, "old-run")
    assert run_history.record_stop(db, "data gate", "why", since=time.time() + 60) is None
    assert run_history.load_report(db).stopped is None


def _pushed_report(**edge) -> run_history.RunReport:
    pusher = run_history.NodeRun("AtomicPusher", "ran", 0.1, outputs={"pushed_model": []})
    return run_history.RunReport(
        run_id="r",
        nodes=[pusher],
        overall={},
        slices=[],
        blessed=True,
        reasons=[],
        pushed_version="1700000000",
        pushed_path="/s/big_tipper/1700000000",
        spans="5,6",
        gate_blessed=True,
        gate_summary="passed (7 checks on 10 examples)",
        **edge,
    )


def test_the_summary_says_where_the_edge_model_went_or_why_it_did_not():
    agreement = {"name": "agreement", "status": "pass", "detail": "edge accuracy 0.8920, AUC 0.9436"}
    pushed = _pushed_report(
        edge_blessed=True,
        edge_summary="passed (6 checks on 10 examples)",
        edge_bytes=114232,
        edge_checks=[agreement],
        edge_pushed=True,
        edge_path="/s/big_tipper/edge/1700000000",
    )
    lines = run_history.format_report(pushed).splitlines()
    assert "Edge gate: passed (6 checks on 10 examples): edge accuracy 0.8920, AUC 0.9436" in lines
    assert "Edge model: int8, 114,232 bytes -> /s/big_tipper/edge/1700000000" in lines
    assert lines.index("Pushed: version 1700000000 -> /s/big_tipper/1700000000") < len(lines) - 1

    refused = _pushed_report(
        edge_blessed=False,
        edge_summary="refused: agreement: auc",
        edge_bytes=114232,
        edge_checks=[{"name": "agreement", "status": "fail", "detail": "auc 0.93 vs the SavedModel's 0.94"}],
        edge_pushed=False,
        edge_reason="the edge gate refused it: refused: agreement: auc",
    )
    lines = run_history.format_report(refused).splitlines()
    assert "Edge gate: REFUSED the int8 edge model" in lines
    assert "  - agreement: auc 0.93 vs the SavedModel's 0.94" in lines
    assert "Pushed: version 1700000000 -> /s/big_tipper/1700000000" in lines
    assert (
        "Edge model: not pushed (the edge gate refused it: refused: agreement: auc); "
        "the SavedModel push above is unaffected" in lines
    )
    # A run without the edge step (an older record) says nothing about it.
    assert not any(
        line.startswith("Edge") for line in run_history.format_report(_pushed_report()).splitlines()
    )


def test_the_summary_names_the_web_model_or_why_it_was_not_pushed():
    agreement = {
        "name": "agreement",
        "status": "pass",
        "detail": "2537 trips on cpu, wasm, webgl: largest 2.7e-07",
    }
    pushed = _pushed_report(
        web_blessed=True,
        web_summary="passed (6 checks on 2537 examples)",
        web_bytes=496475,
        web_checks=[agreement],
        web_pushed=True,
        web_path="/s/big_tipper/web/1700000000",
    )
    lines = run_history.format_report(pushed).splitlines()
    assert (
        "Web gate: passed (6 checks on 2537 examples): 2537 trips on cpu, wasm, webgl: largest 2.7e-07"
        in lines
    )
    assert "Web model: TF.js, 496,475 bytes -> /s/big_tipper/web/1700000000" in lines

    no_browser = "the web gate cannot run here: chromium not found"
    refused = _pushed_report(
        web_blessed=False,
        web_summary=f"refused: backends: {no_browser}",
        web_bytes=0,
        web_checks=[{"name": "backends", "status": "fail", "detail": no_browser}],
        web_pushed=False,
        web_reason=f"the web gate refused it: refused: backends: {no_browser}",
    )
    lines = run_history.format_report(refused).splitlines()
    assert "Web gate: REFUSED the TF.js web model" in lines and f"  - backends: {no_browser}" in lines
    assert (
        f"Web model: not pushed (the web gate refused it: refused: backends: {no_browser}); "
        "the SavedModel push above is unaffected" in lines
    )
    not_run = "not run: the Evaluator did not bless the model, so it is not pushed"
    skipped = _pushed_report(
        web_blessed=False,
        web_summary=f"refused: backends: {not_run}",
        web_checks=[{"name": "backends", "status": "fail", "detail": not_run}],
    )
    assert f"Web gate: {not_run}" in run_history.format_report(skipped).splitlines()
