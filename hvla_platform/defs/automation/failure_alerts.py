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


def failure_alert(context: dg.RunFailureSensorContext) -> dict:
    """The alert of one failed run: job, partition, trigger, failed steps with their errors."""
    run = context.dagster_run
    steps = [f"{e.step_key}: {_root_cause(e.event_specific_data.error)}" for e in context.get_step_failure_events()]
    record = context.instance.get_run_record_by_id(run.run_id)
    end = record.end_time if record and record.end_time else dt.datetime.now(dt.timezone.utc).timestamp()
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": run.tags.get("dagster/partition", ""),
        "trigger": run.tags.get("hvla/trigger") or run.tags.get("dagster/sensor_name")
        or run.tags.get("dagster/schedule_name") or "manual",
        "error": "\n".join(steps) or (context.failure_event.message or "run failed"),
        "failed_steps": [s.split(":", 1)[0] for s in steps],
        "failed_at": dt.datetime.fromtimestamp(end, dt.timezone.utc).isoformat(timespec="seconds"),
    }


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
