"""The local run launcher's worker health check (``hvla_platform/defs/automation/run_launcher.py``)
against real processes on a real SQLite instance configured by the shipped ``dagster.yaml``: a live
worker is RUNNING, a worker killed with ``kill -9`` is FAILED (and Dagster's own run-monitoring
step then fails the run with the launcher's message, and its MLflow run), a run the launcher cannot
judge is left alone. The daemon end to end: ``ui/test_daemon_run_monitoring.py``."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._daemon.monitoring.run_monitoring import monitor_started_run

from hvla_platform.defs.automation.run_launcher import LAUNCHED_ON_TAG, HvlaRunLauncher
from hvla_platform.lib.core import tracking
from hvla_platform_tests import procs
from hvla_platform_tests.paths import REPO_ROOT

SLEEPER = "import time; time.sleep(600)"


@dg.op
def _noop() -> None:
    pass


@dg.job
def worker_job() -> None:
    _noop()


@pytest.fixture()
def instance(tmp_path, monkeypatch):
    """A real SQLite instance with the repository's dagster.yaml (as ``hvla`` copies it); the MLflow
    store the launcher looks at is under ``tmp_path`` (and absent unless a test creates it)."""
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    inst = dg.DagsterInstance.from_config(str(home))
    try:
        assert isinstance(inst.run_launcher, HvlaRunLauncher)
        assert inst.run_launcher.supports_check_run_worker_health and inst.run_monitoring_enabled
        yield inst
    finally:
        inst.dispose()


def started_run(inst: dg.DagsterInstance, *, socket_path: str | None = "/tmp/hvla-test.sock",
                launched_on: str | None = None) -> dg.DagsterRun:
    """A STARTED run carrying the tags a launch through a code server leaves (``DefaultRunLauncher``:
    the code server's address; :class:`HvlaRunLauncher`: this host)."""
    grpc = ({"host": "localhost", "socket": socket_path} if socket_path
            else {"host": "hvla-code", "port": 4000})
    return inst.create_run_for_job(worker_job, status=dg.DagsterRunStatus.STARTED,
                                   tags={GRPC_INFO_TAG: json.dumps(grpc),
                                         LAUNCHED_ON_TAG: launched_on or socket.gethostname()})


def report_worker_pid(inst: dg.DagsterInstance, run: dg.DagsterRun, pid: int,
                      at: float | None = None) -> None:
    """The engine event a run worker writes when it starts (``dagster/_grpc/impl.py``), at ``at``."""
    event = DagsterEvent(event_type_value=dg.DagsterEventType.ENGINE_EVENT.value, job_name=run.job_name,
                         message=f"Started process for run (pid: {pid}).",
                         event_specific_data=EngineEventData.in_process(pid))
    inst.report_dagster_event(event, run_id=run.run_id, timestamp=at)


def dead_pid() -> int:
    """The pid of a process that was started, then killed with SIGKILL and reaped."""
    p = procs.python(SLEEPER)
    try:
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
    finally:
        procs.stop(p)
    return p.pid


def monitor(inst: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    """One pass of Dagster's run monitoring over ``run`` (what the daemon does every poll interval);
    the run afterwards."""
    record = inst.get_run_record_by_id(run.run_id)
    monitor_started_run(inst, None, record, logging.getLogger("run-monitoring"))
    return inst.get_run_by_id(run.run_id)


def failure_message(inst: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    (event,) = [e for e in inst.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)]
    return event.message


def test_a_live_worker_is_running_and_a_killed_one_fails_its_run(instance):
    with procs.running([procs.python(SLEEPER)]) as (worker,):
        run = started_run(instance)
        report_worker_pid(instance, run, worker.pid)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.RUNNING, health
        assert monitor(instance, run).status == dg.DagsterRunStatus.STARTED

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED, health
        assert f"the run worker (pid {worker.pid} on {socket.gethostname()}" in health.msg
        assert "is gone (killed or crashed)" in health.msg

        assert monitor(instance, run).status == dg.DagsterRunStatus.FAILURE
        msg = failure_message(instance, run)
        assert "Detected run worker status FAILED" in msg and f"(pid {worker.pid} on" in msg, msg


def test_a_pid_now_used_by_a_younger_process_is_a_dead_worker(instance):
    """A pid reused after the worker died (or after a reboot) names a process started after the
    worker reported it: the worker is gone."""
    with procs.running([procs.python(SLEEPER)]) as (other,):
        run = started_run(instance)
        report_worker_pid(instance, run, other.pid, at=time.time() - 3600)
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status == WorkerStatus.FAILED, health
        assert f"pid {other.pid} now belongs to a process started at" in health.msg
        # the same process, reported after it started, is the worker and alive
        run2 = started_run(instance)
        report_worker_pid(instance, run2, other.pid)
        assert instance.run_launcher.check_run_worker_health(run2).status == WorkerStatus.RUNNING


def test_runs_it_cannot_judge_are_left_running(instance):
    """No pid event (a run ``hvla`` executes in process), or a worker on another machine: the daemon
    fails every status but RUNNING/SUCCESS, so these must be RUNNING, never UNKNOWN."""
    in_process = started_run(instance)  # no pid event
    health = instance.run_launcher.check_run_worker_health(in_process)
    assert (health.status, health.msg.startswith("not checked")) == (WorkerStatus.RUNNING, True), health
    assert monitor(instance, in_process).status == dg.DagsterRunStatus.STARTED

    pid = dead_pid()
    over_tcp = started_run(instance, socket_path=None)  # a code server in another container/machine
    other_host = started_run(instance, launched_on=f"not-{socket.gethostname()}")
    for run in (over_tcp, other_host):
        report_worker_pid(instance, run, pid)
        health = instance.run_launcher.check_run_worker_health(run)
        assert (health.status, health.msg.startswith("not checked")) == (WorkerStatus.RUNNING, True), health
        assert monitor(instance, run).status == dg.DagsterRunStatus.STARTED
    # the same dead pid, launched here through a local code server, is judged
    here = started_run(instance)
    report_worker_pid(instance, here, pid)
    assert instance.run_launcher.check_run_worker_health(here).status == WorkerStatus.FAILED


TRACKED_SLEEPER = """
import pathlib, sys, time
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.tracking import TrackedRun
run = TrackedRun(settings.mlflow_tracking_uri(), "hvla-launcher-test", run_name="worker")
pathlib.Path(sys.argv[1]).write_text(run.run_id)
time.sleep(600)  # killed here
"""


def test_the_mlflow_run_of_a_dead_worker_is_failed_too(instance, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # the launcher's (set by the fixture) and the worker's
    monkeypatch.setenv("HVLA_MLFLOW_ARTIFACT_ROOT", (tmp_path / "mlruns").as_uri())
    ready = tmp_path / "ready"
    with procs.running([procs.python(TRACKED_SLEEPER, str(ready), env=dict(os.environ),
                                     log=tmp_path / "worker.log")]) as (worker,):
        procs.wait_for_file(ready, 120, [worker])
        time.sleep(0.2)  # the file is written in one call; let it be complete
        mlflow_run = ready.read_text()
        run = started_run(instance)
        report_worker_pid(instance, run, worker.pid)
        assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED, health
    assert mlflow_run in health.msg, health.msg
    from mlflow import MlflowClient  # noqa: PLC0415 - deferred: mlflow takes seconds to import

    info = MlflowClient(tracking_uri=uri).get_run(mlflow_run)
    assert info.info.status == "FAILED"
    assert f":{worker.pid}:" in info.data.tags[tracking.FAILURE_REASON_TAG]
