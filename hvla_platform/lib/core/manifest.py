"""Artifact manifests: what every artifact was built from, with what code and config, and the one
publish-if-changed helper every builder uses.

Every artifact the platform publishes carries a JSON manifest (the lake's
:data:`~hvla_platform.lib.core.lake.MANIFEST_NAME`, written last as the commit marker) that names
its exact inputs (URIs + sha256 + episode ids), its files (path + sha256 + bytes), its config, the
code version and its rights. Lineage queries walk these manifests.

Each artifact type has a pydantic model (:data:`MANIFEST_MODELS`, ``extra="forbid"``,
``schema_version`` 1): :func:`build_manifest` validates what it writes and :func:`load_manifest` /
:func:`require_manifest` validate what they read, so a key written in one stage and read in
another is declared in exactly one place.

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
from typing import Any, Callable, Literal, TypeVar

from pydantic import ConfigDict, PrivateAttr

from hvla_platform import __version__
from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.core.lake import MANIFEST_NAME, ArtifactNotFoundError, Lake, sha256_file
from hvla_platform.lib.core.scratch import scratch_dir

MANIFEST_SCHEMA_VERSION = 1


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
        uri: where the input lives (lake URI).
        sha256: content hash of the input (of its manifest, for a directory artifact).
        kind: what it is (``raw_mcap``, ``episodes_hdf5``, ``lerobot_dataset``...).
        episode_ids: raw episode ids contained in the input.
    """

    uri: str
    sha256: str
    kind: str
    episode_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form as stored in manifests (episode ids sorted)."""
        d = {"uri": self.uri, "sha256": self.sha256, "kind": self.kind, "episode_ids": sorted(self.episode_ids)}
        if self.extra:
            d["extra"] = self.extra
        return d


def file_entries(local_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``[{path, sha256, bytes}]`` for every file under ``local_dir`` (relative POSIX paths, sorted)."""
    root = Path(local_dir)
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            out.append({"path": p.relative_to(root).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def build_manifest(
    *,
    artifact_type: str,
    artifact_uri: str,
    inputs: list[InputRef],
    config: dict[str, Any],
    rights: Rights,
    local_dir: str | os.PathLike[str] | None = None,
    episode_ids: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble an artifact manifest (a JSON-serialisable dict), validated against its type's model.

    ``files`` lists every file of ``local_dir`` with its sha256, so a copy of the lake can be
    verified; ``fingerprint`` is the sha256 of the inputs + config + code version and is what makes
    assets idempotent (same fingerprint → ``status: cached``).

    Raises:
        ManifestError: the manifest does not match the model of ``artifact_type``.
    """
    inputs_d = [i.to_dict() for i in inputs]
    manifest: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "artifact_type": artifact_type,
        "artifact_uri": artifact_uri,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config": config,
        "inputs": inputs_d,
        "episode_ids": sorted(episode_ids or sorted({e for i in inputs for e in i.episode_ids})),
        "rights": rights.to_dict(),
        "fingerprint": fingerprint(inputs_d, config),
    }
    if local_dir is not None:
        manifest["files"] = file_entries(local_dir)
    if extra:
        manifest.update(extra)
    parse_manifest(json.loads(json.dumps(manifest, default=str)), source=artifact_uri)  # the model is the contract
    return manifest


def fingerprint(inputs: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """sha256 over the inputs' hashes, the config and the platform version (not the git commit,
    so that a docs-only commit does not invalidate every artifact)."""
    payload = json.dumps(
        {"inputs": sorted((i["uri"], i["sha256"]) for i in inputs), "config": config, "version": __version__},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Content hash identifying a directory artifact: sha256 of its canonical manifest JSON."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()


# ---- manifest models -------------------------------------------------------------------------------

class ManifestError(ValueError):
    """A manifest does not match its artifact type's model (unknown/missing key, wrong type,
    unknown ``schema_version``); the message names the artifact and the offending field."""


class _Model(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputEntry(_Model):
    """One entry of ``inputs``: the form :meth:`InputRef.to_dict` writes."""

    uri: str
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
    """Fields every manifest has (schema version 1).

    Attributes:
        rights: the :class:`~hvla_platform.lib.core.rights.Rights` dict (validated by
            ``Rights.from_dict``; use :attr:`rights_obj`).
        fingerprint: sha256 of inputs + config + platform version (:func:`fingerprint`).
        files: every file of a directory artifact; ``None`` for a raw episode (its own ``index.json``
            lists the MCAP's content).
    """

    schema_version: Literal[1]
    artifact_type: str
    artifact_uri: str
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
    mcap_uri: str
    mcap_sha256: str
    capture_day: str
    robot_id: str
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
    release: str
    repo_id: str
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
    """``eval-reports/<exp>/<step>/``: offline + closed-loop evaluation of a checkpoint (evaluation)."""

    artifact_type: Literal["eval_report"]
    experiment: str
    checkpoint: str
    step: int
    release: str
    mlflow_run_id: str | None


#: artifact type → its manifest model.
MANIFEST_MODELS: dict[str, type[ArtifactManifest]] = {
    m.model_fields["artifact_type"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (RawEpisodeManifest, EpisodesManifest, LeRobotDatasetManifest, NormStatsManifest, RoboDMCacheManifest,
              CheckpointManifest, EvalReportManifest)
}

M = TypeVar("M", bound=ArtifactManifest)


def parse_manifest(data: dict[str, Any], *, source: str, model: type[M] | None = None) -> M:
    """Validate a manifest dict against its artifact type's model.

    Args:
        data: the manifest as read from JSON.
        source: where it came from (a lake URI), named in errors.
        model: the expected model; default: the one :data:`MANIFEST_MODELS` names for
            ``data["artifact_type"]``.

    Raises:
        ManifestError: unknown artifact type or schema version, an unknown or missing key, a wrong
            type, or an artifact of another type than ``model``.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: a manifest must be a JSON object, got {type(data).__name__}")
    if data.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise ManifestError(f"{source}: manifest schema_version {data.get('schema_version')!r} is not supported "
                            f"(this platform reads {MANIFEST_SCHEMA_VERSION})")
    kind = data.get("artifact_type")
    found = MANIFEST_MODELS.get(str(kind))
    if found is None:
        raise ManifestError(f"{source}: unknown artifact_type {kind!r} (known: {', '.join(sorted(MANIFEST_MODELS))})")
    if model is not None and found is not model and model is not ArtifactManifest:
        raise ManifestError(f"{source}: is a {kind} artifact, not a {model.__name__}")
    parsed = validate_document(found, data, source=f"{source}: {kind} manifest", error_cls=ManifestError)
    parsed._stored = data
    return parsed  # type: ignore[return-value]


def load_manifest(lake: Lake, prefix: str, model: type[M] | None = None) -> M | None:
    """The validated manifest of the artifact at ``prefix``, or ``None`` when it is not committed.

    Raises:
        ManifestError: see :func:`parse_manifest`.
    """
    data = lake.read_manifest(prefix)
    return None if data is None else parse_manifest(data, source=lake.uri(prefix), model=model)


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
    """

    extra: dict[str, Any]
    episode_ids: list[str] | None = None
    rights: Rights | None = None


@dataclass
class Published:
    """Outcome of :func:`publish_if_changed`.

    Attributes:
        status: ``materialized`` (built and published now) or ``cached`` (the published artifact
            already had this fingerprint; nothing was built).
        prefix: the artifact's lake prefix; ``uri`` its URI.
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
                       rights: Rights | None = None) -> Published:
    """Build and publish an artifact unless the published one has the same fingerprint.

    ``write(staging_dir)`` writes the artifact's files into an empty staging directory and returns
    its :class:`Content`; it is only called when the fingerprint changed. The manifest (validated
    against the artifact type's model) is written last by :meth:`Lake.publish_artifact`, so a
    reader never sees half an artifact.

    Raises:
        ValueError: neither ``rights`` nor the written :class:`Content` gives the artifact's rights.
        ManifestError: the assembled manifest does not match the artifact type's model.
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
        manifest = build_manifest(artifact_type=artifact_type, artifact_uri=lake.uri(prefix), inputs=inputs,
                                  config=config, rights=art_rights, local_dir=staging,
                                  episode_ids=content.episode_ids, extra=content.extra)
        lake.publish_artifact(prefix, staging, manifest)
    return Published("materialized", prefix, lake.uri(prefix),
                     parse_manifest(manifest, source=lake.uri(prefix)))
