"""Rights standing in lineage answers: consent-withdrawal flags on artifacts and withdrawn episodes.

A withdrawal (``hvla rights revoke``; :func:`hvla_platform.lib.ops.revocation.revoke_consent`)
flags the artifacts built from the withdrawn episodes (``flags/<artifact>.json``: ``do_not_use``,
``retrain_required`` for checkpoints) and moves or deletes the episodes' raw objects, so their raw
manifests are no longer in the lake. Lineage answers are built from the manifests alone; this module
adds what the withdrawal records say:

* :func:`annotate_tree` / :func:`annotate_hits` set ``flag`` on every flagged node or hit and
  ``withdrawn`` on the nodes of withdrawn episodes;
* :func:`annotate_tree` also counts what an artifact was built from, *including* the episodes withdrawn
  since (their robot and capture day come from the revocation record, or from the raw key
  ``raw-mcap/<day>/<robot>/<episode>`` a consumer recorded), and how many of them are withdrawn.
  Every raw source counts (:data:`~.records.RAW_TYPES`): teleop episodes (``raw-teleop/<day>/<robot>/…``)
  as raw episodes of their robot, human video clips (``raw-human-video/<day>/<device>/…``) as
  clips of their camera device, counted apart from the robots.

Both read the ``flags/`` and ``rights-revocations/`` prefixes once per answer (one listing each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hvla_platform.lib.core.keys import EPISODES
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.withdrawals import all_flags, flag_summary, withdrawn_episode_records
from hvla_platform.lib.lineage.downstream import DownstreamHit
from hvla_platform.lib.lineage.records import CLIP_TYPE, RAW_TYPES, raw_key_location
from hvla_platform.lib.lineage.upstream import LineageNode


@dataclass
class UpstreamSummary:
    """What an artifact was built from, counted over its whole upstream tree.

    Attributes:
        episode_ids: every raw robot episode (MCAP or teleop) that reached the artifact (sorted),
            present or not.
        robots, capture_days: distinct robot ids of those episodes / capture days of those episodes
            and clips (sorted; one whose raw manifest is gone and whose location is not recorded
            counts as ``"?"``).
        clip_ids, devices: the human video clips that reached it and their camera devices (sorted;
            empty for an artifact built from robot data only).
        withdrawn: ``{episode_id: withdrawal record}`` of those episodes withdrawn since
            (:func:`~hvla_platform.lib.core.withdrawals.withdrawn_episode_records`).
        missing: episodes whose raw manifest is not in the lake and that no withdrawal explains (sorted).
        flags: ``{artifact key: flag}`` of every flagged artifact in the tree (root included).
    """

    episode_ids: list[str]
    robots: list[str]
    capture_days: list[str]
    withdrawn: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    flags: dict[str, dict[str, Any]] = field(default_factory=dict)
    clip_ids: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"raw_episodes": n, "robots": n, "capture_days": n, "episode_ids",
        "robot_ids", "capture_day_values", "withdrawn_episodes": {id: record}, "missing_episodes",
        "flagged": {key: flag}, "human_video_clips": n, "clip_ids", "device_ids"}``
        (``withdrawn_episodes`` / ``missing_episodes`` include clips)."""
        return {"raw_episodes": len(self.episode_ids), "robots": len(self.robots),
                "capture_days": len(self.capture_days), "episode_ids": self.episode_ids,
                "robot_ids": self.robots, "capture_day_values": self.capture_days,
                "withdrawn_episodes": self.withdrawn, "missing_episodes": self.missing, "flagged": self.flags,
                "human_video_clips": len(self.clip_ids), "clip_ids": self.clip_ids, "device_ids": self.devices}

    def line(self) -> str:
        """``= 6 raw episode(s) from 2 robot(s), 2 capture day(s) (2 withdrawn: consent C)`` (+ flags);
        with clips ``…, 2 capture day(s), 1 human video clip(s) from 1 device(s) (…)``."""
        s = (f"= {len(self.episode_ids)} raw episode(s) from {len(self.robots)} robot(s), "
             f"{len(self.capture_days)} capture day(s)")
        if self.clip_ids:
            s += f", {len(self.clip_ids)} human video clip(s) from {len(self.devices)} device(s)"
        notes = []
        if self.withdrawn:
            consents = sorted({str(r["consent"]) for r in self.withdrawn.values()})
            notes.append(f"{len(self.withdrawn)} withdrawn: consent {', '.join(consents)}")
        if self.missing:
            notes.append(f"{len(self.missing)} missing from the lake")
        if notes:
            s += f" ({'; '.join(notes)})"
        if self.flags:
            by_status: dict[str, int] = {}
            for f in self.flags.values():
                by_status[str(f.get("status"))] = by_status.get(str(f.get("status")), 0) + 1
            s += "; flagged: " + ", ".join(f"{n} {st}" for st, n in sorted(by_status.items()))
        return s


def _raw_location(key: str) -> tuple[str | None, str | None, bool]:
    """``(capture_day, robot or device id, is a clip)`` of a raw key (``raw-mcap/``, ``raw-teleop/``
    ``<day>/<robot>/<episode>[/file]``, ``raw-human-video/<day>/<device>/<clip>``:
    :func:`~.records.raw_key_location`) or an HDF5 partition key ``episodes-hdf5/<day>/<robot>`` (the
    key layout of :mod:`hvla_platform.lib.core.keys`); ``(None, None, False)`` for any other key."""
    loc = raw_key_location(key)
    if loc is not None:
        return loc[1], loc[2], loc[0] == CLIP_TYPE
    parts = key.split("/")
    if parts[0] == EPISODES and len(parts) >= 3:
        return parts[1], parts[2], False
    return None, None, False


def annotate_tree(lake: Lake, tree: LineageNode) -> UpstreamSummary:
    """Set ``flag`` and ``withdrawn`` on the nodes of an upstream tree and count what it was built from.

    A node's ``flag`` is its artifact's flag record; ``withdrawn`` is set on a raw or ``missing``
    node all of whose episodes are withdrawn (``{"episodes": {id: record}}``). The episodes counted
    are the union of every node's ``episode_ids`` (each node lists only the episodes that reach the
    root along its path), so an episode whose raw manifest or HDF5 partition was removed by a
    withdrawal still counts.

    Args:
        lake: the lake the tree was read from.
        tree: the answer of :func:`hvla_platform.lib.lineage.upstream.upstream` (modified in place).

    Returns:
        The :class:`UpstreamSummary`.
    """
    flags, withdrawn = all_flags(lake), withdrawn_episode_records(lake)
    episodes: set[str] = set()
    where: dict[str, tuple[str | None, str | None]] = {}
    clips: set[str] = set()
    present: set[str] = set()
    hit_flags: dict[str, dict[str, Any]] = {}
    for n in tree.walk():
        episodes.update(n.episode_ids)
        if n.key in flags:
            n.flag = flags[n.key]
            hit_flags[n.key] = flags[n.key]
        if n.type in RAW_TYPES:
            present.update(n.episode_ids)
            clip = n.type == CLIP_TYPE
            for e in n.episode_ids:
                where[e] = (n.info.get("capture_day"), n.info.get("device_id" if clip else "robot_id"))
                if clip:
                    clips.add(e)
        elif n.type == "missing":
            day, robot, clip = _raw_location(n.key)
            for e in n.episode_ids:
                if day is not None:
                    where.setdefault(e, (day, robot))
                if clip:
                    clips.add(e)
        leaf_or_missing = n.type in RAW_TYPES or n.type == "missing"
        if leaf_or_missing and n.episode_ids and all(e in withdrawn for e in n.episode_ids):
            n.withdrawn = {"episodes": {e: withdrawn[e] for e in n.episode_ids}}
    for e in episodes - present:
        r = withdrawn.get(e)
        if r is None:
            continue
        clip = r.get("raw_type") == CLIP_TYPE
        if r.get("capture_day"):
            where[e] = (r["capture_day"], r.get("device_id") if clip else r["robot_id"])
        if clip:
            clips.add(e)
    robot_eps = episodes - clips
    days = {str(where.get(e, (None, None))[0] or "?") for e in episodes}
    robots = {str(where.get(e, (None, None))[1] or "?") for e in robot_eps}
    devices = {str(where.get(e, (None, None))[1] or "?") for e in clips}
    return UpstreamSummary(episode_ids=sorted(robot_eps), robots=sorted(robots), capture_days=sorted(days),
                           withdrawn={e: withdrawn[e] for e in sorted(episodes) if e in withdrawn},
                           missing=sorted(e for e in episodes - present if e not in withdrawn), flags=hit_flags,
                           clip_ids=sorted(clips), devices=sorted(devices))


def annotate_hits(lake: Lake, hits: list[DownstreamHit]) -> None:
    """Set ``flag`` on each flagged downstream hit (in place); one listing of ``flags/``."""
    flags = all_flags(lake)
    for h in hits:
        h.flag = flags.get(h.key)


def flag_note(flag: dict[str, Any] | None) -> str:
    """The suffix a rendered line gets for a flag: ``  [DO_NOT_USE: consent … record …]`` or ``""``."""
    if not flag:
        return ""
    status, _, rest = flag_summary(flag).partition(" ")
    return f"  [{status.upper()}: {rest.strip('()')}]"
