"""Alerts: one JSON POST per event to a real receiver on loopback, retried, never fatal."""

from __future__ import annotations

import argparse
import time

from webhook_receiver import Receiver, closed_port_url

from pipeline.cli.options import add_alert_option, alert_webhook
from pipeline.ops import alerts


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
