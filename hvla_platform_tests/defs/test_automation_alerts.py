"""A failed run alerts: the code location's run-failure sensor, evaluated on a real failed ingest run,
logs it, records it in the lake and calls both hook points (a Python hook and a webhook served on
the loopback interface)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from hvla_platform.definitions import defs as load_defs
from hvla_platform.lib.core.lake import LocalLake

HOOK_CALLS: list[dict] = []


def record_alert(alert: dict) -> None:
    """The HVLA_ALERT_HOOK of this test."""
    HOOK_CALLS.append(alert)


@pytest.fixture()
def webhook():
    """A loopback HTTP server that keeps the JSON bodies POSTed to it."""
    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/alerts", bodies
    server.shutdown()
    server.server_close()


@pytest.fixture()
def alert_env(tmp_path, monkeypatch, webhook):
    """A home of its own, the Python hook and the webhook configured; the webhook's bodies."""
    url, bodies = webhook
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    monkeypatch.delenv("HVLA_LAKE_ROOT", raising=False)
    monkeypatch.setenv("HVLA_ALERT_HOOK", f"{__name__}:record_alert")
    monkeypatch.setenv("HVLA_ALERT_WEBHOOK_URL", url)
    HOOK_CALLS.clear()
    return bodies


def test_failed_ingest_run_is_alerted_once(tmp_path, alert_env):
    bodies = alert_env
    repo = load_defs().get_repository_def()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("capture_day_robot", ["2026-11-10|g1-009"])
        # a partition registered but with nothing landed: raw_mcap fails, the run fails
        res = repo.get_job("ingest_job").execute_in_process(instance=instance, partition_key="2026-11-10|g1-009",
                                                            raise_on_error=False)
        assert not res.success
        sensor = repo.get_sensor_def("run_failure_alerts")

        def evaluate():
            with dg.build_run_status_sensor_context(
                    sensor_name=sensor.name, dagster_event=res.get_run_failure_event(), dagster_instance=instance,
                    dagster_run=res.dagster_run, resources=repo.get_top_level_resources()) as ctx:
                sensor(ctx.for_run_failure())

        evaluate()
        lake = LocalLake(tmp_path / "home" / "lake")
        [key] = lake.list_keys("alerts")
        alert = lake.read_json(key)
        assert key.endswith(f"/{res.run_id}.json")
        assert (alert["job"], alert["partition"], alert["failed_steps"]) == ("ingest_job", "2026-11-10|g1-009", ["raw_mcap"])
        assert "no complete episodes landed for partition 2026-11-10|g1-009" in alert["error"]
        assert HOOK_CALLS == [alert]
        [body] = bodies
        assert body["run_id"] == res.run_id
        assert body["text"].startswith(f"[hvla] ingest_job failed (partition 2026-11-10|g1-009, run {res.run_id[:8]})")
        # evaluated again (e.g. the sensor's cursor was reset): recorded already, not sent again
        evaluate()
        assert len(HOOK_CALLS) == 1 and len(bodies) == 1 and lake.list_keys("alerts") == [key]


def test_a_run_hvla_executes_in_process_is_alerted_the_same_way(tmp_path, alert_env):
    """`hvla ingest` / `hvla train` run jobs in process, which the daemon's sensor does not see:
    run_job alerts their failures itself, with the same record, hook and webhook call."""
    from hvla_platform.cli.orchestration import run_job

    bodies = alert_env
    defs = load_defs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("capture_day_robot", ["2026-11-10|g1-009"])
        out = run_job(defs, instance, "ingest_job", "2026-11-10|g1-009")
        assert not out.success
        lake = LocalLake(tmp_path / "home" / "lake")
        [key] = lake.list_keys("alerts")
        alert = lake.read_json(key)
        assert key.endswith(f"/{out.run_id}.json") and alert["trigger"] == "hvla command line"
        assert (alert["job"], alert["partition"], alert["failed_steps"]) == ("ingest_job", "2026-11-10|g1-009", ["raw_mcap"])
        assert "no complete episodes landed for partition 2026-11-10|g1-009" in alert["error"]
        assert HOOK_CALLS == [alert] and [b["run_id"] for b in bodies] == [out.run_id]
        # the daemon's sensor, should it see the run too, finds it alerted and sends nothing more
        sensor = defs.get_repository_def().get_sensor_def("run_failure_alerts")
        run = instance.get_run_by_id(out.run_id)
        (failure,) = instance.all_logs(out.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        with dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure.dagster_event,
                                                dagster_instance=instance, dagster_run=run,
                                                resources=defs.get_repository_def().get_top_level_resources()) as ctx:
            sensor(ctx.for_run_failure())
        assert len(HOOK_CALLS) == 1 and len(bodies) == 1 and lake.list_keys("alerts") == [key]
