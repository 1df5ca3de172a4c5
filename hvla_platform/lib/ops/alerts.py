"""Alerts for failed runs: a durable record in the lake plus two hook points.

:func:`deliver_alert` writes the alert to ``alerts/<YYYY-MM-DD>/<run_id>.json`` (write-once, so a
re-evaluated failure is delivered once) and then, when configured:

* ``HVLA_ALERT_HOOK=<module>:<function>``: a Python callable called with the alert ``dict``
  (e.g. to page through an internal client);
* ``HVLA_ALERT_WEBHOOK_URL``: an HTTP(S) URL the alert is POSTed to as JSON; the body carries a
  ``text`` line, so a Slack/Mattermost incoming webhook shows it as is.

A failing hook or webhook never hides the alert: the error is returned in :class:`AlertDelivery`
(the sensor logs it) and the lake record stays.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from hvla_platform.lib.core.lake import Lake, ObjectExistsError
from hvla_platform.lib.core.keys import ALERTS

HOOK_ENV = "HVLA_ALERT_HOOK"
WEBHOOK_ENV = "HVLA_ALERT_WEBHOOK_URL"


@dataclass
class AlertDelivery:
    """What :func:`deliver_alert` did: the record's key, whether it was new (``False``: delivered
    before, nothing sent again), the hook points reached and the errors met."""

    record_key: str
    new: bool
    delivered_to: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def alert_text(alert: dict[str, Any]) -> str:
    """One human line: ``[hvla] ingest_job failed (partition 2026-11-10|g1-001, run 1a2b3c4d): …``."""
    part = f"partition {alert['partition']}, " if alert.get("partition") else ""
    return f"[hvla] {alert['job']} failed ({part}run {alert['run_id'][:8]}): {alert.get('error', '').strip()[:500]}"


def load_hook(spec: str) -> Callable[[dict[str, Any]], Any]:
    """The callable named by ``<module>:<function>``.

    Raises:
        ValueError: ``spec`` is not of that form, or does not name a callable.
        ImportError: the module cannot be imported.
    """
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"{HOOK_ENV}={spec!r}: expected '<module>:<function>'")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ValueError(f"{HOOK_ENV}={spec!r}: {module} has no callable {name!r}")
    return fn


def post_webhook(url: str, alert: dict[str, Any], timeout_s: float = 10.0) -> int:
    """POST the alert as JSON (with a ``text`` line) to ``url``; return the HTTP status.

    Raises:
        ValueError: ``url`` is not http(s).
        OSError: the request failed (``urllib.error.URLError``/``HTTPError`` are ``OSError``).
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{WEBHOOK_ENV}={url!r}: only http:// and https:// URLs are supported")
    body = json.dumps({"text": alert_text(alert), **alert}, default=str).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (scheme checked above)
        return resp.status


def deliver_alert(lake: Lake, alert: dict[str, Any], *, hook: str | None = None,
                  webhook_url: str | None = None) -> AlertDelivery:
    """Record ``alert`` in the lake and send it to the configured hook points (module docstring).

    ``alert`` needs ``run_id`` and ``job``; ``failed_at`` (ISO time, names the day folder; default
    now), ``partition``, ``error`` and anything else are kept.
    ``hook`` / ``webhook_url`` default to ``HVLA_ALERT_HOOK`` / ``HVLA_ALERT_WEBHOOK_URL``.

    Raises:
        KeyError: ``alert`` has no ``run_id`` or ``job``.
        OSError: the lake cannot be written.
    """
    alert = {"at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), **alert}
    key = f"{ALERTS}/{str(alert.get('failed_at') or alert['at'])[:10]}/{alert['run_id']}.json"
    try:
        lake.write_json(key, alert, write_once=True)
    except ObjectExistsError:
        return AlertDelivery(key, new=False)
    out = AlertDelivery(key, new=True, delivered_to=[lake.uri(key)])
    hook = os.environ.get(HOOK_ENV, "") if hook is None else hook
    if hook:
        try:
            load_hook(hook)(dict(alert))
            out.delivered_to.append(f"hook {hook}")
        except Exception as exc:  # noqa: BLE001 - a broken hook must not lose the alert
            out.errors.append(f"hook {hook}: {type(exc).__name__}: {exc}")
    url = os.environ.get(WEBHOOK_ENV, "") if webhook_url is None else webhook_url
    if url:
        try:
            out.delivered_to.append(f"webhook {url.split('?')[0]} (HTTP {post_webhook(url, alert)})")
        except (OSError, ValueError) as exc:
            out.errors.append(f"webhook {url.split('?')[0]}: {type(exc).__name__}: {exc}")
    return out
