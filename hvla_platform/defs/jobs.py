"""Asset jobs, one per partitioning: what the demo, the UI's launchpad, sensors and schedules run.

Every run of a job carries the ``hvla/stage`` tag (``ingest`` | ``release`` | ``training``) that the
instance's run queue limits per stage (deploy/dagster.yaml), however it was launched.
"""

import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("raw_mcap", "episodes_hdf5"),
    description="Ingest one capture day × robot: raw MCAP (indexed, write-once) → synchronised HDF5 episodes, with QA checks. "
                "Launched by the landing sensor and the nightly schedule.",
    run_tags={"hvla/stage": "ingest"},
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
    run_tags={"hvla/stage": "release"},
)

#: The launchpad's starting point for the ML team: the demo release, the demo's step count and
#: closed-loop trials (``hvla train`` uses the same defaults). Every value can be edited before launch.
TRAINING_LAUNCHPAD_CONFIG = {
    "ops": {
        "checkpoint": {"config": {"release": "g1-reach-v1", "config_name": "hvla_g1_reach_small", "steps": 300,
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
    config=TRAINING_LAUNCHPAD_CONFIG,
    run_tags={"hvla/stage": "training"},
)
