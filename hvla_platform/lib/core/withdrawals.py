"""The read side of consent withdrawals, which every stage consults: which episodes are withdrawn,
which artifacts are flagged *do not use*, and the append-only audit log.

The workflow that writes these records is :func:`hvla_platform.lib.ops.revocation.revoke_consent`;
the records live under the keys of :mod:`hvla_platform.lib.core.keys` (``rights-revocations/``,
``flags/``, ``audit/``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from hvla_platform.lib.core.keys import AUDIT, FLAGS, PARTITION_INDEX, RAW, REVOCATIONS, flag_key
from hvla_platform.lib.core.lake import Lake

#: artifact type of a robot's raw MCAP episode: what a revocation record's episode withdrew unless its
#: ``episode_info`` names another raw type (``raw_teleop_episode``, ``raw_human_video_clip``)
RAW_MCAP_TYPE = "raw_mcap_episode"


def now_utc() -> dt.datetime:
    """The current time in UTC (timezone-aware)."""
    return dt.datetime.now(dt.timezone.utc)


def audit(lake: Lake, event: str, **details: Any) -> dict[str, Any]:
    """Append one event to the audit log (a new write-once object) and return it."""
    at = now_utc()
    rec = {"event": event, "at": at.isoformat(timespec="microseconds"), **details}
    lake.write_json(f"{AUDIT}/{at.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.json", rec, write_once=True)
    return rec


def audit_log(lake: Lake) -> list[dict[str, Any]]:
    """Every audit event, oldest first."""
    return [lake.read_json(k) for k in lake.list_keys(AUDIT)]


def withdrawn_episode_records(lake: Lake) -> dict[str, dict[str, Any]]:
    """Every withdrawn episode with the revocation that withdrew it (the first one, by record key).

    Returns:
        ``{episode_id: {"consent", "reason", "at", "by", "revocation" (the record's lake key),
        "capture_day", "robot_id", "device_id", "raw_type", "raw_key"}}``; ``capture_day``/``robot_id``
        are ``None`` for records written before revocations stored them (``episode_info``;
        :func:`hvla_platform.lib.ops.revocation.revoke_consent`). ``raw_type`` is the withdrawn raw
        leaf's artifact type: ``raw_mcap_episode`` (also for records older than the other sources),
        ``raw_teleop_episode`` (``robot_id`` set) or ``raw_human_video_clip`` (a clip: ``device_id``
        set, ``robot_id`` ``None``); ``raw_key`` its raw prefix when recorded, else ``None``.
    """
    out: dict[str, dict[str, Any]] = {}
    for key in lake.list_keys(REVOCATIONS):
        rec = lake.read_json(key)
        info = rec.get("episode_info") or {}
        for ep in rec["episodes"]:
            where = info.get(ep) or {}
            out.setdefault(ep, {"consent": rec["consent"], "reason": rec["reason"], "at": rec["at"],
                                "by": rec.get("by"), "revocation": key,
                                "capture_day": where.get("capture_day"), "robot_id": where.get("robot_id"),
                                "device_id": where.get("device_id"),
                                "raw_type": where.get("raw_type", RAW_MCAP_TYPE), "raw_key": where.get("raw_key")})
    return out


def partition_withdrawals(lake: Lake, day: str, robot: str) -> str | None:
    """Why a raw partition has no landed episodes left, when withdrawals explain it, else ``None``.

    An episode belongs to the partition when its revocation record says so (``episode_info``) or
    the partition's last index (``raw-mcap/<day>/<robot>/_partition.json``) lists it. Only robot
    MCAP episodes count (``raw_type`` ``raw_mcap_episode``): a withdrawn teleop episode of the same
    robot and day lives under ``raw-teleop/``, not in this partition.

    Returns:
        ``withdrawn: <n> episodes of this partition were withdrawn (consent <id>, <reason>[; …])``
        (one ``consent, reason`` pair per revocation, record key included), or ``None``.
    """
    recs = withdrawn_episode_records(lake)
    if not recs:
        return None
    index_key = f"{RAW}/{day}/{robot}/{PARTITION_INDEX}"
    listed = {str(r.get("episode_id")) for r in lake.read_json(index_key).get("episodes", [])
              if isinstance(r, dict)} if lake.exists(index_key) else set()
    hit = {e: r for e, r in recs.items() if r.get("raw_type") == RAW_MCAP_TYPE
           and ((r.get("capture_day"), r.get("robot_id")) == (day, robot) or e in listed)}
    if not hit:
        return None
    why = sorted({(r["consent"], r["reason"], r["revocation"]) for r in hit.values()})
    return (f"withdrawn: {len(hit)} episodes of this partition were withdrawn ("
            + "; ".join(f"consent {c}, {reason}; record {key}" for c, reason, key in why) + ")")


def revoked_episodes(lake: Lake) -> dict[str, str]:
    """``{episode_id: reason}`` of every episode under a withdrawn consent."""
    return {ep: f"consent {r['consent']} withdrawn {r['at']}: {r['reason']}"
            for ep, r in withdrawn_episode_records(lake).items()}


def artifact_flags(lake: Lake, key: str) -> dict[str, Any] | None:
    """The do-not-use flag of an artifact (lake prefix), or ``None``.

    The flag (``flags/<prefix>.json``, written by ``revoke_consent``) is ``{"status":
    "do_not_use"|"retrain_required", "consent", "reason", "by", "at", "episode_ids",
    "revocation": <record key>}``.
    """
    k = flag_key(key)
    return lake.read_json(k) if lake.exists(k) else None


def all_flags(lake: Lake) -> dict[str, dict[str, Any]]:
    """Every flagged artifact: ``{artifact prefix: flag}`` (see :func:`artifact_flags` for the flag)."""
    n = len(FLAGS) + 1
    return {k[n:-len(".json")]: lake.read_json(k) for k in lake.list_keys(FLAGS) if k.endswith(".json")}


def flag_summary(flag: dict[str, Any]) -> str:
    """One line for a flag: ``retrain_required (consent C withdrawn <at>: <reason>; record <key>)``."""
    return (f"{flag.get('status', 'flagged')} (consent {flag.get('consent', '?')} withdrawn {flag.get('at', '?')}: "
            f"{flag.get('reason', '?')}; record {flag.get('revocation', '?')})")


@dataclass(frozen=True)
class Withdrawals:
    """Consent withdrawals recorded in the lake (``hvla rights revoke``): ``episodes`` maps a
    withdrawn episode id to the reason, ``consents`` holds the withdrawn consent ids."""

    episodes: dict[str, str]
    consents: frozenset[str]

    @classmethod
    def load(cls, lake: Lake) -> "Withdrawals":
        """Read every revocation record of ``lake``."""
        consents = frozenset(k.split("/")[1] for k in lake.list_keys(REVOCATIONS) if k.count("/") >= 2)
        return cls(episodes=revoked_episodes(lake), consents=consents)

    def reason(self, episode_id: str, metadata: dict) -> str | None:
        """Why an episode with this id and ``metadata.yaml`` must not land again, or ``None``."""
        if episode_id in self.episodes:
            return self.episodes[episode_id]
        rights = metadata.get("rights")
        refs = rights.get("consent_refs") if isinstance(rights, dict) else None
        hit = sorted(self.consents & {str(c) for c in refs}) if isinstance(refs, list) else []
        return f"it declares withdrawn consent(s) {hit}" if hit else None
