"""Experiment partitions that never produced a checkpoint go away when their only training run fails.

In the UI a new experiment is a new ``experiment`` partition (the launchpad's "Add partition"),
added before the run starts. When the ``checkpoint`` asset then refuses the run (an unknown, flagged
or unbuilt release, rights that forbid training: issue 13 §5) the partition stayed behind forever,
one per attempt, in every partition picker and in "% filled". ``hvla train`` checks all that before
it adds the partition, so it leaves none.

This run-failure sensor deletes the failed run's experiment partition when nothing was ever made
in it: no ``checkpoint`` materialization (of any run) and no other run of the partition that is
queued, in progress or succeeded. The failed run and its logs stay in the run history (tagged with
the partition); the experiment name can be added again. A partition with a checkpoint — a run that
failed in evaluation, or a retrain of an existing experiment — is kept.
"""

import dagster as dg

from hvla_platform.defs.jobs import training_job
from hvla_platform.defs.partitions import experiment_partitions

#: runs of a partition that keep it: anything not (yet) ended in failure or cancellation.
_KEEPING_STATUSES = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
                     dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.CANCELING]


def unused_experiment(instance: dg.DagsterInstance, experiment: str, failed_run_id: str) -> str | None:
    """Why ``experiment`` must be kept after run ``failed_run_id`` failed, or ``None`` when it is an
    unused partition to delete (module docstring)."""
    if not instance.has_dynamic_partition(experiment_partitions.name, experiment):
        return "not an experiment partition (any more)"
    if experiment in instance.get_materialized_partitions(dg.AssetKey("checkpoint")):
        return "it has a checkpoint"
    others = [r for r in instance.get_run_records(
        filters=dg.RunsFilter(tags={"dagster/partition": experiment}, statuses=_KEEPING_STATUSES))
        if r.dagster_run.run_id != failed_run_id]
    if others:
        return f"run {others[0].dagster_run.run_id} of it is {others[0].dagster_run.status.value.lower()}"
    return None


@dg.run_failure_sensor(
    name="unused_experiment_cleanup",
    monitored_jobs=[training_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Deletes the experiment partition of a failed training run when nothing was ever made in it "
                "(no checkpoint, no other queued, running or successful run): a refused launch from the UI "
                "leaves no partition behind.",
)
def unused_experiment_cleanup(context: dg.RunFailureSensorContext) -> None:
    """Delete the failed training run's experiment partition if it is unused (module docstring)."""
    run = context.dagster_run
    experiment = run.tags.get("dagster/partition")
    if not experiment:
        return
    keep = unused_experiment(context.instance, experiment, run.run_id)
    if keep is not None:
        context.log.info(f"experiment {experiment} kept after the failed run {run.run_id}: {keep}")
        return
    context.instance.delete_dynamic_partition(experiment_partitions.name, experiment)
    context.log.info(f"experiment partition {experiment} deleted: its only run {run.run_id} failed before any "
                     "checkpoint (the run stays in the run history; the name can be added again)")
