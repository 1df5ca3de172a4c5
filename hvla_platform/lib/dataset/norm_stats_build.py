"""Compute a release's norm stats from its LeRobot Parquet files and publish them, idempotently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, Published, publish_if_changed, require_manifest)
from hvla_platform.lib.formats.norm_stats import check_norm_stats, compute_norm_stats, read_norm_stats_json, write_norm_stats_json
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import norm_stats_prefix

#: Smallest per-dimension std accepted by the norm-stats check, in the feature's units
#: (radians for joint positions and targets). Below it, z-score normalisation divides by ~0.
MIN_STD = 1e-4
NORM_STATS_FILE = "norm_stats.json"


def build_norm_stats(lake: Lake, spec: ReleaseSpec, *, min_std: float = MIN_STD) -> Published:
    """Norm stats (openpi ``norm_stats.json``) of the release's **train split only**, published
    under ``norm-stats/<release>/`` (:class:`~hvla_platform.lib.core.manifest.NormStatsManifest`;
    its ``problems`` list what :func:`check_norm_stats` found: non-finite values, std < ``min_std``).

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset is not materialized.
        NormStatsError: the Parquet files cannot produce stats.
    """
    src_prefix = lerobot_prefix(spec)
    src = require_manifest(lake, src_prefix, LeRobotDatasetManifest)
    train_idx = list(src.train_episode_indices)
    config = {"train_episode_indices": train_idx, "min_std": min_std, "method": "exact quantiles (numpy inverted_cdf, openpi definition)"}
    inputs = [InputRef(key=src_prefix, sha256=src.sha256(), kind="lerobot_dataset",
                       episode_ids=list(src.train_episode_ids))]
    rights = src.rights_obj

    def write(out: Path) -> Content:
        with lake.local_artifact(src_prefix) as root:
            result = compute_norm_stats(Path(root), train_episode_indices=train_idx)
        problems = check_norm_stats(result, min_std=min_std)
        write_norm_stats_json(result, out / NORM_STATS_FILE)
        return Content(episode_ids=list(src.train_episode_ids), extra={
            "release": spec.name, "repo_id": spec.repo_id, "computed_from": "train_split_only",
            "excluded_heldout_episode_ids": list(src.heldout_episode_ids), "num_frames": result.num_frames,
            "names": result.names, "problems": problems, "reusable_across_customers": False,
            "customers": sorted(rights.customers)})

    return publish_if_changed(lake, norm_stats_prefix(spec.name), artifact_type="norm_stats", inputs=inputs,
                              config=config, rights=rights, write=write)


def load_norm_stats(lake: Lake, release: str) -> dict[str, Any]:
    """The committed ``norm_stats.json`` document of ``release`` (openpi format).

    Raises:
        ArtifactNotFoundError: not materialized.
    """
    prefix = norm_stats_prefix(release)
    lake.require_manifest(prefix)
    return lake.read_json(f"{prefix}/{NORM_STATS_FILE}")


__all__ = ["MIN_STD", "NORM_STATS_FILE", "build_norm_stats", "load_norm_stats",
           "norm_stats_prefix", "read_norm_stats_json"]
