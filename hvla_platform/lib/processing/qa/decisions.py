"""Supervisor decisions on episodes: approve a flagged episode, or reject a passing one.

Each decision is one write-once JSON object ``qa-decisions/<episode_id>/<UTC timestamp>-<id>.json``
(``{"episode_id", "decision", "reason", "by", "at"}``), so the history is append-only on both lake
backends; the **latest** decision of an episode is the one releases honour.

A decision record is validated strictly by :class:`DecisionRecord` both when it is recorded and
when it is read back: a stored record with an unknown key, a missing field or a wrong value is a
:class:`DecisionError` naming the object, e.g.
``file:///lake/qa-decisions/ep-1/….json: unknown key 'reson' (did you mean 'reason'?)``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from typing import Any, Literal

from pydantic import Field, field_validator

from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.keys import check_id
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import QA_DECISIONS
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.ingest.landing import known_episode_ids


DECISIONS = ("approve", "reject")


class DecisionError(ValueError):
    """A decision is malformed (unknown verb, empty reason, unsafe episode id, unknown key)."""


class DecisionRecord(StrictModel):
    """One supervisor decision, as stored in ``qa-decisions/<episode_id>/<…>.json``.

    Every field is required and no other key is allowed.
    """

    episode_id: str = Field(description="the episode decided on (a safe id)")
    decision: Literal["approve", "reject"]
    reason: str = Field(description="why (not empty)")
    by: str = Field(min_length=1, description="who decided")
    at: str = Field(description="when, an ISO 8601 date-time")

    @field_validator("episode_id")
    @classmethod
    def _safe_episode_id(cls, value: str) -> str:
        return check_id(value, "episode id")

    @field_validator("reason")
    @classmethod
    def _has_reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a decision needs a reason (it is empty)")
        return value

    @field_validator("at")
    @classmethod
    def _iso_datetime(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO 8601 date-time, got {value!r}") from None
        return value


def _read_record(lake: Lake, key: str) -> dict[str, Any]:
    """A stored decision, validated (:class:`DecisionRecord`). Raises :class:`DecisionError`."""
    rec = lake.read_json(key)
    validate_document(DecisionRecord, rec, source=lake.uri(key), error_cls=DecisionError)
    return rec


def record_decision(lake: Lake, episode_id: str, decision: str, reason: str, by: str | None = None,
                    at: dt.datetime | None = None) -> dict[str, Any]:
    """Record ``decision`` (``approve``/``reject``) on ``episode_id`` with a reason; return the record.

    The record is validated by :class:`DecisionRecord` before it is written.

    A decision is stored permanently, so one on an episode the lake does not know (never landed:
    typically a typo) is refused with the closest known id, and nothing is written.

    Raises:
        DecisionError: unknown decision, empty reason, empty ``by``, an unsafe episode id (one
            line naming the field and what was expected), or an episode id the lake does not know
            (``unknown episode 'ep-limts' (did you mean 'ep-limits'?)``).
    """
    at = at or dt.datetime.now(dt.timezone.utc)
    rec = {"episode_id": episode_id, "decision": decision, "reason": (reason or "").strip(),
           "by": by or getpass.getuser(), "at": at.isoformat(timespec="microseconds")}
    validate_document(DecisionRecord, rec, source="QA decision", error_cls=DecisionError)
    known = known_episode_ids(lake)
    if episode_id not in known:
        raise DecisionError(f"unknown episode {episode_id!r}{did_you_mean(episode_id, known)}; "
                            "a decision is kept permanently, so it is only recorded on a landed episode")
    key = f"{QA_DECISIONS}/{episode_id}/{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json"
    lake.write_json(key, rec, write_once=True)
    return rec


def decision_history(lake: Lake, episode_id: str) -> list[dict[str, Any]]:
    """Every decision on ``episode_id``, oldest first.

    Raises:
        DecisionError: a stored record breaks :class:`DecisionRecord` (the message names it).
    """
    return [_read_record(lake, k) for k in lake.list_keys(f"{QA_DECISIONS}/{check_id(episode_id, 'episode id')}")]


def latest_decisions(lake: Lake) -> dict[str, dict[str, Any]]:
    """``{episode_id: latest decision}`` over the whole lake.

    Raises:
        DecisionError: a stored record breaks :class:`DecisionRecord` (the message names the object,
            the unknown key and the closest valid key, or the missing or malformed field).
    """
    latest: dict[str, dict[str, Any]] = {}
    for key in lake.list_keys(QA_DECISIONS):
        rec = _read_record(lake, key)
        cur = latest.get(rec["episode_id"])
        if cur is None or rec["at"] > cur["at"]:
            latest[rec["episode_id"]] = rec
    return latest
