"""Runs in flight, as the automation sees them before requesting more."""

import dagster as dg

from hvla_platform.defs.jobs import ingest_job

IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED]


def ingest_runs_in_progress(instance: dg.DagsterInstance, partition: str | None = None, limit: int = 100) -> int:
    """How many ``ingest_job`` runs (of ``partition``, ``day|robot``, if given) are queued or running
    (counted up to ``limit``)."""
    tags = {"dagster/partition": partition} if partition else {}
    return len(instance.get_run_records(dg.RunsFilter(job_name=ingest_job.name, statuses=IN_PROGRESS, tags=tags),
                                        limit=limit))
