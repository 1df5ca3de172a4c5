"""The lifecycle stages as Dagster concurrency pools and as the ``hvla/stage`` run tag.

Every asset is in the pool of its stage (``pool=`` on its definition), so the instance's per-stage
limits apply to every run that materializes it, however it was launched: the jobs' launchpads,
sensors, schedules, ``dagster job launch`` and a selection materialized from the asset graph (whose
implicit asset job carries no run tags). With ``concurrency.pools.granularity: run`` a queued run
waits until each pool its steps use has a free slot and holds one slot per pool while in progress
(Dagster's ``op_concurrency_limits_counter``); the limits are set per deployment (deploy/init-instance.sh,
docs/deployment.md "Run queue"). The run tag stays as a label to filter runs by in the UI.
"""

#: Raw recordings → indexed raw partitions → HDF5 episodes (robot logs, teleop, human video).
INGEST = "ingest"
#: Dataset releases and what is built from them (LeRobot, norm stats, Robo-DM cache, exports, mixtures).
RELEASE = "release"
#: Training a checkpoint and evaluating it.
TRAINING = "training"

#: The run tag naming a run's stage (the jobs' ``run_tags``, which ``execute_in_process`` applies too).
STAGE_TAG = "hvla/stage"
