"""Dataset stage: the openpi-ready export of a release (LeRobot v2.1, train split + held-out split,
openpi norm stats for absolute and delta actions) — partitioned by dataset release."""


import dagster as dg

from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.metadata import lineage_metadata, rights_metadata
from hvla_platform.defs.partitions import release_partitions
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import RELEASE
from hvla_platform.lib.core.keys import openpi_export_prefix
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, require_manifest
from hvla_platform.lib.dataset.norm_stats_build import load_norm_stats
from hvla_platform.lib.dataset.openpi_export import (
    DEFAULT_ACTION_HORIZON, DEFAULT_CONFIG_NAME, LEROBOT_HOME_DIR, build_openpi_export, check_export)
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.dataset.versions import latest_release_spec


class OpenpiExportConfig(dg.Config):
    """Which openpi TrainConfig the norm stats are filed under, and its action horizon."""

    config_name: str = DEFAULT_CONFIG_NAME
    action_horizon: int = DEFAULT_ACTION_HORIZON


@dg.asset(
    partitions_def=release_partitions,
    deps=["lerobot_dataset", "norm_stats"],
    group_name="dataset",
    owners=["team:ml-training"],
    kinds={"lerobot", "parquet", "mp4", "json"},
    pool=RELEASE,
    description="openpi-ready export of the release: LeRobot v2.1 (what openpi's LeRobot reads) with the train split "
                "as the dataset and the held-out split apart, laid out for HF_LEROBOT_HOME, and openpi norm_stats.json "
                "for absolute and delta action chunks at assets/<config>[_delta]/<repo_id>/.",
    check_specs=[
        dg.AssetCheckSpec("train_split_only_v21", asset="openpi_export", partitions_def=release_partitions, blocking=True,
                          description="Read back from the export's files: both datasets are codebase_version v2.1, the "
                                      "openpi dataset holds exactly the release's train episodes and the held-out one "
                                      "exactly its held-out episodes, and every meta/data/video file agrees."),
        dg.AssetCheckSpec("norm_stats_at_openpi_path", asset="openpi_export", partitions_def=release_partitions,
                          blocking=True,
                          description="norm_stats.json exists for absolute and delta actions at openpi's "
                                      "assets/<config>/<repo_id>/ path, finite, and its state statistics equal the "
                                      "release's norm stats."),
        *rights_check_specs("openpi_export", release_partitions),
    ],
    metadata={"hvla/layer": "derived", "hvla/computed_from": "train_split_only", "hvla/canonical": "derived, disposable"},
)
def openpi_export(context: dg.AssetExecutionContext, config: OpenpiExportConfig, lake: LakeResource) -> dg.MaterializeResult:
    """Write (or find ``cached``) ``openpi-exports/<release>/`` for the newest version of the
    partition's release, then re-read the published files for the checks."""
    lk = lake.get_lake()
    spec = latest_release_spec(lk, context.partition_key)  # the newest version: name is its id
    b = build_openpi_export(lk, spec, config_name=config.config_name, action_horizon=config.action_horizon)
    m = b.manifest
    release = require_manifest(lk, lerobot_prefix(spec), LeRobotDatasetManifest)
    with lk.local_artifact(b.prefix) as root:
        problems = check_export(root, release, load_norm_stats(lk, spec.name))
    stats_problems = [p for p in problems if "norm stats" in p]
    data_problems = [p for p in problems if p not in stats_problems]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "dagster/row_count": m.num_frames,
            "hvla/release": spec.name,
            "hvla/hf_lerobot_home": dg.MetadataValue.path(f"{b.uri}/{LEROBOT_HOME_DIR}"),
            "hvla/openpi_repo_id": m.openpi_repo_id,
            "hvla/heldout_repo_id": m.heldout_repo_id or "(none: nothing held out)",
            "hvla/codebase_version": m.codebase_version,
            "hvla/train_episodes": dg.MetadataValue.json(m.train_episodes),
            "hvla/heldout_episodes": dg.MetadataValue.json(m.heldout_episodes),
            "hvla/num_frames": m.num_frames,
            "hvla/action_horizon": m.action_horizon,
            "hvla/norm_stats": dg.MetadataValue.json(m.norm_stats),
            "hvla/delta_mask": dg.MetadataValue.json(m.delta_mask),
            "hvla/state_order": dg.MetadataValue.json(m.state_names),
            "status": b.status,
            **lineage_metadata(lk, openpi_export_prefix(spec.name)),
            **rights_metadata(b.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="train_split_only_v21", passed=not data_problems,
                                metadata={"hvla/problems": "\n".join(data_problems) or "(none)",
                                          "hvla/train_episodes": ", ".join(release.train_episode_ids),
                                          "hvla/heldout_episodes": ", ".join(release.heldout_episode_ids) or "(none)"}),
            dg.AssetCheckResult(check_name="norm_stats_at_openpi_path", passed=not stats_problems,
                                metadata={"hvla/problems": "\n".join(stats_problems) or "(none)",
                                          "hvla/paths": dg.MetadataValue.json(m.norm_stats)}),
            rights_check_result(lk, "openpi_export", b.prefix),
        ],
    )
