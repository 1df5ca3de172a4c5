"""Seed 000's ``before_retraining_from_runtime`` checklist as asset checks of ``raw_mcap``.

One check per item of the checklist, on each ``day|robot`` partition of the raw layer (and
``private_frames_filtered`` once more on the processed ``episodes_hdf5`` partition: the HDF5 files'
stored camera frames): every
rollout episode of the partition (``metadata.yaml`` ``source: rollout``, recorded by ``hvla deploy
--record-rollout``) is checked and its result published as ``rollout-checks/<day>/<robot>/<episode>``
(:func:`hvla_platform.lib.ingest.rollouts.run_rollout_checklist`); a partition without rollouts
passes each check with ``hvla/num_episodes: 0``. A failure is a WARN (ERROR when no episode of the
partition is usable): the rollout stays in the raw layer as incident evidence and release
selection leaves it out with the reason (docs/rollouts.md).
"""

import dagster as dg

from hvla_platform.defs.metadata import check_specs, episode_check
from hvla_platform.defs.partitions import raw_partitions, split_raw_partition_key
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.ingest.rollouts import (
    CHECKLIST,
    check_partition_episodes_private_frames,
    run_partition_checklists,
)

ROLLOUT_CHECKS = [
    ("customer_permission_checked", "Rollouts only: the deployment's runtime-data policy grants retraining "
                                    "(with its reference) and the rollout's rights are the policy's.", False),
    ("private_frames_filtered", "Rollouts only: no camera frame the policy marks private (camera × time window) "
                                "is stored other than black (blackout) or at all (drop).", False),
    ("incident_data_labeled", "Rollouts only: a rollout that ended in a fault or an emergency stop is labelled "
                              "so, with its cause, and its safety events hold the fault / e-stop.", False),
    ("deletion_request_process_defined", "Rollouts only: the policy names a deletion contact and process, "
                                         "and the rights a retention date.", False),
]
assert tuple(n for n, _, _ in ROLLOUT_CHECKS) == CHECKLIST


@dg.multi_asset_check(specs=check_specs("raw_mcap", ROLLOUT_CHECKS, raw_partitions),
                      description="before_retraining_from_runtime (seed 000) on the partition's rollouts")
def rollout_checklist(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Run the rollout checklist on the partition's published rollout episodes; one result per check."""
    day, robot = split_raw_partition_key(context.partition_key)
    lk = lake.get_lake()
    published = [e["episode_id"] for e in read_partition_index(lk, day, robot)["episodes"]
                 if e.get("status") in ("published", "cached")]
    results = run_partition_checklists(lk, day, robot, published)
    for r in results:
        context.log.info(f"{r.episode_id}: {'retraining permitted' if r.retrain_permitted else 'incident evidence only'}"
                         f" ({lk.uri(r.prefix)}, {r.status})")
    for name, desc, _ in ROLLOUT_CHECKS:
        yield episode_check("raw_mcap", name, {r.episode_id: r.checks[name] for r in results},
                            usable=len(published), description=desc)


EPISODE_CHECKS = [
    ("rollout_private_frames_filtered", "Rollouts only: the processed episode stores no frame the runtime-data "
                                        "policy marks private, other than black (blackout) or at all (drop).", False),
]


@dg.multi_asset_check(specs=check_specs("episodes_hdf5", EPISODE_CHECKS, raw_partitions),
                      description="private frames of the partition's rollouts, in the processed episodes")
def rollout_episodes_private_frames(context: dg.AssetCheckExecutionContext, lake: LakeResource):
    """Decode the stored frames of each rollout's private cameras in its private windows."""
    day, robot = split_raw_partition_key(context.partition_key)
    lk = lake.get_lake()
    per_episode = check_partition_episodes_private_frames(lk, day, robot)
    name, desc, _ = EPISODE_CHECKS[0]
    # a private frame left in training data is an ERROR (gate), whatever else the partition holds
    yield episode_check("episodes_hdf5", name, per_episode, usable=len(per_episode), description=desc, gate=True)
