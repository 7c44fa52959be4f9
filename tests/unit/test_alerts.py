"""Alerts: one JSON POST per event to a real receiver on loopback, retried, never fatal."""

from __future__ import annotations

import argparse
import time

from webhook_receiver import Receiver, closed_port_url

from monitoring import alerts
from pipeline.cli.options import add_alert_option, alert_webhook


def test_an_alert_is_one_post_with_text_and_structured_fields():
    with Receiver() as hook:
        assert alerts.send_alert(
            hook.url, "skew", "fare: Jensen-Shannon 0.9 > 0.1", version=3, feature="fare"
        )
    assert hook.attempts == 1
    (body,) = hook.bodies
    assert body["text"] == "fare: Jensen-Shannon 0.9 > 0.1"  # what Slack and Mattermost display
    assert body["event"] == "skew" and body["source"] == "taxi-pipeline"
    assert body["version"] == 3 and body["feature"] == "fare"


def test_a_failing_receiver_is_retried_with_backoff():
    with Receiver(fail_first=2) as hook:
        started = time.monotonic()
        assert alerts.send_alert(hook.url, "run_failed", "boom", backoff_s=(0.1, 0.2, 0.4))
        elapsed = time.monotonic() - started
    assert hook.attempts == 3 and len(hook.bodies) == 1
    assert elapsed >= 0.3  # waited 0.1 then 0.2


def test_a_receiver_that_is_down_is_logged_and_never_raises(capsys):
    url = closed_port_url()
    assert not alerts.send_alert(url, "not_blessed", "AUC 0.5", backoff_s=(0.01, 0.01))
    err = capsys.readouterr().err
    assert f"warning: alert 'not_blessed' not delivered to {url} after 3 tries" in err


def test_the_webhook_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.delenv(alerts.ENV_VAR, raising=False)
    parser = argparse.ArgumentParser()
    add_alert_option(parser)
    assert alert_webhook(parser.parse_args([])) is None
    monkeypatch.setenv(alerts.ENV_VAR, "http://env/hook")
    assert alert_webhook(parser.parse_args([])) == "http://env/hook"
    assert alert_webhook(parser.parse_args(["--alert-webhook", "http://opt/hook"])) == "http://opt/hook"
    assert alerts.send_alert(None, "skew", "nothing sent") is False


def test_each_run_outcome_maps_to_its_alert_event():
    import types

    from pipeline.ops.exit_codes import EXIT_DATA_GATE, EXIT_FAILED, EXIT_OK, EXIT_SERVING_GATE
    from pipeline.ops.run import _alert_event

    def summary(blessed=True, gate="", reasons=()):
        return types.SimpleNamespace(
            blessed=blessed, gate_summary=gate, reasons=list(reasons), overall={"auc": 0.8}
        )

    failed = _alert_event(EXIT_FAILED, (EXIT_FAILED, "FAILED: ValueError: boom"), None, "r1", None)
    assert failed[0] == "run_failed" and "ValueError: boom" in failed[1]
    stopped = _alert_event(
        EXIT_DATA_GATE, (EXIT_DATA_GATE, "STOPPED by the drift gate: fare drifted"), summary(None), "r2", "/l"
    )
    assert stopped[0] == "stopped_by_gate" and stopped[1] == "run r2 by the drift gate: fare drifted"
    assert stopped[2] == {"exit_status": EXIT_DATA_GATE, "run_id": "r2", "log": "/l"}
    refused = _alert_event(EXIT_SERVING_GATE, None, summary(gate="batch_invariance failed"), "r3", None)
    assert refused[0] == "serving_gate_refused" and "batch_invariance failed" in refused[1]
    not_blessed = _alert_event(EXIT_OK, None, summary(False, reasons=["AUC 0.80 < 0.90"]), "r4", None)
    assert not_blessed[0] == "not_blessed" and "AUC 0.80 < 0.90" in not_blessed[1]
    assert not_blessed[2]["auc"] == 0.8
    assert _alert_event(EXIT_OK, None, summary(True), "r5", None) is None  # pushed: nothing to say
