"""Which Dagster asset partition each lake artifact of a consent withdrawal corresponds to (no Dagster here).

The platform's assets are named after the artifact types of the manifests and partitioned as
DESIGN.md "Partitioning" says (``hvla_platform/defs/partitions.py``): release-side artifacts
(``lerobot_dataset``, ``norm_stats``, ``robodm_cache``, ``openpi_export``) by release spec name (the
manifest's ``release`` is a version id ``<spec>[.<n>]``; the partition builds the spec's latest
version), training-side ones (``checkpoint``, ``eval_report``) by experiment (the
manifest's ``experiment``), raw and HDF5 layers by ``<capture_day>|<robot>`` (the multi-partition
key string, dimensions in name order). :mod:`hvla_platform.defs.automation.rights_flags` turns these
targets into Dagster events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hvla_platform.lib.core.keys import EPISODES, PARTITION_INDEX, RAW
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.withdrawals import all_flags, withdrawn_episode_records
from hvla_platform.lib.dataset.versions import parse_version_id

#: artifact type -> the manifest field holding the asset partition key
PARTITION_FIELD = {"lerobot_dataset": "release", "norm_stats": "release", "robodm_cache": "release",
                   "openpi_export": "release", "checkpoint": "experiment", "eval_report": "experiment",
                   "rlds_dataset": "target", "mixture_release": "name"}

#: artifact type -> its asset when the asset is named otherwise (issue 17's sources)
ASSET_OF_TYPE = {"rlds_dataset": "teleop_target_rlds"}


def asset_partition(m: dict[str, Any]) -> tuple[str, str | None]:
    """(asset name, partition key or None) of a manifest. LeRobot datasets that are not built from a
    release spec belong to other assets: seed 003's teleop targets (``derivation.source: teleop``,
    partitioned by target) and the human-video bucket releases (``source_kind: human_video``,
    partitioned by bucket)."""
    kind = str(m["artifact_type"])
    if kind == "lerobot_dataset":
        derivation = m.get("derivation") or {}
        if derivation.get("source") == "teleop":
            return "teleop_target_lerobot", derivation.get("target")
        if m.get("source_kind") == "human_video":
            return "human_video_release", m.get("bucket")
    part = m.get(PARTITION_FIELD[kind])
    if part and PARTITION_FIELD[kind] == "release":  # a version id <spec>[.<n>]: the partition is the spec name
        part = parse_version_id(str(part))[0]
    return ASSET_OF_TYPE.get(kind, kind), (str(part) if part else None)


@dataclass(frozen=True)
class FlagTarget:
    """One asset partition carrying a withdrawal's flag.

    Attributes:
        asset: the Dagster asset name (the manifest's ``artifact_type``, except for the teleop
            targets, the RLDS datasets and the human-video releases: :func:`asset_partition`).
        partition: the partition key string (release version, experiment, or ``<day>|<robot>``).
        artifact: the flagged lake prefix.
        flag: the flag record (:func:`hvla_platform.lib.core.withdrawals.artifact_flags`).
    """

    asset: str
    partition: str
    artifact: str
    flag: dict[str, Any]


def flag_target(lake: Lake, artifact: str, flag: dict[str, Any]) -> FlagTarget | None:
    """The asset partition of a flagged artifact, from its manifest; ``None`` when the manifest is
    gone or its type is not one of :data:`PARTITION_FIELD` (nothing in Dagster to mark)."""
    m = lake.read_manifest(artifact)
    if not m or m.get("artifact_type") not in PARTITION_FIELD:
        return None
    asset, part = asset_partition(m)
    if not part:
        return None
    return FlagTarget(asset, part, artifact, flag)


def flag_targets(lake: Lake, artifacts: list[str] | None = None) -> list[FlagTarget]:
    """The asset partitions of the flagged artifacts (all of them, or those in ``artifacts``),
    sorted by asset then partition then artifact. Artifacts without a target are left out."""
    flags = all_flags(lake)
    keys = sorted(flags) if artifacts is None else [a for a in artifacts if a in flags]
    out = [t for k in keys for t in [flag_target(lake, k, flags[k])] if t is not None]
    return sorted(out, key=lambda t: (t.asset, t.partition, t.artifact))


@dataclass(frozen=True)
class WithdrawnPartition:
    """A raw (and HDF5) partition some of whose episodes were withdrawn.

    Attributes:
        partition: ``<capture_day>|<robot>``.
        withdrawn: ``{episode_id: withdrawal record}`` (:func:`withdrawn_episode_records`).
        remaining: the partition's other episode ids in its last index (``_partition.json``: published
            or quarantined), sorted.
        hdf5_present: whether the derived HDF5 partition still exists (removed when every episode went).
    """

    partition: str
    withdrawn: dict[str, dict[str, Any]]
    remaining: list[str]
    hdf5_present: bool


def withdrawn_partitions(lake: Lake, episodes: list[str] | None = None) -> list[WithdrawnPartition]:
    """Raw robot-recording partitions (``raw_mcap`` / ``episodes_hdf5``) holding withdrawn episodes
    (all, or only those holding one of ``episodes``), located by the revocation records'
    ``episode_info``; sorted by partition. Withdrawn teleop episodes and human video clips
    (``raw_type`` other than ``raw_mcap_episode``) have no such partition and are left out."""
    recs = withdrawn_episode_records(lake)
    by_part: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for e, r in recs.items():
        if r.get("raw_type", "raw_mcap_episode") != "raw_mcap_episode":
            continue
        if r.get("capture_day") and r.get("robot_id"):
            by_part.setdefault((r["capture_day"], r["robot_id"]), {})[e] = r
    out = []
    for (day, robot), wd in sorted(by_part.items()):
        if episodes is not None and not set(wd) & set(episodes):
            continue
        idx = f"{RAW}/{day}/{robot}/{PARTITION_INDEX}"
        listed = [str(r.get("episode_id")) for r in lake.read_json(idx).get("episodes", [])] if lake.exists(idx) else []
        out.append(WithdrawnPartition(partition=f"{day}|{robot}", withdrawn=wd,
                                      remaining=sorted(e for e in listed if e not in recs),
                                      hdf5_present=lake.read_manifest(f"{EPISODES}/{day}/{robot}") is not None))
    return out
