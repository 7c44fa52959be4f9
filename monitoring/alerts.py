"""Alerts: one JSON POST per event to a webhook (Slack and Mattermost incoming webhooks accept it).

Events: `run_failed`, `stopped_by_gate`, `not_blessed`, `serving_gate_refused` (from `run`,
`replay` and the scheduled run), `skew`, `prediction_drift`, `realized_quality` (from
`monitor`). The body is `{"text": <one human-readable line>, "event": ..., "source":
"taxi-pipeline", ...structured fields}`: `text` is what chat webhooks display, the rest is for
machines. The URL comes from `--alert-webhook` or the `PIPELINE_ALERT_WEBHOOK` environment
variable (the `schedule` entry sets it). A failed POST is retried, waiting BACKOFF_S between
tries; one that still fails is logged (a warning on standard error) and never changes the
outcome of the command that raised it.

In `monitoring/` because most events come from after the push; `pipeline/ops/run.py` (a
layer above) sends the run's own events through the same `send_alert`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request

log = logging.getLogger("taxi.alerts")

ENV_VAR = "PIPELINE_ALERT_WEBHOOK"
SOURCE = "taxi-pipeline"
BACKOFF_S = (0.5, 1.0, 2.0)
TIMEOUT_S = 5.0


def webhook_url(explicit: str | None) -> str | None:
    """The webhook to alert: the option's value, else the environment's, else None."""
    return explicit or os.environ.get(ENV_VAR) or None


def send_alert(url: str | None, event: str, text: str, backoff_s=BACKOFF_S, **fields) -> bool:
    """POST one alert; True when the receiver answered 2xx. Never raises.

    Args:
        url: the webhook (None: nothing is sent, returns False).
        event: the event's name (see the module docstring).
        text: one line a person reads in a chat channel.
        backoff_s: the waits between tries (len + 1 tries in all).
        fields: structured fields of the event (JSON-serializable).
    """
    if not url:
        return False
    body = json.dumps(
        {"text": text, "event": event, "source": SOURCE, "host": socket.gethostname(), **fields},
        default=str,
    ).encode()
    error: Exception | None = None
    for attempt, wait in enumerate((*backoff_s, None), start=1):
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                if 200 <= response.status < 300:
                    return True
                error = RuntimeError(f"HTTP {response.status}")
        except (urllib.error.URLError, OSError, ValueError) as caught:
            error = caught
        if wait is None:
            break
        log.info("alert %s: try %d failed (%s); retrying in %.1f s", event, attempt, error, wait)
        time.sleep(wait)
    message = f"warning: alert '{event}' not delivered to {url} after {len(backoff_s) + 1} tries: {error}"
    log.warning(message)
    print(message, file=sys.stderr, flush=True)
    return False
