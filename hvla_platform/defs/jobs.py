"""Asset jobs, one per partitioning: what the demo, the UI's launchpad, sensors and schedules run.

Every run of a job carries the ``hvla/stage`` tag (``ingest`` | ``release`` | ``training``) to filter
runs by; the run queue limits each stage by its concurrency pool, which every asset is in whatever
launched its run (``hvla_platform.defs.stages``).
"""

import logging

import dagster as dg

from hvla_platform.defs.partitions import experiment_partitions
from hvla_platform.defs.stages import INGEST, RELEASE, STAGE_TAG, TRAINING
from hvla_platform.lib.core.lake_config import open_lake
from hvla_platform.lib.dataset.versions import newest_trainable_version

logger = logging.getLogger(__name__)

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("raw_mcap", "episodes_hdf5"),
    description="Ingest one capture day × robot: raw MCAP (indexed, write-once) → synchronised HDF5 episodes, with QA checks. "
                "Launched by the landing sensor and the nightly schedule.",
    run_tags={STAGE_TAG: INGEST},
    # The two steps are a chain (raw_mcap → episodes_hdf5), so a process per step buys no
    # parallelism and costs a Python start-up + platform import per step per partition
    # (benchmarks/fanout.py). Partitions fan out as runs (one process or pod each) and the
    # episodes of a partition over the conversion's worker pool (docs/deployment.md).
    executor_def=dg.in_process_executor,
)
release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets("lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export"),
    description="Build one dataset release: LeRobot v3.0 dataset → norm stats, Robo-DM cache and the openpi "
                "export (LeRobot v2.1 train/held-out datasets + openpi norm stats), with checks. "
                "Launched by the nightly release refresh for releases that follow new data.",
    run_tags={STAGE_TAG: RELEASE},
)

#: The release the launchpad proposes: the demo's, in its newest version that can be trained on.
LAUNCHPAD_RELEASE = "g1-reach-v1"


def training_launchpad_config(experiment: str) -> dict:
    """The launchpad's starting point for the ML team, for experiment partition ``experiment``: the
    newest version of :data:`LAUNCHPAD_RELEASE` whose Robo-DM cache and norm stats are built and not
    flagged (:func:`~hvla_platform.lib.dataset.versions.newest_trainable_version`: after a consent
    revocation, the rebuilt version, not the withdrawn one), the demo's step count and closed-loop
    trials (``hvla train`` uses the same defaults). Every value can be edited before launch. When the
    lake has no such version (or cannot be read) the release is the demo's name, which the
    ``checkpoint`` asset then refuses with the reason."""
    release = LAUNCHPAD_RELEASE
    try:
        release = newest_trainable_version(open_lake(), LAUNCHPAD_RELEASE) or LAUNCHPAD_RELEASE
    except Exception as exc:  # noqa: BLE001 - a default for an editable form; the reason is logged
        logger.warning("training launchpad: the lake could not be read for the default release (%s); "
                       "proposing %s", exc, LAUNCHPAD_RELEASE)
    return {
        "ops": {
            "checkpoint": {"config": {"release": release, "config_name": "hvla_g1_reach_small", "steps": 300,
                                      "seed": 0}},
            "eval_report": {"config": {"closed_loop_trials": 8}},
        },
    }


training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("checkpoint", "eval_report"),
    description="Train one experiment on a release's Robo-DM cache and evaluate the checkpoint. Manual by design: "
                "no schedule or sensor launches it; the ML team picks the release, experiment and steps "
                "(launchpad or `hvla train`), see docs/automation.md.",
    # computed when a partition is picked in the launchpad (and for every run without a config)
    config=dg.PartitionedConfig(partitions_def=experiment_partitions,
                                run_config_for_partition_key_fn=training_launchpad_config),
    run_tags={STAGE_TAG: TRAINING},
)

# ---- other sources (issue 17): seed-003 teleop episodes and their targets, human-video releases.
# (human_video_ingest_job lives with its landing sensor in defs/ingest/human_video.py, mixture_job
# with its asset in defs/dataset/mixture.py.)
teleop_ingest_job = dg.define_asset_job(
    "teleop_ingest_job",
    selection=dg.AssetSelection.assets("raw_teleop"),
    description="Ingest one capture day × robot of seed-003 teleop episodes: restricted unpickling, raw checks, "
                "write-once raw-teleop/ (docs/teleop.md).",
    run_tags={STAGE_TAG: INGEST},
)
teleop_target_job = dg.define_asset_job(
    "teleop_target_job",
    selection=dg.AssetSelection.assets("teleop_target_lerobot", "teleop_target_rlds"),
    description="Build one seed-003 training target (e2e | planner | correction) as LeRobot v3 and as RLDS, "
                "both read back (docs/teleop_targets.md).",
    run_tags={STAGE_TAG: RELEASE},
)
human_video_release_job = dg.define_asset_job(
    "human_video_release_job",
    selection=dg.AssetSelection.assets("human_video_release"),
    description="Build the video-only LeRobot release of one learning bucket (manipulation | locomotion), faces "
                "blurred where identifiable people are not allowed (docs/human_video.md).",
    run_tags={STAGE_TAG: RELEASE},
)
