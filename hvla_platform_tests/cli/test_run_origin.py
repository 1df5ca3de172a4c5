"""Runs ``hvla`` executes in process are recorded under the code location's job origin, as the
daemon's runs are (the UI's Overview timeline lists only runs with one), and a re-execution of such a
run, which inherits its owner tag, is never taken for a run of a dead ``hvla`` process."""

from __future__ import annotations

import socket
import uuid

import dagster as dg
import pytest

from hvla_platform.cli.orchestration import OWNER_TAG, PARENT_RUN_TAG, fail_dead_runs, run_job
from hvla_platform.cli.run_origin import code_location_job_origin, recorded_under


@dg.op
def work() -> int:
    return 1


@dg.job(partitions_def=dg.StaticPartitionsDefinition(["p1"]), tags={"hvla/stage": "ingest"})
def tiny_job():
    work()


@pytest.fixture()
def inst(tmp_path, monkeypatch):
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield instance


def test_a_command_line_run_is_recorded_under_the_code_location_of_the_workspace(inst):
    out = run_job(dg.Definitions(jobs=[tiny_job]), inst, "tiny_job", "p1")
    assert out.success
    run = inst.get_run_by_id(out.run_id)
    origin = run.remote_job_origin
    assert (origin.location_name, origin.repository_origin.repository_name, origin.job_name) == (
        "hvla_platform", "__repository__", "tiny_job")
    # the rest of the run is execute_in_process's own: partition, tags, status
    assert run.tags["dagster/partition"] == "p1" and run.tags["hvla/trigger"] == "hvla command line"
    assert run.tags[OWNER_TAG] and run.status == dg.DagsterRunStatus.SUCCESS
    # only inside the block: the instance's own method is back afterwards
    assert "create_run_for_job" not in vars(inst)


def test_the_origin_is_the_one_code_location_the_workspace_names(tmp_path):
    ws = tmp_path / "workspace.yaml"
    ws.write_text("load_from:\n  - python_module: {module_name: hvla_platform.definitions, location_name: lab}\n")
    assert code_location_job_origin("ingest_job", ws).location_name == "lab"
    ws.write_text("load_from:\n  - python_module: {module_name: a, location_name: one}\n"
                  "  - python_module: {module_name: b, location_name: two}\n")
    with pytest.raises(ValueError, match="loads 2 code locations"):
        code_location_job_origin("ingest_job", ws)


def test_a_run_created_with_its_own_origin_keeps_it(inst):
    mine = code_location_job_origin("tiny_job")
    other = type(mine)(repository_origin=mine.repository_origin, job_name="other_job")
    with recorded_under(inst, mine):
        run = inst.create_run_for_job(tiny_job, remote_job_origin=other, tags={"dagster/partition": "p1"})
    assert run.remote_job_origin.job_name == "other_job"


def _started_run(inst: dg.DagsterInstance, tags: dict[str, str]) -> str:
    run = inst.create_run_for_job(tiny_job, run_id=str(uuid.uuid4()), tags=tags,
                                  status=dg.DagsterRunStatus.STARTED)
    return run.run_id


def test_a_reexecution_of_a_dead_commands_run_is_not_failed_as_if_it_were_that_command(inst):
    dead = f"{socket.gethostname()}:999999999:1.0"  # no such pid on this machine
    own = _started_run(inst, {OWNER_TAG: dead})
    reexecution = _started_run(inst, {OWNER_TAG: dead, PARENT_RUN_TAG: own})
    failed = fail_dead_runs(inst, echo=lambda _: None)
    assert failed == [own]
    assert inst.get_run_by_id(own).status == dg.DagsterRunStatus.FAILURE
    assert inst.get_run_by_id(reexecution).status == dg.DagsterRunStatus.STARTED
