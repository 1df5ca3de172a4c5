"""Processing stage: raw MCAP → synchronised HDF5 episodes at a fixed fps, per capture day × robot."""


import dagster as dg

from hvla_platform.defs.metadata import check_specs, episode_check, rights_metadata
from hvla_platform.defs.partitions import day_robot, raw_partitions
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.convert import SyncConfig
from hvla_platform.lib.processing import PROCESSING_CHECKS, convert_partition

PROCESSING_CHECK_SPECS = [
    ("camera_coverage", "Per camera, at least `min_camera_coverage` of the frames have an image within "
                        "`max_camera_skew_s` of the frame time.", False),
    ("alignment_skew", "The largest |image stamp − frame time| over covered frames is within "
                       "`max_camera_skew_s`.", False),
    ("no_nan", "State, velocity, action and locomotion command contain no NaN/Inf.", True),
]
assert tuple(n for n, _, _ in PROCESSING_CHECK_SPECS) == PROCESSING_CHECKS


class EpisodesConfig(dg.Config):
    """Synchronisation settings (see ``hvla_platform.lib.sync``)."""

    fps: float = 20.0
    max_camera_skew_s: float = 0.05
    min_camera_coverage: float = 0.95


@dg.asset(
    partitions_def=raw_partitions,
    deps=["raw_mcap"],
    group_name="processing",
    owners=["team:data-platform"],
    kinds={"hdf5"},
    description="Per-episode HDF5: state, action, locomotion command and camera frames synchronised at a fixed fps.",
    check_specs=check_specs("episodes_hdf5", PROCESSING_CHECK_SPECS),
    metadata={"hvla/layer": "processed", "hvla/canonical": "derived, rebuildable"},
)
def episodes_hdf5(context: dg.AssetExecutionContext, config: EpisodesConfig, lake: LakeResource) -> dg.MaterializeResult:
    """Convert the partition's convertible raw episodes; failures are quarantined with the reason."""
    day, robot = day_robot(context)
    lk = lake.get_lake()
    cfg = SyncConfig(fps=config.fps, max_camera_skew_s=config.max_camera_skew_s,
                     min_camera_coverage=config.min_camera_coverage)
    res = convert_partition(lk, day, robot, cfg, progress=context.log.info)
    converted = res.converted
    for e in res.episodes:
        if e.status != "converted":
            context.log.warning(f"{e.episode_id} not converted: {e.reason}")
    checks = [
        episode_check("episodes_hdf5", name, {e.episode_id: e.checks[name] for e in res.episodes},
                      usable=len(converted), description=desc)
        for name, desc, _ in PROCESSING_CHECK_SPECS
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": res.uri,
            "dagster/row_count": sum(e.num_frames for e in converted),
            "hvla/num_episodes": len(converted),
            "hvla/num_frames": sum(e.num_frames for e in converted),
            "hvla/fps": config.fps,
            "hvla/episode_ids": ", ".join(e.episode_id for e in converted),
            "hvla/not_converted": dg.MetadataValue.json(
                {e.episode_id: e.reason for e in res.episodes if e.status != "converted"}
                | {s["episode_id"]: s["reasons"] for s in res.skipped}) if (len(converted) < len(res.episodes) or res.skipped) else "(none)",
            "hvla/fingerprint": res.manifest.get("fingerprint", ""),
            "status": res.status,
            **rights_metadata(res.rights),
        },
        check_results=checks,
    )
