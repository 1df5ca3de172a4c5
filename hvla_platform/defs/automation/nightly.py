"""Nightly automation: convert and QA-check what ingest has not caught up with, then refresh the
releases that follow new data (as dated snapshot releases)."""

import datetime as dt
import zoneinfo

import dagster as dg

from hvla_platform.defs.automation import settings
from hvla_platform.defs.automation.runs import ingest_runs_in_progress
from hvla_platform.defs.jobs import ingest_job, release_job
from hvla_platform.defs.partitions import migrate_raw_partitions, register_raw_partitions, split_raw_partition_key
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.ingest.backlog import ingest_backlog
from hvla_platform.lib.dataset.release_refresh import plan_refresh, refresh_due, register_snapshot

def _register_partitions(instance: dg.DagsterInstance, keys: list[str], log) -> None:
    """Add the ``day|robot`` partitions of ``keys`` the instance does not know yet."""
    new = register_raw_partitions(instance, (split_raw_partition_key(k) for k in keys))
    if new:
        log.info(f"registering partition(s) {new}")


@dg.schedule(
    name="nightly_ingest_schedule",
    cron_schedule=settings.nightly_cron(),
    execution_timezone=settings.timezone(),
    job=ingest_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly: converts and QA-checks (ingest_job) every capture-day × robot partition whose landed "
                "episodes are not all through raw and HDF5 yet — new landings the sensor missed, failed runs, "
                "`hvla ingest` without --materialize. Up-to-date partitions, and those with an ingest run in "
                "progress, are left alone.",
)
def nightly_ingest_schedule(context: dg.ScheduleEvaluationContext, lake: LakeResource):
    """One RunRequest per partition that is behind; the run key holds the night and the landed content."""
    migrate_raw_partitions(context.instance, context.log.info)  # a no-op once the instance has moved
    lk = lake.get_lake()
    night = context.scheduled_execution_time.date().isoformat()
    backlog = ingest_backlog(lk)
    busy = [s.key for s in backlog if ingest_runs_in_progress(context.instance, s.key, limit=1)]
    if busy:
        context.log.info(f"left to their ingest run in progress: {', '.join(busy)}")
    backlog = [s for s in backlog if s.key not in busy]
    if not backlog:
        return dg.SkipReason("every landed partition is ingested and converted"
                             + (f", or has an ingest run in progress ({len(busy)})" if busy else ""))
    _register_partitions(context.instance, [s.key for s in backlog], context.log)
    for s in backlog:
        context.log.info(f"{s.key}: {s.behind}")
    return [dg.RunRequest(run_key=f"nightly:{night}:{s.key}:{s.digest}", partition_key=s.key,
                          tags={"hvla/trigger": "nightly_ingest_schedule", "hvla/behind": s.behind[:200]})
            for s in backlog]


@dg.sensor(
    name="nightly_release_refresh",
    job=release_job,
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Once a night (after HVLA_RELEASE_REFRESH_AT, when no ingest run is in progress): for every "
                "release spec with `partitions: all` whose converted partitions changed, registers a dated "
                "snapshot release <name>-<YYYYMMDD> pinned to those partitions and builds it with release_job.",
)
def nightly_release_refresh(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    """Refresh the releases that follow new data (see ``hvla_platform.lib.dataset.release_refresh``)."""
    now = dt.datetime.now(zoneinfo.ZoneInfo(settings.timezone()))
    why_not = refresh_due(now, settings.release_refresh_at(), context.cursor)
    if why_not:
        return dg.SkipReason(why_not)
    running = ingest_runs_in_progress(context.instance)
    if running:
        return dg.SkipReason(f"waiting for {running} ingest run(s) in progress before refreshing releases")
    lk = lake.get_lake()
    plans, problems = plan_refresh(lk, now.date())
    for problem in problems:
        context.log.warning(problem)
    behind = ingest_backlog(lk)
    if behind:
        context.log.warning(f"{len(behind)} partition(s) are behind and enter the snapshots as last converted: "
                            + "; ".join(f"{s.key}: {s.behind}" for s in behind[:10]))
    requests = []
    for plan in plans:
        spec = register_snapshot(lk, plan)
        context.log.info(f"refreshing {plan.summary()}")
        requests.append(dg.RunRequest(run_key=f"release-refresh:{spec.name}", partition_key=spec.name,
                                      tags={"hvla/trigger": "nightly_release_refresh", "hvla/follows": plan.spec.name}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest("release", [r.partition_key for r in requests])]
        if requests else [],
        cursor=now.date().isoformat(),
        skip_reason=None if requests else f"no release follows new data on {now.date().isoformat()}"
                                          + (f" ({len(problems)} problem(s), see the log)" if problems else ""),
    )
