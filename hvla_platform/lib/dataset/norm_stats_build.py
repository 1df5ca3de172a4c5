"""Compute a release's norm stats from its LeRobot Parquet files and publish them, idempotently."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvla_platform.lib.core.manifest import InputRef, build_manifest, fingerprint, manifest_sha256
from hvla_platform.lib.formats.norm_stats import check_norm_stats, compute_norm_stats, read_norm_stats_json, write_norm_stats_json
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import norm_stats_prefix

#: Smallest per-dimension std accepted by the norm-stats check, in the feature's units
#: (radians for joint positions and targets). Below it, z-score normalisation divides by ~0.
MIN_STD = 1e-4
NORM_STATS_FILE = "norm_stats.json"


@dataclass
class NormStatsBuild:
    """Outcome of :func:`build_norm_stats` (``status``: ``materialized`` or ``cached``)."""

    status: str
    uri: str
    manifest: dict[str, Any]
    stats: dict[str, Any]
    problems: list[str]
    rights: Rights


def build_norm_stats(lake: Lake, spec: ReleaseSpec, *, min_std: float = MIN_STD) -> NormStatsBuild:
    """Norm stats (openpi ``norm_stats.json``) of the release's **train split only**.

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset is not materialized.
        NormStatsError: the Parquet files cannot produce stats.
    """
    src_prefix = lerobot_prefix(spec)
    src = lake.require_manifest(src_prefix)
    train_idx = list(src["train_episode_indices"])
    config = {"train_episode_indices": train_idx, "min_std": min_std, "method": "exact quantiles (numpy inverted_cdf, openpi definition)"}
    inputs = [InputRef(uri=lake.uri(src_prefix), sha256=manifest_sha256(src), kind="lerobot_dataset",
                       episode_ids=list(src["train_episode_ids"]))]
    fp = fingerprint([i.to_dict() for i in inputs], config)
    prefix = norm_stats_prefix(spec.name)
    existing = lake.read_manifest(prefix)
    rights = Rights.from_dict(src["rights"])
    if existing is not None and existing.get("fingerprint") == fp:
        stats = lake.read_json(f"{prefix}/{NORM_STATS_FILE}")
        return NormStatsBuild("cached", lake.uri(prefix), existing, stats, existing.get("problems", []), rights)
    with lake.local_artifact(src_prefix) as root, tempfile.TemporaryDirectory(prefix="hvla-ns-") as tmp:
        result = compute_norm_stats(Path(root), train_episode_indices=train_idx)
        problems = check_norm_stats(result, min_std=min_std)
        out = Path(tmp) / "out"
        out.mkdir()
        write_norm_stats_json(result, out / NORM_STATS_FILE)
        manifest = build_manifest(
            artifact_type="norm_stats", artifact_uri=lake.uri(prefix), inputs=inputs, config=config, rights=rights,
            local_dir=out, episode_ids=list(src["train_episode_ids"]),
            extra={"release": spec.name, "repo_id": spec.repo_id, "computed_from": "train_split_only",
                   "excluded_heldout_episode_ids": list(src["heldout_episode_ids"]),
                   "num_frames": result.num_frames, "names": result.names, "problems": problems,
                   "reusable_across_customers": False, "customers": sorted(rights.customers)},
        )
        lake.publish_artifact(prefix, out, manifest)
        stats = result.to_openpi()
    return NormStatsBuild("materialized", lake.uri(prefix), manifest, stats, problems, rights)


def load_norm_stats(lake: Lake, release: str) -> dict[str, Any]:
    """The committed ``norm_stats.json`` document of ``release`` (openpi format).

    Raises:
        ArtifactNotFoundError: not materialized.
    """
    prefix = norm_stats_prefix(release)
    lake.require_manifest(prefix)
    return lake.read_json(f"{prefix}/{NORM_STATS_FILE}")


__all__ = ["MIN_STD", "NORM_STATS_FILE", "NormStatsBuild", "build_norm_stats", "load_norm_stats",
           "norm_stats_prefix", "read_norm_stats_json"]
