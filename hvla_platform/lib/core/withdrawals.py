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

from hvla_platform.lib.core.keys import AUDIT, REVOCATIONS, flag_key
from hvla_platform.lib.core.lake import Lake


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


def revoked_episodes(lake: Lake) -> dict[str, str]:
    """``{episode_id: reason}`` of every episode under a withdrawn consent."""
    out: dict[str, str] = {}
    for key in lake.list_keys(REVOCATIONS):
        rec = lake.read_json(key)
        for ep in rec["episodes"]:
            out.setdefault(ep, f"consent {rec['consent']} withdrawn {rec['at']}: {rec['reason']}")
    return out


def artifact_flags(lake: Lake, key: str) -> dict[str, Any] | None:
    """The do-not-use flag of an artifact (lake prefix), or ``None``."""
    k = flag_key(key)
    return lake.read_json(k) if lake.exists(k) else None


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
