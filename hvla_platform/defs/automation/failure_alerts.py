"""Run-failure alerts: every failed run of this code location is logged, recorded in the lake and
sent to the configured hook points (``hvla_platform.lib.ops.alerts``)."""

import datetime as dt

import dagster as dg

from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.ops.alerts import alert_text, deliver_alert


def _root_cause(error) -> str:
    """The innermost error of a step failure (the user code's exception, not Dagster's wrapper)."""
    if error is None:
        return "failed"
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def run_alert(instance: dg.DagsterInstance, run: dg.DagsterRun, failure_message: str = "") -> dict:
    """The alert of one failed run, whoever launched it (the daemon's sensor, or ``hvla`` for the
    runs it executes in process): ``{run_id, job, partition, trigger, error, failed_steps,
    failed_at}`` — the failed steps with their root errors, else ``failure_message``."""
    failures = [r.dagster_event for r in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
                if r.dagster_event is not None]
    steps = [f"{e.step_key}: {_root_cause(e.event_specific_data.error)}" for e in failures]
    record = instance.get_run_record_by_id(run.run_id)
    end = record.end_time if record and record.end_time else dt.datetime.now(dt.timezone.utc).timestamp()
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition", ""),
        "trigger": run.tags.get("hvla/trigger") or run.tags.get("dagster/sensor_name")
        or run.tags.get("dagster/schedule_name") or "manual",
        "error": "\n".join(steps) or failure_message or "run failed",
        "failed_steps": [s.split(":", 1)[0] for s in steps],
        "failed_at": dt.datetime.fromtimestamp(end, dt.timezone.utc).isoformat(timespec="seconds"),
    }


def failure_alert(context: dg.RunFailureSensorContext) -> dict:
    """The alert of the failed run of a run-failure sensor's ``context`` (:func:`run_alert`)."""
    return run_alert(context.instance, context.dagster_run, context.failure_event.message or "")


@dg.run_failure_sensor(
    name="run_failure_alerts",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run: error log line, a record alerts/<day>/<run_id>.json in the lake, and "
                "the hook points HVLA_ALERT_HOOK (module:function) and HVLA_ALERT_WEBHOOK_URL (JSON POST) when set.",
)
def run_failure_alerts(context: dg.RunFailureSensorContext, lake: LakeResource) -> None:
    """Deliver the alert of the failed run in ``context``."""
    alert = failure_alert(context)
    context.log.error(alert_text(alert))
    delivery = deliver_alert(lake.get_lake(), alert)
    if delivery.new:
        context.log.info(f"alert delivered to {', '.join(delivery.delivered_to)}")
    for err in delivery.errors:
        context.log.warning(f"alert hook point failed (the lake record {delivery.record_key} stands): {err}")
