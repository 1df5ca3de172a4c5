"""Supervisor decisions on episodes: approve a flagged episode, or reject a passing one.

Each decision is one write-once JSON object ``qa-decisions/<episode_id>/<UTC timestamp>-<id>.json``
(``{"episode_id", "decision", "reason", "by", "at"}``), so the history is append-only on both lake
backends; the **latest** decision of an episode is the one releases honour.
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from typing import Any

from hvla_platform.lib.core.keys import check_id
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import QA_DECISIONS


DECISIONS = ("approve", "reject")


class DecisionError(ValueError):
    """A decision is malformed (unknown verb, empty reason, unsafe episode id)."""


def record_decision(lake: Lake, episode_id: str, decision: str, reason: str, by: str | None = None,
                    at: dt.datetime | None = None) -> dict[str, Any]:
    """Record ``decision`` (``approve``/``reject``) on ``episode_id`` with a reason; return the record.

    Raises:
        DecisionError: unknown decision, empty reason, or an unsafe episode id.
    """
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {DECISIONS}, got {decision!r}")
    if not reason or not reason.strip():
        raise DecisionError("a decision needs a reason")
    try:
        check_id(episode_id, "episode id")
    except ValueError as exc:
        raise DecisionError(str(exc)) from exc
    at = at or dt.datetime.now(dt.timezone.utc)
    rec = {"episode_id": episode_id, "decision": decision, "reason": reason.strip(),
           "by": by or getpass.getuser(), "at": at.isoformat(timespec="microseconds")}
    key = f"{QA_DECISIONS}/{episode_id}/{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json"
    lake.write_json(key, rec, write_once=True)
    return rec


def decision_history(lake: Lake, episode_id: str) -> list[dict[str, Any]]:
    """Every decision on ``episode_id``, oldest first."""
    return [lake.read_json(k) for k in lake.list_keys(f"{QA_DECISIONS}/{check_id(episode_id, 'episode id')}")]


def latest_decisions(lake: Lake) -> dict[str, dict[str, Any]]:
    """``{episode_id: latest decision}`` over the whole lake."""
    latest: dict[str, dict[str, Any]] = {}
    for key in lake.list_keys(QA_DECISIONS):
        rec = lake.read_json(key)
        cur = latest.get(rec["episode_id"])
        if cur is None or rec["at"] > cur["at"]:
            latest[rec["episode_id"]] = rec
    return latest
