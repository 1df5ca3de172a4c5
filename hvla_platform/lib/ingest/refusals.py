"""The evidence of every upload landing refused, read back in one form.

Landing never drops a refused upload silently: a rejected recording (bad or missing
``metadata.yaml``, unsafe ids, not exactly one ``.mcap``, a symbolic link) is kept under
``quarantine/_rejected/<digest>/`` and a changed re-upload of a landed episode under
``quarantine/_conflicts/<day>/<robot>/<episode>/<digest>/``, each with a ``reason.json``
(:mod:`hvla_platform.lib.ingest.landing`, :func:`hvla_platform.lib.ingest.drop_watch.record_conflict`).
:func:`list_refusals` reads them back, per raw partition when the upload named one, so the raw
partition in Dagster and ``hvla qa list`` can show them.
"""

from __future__ import annotations

from dataclasses import dataclass

from hvla_platform.lib.core.keys import CONFLICTS, REJECTED
from hvla_platform.lib.core.lake import Lake


@dataclass
class Refusal:
    """One refused upload: ``status`` ``rejected`` or ``conflict``; ``capture_day``/``robot_id``/
    ``episode_id`` as far as the upload's metadata named them safely (``""`` otherwise);
    ``evidence`` the lake prefix holding the kept files and ``reason.json``."""

    status: str
    episode_id: str
    capture_day: str
    robot_id: str
    reason: str
    source: str
    evidence: str
    at: str = ""

    @property
    def partition(self) -> str:
        """``<day>|<robot>`` of the raw partition the upload named, ``""`` when it named none."""
        return f"{self.capture_day}|{self.robot_id}" if self.capture_day and self.robot_id else ""


def _read(lake: Lake, root: str, status: str) -> list[Refusal]:
    out = []
    for key in lake.list_keys(root):
        if not key.endswith("/reason.json"):
            continue
        rec = lake.read_json(key)
        files = rec.get("files") or list(rec.get("new_files") or {})
        mcaps = [f for f in files if str(f).endswith(".mcap")]
        # without a usable episode id, the MCAP's name (``<episode>_0.mcap``) says what was meant
        episode = str(rec.get("episode_id") or "") or (
            mcaps[0][: -len(".mcap")].removesuffix("_0") if len(mcaps) == 1 else "")
        out.append(Refusal(status=status, episode_id=episode, capture_day=str(rec.get("capture_day") or ""),
                           robot_id=str(rec.get("robot_id") or ""), reason=str(rec.get("reason", "")),
                           source=str(rec.get("source", "")), evidence=key.rsplit("/", 1)[0],
                           at=str(rec.get("at", ""))))
    return out


def list_refusals(lake: Lake, partition: str | None = None) -> list[Refusal]:
    """Every refused upload (rejections, then conflicts, each sorted by key); with ``partition``
    (``<day>|<robot>``) only those that named it."""
    found = _read(lake, REJECTED, "rejected") + _read(lake, CONFLICTS, "conflict")
    return [r for r in found if partition is None or r.partition == partition]
