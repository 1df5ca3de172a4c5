"""Checks the CLI makes against the lake **before** it launches a Dagster run, so that a request the
run would refuse (an unknown release, training data whose rights refuse training, a release not
built yet) is one line on stderr and exit 2, not a failed run with a stack trace.

Each check calls the library function the asset calls (``load_release``, ``require_manifest``,
``artifact_flags``, ``check_training_rights``); unknown ids name the closest known one
(:func:`hvla_platform.lib.core.suggest.did_you_mean`).
"""

from __future__ import annotations

from hvla_platform.lib.core.keys import CHECKPOINTS, RELEASE_SPECS, norm_stats_prefix, robodm_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import NormStatsManifest, RoboDMCacheManifest, load_manifest
from hvla_platform.lib.core.rights import RightsError
from hvla_platform.lib.core.suggest import UnknownIdError, did_you_mean, require_known
from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.dataset.releases import load_release
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.versions import list_versions, load_release_version, parse_version_id, version_manifest


def known_releases(lake: Lake) -> list[str]:
    """Names of the registered release specs (``release-specs/<name>.yaml``)."""
    return sorted(k[len(RELEASE_SPECS) + 1:-len(".yaml")] for k in lake.list_keys(RELEASE_SPECS)
                  if k.endswith(".yaml") and "/" not in k[len(RELEASE_SPECS) + 1:])


def require_release(lake: Lake, name: str) -> ReleaseSpec:
    """The registered spec of release ``name``.

    Raises:
        UnknownIdError: no spec of that name (``unknown release 'g1-rech-v1' (did you mean 'g1-reach-v1'?)``).
        ReleaseSpecError: the stored spec is invalid.
    """
    spec_name, version = parse_version_id(name)
    if version and spec_name in known_releases(lake):
        raise UnknownIdError(f"{name!r} is version {version} of release {spec_name!r}, and versions never change; "
                             f"`hvla release build {spec_name}` builds a new version when its content changed")
    require_known(name, known_releases(lake), "release",
                  hint="; register it with `hvla release register <spec.yaml>`")
    return load_release(lake, name)


def require_release_version(lake: Lake, release: str) -> ReleaseSpec:
    """The spec of the exact release version ``release`` (``g1-reach-v1`` = version 0,
    ``g1-reach-v1.2`` = version 2).

    Raises:
        UnknownIdError: no such version (names the closest version id).
    """
    return load_release_version(lake, release)


def newer_versions(lake: Lake, release: str) -> list[str]:
    """Published versions of ``release``'s spec newer than ``release`` (for a "note: newer data
    exists" line; training on an older version is allowed, it never changes)."""
    spec_name, version = parse_version_id(release)
    return [r.release for r in list_versions(lake, spec_name)
            if r.version > version and version_manifest(lake, r) is not None]


def checkpoint_suggestion(lake: Lake, ref: str) -> str:
    """" (did you mean 'checkpoints/…'?)" for a checkpoint reference that names nothing."""
    return did_you_mean(ref.strip("/"), lake.list_artifacts(CHECKPOINTS))


def check_can_train(lake: Lake, release: str) -> None:
    """Refuse up front what the ``checkpoint`` asset would refuse for ``release`` (an exact
    version id): an unknown release version, a release whose Robo-DM cache or norm stats are not built, a flagged (withdrawn)
    cache or norm stats, or training data whose rights do not allow training.

    Raises:
        UnknownIdError: unknown release version, or its cache / norm stats are not materialized.
        RightsError: flagged artifacts, or rights that refuse training.
    """
    # deferred: lib.training imports jax/flax (seconds); only `hvla train` needs the rights check
    from hvla_platform.lib.training.train import check_training_rights  # noqa: PLC0415

    require_release_version(lake, release)
    cache = load_manifest(lake, robodm_prefix(release), RoboDMCacheManifest)
    stats = load_manifest(lake, norm_stats_prefix(release), NormStatsManifest)
    if cache is None or stats is None:
        missing = "Robo-DM cache" if cache is None else "norm stats"
        raise UnknownIdError(f"release {release!r} has no {missing} yet; build it with `hvla release build {release}`")
    for prefix in (robodm_prefix(release), norm_stats_prefix(release)):
        flag = artifact_flags(lake, prefix)
        if flag:
            raise RightsError(f"{prefix} is flagged {flag['status']} ({flag['reason']}, consent {flag.get('consent')}); "
                              "train on the rebuilt release instead")
    check_training_rights(cache.rights_obj.to_dict())
