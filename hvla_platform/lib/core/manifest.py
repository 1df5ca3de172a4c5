"""Artifact manifests: what every artifact was built from, with what code and config, and the one
publish-if-changed helper every builder uses.

Every artifact the platform publishes carries a JSON manifest (the lake's
:data:`~hvla_platform.lib.core.lake.MANIFEST_NAME`, written last as the commit marker) that names
its exact inputs (lake keys + sha256 + episode ids), its files (path + sha256 + bytes), its config,
the code version and its rights. Lineage queries walk these manifests.

**Relocatable.** A manifest names its own artifact and its inputs by **lake key** (relative, e.g.
``episodes-hdf5/2026-11-10/g1-001``), never by URI or absolute path, and :func:`fingerprint` is a
function of the inputs' keys and content hashes, the config and the platform version only; so a
lake moved or copied elsewhere (``HVLA_HOME`` copied to another directory or machine) finds every
artifact ``cached``. URIs are computed for display from the lake being read (``lake.uri(key)``).

Each artifact type has a pydantic model (:data:`MANIFEST_MODELS`, ``extra="forbid"``,
``schema_version`` 2): :func:`build_manifest` validates what it writes and :func:`load_manifest` /
:func:`require_manifest` validate what they read, so a key written in one stage and read in
another is declared in exactly one place. Manifests of ``schema_version`` 1 (written before keys
replaced URIs) are still read: :func:`upgrade_v1` maps their URIs to keys in memory (the stored
document, and so its :meth:`~ArtifactManifest.sha256`, is unchanged); their fingerprints were
computed over URIs and never equal a current one, so a derived artifact of version 1 is rebuilt
(as version 2) by its next materialization, and a raw episode (write-once) keeps its version-1
manifest for good (docs/decisions.md, "Relocatable artifacts").

:func:`publish_if_changed` is the skeleton of every derived artifact: fingerprint (inputs + config +
platform version) → the published manifest has the same fingerprint? ``cached`` → otherwise build
into a staging directory → manifest → publish (:meth:`Lake.publish_artifact`, manifest last).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, TypeVar
from urllib.parse import unquote

from pydantic import ConfigDict, PrivateAttr

from hvla_platform import __version__
from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.keys import (
    CHECKPOINTS, EPISODES, EVAL_REPORTS, LEROBOT, NORM_STATS, OPENPI_EXPORTS, RAW, ROBODM)
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.core.lake import MANIFEST_NAME, ArtifactNotFoundError, Lake, sha256_file, validate_key
from hvla_platform.lib.core.scratch import scratch_dir

MANIFEST_SCHEMA_VERSION = 2
#: Older schema versions :func:`parse_manifest` still reads (upgraded in memory by :func:`upgrade_v1`).
LEGACY_SCHEMA_VERSIONS = (1,)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``hvla-platform <version>`` plus the git commit (and ``+dirty``) when run from a checkout."""
    root = REPO_ROOT
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


@dataclass
class InputRef:
    """One input of an artifact.

    Attributes:
        key: where the input lives: its lake key, relative to the lake's root (an artifact prefix
            such as ``episodes-hdf5/2026-11-10/g1-001``, or a file in one such as
            ``norm-stats/<release>/norm_stats.json``); never a URI or an absolute path, so that the
            manifest stays true when the lake is moved (:func:`~hvla_platform.lib.core.lake.validate_key`).
        sha256: content hash of the input (of its manifest, for a directory artifact).
        kind: what it is (``raw_mcap``, ``episodes_hdf5``, ``lerobot_dataset``...).
        episode_ids: raw episode ids contained in the input.

    Raises:
        ValueError: ``key`` is not a relative lake key (a URI, an absolute path, ``..``).
    """

    key: str
    sha256: str
    kind: str
    episode_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "://" in self.key:
            raise ValueError(f"input {self.key!r} is a URI; inputs are recorded by lake key (relative to the "
                             "lake's root), e.g. 'episodes-hdf5/2026-11-10/g1-001'")
        validate_key(self.key)

    def to_dict(self) -> dict[str, Any]:
        """JSON form as stored in manifests (episode ids sorted)."""
        d = {"key": self.key, "sha256": self.sha256, "kind": self.kind, "episode_ids": sorted(self.episode_ids)}
        if self.extra:
            d["extra"] = self.extra
        return d


def file_entries(local_dir: str | os.PathLike[str],
                 known: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """``[{path, sha256, bytes}]`` for every file under ``local_dir`` (relative POSIX paths, sorted).

    ``known`` maps relative paths to ``{"sha256", "bytes"}`` the caller vouches for (a file carried
    over unchanged from a previous version, e.g. a hard link to it): such a file is not read again
    when its size agrees; any other file is hashed.
    """
    root = Path(local_dir)
    known = known or {}
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            rel = p.relative_to(root).as_posix()
            size = p.stat().st_size
            k = known.get(rel)
            sha = k["sha256"] if k is not None and k.get("bytes") == size else sha256_file(p)
            out.append({"path": rel, "sha256": sha, "bytes": size})
    return out


def known_links(new_dir: str | os.PathLike[str], old_dir: str | os.PathLike[str],
                old_files: list[Any] | None, rels: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Files of ``new_dir`` that are hard links to the same relative path in ``old_dir`` (a
    published version of an artifact; same inode, so the same bytes), with the ``sha256``/``bytes``
    the old version's manifest ``files`` records for them (entries with ``path``/``sha256``/``bytes``
    attributes or keys): the ``known_files`` of :class:`Content`. ``rels`` limits the paths looked at
    (default: every file the old manifest lists). Files that are copies are left out (hashed)."""
    new, old = Path(new_dir), Path(old_dir)
    out: dict[str, dict[str, Any]] = {}
    entries = {(e["path"] if isinstance(e, dict) else e.path): e for e in (old_files or [])}
    for rel in (rels if rels is not None else list(entries)):
        e = entries.get(rel)
        if e is None:
            continue
        try:
            same = os.path.samefile(new / rel, old / rel)
        except OSError:
            same = False
        if same:
            sha, size = (e["sha256"], e["bytes"]) if isinstance(e, dict) else (e.sha256, e.bytes)
            out[rel] = {"sha256": sha, "bytes": size}
    return out


def build_manifest(
    *,
    artifact_type: str,
    artifact_key: str,
    inputs: list[InputRef],
    config: dict[str, Any],
    rights: Rights,
    local_dir: str | os.PathLike[str] | None = None,
    episode_ids: list[str] | None = None,
    extra: dict[str, Any] | None = None,
    known_files: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Assemble an artifact manifest (a JSON-serialisable dict), validated against its type's model.

    ``artifact_key`` is the artifact's lake prefix (relative; the manifest holds no URI or absolute
    path). ``files`` lists every file of ``local_dir`` with its sha256, so a copy of the lake can be
    verified (files in ``known_files`` keep the hash given there: :func:`file_entries`);
    ``fingerprint`` is the sha256 of the inputs' keys and hashes + config + platform
    version and is what makes assets idempotent (same fingerprint → ``status: cached``).

    Raises:
        ManifestError: the manifest does not match the model of ``artifact_type``.
        ValueError: ``artifact_key`` is not a relative lake key.
    """
    inputs_d = [i.to_dict() for i in inputs]
    manifest: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "artifact_type": artifact_type,
        "artifact_key": validate_key(artifact_key.rstrip("/")),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config": config,
        "inputs": inputs_d,
        "episode_ids": sorted(episode_ids or sorted({e for i in inputs for e in i.episode_ids})),
        "rights": rights.to_dict(),
        "fingerprint": fingerprint(inputs_d, config),
    }
    if local_dir is not None:
        manifest["files"] = file_entries(local_dir, known_files)
    if extra:
        manifest.update(_json_numbers(extra))
    parse_manifest(json.loads(json.dumps(manifest, default=str, allow_nan=False)), source=artifact_key)  # the model is the contract
    return manifest


def _json_numbers(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None: JSON has no such numbers,
    and a manifest holding ``NaN`` (Python's json writes it) is unreadable to strict parsers (orjson:
    lineage would take the artifact for uncommitted). A QA metric that is undefined (e.g. the LDLJ of
    a command that never moves) is then ``null``."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _json_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_numbers(v) for v in value]
    return value


def fingerprint(inputs: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """sha256 over the inputs' lake keys and content hashes, the config and the platform version.

    ``inputs`` are :meth:`InputRef.to_dict` forms. Nothing else enters it: not where the lake is
    (keys are relative; a URI or absolute path is refused), not the time, not the git commit (so a
    docs-only commit does not invalidate every artifact). The same inputs under two lake roots, or
    a lake copied elsewhere, give the same fingerprint.

    Raises:
        ValueError: an input has no lake ``key`` (e.g. a URI-based form of schema version 1).
    """
    pairs = []
    for i in inputs:
        key = i.get("key")
        if not isinstance(key, str) or "://" in key or key.startswith("/"):
            raise ValueError(f"fingerprint: input {i!r} has no relative lake key")
        pairs.append((key, i["sha256"]))
    payload = json.dumps({"inputs": sorted(pairs), "config": config, "version": __version__},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Content hash identifying a directory artifact: sha256 of its canonical manifest JSON."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


# ---- manifest models -------------------------------------------------------------------------------

class ImmutableArtifactError(RuntimeError):
    """A build would replace a published artifact that must never change (a release version)."""


class ManifestError(ValueError):
    """A manifest does not match its artifact type's model (unknown/missing key, wrong type,
    unknown ``schema_version``); the message names the artifact and the offending field."""


class _Model(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputEntry(_Model):
    """One entry of ``inputs``: the form :meth:`InputRef.to_dict` writes (``key``: a lake key;
    version-1 manifests' ``uri`` is mapped to it by :func:`upgrade_v1`)."""

    key: str
    sha256: str
    kind: str
    episode_ids: list[str]
    extra: dict[str, Any] | None = None


class FileEntry(_Model):
    """One entry of ``files``: a file of the artifact (POSIX path relative to the prefix)."""

    path: str
    sha256: str
    bytes: int


class ArtifactManifest(_Model):
    """Fields every manifest has (schema version 2).

    Attributes:
        schema_version: 2; 1 for a manifest written before lake keys replaced URIs (read through
            :func:`upgrade_v1`: the fields below are then the upgraded view, :meth:`to_dict` the
            stored version-1 document).
        artifact_key: the artifact's lake prefix (relative to the lake's root; its URI in the lake
            being read is ``lake.uri(artifact_key)``).
        inputs: the inputs, by lake key.
        rights: the :class:`~hvla_platform.lib.core.rights.Rights` dict (validated by
            ``Rights.from_dict``; use :attr:`rights_obj`).
        fingerprint: sha256 of the inputs' keys and hashes + config + platform version
            (:func:`fingerprint`).
        files: every file of a directory artifact; ``None`` for a raw episode (its own ``index.json``
            lists the MCAP's content).
    """

    schema_version: Literal[1, 2]
    artifact_type: str
    artifact_key: str
    created_at: str
    code_version: str
    config: dict[str, Any]
    inputs: list[InputEntry]
    episode_ids: list[str]
    rights: dict[str, Any]
    fingerprint: str
    files: list[FileEntry] | None = None

    @property
    def rights_obj(self) -> Rights:
        """:attr:`rights` as a :class:`Rights` (raises ``RightsError`` for a malformed block)."""
        return Rights.from_dict(self.rights)

    _stored: dict[str, Any] | None = PrivateAttr(default=None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document exactly as stored in the lake (as parsed, when it was read)."""
        return self._stored if self._stored is not None else self.model_dump(mode="json", exclude_unset=True)

    def sha256(self) -> str:
        """:func:`manifest_sha256` of the stored document: the content hash downstream inputs record
        (computed on the document as stored, so a model's type coercion never changes it)."""
        return manifest_sha256(self.to_dict())


class RawEpisodeManifest(ArtifactManifest):
    """``raw-mcap/<day>/<robot>/<episode>/``: one write-once raw episode (ingest)."""

    artifact_type: Literal["raw_mcap_episode"]
    mcap_key: str  # lake key of the MCAP (version 1: ``mcap_uri``, mapped by :func:`upgrade_v1`)
    mcap_sha256: str
    capture_day: str
    robot_id: str
    operator: str | None = None
    site: str | None = None
    customer: str | None = None
    task: str | None = None


class RawTeleopEpisodeManifest(ArtifactManifest):
    """``raw-teleop/<day>/<robot>/<episode>/``: one write-once seed-003 teleop episode (ingest,
    ``lib/ingest/teleop.py``; docs/teleop.md).

    ``files`` lists every published file (frames, ``episode_meta.json``, ``metadata.yaml``, notes);
    ``episode_sha256`` is the sha256 of the lines ``<relative path>\0<sha256>\n`` of the episode's
    frames and ``episode_meta.json``; ``checks`` the raw checks' outcome at publication
    (``{name: {"passed", "detail"}}``): an episode is usable downstream only when all passed."""

    artifact_type: Literal["raw_teleop_episode"]
    episode_sha256: str
    capture_day: str
    robot_id: str
    num_frames: int
    fps: float
    phase_counts: dict[str, int]
    skill_outcome: str
    checks: dict[str, dict[str, Any]]
    operator: str | None = None
    site: str | None = None
    customer: str | None = None
    task: str | None = None


class EpisodesManifest(ArtifactManifest):
    """``episodes-hdf5/<day>/<robot>/``: a partition's synchronised HDF5 episodes (processing).

    ``conversions`` holds one record per attempted episode (status, QA checks, quality score,
    file, sha256…: :class:`hvla_platform.lib.processing.build.EpisodeConversion`); ``skipped`` the
    raw episodes not attempted and why."""

    artifact_type: Literal["episodes_hdf5"]
    capture_day: str
    robot_id: str
    conversions: list[dict[str, Any]]
    skipped: list[dict[str, Any]]


class LeRobotDatasetManifest(ArtifactManifest):
    """``lerobot/<repo_id>/<release>/``: a LeRobot v3.0 release (dataset)."""

    artifact_type: Literal["lerobot_dataset"]
    release: str  # the immutable version id: <spec_name> for version 0, <spec_name>.<n> after
    repo_id: str
    spec_name: str = ""  # the release spec it was built from ("" in manifests older than versioning)
    version: int = 0
    codebase_version: str | None
    num_episodes: int
    num_frames: int
    fps: float
    episode_index: dict[str, int]
    train_episode_ids: list[str]
    heldout_episode_ids: list[str]
    train_episode_indices: list[int]
    heldout_episode_indices: list[int]
    excluded: dict[str, str]
    approved: dict[str, str]
    quality_scores: dict[str, float | None]
    partitions: list[str]
    feature_schema: dict[str, Any]
    tasks: list[str]
    probe: dict[str, Any]
    video_codec: str | None
    timestamp_problems: dict[str, str]
    partition_inputs: list[dict[str, Any]]
    profile: str = ""  # <name>@<version> of the robot profile ("" in manifests older than robot profiles)
    robot_type: str = ""  # LeRobot robot_type (the profile's robot model; "" in older manifests)
    #: the release checks' findings (lib/dataset/release_qa.py ``ReleaseQA.to_dict()``: thresholds,
    #: previous_release, checks); {} in manifests older than release checks
    release_checks: dict[str, Any] = {}
    #: action-free video releases (lib/dataset/video_release.py, docs/human_video.md): the learning
    #: role every episode has (``manipulation`` / ``locomotion``); None for robot releases
    bucket: str | None = None
    #: False when the dataset has no ``action`` feature (video-only); robot releases have one
    has_action: bool = True
    #: where the frames come from: ``robot`` (recordings' cameras) or ``human_video`` (egocentric clips)
    source_kind: str = "robot"
    #: face blurring of a video release: {"detector", "blurred_clips": {clip: faces}, "kept_clips": [...]}
    face_blur: dict[str, Any] = {}
    #: how the frames were derived from their sources when not by a release spec; {} for spec
    #: releases. Seed 003's teleop targets (lib/dataset/teleop_lerobot.py ``derivation_record``):
    #: ``{"source": "teleop", "target", "phases", "stop_signal", "stop_signal_rule", "noop_rule",
    #: "order", "options", "counts", "segments", "contributing_episode_ids"}``
    derivation: dict[str, Any] = {}


class NormStatsManifest(ArtifactManifest):
    """``norm-stats/<release>/``: openpi ``norm_stats.json`` of the train split (dataset)."""

    artifact_type: Literal["norm_stats"]
    release: str
    repo_id: str
    computed_from: Literal["train_split_only"]
    excluded_heldout_episode_ids: list[str]
    num_frames: int
    names: dict[str, list[str]]
    problems: list[str]
    reusable_across_customers: bool
    customers: list[str]


class RoboDMCacheManifest(ArtifactManifest):
    """``robodm-cache/<release>/``: one ``.vla`` per episode + ``manifest.parquet`` (dataset)."""

    artifact_type: Literal["robodm_cache"]
    release: str
    repo_id: str
    num_episodes: int
    num_frames: int
    bytes: int
    #: the release's total bytes and ``bytes / release_bytes`` (None in caches built before they existed)
    release_bytes: int | None = None
    bytes_ratio: float | None = None
    codecs: dict[str, Any]
    problems: list[str]
    roundtrip: dict[str, Any]
    probe_fix_applied: bool
    train_episode_ids: list[str]
    heldout_episode_ids: list[str]


class CheckpointManifest(ArtifactManifest):
    """``checkpoints/<config>/<exp>/<step>/``: a trained policy (training)."""

    artifact_type: Literal["checkpoint"]
    experiment: str
    config_name: str
    step: int
    release: str
    repo_id: str
    initial_loss: float
    final_loss: float
    mlflow_run_id: str | None
    num_train_frames: int
    num_params: int
    train_seconds: float
    timings: dict[str, Any]
    serving_allowed: list[str]
    serving_blocked: list[str]


class EvalReportManifest(ArtifactManifest):
    """``eval-reports/<exp>/<step>/``: offline + closed-loop evaluation of a checkpoint (evaluation).

    Attributes:
        checkpoint: lake key of the evaluated checkpoint (``checkpoints/<config>/<exp>/<step>``;
            reports written before keys hold its URI).
        release: the release version the checkpoint was trained on.
        training_tasks: the checkpoint's training tasks (its train split's instructions): a
            closed-loop trial on one of them is in distribution, any other is out of distribution.
        release_tasks: the instructions of every episode of ``release`` (train and held out).
        closed_loop: success per group, ``{"in_distribution": {"trials": n, "successes": k,
            "success_rate": k / n, "ci95": [lower, upper]}, "out_of_distribution": {...}}`` (95 %
            Wilson score interval; rate and interval null for a group without trials); None when
            closed loop did not run. Never one pooled rate.
    """

    artifact_type: Literal["eval_report"]
    experiment: str
    checkpoint: str
    step: int
    release: str
    mlflow_run_id: str | None
    training_tasks: list[str] = []
    release_tasks: list[str] = []
    closed_loop: dict[str, dict[str, Any]] | None = None


class OpenpiExportManifest(ArtifactManifest):
    """``openpi-exports/<release>/``: a release as LeRobot v2.1 datasets + openpi norm stats (dataset).

    Attributes:
        release: the release version id exported; ``repo_id`` its LeRobot v3.0 repo_id.
        openpi_repo_id: repo_id of the train dataset (``<org>/<release>``), relative to
            ``HF_LEROBOT_HOME = <export>/lerobot``; ``heldout_repo_id`` the held-out one (None when
            nothing is held out).
        train_episodes / heldout_episodes: per exported episode ``{"episode_index" (in the
            export), "release_episode_index", "episode_id", "length", "task"}``.
        norm_stats: ``{"absolute" | "delta": path of its norm_stats.json in the export}``.
        state_order, state_names, delta_mask: :class:`~hvla_platform.lib.dataset.openpi_norm_stats.DeltaLayout`.
        problems: what :func:`check_export` found right after writing (empty = consistent).
    """

    artifact_type: Literal["openpi_export"]
    release: str
    repo_id: str
    codebase_version: Literal["v2.1"]
    openpi_repo_id: str
    heldout_repo_id: str | None
    config_name: str
    delta_config_name: str
    action_horizon: int
    fps: int
    train_episodes: list[dict[str, Any]]
    heldout_episodes: list[dict[str, Any]]
    tasks: list[str]
    num_frames: int
    num_heldout_frames: int
    num_action_vectors: int
    state_order: list[int]
    state_names: list[str]
    action_names: list[str]
    delta_mask: list[bool]
    norm_stats: dict[str, str]
    problems: list[str]


class RawHumanVideoManifest(ArtifactManifest):
    """``raw-human-video/<day>/<device>/<clip>/``: one write-once action-free human video clip
    (lib/ingest/human_video.py; docs/human_video.md).

    A leaf for lineage like a raw episode: ``inputs`` is empty and the landed copy it was published
    from is named by ``landing_key``. ``video_key`` / ``video_sha256`` name the MP4; ``probe`` is
    :meth:`~hvla_platform.lib.formats.human_video.VideoProbe.to_dict`."""

    artifact_type: Literal["raw_human_video_clip"]
    clip_id: str
    capture_day: str
    device_id: str
    video_key: str
    video_sha256: str
    landing_key: str
    learning_role: Literal["manipulation", "locomotion"]
    task: str
    site: str | None = None
    customer: str | None = None
    demonstrator_consent_ref: str
    probe: dict[str, Any]
    #: the metadata's ``recorder`` block (simulated clips), None for a camera's own recording
    recorder: dict[str, Any] | None = None




class MixtureManifest(ArtifactManifest):
    """``mixtures/<name>/<mixture id>/``: a weighted mixture of published LeRobot releases
    (dataset; lib/dataset/mixture.py, docs/mixtures.md). The mixture copies no frame: its
    ``inputs`` are the component releases (kind ``lerobot_dataset``, by lake key and manifest hash),
    so lineage runs from a checkpoint trained on it through the mixture to every source.

    Attributes:
        mixture: the immutable version id (``<name>`` for version 0, ``<name>.<n>`` after).
        name, version, repo_id, description: from the mixture spec.
        intended_uses: the uses the spec asked for; every source allows each of them.
        within_source: ``frames`` (every frame of a source equally likely) or ``episodes``.
        fps, mixed_fps: the action sources' common fps (None when there is none, or when they
            differ and the spec states ``mixed_fps: per_source``).
        seed: the default seed of :class:`~hvla_platform.lib.dataset.mixture.MixtureSampler`.
        sources: one entry per source, in spec order: ``{"name", "release", "requested",
            "pinned", "prefix", "repo_id", "role", "role_from", "weight", "share", "natural_share",
            "split", "fps", "num_episodes", "num_frames", "action_free", "losses",
            "feature_map": {source feature: mixture feature}, "dims": {mixture feature: [d, D]},
            "cameras": [mixture camera features], "unused_features": [...], "profile",
            "robot_type"}`` (``share`` = weight / Σ weights, the effective sampling share;
            ``natural_share`` = its frames / all frames).
        target_features: the mixture's features as a trainer sees them: ``{name: {"dtype",
            "shape", "mask": mask feature or None}}``, e.g. ``action`` (D,) float32 padded with
            zeros, ``action_mask`` (D,) bool.
        weights_table: path (in the artifact) of the per-episode sampling weights (Parquet,
            ``core/tables.py`` :func:`~hvla_platform.lib.core.tables.mixture_weights_schema`).
        num_episodes, num_frames: over all sources (the episodes the mixture samples).
        cross_customer_grant: the grant under which the mixture mixes customers (or None).
    """

    artifact_type: Literal["mixture_release"]
    mixture: str
    name: str
    version: int
    repo_id: str
    description: str = ""
    intended_uses: list[str]
    within_source: Literal["frames", "episodes"]
    seed: int
    sources: list[dict[str, Any]]
    target_features: dict[str, dict[str, Any]]
    weights_table: str
    num_episodes: int
    num_frames: int
    fps: float | None  # the action sources' common fps; None without one or under mixed_fps: per_source
    mixed_fps: Literal["refuse", "per_source"]
    cross_customer_grant: dict[str, Any] | None = None


class RolloutChecklistManifest(ArtifactManifest):
    """``rollout-checks/<day>/<robot>/<episode>/``: seed 000's ``before_retraining_from_runtime``
    checklist run on one landed rollout (ingest, lib/ingest/rollouts.py, docs/rollouts.md). Its
    ``inputs`` are the raw episode (kind ``raw_mcap``) and the checkpoint that produced the rollout
    (kind ``checkpoint``, restricted to the rollout's episode id), so lineage connects the two.

    Attributes:
        capture_day, robot_id, rollout_episode: the rollout's raw episode.
        checkpoint_key, server_instance: who produced its actions (``None`` when not recorded).
        outcome: ``success``, ``timeout``, ``fault`` or ``estop``; policy_id: the runtime-data policy.
        retrain_permitted: every check passed and the customer permits retraining; otherwise the
            rollout is incident evidence only and no release takes it.
        checks: ``{check name: {"passed": bool, "detail": str}}``.
    """

    artifact_type: Literal["rollout_checklist"]
    capture_day: str
    robot_id: str
    rollout_episode: str
    checkpoint_key: str | None = None
    server_instance: str | None = None
    outcome: str
    policy_id: str | None = None
    retrain_permitted: bool
    checks: dict[str, dict[str, Any]]


class RldsDatasetManifest(ArtifactManifest):
    """``rlds/<dataset_name>/``: a seed-003 teleop target as RLDS, a TFDS ``data_dir`` (dataset;
    lib/dataset/rlds_export.py, docs/teleop_targets.md). ``inputs`` are the raw teleop episodes.

    Attributes:
        dataset_name: the TFDS builder name (``ur5e_vla_<target>``); ``dataset_version`` its version.
        target: ``e2e`` | ``planner`` | ``correction``.
        num_episodes, num_steps: as built; ``episode_names`` the training episodes in order.
        image_size: side of the square JPEG images, pixels.
        tasks: the language instructions.
        language_embedding: what the schema's ``language_embedding`` holds (not computed here: NaN).
        derivation: lib/dataset/teleop_lerobot.py ``derivation_record`` (rules, options, counts).
        readback: the ``tfds.builder(...).as_dataset()`` read-back (``episodes``, ``problems``,
            ``worst_image_mae``, ``jpeg_mae_tolerance``, ``seconds``, ``features``).
        build_seconds: the TFDS build's wall time; ``packages`` the tensorflow / TFDS versions used.
    """

    artifact_type: Literal["rlds_dataset"]
    dataset_name: str
    dataset_version: str
    target: str
    num_episodes: int
    num_steps: int
    image_size: int
    tasks: list[str]
    episode_names: list[str]
    language_embedding: str
    derivation: dict[str, Any]
    readback: dict[str, Any]
    build_seconds: float
    packages: dict[str, str | None]


#: artifact type → its manifest model.
MANIFEST_MODELS: dict[str, type[ArtifactManifest]] = {
    m.model_fields["artifact_type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (RawEpisodeManifest, RawTeleopEpisodeManifest, RawHumanVideoManifest, RolloutChecklistManifest,
              EpisodesManifest, LeRobotDatasetManifest, RldsDatasetManifest, MixtureManifest, NormStatsManifest,
              RoboDMCacheManifest, CheckpointManifest, EvalReportManifest, OpenpiExportManifest)
}

M = TypeVar("M", bound=ArtifactManifest)


#: artifact type → (top-level lake folder, number of key segments) of its prefix: how the key of a
#: version-1 manifest read without its prefix is cut from its ``artifact_uri``.
_LAYOUT = {"raw_mcap_episode": (RAW, 4), "episodes_hdf5": (EPISODES, 3), "lerobot_dataset": (LEROBOT, 4),
           "norm_stats": (NORM_STATS, 2), "robodm_cache": (ROBODM, 2), "checkpoint": (CHECKPOINTS, 4),
           "eval_report": (EVAL_REPORTS, 3), "openpi_export": (OPENPI_EXPORTS, 2)}


def _own_key(data: dict[str, Any]) -> str | None:
    """The lake prefix a version-1 manifest describes, from its ``artifact_uri`` and type's layout."""
    layout = _LAYOUT.get(str(data.get("artifact_type")))
    uri = str(data.get("artifact_uri", "")).rstrip("/")
    if layout is None or "://" not in uri:
        return None
    parts = uri.split("://", 1)[1].split("/")
    if len(parts) <= layout[1] or parts[-layout[1]] != layout[0]:
        return None
    return unquote("/".join(parts[-layout[1]:]))


def upgrade_v1(data: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """The version-2 view of a ``schema_version`` 1 manifest (a new dict; ``data`` is unchanged).

    Version 1 named the artifact and its inputs by URI (``artifact_uri``, ``inputs[].uri``,
    ``mcap_uri``, an eval report's ``checkpoint``, a release's ``partition_inputs[].uri``), i.e.
    by the absolute location of the lake that built it. Every such URI under the manifest's own
    root (``artifact_uri`` minus ``/<key>``) becomes the lake key it names; a URI outside it
    (none are written by the platform) is kept as it is, so lineage shows it as an input outside
    the lake. ``schema_version`` stays 1 and ``fingerprint`` is kept: it was computed over URIs,
    so it never equals a current :func:`fingerprint` and the artifact is rebuilt when next
    materialized.

    Args:
        data: the stored version-1 manifest.
        key: the artifact's lake prefix when known (where the manifest was found); otherwise it is
            cut from ``artifact_uri`` by the artifact type's key layout.
    """
    out = dict(data)
    uri = str(out.pop("artifact_uri", "")).rstrip("/")
    own = (key.rstrip("/") if key else None) or _own_key(data)
    root = uri[: -len(own) - 1] if own and uri.endswith("/" + own) else None

    def to_key(u: Any) -> Any:
        if not isinstance(u, str) or root is None or not u.startswith(root + "/"):
            return u
        return unquote(u[len(root) + 1:])

    out["artifact_key"] = own or uri
    out["inputs"] = [{("key" if k == "uri" else k): (to_key(v) if k == "uri" else v) for k, v in i.items()}
                     if isinstance(i, dict) else i for i in data.get("inputs") or []]
    if "mcap_uri" in out:
        out["mcap_key"] = to_key(out.pop("mcap_uri"))
    if data.get("artifact_type") == "eval_report" and "checkpoint" in out:
        out["checkpoint"] = to_key(out["checkpoint"])
    if isinstance(data.get("partition_inputs"), list):
        out["partition_inputs"] = [{("key" if k == "uri" else k): (to_key(v) if k == "uri" else v)
                                    for k, v in i.items()} if isinstance(i, dict) else i
                                   for i in data["partition_inputs"]]
    return out


def parse_manifest(data: dict[str, Any], *, source: str, model: type[M] | None = None,
                   key: str | None = None) -> M:
    """Validate a manifest dict against its artifact type's model.

    A ``schema_version`` 1 manifest is validated in its :func:`upgrade_v1` form (URIs mapped to
    keys); :meth:`ArtifactManifest.to_dict` and :meth:`~ArtifactManifest.sha256` still give the
    stored document.

    Args:
        data: the manifest as read from JSON.
        source: where it came from (a lake URI or key), named in errors.
        model: the expected model; default: the one :data:`MANIFEST_MODELS` names for
            ``data["artifact_type"]``.
        key: the artifact's lake prefix, when known (used to upgrade a version-1 manifest).

    Raises:
        ManifestError: unknown artifact type or schema version, an unknown or missing key, a wrong
            type, or an artifact of another type than ``model``.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: a manifest must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION and version not in LEGACY_SCHEMA_VERSIONS:
        raise ManifestError(f"{source}: manifest schema_version {version!r} is not supported "
                            f"(this platform reads {MANIFEST_SCHEMA_VERSION} and "
                            f"{', '.join(map(str, LEGACY_SCHEMA_VERSIONS))})")
    kind = data.get("artifact_type")
    found = MANIFEST_MODELS.get(str(kind))
    if found is None:
        raise ManifestError(f"{source}: unknown artifact_type {kind!r} (known: {', '.join(sorted(MANIFEST_MODELS))})")
    if model is not None and found is not model and model is not ArtifactManifest:
        raise ManifestError(f"{source}: is a {kind} artifact, not a {model.__name__}")
    view = upgrade_v1(data, key) if version == 1 else data
    parsed = validate_document(found, view, source=f"{source}: {kind} manifest", error_cls=ManifestError)
    parsed._stored = data
    return parsed  # type: ignore[return-value]


def load_manifest(lake: Lake, prefix: str, model: type[M] | None = None) -> M | None:
    """The validated manifest of the artifact at ``prefix``, or ``None`` when it is not committed.

    Raises:
        ManifestError: see :func:`parse_manifest`.
    """
    data = lake.read_manifest(prefix)
    return None if data is None else parse_manifest(data, source=lake.uri(prefix), model=model,
                                                   key=prefix.rstrip("/"))


def require_manifest(lake: Lake, prefix: str, model: type[M] | None = None) -> M:
    """Like :func:`load_manifest`, for an artifact that must exist.

    Raises:
        ArtifactNotFoundError: nothing is committed at ``prefix``.
        ManifestError: see :func:`parse_manifest`.
    """
    found = load_manifest(lake, prefix, model)
    if found is None:
        raise ArtifactNotFoundError(f"no committed artifact at {lake.uri(prefix)}")
    return found


# ---- publish if changed -----------------------------------------------------------------------------

@dataclass
class Content:
    """What a builder's ``write`` callback produced in the staging directory.

    Attributes:
        extra: the artifact type's own manifest fields (see its model).
        episode_ids: the episodes the artifact contains (default: the union of the inputs').
        rights: the artifact's rights when they depend on what was built (default: the ``rights``
            given to :func:`publish_if_changed`).
        known_files: relative path → ``{"sha256", "bytes"}`` of files the builder carried over
            unchanged from the version it replaces (hard links to it): not hashed again
            (:func:`file_entries`), so publishing a grown artifact reads only what is new.
    """

    extra: dict[str, Any]
    episode_ids: list[str] | None = None
    rights: Rights | None = None
    known_files: dict[str, dict[str, Any]] | None = None


@dataclass
class Published:
    """Outcome of :func:`publish_if_changed`.

    Attributes:
        status: ``materialized`` (built and published now) or ``cached`` (the published artifact
            already had this fingerprint; nothing was built).
        prefix: the artifact's lake prefix; ``uri`` its URI in this lake (for display: the manifest
            itself holds only keys).
        manifest: the validated manifest (the published one when ``cached``).
    """

    status: Literal["materialized", "cached"]
    prefix: str
    uri: str
    manifest: ArtifactManifest

    @property
    def rights(self) -> Rights:
        """The artifact's rights."""
        return self.manifest.rights_obj


def publish_if_changed(lake: Lake, prefix: str, *, artifact_type: str, inputs: list[InputRef],
                       config: dict[str, Any], write: Callable[[Path], Content],
                       rights: Rights | None = None, immutable: bool = False) -> Published:
    """Build and publish an artifact unless the published one has the same fingerprint.

    With ``immutable=True`` a published artifact is never replaced: a different fingerprint raises
    :class:`ImmutableArtifactError` (release versions, lib/dataset/versions.py).

    ``write(staging_dir)`` writes the artifact's files into an empty staging directory and returns
    its :class:`Content`; it is only called when the fingerprint changed. The manifest (validated
    against the artifact type's model) is written last by :meth:`Lake.publish_artifact`, so a
    reader never sees half an artifact.

    Raises:
        ValueError: neither ``rights`` nor the written :class:`Content` gives the artifact's rights.
        ManifestError: the assembled manifest does not match the artifact type's model.
        ImmutableArtifactError: ``immutable`` and a published artifact has another fingerprint.
        Whatever ``write`` raises (nothing is published then).
    """
    inputs_d = [i.to_dict() for i in inputs]
    fp = fingerprint(inputs_d, config)
    existing = load_manifest(lake, prefix, MANIFEST_MODELS[artifact_type])
    if existing is not None and existing.fingerprint == fp:
        return Published("cached", prefix, lake.uri(prefix), existing)
    with lake.build_lock(prefix):  # one builder per artifact at a time; the second finds it built
        existing = load_manifest(lake, prefix, MANIFEST_MODELS[artifact_type])
        if existing is not None and existing.fingerprint == fp:
            return Published("cached", prefix, lake.uri(prefix), existing)
        if existing is not None and immutable:
            raise ImmutableArtifactError(
                f"{lake.uri(prefix)} is an immutable {artifact_type} published {existing.created_at}; "
                "its inputs or config differ now, so they must become a new version, never replace it")
        return _build_and_publish(lake, prefix, artifact_type=artifact_type, inputs=inputs, config=config,
                                  write=write, rights=rights)


def _build_and_publish(lake: Lake, prefix: str, *, artifact_type: str, inputs: list[InputRef],
                       config: dict[str, Any], write: Callable[[Path], Content], rights: Rights | None) -> Published:
    with scratch_dir(f"hvla-{artifact_type}", lake.scratch_root()) as tmp:  # swept if this process dies
        staging = tmp / "artifact"
        staging.mkdir()
        content = write(staging)
        art_rights = content.rights or rights
        if art_rights is None:
            raise ValueError(f"{artifact_type} at {lake.uri(prefix)}: no rights given for the artifact")
        manifest = build_manifest(artifact_type=artifact_type, artifact_key=prefix, inputs=inputs,
                                  config=config, rights=art_rights, local_dir=staging,
                                  episode_ids=content.episode_ids, extra=content.extra,
                                  known_files=content.known_files)
        lake.publish_artifact(prefix, staging, manifest)
    return Published("materialized", prefix, lake.uri(prefix),
                     parse_manifest(manifest, source=lake.uri(prefix), key=prefix))
