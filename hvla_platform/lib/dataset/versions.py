"""Immutable release versions: a release name always means the same data.

A registered release spec (``release-specs/<name>.yaml``) can be built many times; each build whose
content differs from the release's latest version — other episodes (new partitions, a supervisor's
decision, a consent withdrawal), other QA results, another spec — becomes a **new version** and
never replaces an earlier one:

- version 0 has the id ``<name>`` (``g1-reach-v1``), version *n* ≥ 1 the id ``<name>.<n>``
  (``g1-reach-v1.1``); spec names may not end in ``.<number>`` so ids never collide;
- every artifact of a version is keyed by its id (``lerobot/<repo_id>/<id>/``, ``norm-stats/<id>/``,
  ``robodm-cache/<id>/``), and checkpoints, eval reports and lineage name the id;
- a version is reserved by a write-once record ``release-versions/<name>/<n:06d>.json`` holding the
  spec it is built from, before anything is written; a version whose build crashed before its
  manifest was published is reused by the next build (nothing can reference an unpublished
  version), a published one is never written again (``publish_if_changed(immutable=True)``);
- a build whose fingerprint equals the latest version's is ``cached`` and mints nothing.

Old versions stay in the lake (nothing deletes them; docs/decisions.md "Release versions").
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from hvla_platform.lib.core.keys import (
    RELEASE_SPECS,
    RELEASE_VERSIONS,
    lerobot_release_prefix,
    norm_stats_prefix,
    release_version_key,
    robodm_prefix,
    spec_key,
)
from hvla_platform.lib.core.lake import ArtifactNotFoundError, Lake
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, NormStatsManifest, RoboDMCacheManifest, load_manifest
from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.core.suggest import UnknownIdError, did_you_mean
from hvla_platform.lib.dataset.spec import ReleaseSpec

_VERSION_ID = re.compile(r"^(?P<name>.+)\.(?P<n>[1-9][0-9]*)$")


def version_id(spec_name: str, version: int) -> str:
    """``<spec_name>`` for version 0, ``<spec_name>.<version>`` after."""
    return spec_name if version == 0 else f"{spec_name}.{version}"


def parse_version_id(release: str) -> tuple[str, int]:
    """``(spec_name, version)`` of a version id: ``g1-reach-v1.2`` → ``("g1-reach-v1", 2)``,
    ``g1-reach-v1`` → ``("g1-reach-v1", 0)`` (spec names never end in ``.<number>``)."""
    m = _VERSION_ID.match(release)
    return (m["name"], int(m["n"])) if m else (release, 0)


@dataclass(frozen=True)
class VersionRecord:
    """One reserved version of a release (``release-versions/<spec_name>/<n:06d>.json``).

    Attributes:
        spec_name: the registered release spec.
        version: ``n`` ≥ 0.
        release: the version id (:func:`version_id`).
        spec: the spec the version is built from, as registered (``ReleaseSpec.to_dict()``).
        reserved_at: ISO-8601 UTC time of the reservation.
    """

    spec_name: str
    version: int
    release: str
    spec: dict[str, Any]
    reserved_at: str

    def release_spec(self) -> ReleaseSpec:
        """The spec of this version (``name`` = the version id)."""
        return ReleaseSpec.from_mapping(self.spec, source=release_version_key(self.spec_name, self.version)
                                        ).with_version(self.version)

    @property
    def prefix(self) -> str:
        """``lerobot/<repo_id>/<release>``: where the version's dataset is published."""
        return lerobot_release_prefix(str(self.spec["repo_id"]), self.release)


def list_versions(lake: Lake, spec_name: str) -> list[VersionRecord]:
    """The reserved versions of ``spec_name``, oldest first (published or not)."""
    out = []
    for key in lake.list_keys(f"{RELEASE_VERSIONS}/{spec_name}"):
        rest = key[len(RELEASE_VERSIONS) + len(spec_name) + 2:]
        if "/" in rest or not rest.endswith(".json"):
            continue
        d = lake.read_json(key)
        out.append(VersionRecord(spec_name=d["spec_name"], version=int(d["version"]), release=d["release"],
                                 spec=d["spec"], reserved_at=d["reserved_at"]))
    return sorted(out, key=lambda r: r.version)


def version_manifest(lake: Lake, record: VersionRecord) -> LeRobotDatasetManifest | None:
    """The published LeRobot manifest of ``record``'s version, or ``None`` when its build never
    completed."""
    return load_manifest(lake, record.prefix, LeRobotDatasetManifest)


def reserve_version(lake: Lake, spec: ReleaseSpec, version: int) -> VersionRecord:
    """Write the write-once record of version ``version`` of ``spec`` and return it.

    Raises:
        FileExistsError: the version is already reserved (another build got there first).
    """
    record = VersionRecord(spec_name=spec.spec_name, version=version, release=version_id(spec.spec_name, version),
                           spec=spec.to_dict(), reserved_at=dt.datetime.now(dt.timezone.utc).isoformat())
    lake.write_json(release_version_key(spec.spec_name, version), vars(record), write_once=True)
    return record


def adopt_unversioned(lake: Lake, spec: ReleaseSpec) -> None:
    """Record version 0 of a release built before releases were versioned (a manifest at
    ``lerobot/<repo_id>/<name>/`` and no version record), so that it is never rebuilt in place.
    The record holds the spec the manifest was built from when the manifest says it."""
    if list_versions(lake, spec.spec_name):
        return
    m = load_manifest(lake, lerobot_release_prefix(spec.repo_id, spec.spec_name), LeRobotDatasetManifest)
    if m is None:
        return
    built_from = m.config.get("spec") if isinstance(m.config.get("spec"), dict) else None
    source = ReleaseSpec.from_mapping(built_from, source=lake.uri(spec_key(spec.spec_name))) if built_from else spec
    try:
        reserve_version(lake, source, 0)
    except FileExistsError:
        pass


def latest_version(lake: Lake, spec_name: str) -> tuple[VersionRecord, LeRobotDatasetManifest] | None:
    """The newest **published** version of ``spec_name`` and its manifest, or ``None``."""
    for record in reversed(list_versions(lake, spec_name)):
        m = version_manifest(lake, record)
        if m is not None:
            return record, m
    return None


def newest_trainable_version(lake: Lake, spec_name: str) -> str | None:
    """The newest published version of ``spec_name`` that training can start from: its Robo-DM
    cache and norm stats are built and neither is flagged (withdrawn). ``None`` when there is none.
    Rights are not judged here (the ``checkpoint`` asset refuses what they forbid)."""
    for record in reversed(list_versions(lake, spec_name)):
        if version_manifest(lake, record) is None:
            continue
        parts = ((robodm_prefix(record.release), RoboDMCacheManifest),
                 (norm_stats_prefix(record.release), NormStatsManifest))
        if all(load_manifest(lake, p, cls) is not None and not artifact_flags(lake, p) for p, cls in parts):
            return record.release
    return None


def known_versions(lake: Lake) -> list[str]:
    """Every reserved version id in the lake, sorted."""
    names = {k[len(RELEASE_VERSIONS) + 1:].split("/", 1)[0] for k in lake.list_keys(RELEASE_VERSIONS)}
    return sorted(r.release for n in names for r in list_versions(lake, n))


def load_release_version(lake: Lake, release: str) -> ReleaseSpec:
    """The spec of the exact release version ``release`` (``name`` = the version id), as it was
    when the version was reserved — not the spec registered under that name today.

    A bare spec name is version 0. A lake whose release was built before versioning has no record:
    version 0 is then the registered spec.

    Raises:
        UnknownIdError: no such version (the message names the closest known version id).
    """
    spec_name, n = parse_version_id(release)
    for record in list_versions(lake, spec_name):
        if record.version == n:
            return record.release_spec()
    if n == 0 and lake.exists(spec_key(spec_name)):  # built before versioning, or not built yet
        return ReleaseSpec.from_yaml(lake.read_bytes(spec_key(spec_name)), source=lake.uri(spec_key(spec_name)))
    specs = [k[len(RELEASE_SPECS) + 1:-len(".yaml")] for k in lake.list_keys(RELEASE_SPECS) if k.endswith(".yaml")]
    raise UnknownIdError(f"unknown release {release!r}{did_you_mean(release, known_versions(lake) + specs)}; "
                         "`hvla release versions <name>` lists a release's versions")


@dataclass(frozen=True)
class VersionPlan:
    """What a build should do (:func:`next_version`).

    Attributes:
        cached: the latest published version and its manifest when it has the build's fingerprint
            (nothing to build), else ``None``.
        version: the version to build into otherwise.
        reserved: whether ``version`` is already reserved (by a build of the same spec that never
            published it), so the build must not reserve it again.
    """

    cached: tuple[VersionRecord, LeRobotDatasetManifest] | None
    version: int
    reserved: bool = False


def next_version(lake: Lake, spec: ReleaseSpec, fingerprint: str) -> VersionPlan:
    """Plan a build of ``spec`` whose fingerprint is ``fingerprint``: ``cached`` when the latest
    published version has that fingerprint; else the latest reserved version when a build of the
    same spec reserved it and never published it (a crash: nothing can reference it), else one more
    than the latest reserved version (an unpublished reservation of another spec is left as a gap)."""
    records = list_versions(lake, spec.spec_name)
    if not records:
        return VersionPlan(None, 0)
    published = latest_version(lake, spec.spec_name)
    if published is not None and published[1].fingerprint == fingerprint:
        return VersionPlan(published, published[0].version)
    latest = records[-1]
    if version_manifest(lake, latest) is None and latest.spec == spec.to_dict():
        return VersionPlan(None, latest.version, reserved=True)
    return VersionPlan(None, latest.version + 1)


def latest_release_spec(lake: Lake, spec_name: str) -> ReleaseSpec:
    """The spec of the newest published version of release ``spec_name`` (``name`` = its version
    id): what the ``norm_stats`` and ``robodm_cache`` assets of the release's partition build from.

    Raises:
        ArtifactNotFoundError: the release has no published version yet.
    """
    if not list_versions(lake, spec_name) and lake.exists(spec_key(spec_name)):
        adopt_unversioned(lake, ReleaseSpec.from_yaml(lake.read_bytes(spec_key(spec_name)),
                                                      source=lake.uri(spec_key(spec_name))))
    found = latest_version(lake, spec_name)
    if found is None:
        raise ArtifactNotFoundError(f"release {spec_name} has no built version yet; "
                                    f"build it first with `hvla release build {spec_name}`")
    return found[0].release_spec()
