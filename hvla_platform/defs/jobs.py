"""Asset jobs, one per partitioning: what the demo, the UI's launchpad and schedules run."""

import dagster as dg

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("raw_mcap", "episodes_hdf5"),
    description="Ingest one capture day × robot: raw MCAP (indexed, write-once) → synchronised HDF5 episodes, with QA checks.",
)
release_job = dg.define_asset_job(
    "release_job",
    selection=dg.AssetSelection.assets("lerobot_dataset", "norm_stats", "robodm_cache"),
    description="Build one dataset release: LeRobot v3.0 dataset → norm stats and Robo-DM cache, with checks.",
)
training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.assets("checkpoint", "eval_report"),
    description="Train one experiment on a release's Robo-DM cache and evaluate the checkpoint (launched by the ML team).",
)
