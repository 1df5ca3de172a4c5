"""Which capture-day × robot partitions have landed data that ingest has not caught up with.

Read from the lake alone, so it holds however the data landed (landing sensor, ``hvla ingest``)
and whatever the Dagster instance remembers. A partition is **behind** when:

* it was never ingested (no ``raw-mcap/<day>/<robot>/_partition.json``);
* episodes landed since its last ingest (the landed episode ids differ from the index's);
* it has convertible raw episodes but no committed ``episodes-hdf5`` artifact;
* its HDF5 artifact was built from a different set of raw episodes than the index now holds.

A partition whose every episode was quarantined (or withdrawn) is *not* behind once ingested:
there is nothing to convert, and retrying would fail the same way. Landing is write-once, so the landed episode ids
identify a partition's landed content: :attr:`PartitionState.digest` is their digest, the basis of
the run keys that make an ingest request for the same content happen once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from hvla_platform.lib.ingest.landing import list_landed_episodes, list_landing_partitions
from hvla_platform.lib.core.keys import PARTITION_INDEX, episodes_prefix, raw_prefix
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import EpisodesManifest, load_manifest


@dataclass(frozen=True)
class PartitionState:
    """Ingest state of one partition: ``behind`` is ``""`` when up to date, else why it is behind."""

    capture_day: str
    robot_id: str
    landed: tuple[str, ...]
    behind: str

    @property
    def key(self) -> str:
        """The Dagster partition key, ``<capture_day>|<robot_id>``."""
        return f"{self.capture_day}|{self.robot_id}"

    @property
    def digest(self) -> str:
        """First 16 hex digits of the sha256 of the sorted landed episode ids."""
        return hashlib.sha256("\n".join(sorted(self.landed)).encode()).hexdigest()[:16]


def _why_behind(lake: Lake, day: str, robot: str, landed: list[str]) -> str:
    index_key = f"{raw_prefix(day, robot)}/{PARTITION_INDEX}"
    if not lake.exists(index_key):
        return "never ingested"
    index = {e["episode_id"]: e for e in lake.read_json(index_key)["episodes"]}
    new = sorted(set(landed) - set(index))
    if new:
        return f"{len(new)} episode(s) landed since the last ingest: {', '.join(new[:5])}" + (" …" if len(new) > 5 else "")
    withdrawn = revoked_episodes(lake)
    if not any(e.get("convertible") and ep not in withdrawn for ep, e in index.items()):
        return ""
    manifest = load_manifest(lake, episodes_prefix(day, robot), EpisodesManifest)
    if manifest is None:
        return "raw episodes ingested but not converted to HDF5"
    converted = {c["episode_id"] for c in manifest.conversions} | {s["episode_id"] for s in manifest.skipped}
    if converted != set(index):
        return "the HDF5 artifact was built from other raw episodes than the partition now holds"
    return ""


def partition_state(lake: Lake, day: str, robot: str) -> PartitionState:
    """The ingest state of one partition (see the module docstring)."""
    landed = list_landed_episodes(lake, day, robot)
    return PartitionState(day, robot, tuple(landed), _why_behind(lake, day, robot, landed) if landed else "")


def ingest_backlog(lake: Lake, partitions: list[tuple[str, str]] | None = None) -> list[PartitionState]:
    """The partitions that are behind, sorted; among ``partitions`` or every landed partition."""
    wanted = list_landing_partitions(lake) if partitions is None else sorted(set(partitions))
    states = [partition_state(lake, day, robot) for day, robot in wanted]
    return [s for s in states if s.behind]
