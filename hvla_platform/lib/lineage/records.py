"""What lineage keeps of one manifest: :class:`ArtifactRecord` with its input :class:`Edge` s.

Every committed artifact carries a ``_hvla_manifest.json`` naming its inputs (lake ``key``,
``sha256``, ``kind``, ``episode_ids``), its config, code version and rights
(:mod:`hvla_platform.lib.core.manifest`). :func:`record_from_manifest` reduces one to the compact
record the index stores and the queries walk. Manifests of schema version 1 (which named inputs by
URI) are read through :func:`~hvla_platform.lib.core.manifest.upgrade_v1`: their URIs are mapped to
keys by stripping the root they were written under (``artifact_uri`` minus the key).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

from hvla_platform.lib.core.keys import HUMAN_VIDEO_RAW, RAW, RAW_TELEOP
from hvla_platform.lib.core.manifest import upgrade_v1

#: Order in which artifact types appear in results (raw first).
TYPE_ORDER = {
    "raw_mcap_episode": 0,
    "raw_teleop_episode": 0,  # a seed-003 teleop episode (lib/ingest/teleop.py): a raw leaf too
    "episodes_hdf5": 1,
    "lerobot_dataset": 2,
    "rlds_dataset": 2,  # a seed-003 teleop target as RLDS (lib/dataset/rlds_export.py): beside its LeRobot twin
    "norm_stats": 3,
    "robodm_cache": 4,
    "openpi_export": 5,
    "mixture_release": 5,  # a mixture of releases (lib/dataset/mixture.py): beside the other release derivatives
    "rollout_checklist": 6,  # a deployed checkpoint's rollout, checked (lib/ingest/rollouts.py): beside its checkpoint
    "checkpoint": 6,
    "eval_report": 7,
    "raw_human_video_clip": 0,  # a leaf like a raw episode (docs/human_video.md)
}
RAW_TYPE = "raw_mcap_episode"
TELEOP_TYPE = "raw_teleop_episode"
CLIP_TYPE = "raw_human_video_clip"
#: Raw artifact types whose landing inputs are not followed (the leaves of every upstream tree).
LEAF_TYPES = frozenset({RAW_TYPE, TELEOP_TYPE, CLIP_TYPE})
#: Every raw source is a raw leaf: robot MCAP episodes (rollouts included), seed-003 teleop episodes
#: (lib/ingest/teleop.py) and action-free human video clips (lib/ingest/human_video.py). Upstream
#: stops at them, downstream starts from them, consent withdrawal withdraws them.
RAW_TYPES = LEAF_TYPES
#: raw type -> the lake root its objects live under (``<root>/<day>/<robot or device>/<id>/``).
RAW_ROOTS = {RAW_TYPE: RAW, TELEOP_TYPE: RAW_TELEOP, CLIP_TYPE: HUMAN_VIDEO_RAW}
#: raw type -> the manifest field holding the sha256 a raw node shows (the recorded content: the
#: MCAP file, the teleop episode's digest of its frames and meta, the clip's MP4).
RAW_CONTENT_SHA = {RAW_TYPE: "mcap_sha256", TELEOP_TYPE: "episode_sha256", CLIP_TYPE: "video_sha256"}
#: Type-specific manifest fields copied into :attr:`ArtifactRecord.info`.
INFO_FIELDS = ("capture_day", "robot_id", "operator", "site", "customer", "task", "mcap_sha256", "release",
               "repo_id", "experiment", "step", "config_name", "checkpoint", "partitions", "computed_from",
               "heldout_episode_ids", "serving_allowed", "serving_blocked", "mlflow_run_id", "created_at",
               "mixture")

#: Rollout checklists (lib/ingest/rollouts.py): which rollout, produced by which checkpoint and server.
INFO_FIELDS += ("rollout_episode", "checkpoint_key", "server_instance", "outcome", "retrain_permitted")
#: Input kind of the checkpoint that produced a rollout (a rollout checklist's input).
PRODUCED_BY_KIND = "checkpoint"
ROLLOUT_TYPE = "rollout_checklist"
#: Human video clips (lib/ingest/human_video.py): which camera, which LAM bucket.
INFO_FIELDS += ("device_id", "learning_role")
#: Content digests of the other raw sources (what their raw node shows as ``sha256``).
INFO_FIELDS += ("episode_sha256", "video_sha256")


class LineageError(LookupError):
    """The artifact or query does not name anything in the lake (message says what was looked for)."""


@dataclass(slots=True)
class Edge:
    """One input of an artifact as recorded in its manifest.

    Attributes:
        key: the input's lake key, or ``None`` for an input a version-1 manifest names by a URI
            outside its lake.
        uri: that URI (``""`` whenever ``key`` is set).
        sha256: the sha256 recorded by the consumer (of a file, or of the input's manifest).
        kind: recorded kind (``raw_mcap``, ``episodes_hdf5``, ...).
        episode_ids: the raw episode ids the consumer took from this input (may be empty).
    """

    key: str | None
    uri: str
    sha256: str
    kind: str
    episode_ids: list[str]

    def to_list(self) -> list[Any]:
        """Index form ``[key, uri, sha256, kind, episode_ids]``; a URI is kept only when it is
        outside the lake (``key`` None)."""
        return [self.key, self.uri if self.key is None else "", self.sha256, self.kind, self.episode_ids]


@dataclass(slots=True)
class ArtifactRecord:
    """What lineage needs from one manifest.

    Attributes:
        key: lake prefix of the artifact (``checkpoints/<config>/<exp>/<step>``).
        type: ``artifact_type`` of the manifest.
        manifest_sha256: sha256 of the canonical manifest JSON (what consumers record;
            :func:`~hvla_platform.lib.core.manifest.manifest_sha256`).
        code_version, config, rights: as in the manifest (rights is ``Rights.to_dict()``).
        episode_ids: the manifest's ``episode_ids``.
        info: type-specific fields (see :data:`INFO_FIELDS`) plus ``mcap_key`` for raw episodes.
        files: ``{relative path: sha256}`` of the artifact's files (raw: the MCAP).
        inputs: the input edges (none for raw episodes, which are the leaves).
    """

    key: str
    type: str
    manifest_sha256: str
    code_version: str
    config: dict[str, Any]
    rights: dict[str, Any]
    episode_ids: list[str]
    info: dict[str, Any]
    files: dict[str, str]
    inputs: list[Edge]


def strip_root(uri: str, roots: Iterable[str]) -> str | None:
    """The lake key ``uri`` names below one of ``roots`` (root URIs without trailing ``/``), or None."""
    for root in roots:
        if root and uri.startswith(root + "/"):
            return uri[len(root) + 1:]
    return None


def canonical_sha256(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical manifest JSON, the same bytes as
    :func:`hvla_platform.lib.core.manifest.manifest_sha256` hashes (``json.dumps(sort_keys=True,
    default=str)``; Python's C encoder, ~200 MB/s)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


def record_from_manifest(key: str, manifest: dict[str, Any], roots: Iterable[str] = ()) -> ArtifactRecord:
    """Reduce a manifest to an :class:`ArtifactRecord`.

    Args:
        key: the artifact's lake prefix (where the manifest was found).
        manifest: the parsed manifest (any schema version; version 1 is read through
            :func:`~hvla_platform.lib.core.manifest.upgrade_v1`).
        roots: root URIs to strip from a version-1 URI outside the manifest's own root (the queried
            lake's root); unused for version 2, whose inputs are keys.
    """
    view = upgrade_v1(manifest, key) if manifest.get("schema_version") == 1 else manifest
    roots = [r.rstrip("/") for r in roots]

    def key_of(ref: Any) -> tuple[str | None, str]:
        ref = str(ref or "")
        if "://" not in ref:
            return (ref or None), ""
        k = strip_root(ref, roots)
        return (k, "") if k is not None else (None, ref)

    edges = []
    if manifest.get("artifact_type") not in LEAF_TYPES:  # a raw episode is a leaf: its landing input is not followed
        for i in view.get("inputs") or []:
            k, outside = key_of(i.get("key", i.get("uri")))
            edges.append(Edge(k, outside, str(i.get("sha256", "")), str(i.get("kind", "")),
                              list(i.get("episode_ids") or [])))
    info = {f: view[f] for f in INFO_FIELDS if f in view}
    files = {f["path"]: f["sha256"] for f in view.get("files") or [] if "path" in f and "sha256" in f}
    mk = key_of(view.get("mcap_key"))[0]
    if mk is not None:
        info["mcap_key"] = mk
        if mk.startswith(key + "/") and view.get("mcap_sha256"):
            files.setdefault(mk[len(key) + 1:], view["mcap_sha256"])
    return ArtifactRecord(
        key=key, type=str(manifest.get("artifact_type", "unknown")), manifest_sha256=canonical_sha256(manifest),
        code_version=str(manifest.get("code_version", "")), config=manifest.get("config") or {},
        rights=manifest.get("rights") or {}, episode_ids=list(manifest.get("episode_ids") or []),
        info=info, files=files, inputs=edges)


def raw_key_location(key: str) -> tuple[str, str, str] | None:
    """``(raw type, capture day, robot or device id)`` of a key under a raw root
    (``raw-mcap/<day>/<robot>/<episode>[/file]``, ``raw-teleop/<day>/<robot>/<episode>[/…]``,
    ``raw-human-video/<day>/<device>/<clip>[/…]``; :data:`RAW_ROOTS`), or ``None`` for any other key."""
    parts = key.split("/")
    if len(parts) < 4:
        return None
    for typ, root in RAW_ROOTS.items():
        if parts[0] == root:
            return typ, parts[1], parts[2]
    return None
