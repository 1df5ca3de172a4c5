"""Automation settings from environment variables (docs/automation.md lists them).

Read when the code location loads: schedules and sensor intervals are part of the definitions.
"""

import datetime as dt
import os
import zoneinfo

from hvla_platform.lib.core import settings


def timezone() -> str:
    """IANA time zone of the nightly schedule and release refresh (``HVLA_TIMEZONE``, default UTC).

    Raises:
        ValueError: not a known time zone.
    """
    tz = os.environ.get("HVLA_TIMEZONE", "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"HVLA_TIMEZONE={tz!r} is not an IANA time zone (e.g. Europe/Berlin)") from exc
    return tz


def nightly_cron() -> str:
    """Cron of the nightly ingest catch-up (``HVLA_NIGHTLY_CRON``, default ``0 2 * * *``)."""
    return os.environ.get("HVLA_NIGHTLY_CRON", "0 2 * * *")


def release_refresh_at() -> dt.time:
    """Local time after which the nightly release refresh may run (``HVLA_RELEASE_REFRESH_AT``,
    ``HH:MM``, default ``03:00``: an hour after the nightly ingest starts).

    Raises:
        ValueError: not ``HH:MM``.
    """
    raw = os.environ.get("HVLA_RELEASE_REFRESH_AT", "03:00")
    try:
        return dt.time.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"HVLA_RELEASE_REFRESH_AT={raw!r} is not a time of day HH:MM") from exc


def drop_uri() -> str:
    """The drop area (``HVLA_DROP_URI``: a folder or ``s3://<bucket>/<prefix>``; default ``$HVLA_HOME/drop``)."""
    return os.environ.get("HVLA_DROP_URI") or str(settings.hvla_home() / "drop")


def drop_settle_seconds() -> float:
    """Seconds a drop folder must stay unchanged before it lands (``HVLA_DROP_SETTLE_SECONDS``, default 10)."""
    return float(os.environ.get("HVLA_DROP_SETTLE_SECONDS", "10"))


def landing_interval_seconds() -> int:
    """Seconds between landing-sensor ticks (``HVLA_LANDING_INTERVAL_SECONDS``, default 30; at least 1):
    how soon a complete upload in the drop area lands. Read when the definitions load.

    Raises:
        ValueError: not a whole number of seconds ≥ 1.
    """
    raw = os.environ.get("HVLA_LANDING_INTERVAL_SECONDS", "30")
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"HVLA_LANDING_INTERVAL_SECONDS={raw!r} is not a whole number of seconds >= 1")
    return value
