"""Crashes never block later work (issue 12 §1), with a real ``kill -9`` of a subprocess:

* a run an ``hvla`` process executes in process is marked failed (with the reason) by the next
  start, and so is the MLflow run it left RUNNING;
* a crash between publishing a partition's HDF5 artifact and logging its QA to MLflow is repaired
  by the next materialization, which finds the artifact ``cached`` and logs the record from it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg

from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.lake import MANIFEST_NAME
from hvla_platform_tests import procs
from hvla_platform_tests.paths import REPO_ROOT

_REDIRECTING = ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI", "HVLA_MLFLOW_ARTIFACT_ROOT",
                "DAGSTER_HOME", "HVLA_HOME")
RECORDING = REPO_ROOT / "data" / "recordings" / "2026-11-10" / "g1-001" / "ep-20261110-g1-001-001"
PARTITION = "2026-11-10|g1-001"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    env.update(HVLA_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


def _instance(home: Path) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(str(home / "dagster"))


def _mlflow(home: Path):
    from mlflow import MlflowClient  # noqa: PLC0415 - deferred: mlflow takes seconds to import

    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")


SLEEPY_RUN = """
import pathlib, sys, time
import dagster as dg
from hvla_platform.cli.orchestration import instance, run_job
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.tracking import TrackedRun

ready = pathlib.Path(sys.argv[1])

@dg.op
def work(context):
    run = TrackedRun(settings.mlflow_tracking_uri(), "hvla-crash-test", run_name="sleepy")
    ready.write_text(context.run_id + " " + run.run_id)
    time.sleep(600)  # killed here

@dg.job(partitions_def=dg.StaticPartitionsDefinition(["p1"]), tags={"hvla/stage": "training"})
def sleepy_job():
    work()

run_job(dg.Definitions(jobs=[sleepy_job]), instance(), "sleepy_job", "p1")
"""

NEXT_START = "from hvla_platform.cli.orchestration import instance; instance()"


def test_a_killed_in_process_run_and_its_mlflow_run_are_marked_failed_on_the_next_start(tmp_path):
    home, ready = tmp_path / "home", tmp_path / "ready"
    with procs.running([procs.python(SLEEPY_RUN, str(ready), env=_env(home), log=tmp_path / "run.log")]) as ps:
        procs.wait_for_file(ready, 180, ps)
        os.kill(ps[0].pid, signal.SIGKILL)  # kill -9 mid-run
        ps[0].wait(timeout=30)
    dagster_run_id, mlflow_run_id = ready.read_text().split()
    inst = _instance(home)
    try:
        assert inst.get_run_by_id(dagster_run_id).status == dg.DagsterRunStatus.STARTED  # the zombie
        nxt = subprocess.run([sys.executable, "-c", NEXT_START], cwd=REPO_ROOT, env=_env(home), capture_output=True,
                             text=True, timeout=180)
        assert nxt.returncode == 0, nxt.stderr[-2000:]
        assert f"run {dagster_run_id[:8]} (sleepy_job, partition p1)" in nxt.stdout
        run = inst.get_run_by_id(dagster_run_id)
        assert run.status == dg.DagsterRunStatus.FAILURE
        failure = inst.get_records_for_run(dagster_run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
        assert failure and "is gone (killed or crashed)" in failure[-1].event_log_entry.dagster_event.message
    finally:
        inst.dispose()
    mlrun = _mlflow(home).get_run(mlflow_run_id)
    assert mlrun.info.status == "FAILED"
    assert "is gone (killed or crashed)" in mlrun.data.tags["hvla.failure_reason"]


CRASH_BEFORE_QA_LOG = """
import os, signal, sys
import hvla_platform.defs.processing.assets as processing_assets
from hvla_platform.cli.main import main

def die(*args, **kwargs):  # the HDF5 artifact is published; the process dies before MLflow hears of it
    os.kill(os.getpid(), signal.SIGKILL)

processing_assets.log_partition_qa = die
sys.exit(main(["ingest", sys.argv[1], "--materialize"]))
"""


def test_a_crash_between_publish_and_qa_logging_is_repaired_by_the_next_materialization(tmp_path):
    home, rec = tmp_path / "home", tmp_path / "recs" / RECORDING.name
    shutil.copytree(RECORDING, rec)
    with procs.running([procs.python(CRASH_BEFORE_QA_LOG, str(rec.parent), env=_env(home),
                                     log=tmp_path / "crash.log")]) as ps:
        procs.wait_all(ps, 400)
    assert ps[0].returncode == -signal.SIGKILL, (tmp_path / "crash.log").read_text()[-2000:]
    assert (home / "lake" / episodes_prefix("2026-11-10", "g1-001") / MANIFEST_NAME).is_file()  # published
    again = subprocess.run([sys.executable, "-m", "hvla_platform.cli", "ingest", str(rec.parent), "--materialize"],
                           cwd=REPO_ROOT, env=_env(home), capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "episodes_hdf5: cached" in again.stdout
    client = _mlflow(home)
    exp = client.get_experiment_by_name("hvla-qa")
    assert exp is not None, "no QA record was logged"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`hvla.partition` = '{PARTITION}'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert runs[0].data.tags["hvla.artifact_fingerprint"]
    assert runs[0].data.metrics["episodes"] == 1.0
    inst = _instance(home)
    try:  # the killed run does not stay STARTED either
        statuses = sorted(r.status.value for r in inst.get_runs(filters=dg.RunsFilter(job_name="ingest_job")))
        assert statuses == ["FAILURE", "SUCCESS"]
    finally:
        inst.dispose()
