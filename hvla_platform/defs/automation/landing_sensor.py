"""The landing sensor: recordings dropped by robots or uploaders are landed and ingested without a click."""

import json

import dagster as dg

from hvla_platform.defs.automation import settings
from hvla_platform.defs.automation.resources import DropAreaResource
from hvla_platform.defs.automation.runs import ingest_runs_in_progress
from hvla_platform.defs.jobs import ingest_job
from hvla_platform.defs.partitions import RAW_PARTITIONS_NAME, migrate_raw_partitions, raw_partition_key
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.ingest.backlog import ingest_backlog
from hvla_platform.lib.ingest.drop_watch import DropPass, watch_drop_area

CURSOR_VERSION = 1


def load_cursor(cursor: str | None) -> tuple[dict[str, str], list[str]]:
    """(``{drop folder key: fingerprint}``, partitions whose ingest request waits for a run of the
    same partition to finish) from the sensor's cursor; both empty when unset.

    Raises:
        ValueError: the cursor is not one this sensor wrote.
    """
    if not cursor:
        return {}, []
    data = json.loads(cursor)
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or not isinstance(data.get("seen"), dict):
        raise ValueError(f"landing_sensor: unrecognised cursor {cursor[:80]!r}; reset the sensor's cursor in the UI")
    return data["seen"], list(data.get("pending", []))


def _report(context: dg.SensorEvaluationContext, p: DropPass) -> list[dg.AssetObservation]:
    """Log every outcome; conflicts also become observations on the raw_mcap partition (visible in the UI)."""
    events = []
    for h in p.handled:
        r = h.result
        if r.status == "landed":
            context.log.info(f"landed {h.uri} → {r.capture_day}|{r.robot_id}/{r.episode_id}")
        elif r.status == "already_landed":
            context.log.info(f"{h.uri}: {r.episode_id} already landed with the same content")
        elif r.status == "conflict":
            context.log.warning(f"CONFLICT {h.uri}: {r.reason}; the new files are kept at {h.conflict_record}")
            events.append(dg.AssetObservation(
                asset_key="raw_mcap", partition=f"{r.capture_day}|{r.robot_id}",
                description=f"Changed re-upload of {r.episode_id} refused (landing is write-once).",
                metadata={"hvla/landing_conflict": r.reason, "hvla/episode_id": r.episode_id,
                          "hvla/source": h.uri, "hvla/conflict_record": h.conflict_record}))
        else:  # rejected (quarantined with reason.json) or withdrawn
            context.log.warning(f"{r.status.upper()} {h.uri}: {r.reason}")
    for uri in p.deferred:
        context.log.info(f"{uri}: deferred to the next tick (time budget of this tick used)")
    return events


def _summary(p: DropPass, requested: int, waiting_for_runs: list[str]) -> str:
    counts = {s: len(p.with_status(s)) for s in ("landed", "already_landed", "conflict", "rejected", "withdrawn")}
    parts = [f"{n} {s}" for s, n in counts.items() if n]
    if p.waiting:
        parts.append(f"{len(p.waiting)} partial upload(s) waiting for metadata.yaml (e.g. {p.waiting[0]})")
    if p.settling:
        parts.append(f"{len(p.settling)} folder(s) still changing")
    if p.deferred:
        parts.append(f"{len(p.deferred)} deferred")
    if waiting_for_runs:
        parts.append(f"ingest of {', '.join(waiting_for_runs)} waits for the partition's run in progress")
    return (", ".join(parts) or "no new recordings") + f"; {requested} ingest run(s) requested"


@dg.sensor(
    name="landing_sensor",
    job=ingest_job,
    minimum_interval_seconds=settings.landing_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Lands complete recordings (MCAP + metadata.yaml, written last) from the drop area (HVLA_DROP_URI: "
                "folder or S3 prefix) write-once, registers their capture-day × robot partitions and requests "
                "ingest_job once per landed content; a changed re-upload is reported, never replaces.",
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource,
                   drop_area: DropAreaResource) -> dg.SensorResult | dg.SkipReason:
    """One tick: scan the drop area, land what is new, request ingest for partitions now behind."""
    lk, drop = lake.get_lake(), drop_area.get_drop_area()
    seen, pending = load_cursor(context.cursor)
    try:
        p = watch_drop_area(lk, drop, seen, settle_seconds=drop_area.settle_seconds,
                            budget_seconds=drop_area.budget_seconds)
    except FileNotFoundError as exc:
        return dg.SkipReason(str(exc))
    events = _report(context, p)
    # a conflict lands nothing, but its observation needs the partition to exist
    known = p.partitions("landed", "already_landed", "conflict")
    migrate_raw_partitions(context.instance, context.log.info)  # a no-op once the instance has moved
    new_keys = sorted({raw_partition_key(d, r) for d, r in known} - set(context.instance.get_dynamic_partitions(RAW_PARTITIONS_NAME)))
    # one ingest run per partition at a time: new content of a partition whose run is queued or
    # running waits in the cursor until that run is over, then is requested if still behind
    candidates = sorted({f"{d}|{r}" for d, r in p.partitions()} | set(pending))
    busy = [k for k in candidates if ingest_runs_in_progress(context.instance, k, limit=1)]
    ready = [tuple(k.split("|")) for k in candidates if k not in busy]
    requests = [
        dg.RunRequest(run_key=f"landing:{s.key}:{s.digest}", partition_key=s.key,
                      tags={"hvla/trigger": "landing_sensor", "hvla/landed_digest": s.digest})
        for s in ingest_backlog(lk, ready)
    ]
    context.log.info(_summary(p, len(requests), busy))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(RAW_PARTITIONS_NAME, new_keys)] if new_keys else [],
        asset_events=events,
        cursor=json.dumps({"v": CURSOR_VERSION, "seen": p.seen, "pending": busy}, sort_keys=True),
        skip_reason=None if requests else _summary(p, 0, busy),
    )
