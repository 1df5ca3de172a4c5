"""The production run queue on Postgres: runs submitted through the instance (the way the UI,
sensors and `dagster job launch` submit them) wait QUEUED, and the daemon's queued-run coordinator
keeps each lifecycle stage within its pool's limit, with or without the stage tag, while other
stages go ahead: one training run at a time, and (the limit lowered to 1 here) one ingest run.

Runs are launched for real: the daemon's dequeue step (one iteration of the loop
`dagster-daemon run` repeats) hands them to the DefaultRunLauncher, which starts each run worker
through the gRPC code server, as in docker-compose. Each iteration is driven by the test, so what
gets dequeued is deterministic.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Iterator

import dagster as dg
import pytest

from hvla_platform_tests.deploy.conftest import (DEPLOY, VENV_BIN, CodeServer, ProdEnv, start_code_server,
                                                 stop_code_server)
from hvla_platform_tests.fixtures.recordings import write_recording

INGEST_PARTITION = "2026-11-10|g1-002"
INGEST_PARTITION_2 = "2026-11-10|g1-003"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


@pytest.fixture(scope="module")
def code_server(prod_env: ProdEnv) -> Iterator[CodeServer]:
    """The code location served over gRPC with the production environment (run workers it starts
    inherit DAGSTER_PG_* and the lake settings)."""
    server = start_code_server(prod_env.root, {**os.environ, **prod_env.env})
    yield server
    stop_code_server(server.proc)


@pytest.fixture(scope="module")
def initialized_instance(prod_env: ProdEnv, prod_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The production instance after deploy/init-instance.sh (what docker-compose's `dagster-init`
    service runs at every deploy)."""
    env = {**os.environ, **prod_env.env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           # one ingest run at a time (the deployed default is 4), to see the limit hold in one test
           "HVLA_INGEST_POOL_LIMIT": "1"}
    env.pop("HVLA_RELEASE_POOL_LIMIT", None), env.pop("HVLA_TRAINING_POOL_LIMIT", None)
    res = subprocess.run(["sh", str(DEPLOY / "init-instance.sh")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    limits = prod_env.sql("SELECT concurrency_key, \"limit\", using_default_limit FROM concurrency_limits")
    assert {key: (limit, from_default) for key, limit, from_default in limits} == {
        "ingest": (1, False), "release": (2, False), "training": (1, False)}
    return prod_instance


def _launch(inst: dg.DagsterInstance, ws: Path, job: str, tags: dict[str, str], run_config: dict | None = None) -> str:
    """Create and submit a run exactly as `dagster job launch -w WS -j JOB --tags ... --config-json ...`."""
    from dagster._cli.job import execute_launch_command
    from dagster_shared.cli import WorkspaceOpts

    run = execute_launch_command(instance=inst, workspace_opts=WorkspaceOpts(workspace=[str(ws)]), job_name=job,
                                 tags=json.dumps(tags), config_json=json.dumps(run_config or {}))
    return run.run_id


def _statuses(env: ProdEnv, run_ids: list[str]) -> dict[str, str]:
    """Run id → status, read from the runs table."""
    return dict(env.sql("SELECT run_id, status FROM runs WHERE run_id = ANY(%s)", (run_ids,)))


def _wait_terminal(env: ProdEnv, run_ids: list[str], server: CodeServer, timeout: float = 90.0) -> None:
    """Poll Postgres until every run is finished; fail with the code server's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        st = _statuses(env, run_ids)
        if all(s in TERMINAL for s in st.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"runs not finished after {timeout:.0f} s: {st}\ncode server log:\n"
                                 f"{server.log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_queue_keeps_each_stage_within_its_pool_limit(prod_env: ProdEnv, initialized_instance: dg.DagsterInstance,
                                                 code_server: CodeServer, tmp_path: Path):
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._daemon.run_coordinator import QueuedRunCoordinatorDaemon

    from hvla_platform.cli.train import training_run_config
    from hvla_platform.defs.resources import lake_from_env
    from hvla_platform.lib.ingest.landing import land_recording
    from hvla_platform.cli.orchestration import add_partitions, load_defs

    inst, ws = initialized_instance, code_server.workspace
    # two ingest partitions with a real recording each; three experiments whose release does not exist
    for i, robot in enumerate(("g1-002", "g1-003")):
        assert land_recording(lake_from_env().get_lake(), write_recording(
            tmp_path / "recs", episode_id=f"ep-q-{i + 1}", robot_id=robot, seed=3 + i)).status == "landed"
    add_partitions(inst, "capture_day_robot", [INGEST_PARTITION, INGEST_PARTITION_2])
    add_partitions(inst, "experiment", ["exp-q-1", "exp-q-2", "exp-q-3"])
    defs = load_defs()
    ingest_tags, ingest_tags_2 = (dict(defs.resolve_job_def("ingest_job").get_tags_for_partition_key(
        p, selected_asset_keys=None)) for p in (INGEST_PARTITION, INGEST_PARTITION_2))
    train_cfg = training_run_config("no-such-release", steps=1, seed=0, trials=0, config_name="hvla_g1_reach_small")

    t1 = _launch(inst, ws, "training_job", {"hvla/stage": "training", "dagster/partition": "exp-q-1"}, train_cfg)
    t2 = _launch(inst, ws, "training_job", {"hvla/stage": "training", "dagster/partition": "exp-q-2"}, train_cfg)
    # submitted without the stage tag (`dagster job launch` applies the job's definition tags, not
    # its run_tags): the `training` pool holds it back whatever its tags
    t3 = _launch(inst, ws, "training_job", {"dagster/partition": "exp-q-3"}, train_cfg)
    i1 = _launch(inst, ws, "ingest_job", {"hvla/stage": "ingest", **ingest_tags})
    # the second partition without the stage tag, as a selection materialized from the asset graph
    # comes: the `ingest` pool (limit 1 here) holds it back while i1 is in progress
    i2 = _launch(inst, ws, "ingest_job", ingest_tags_2)
    runs = [t1, t2, t3, i1, i2]

    # submitted, nothing started: all QUEUED in Postgres with their stage tags
    assert _statuses(prod_env, runs) == {r: "QUEUED" for r in runs}
    stage = dict(prod_env.sql("SELECT run_id, value FROM run_tags WHERE key = 'hvla/stage' AND run_id = ANY(%s)",
                              (runs,)))
    declared = defs.resolve_job_def("training_job").tags.get("hvla/stage")
    ingest_declared = defs.resolve_job_def("ingest_job").tags.get("hvla/stage")
    assert stage == {t1: "training", t2: "training", i1: "ingest", **({t3: declared} if declared else {}),
                     **({i2: ingest_declared} if ingest_declared else {})}

    daemon = QueuedRunCoordinatorDaemon(interval_seconds=5)
    with WorkspaceProcessContext(inst, WorkspaceFileTarget(paths=[str(ws)])) as ctx:
        dequeued = []
        for expected_training in (t1, t2, t3):
            list(daemon.run_iteration(ctx))  # one pass of the daemon's queued-run coordinator
            st = _statuses(prod_env, runs)
            # exactly one more training run left the queue, in submission order ...
            assert [t for t in (t1, t2, t3) if st[t] != "QUEUED"] == dequeued + [expected_training], st
            # ... while the ingest run went ahead in the first pass, next to training; the second
            # ingest run waited for the first to finish (the first pass waits for both below)
            assert st[i1] != "QUEUED", "the ingest run waited behind training"
            assert (st[i2] == "QUEUED") == (expected_training == t1), st
            dequeued.append(expected_training)
            _wait_terminal(prod_env, [expected_training, i1], code_server)
        _wait_terminal(prod_env, [i2], code_server)

    rows = prod_env.sql("SELECT run_id, status, start_time, end_time FROM runs WHERE run_id = ANY(%s)", (runs,))
    info = {r: (s, start, end) for r, s, start, end in rows}
    # the ingest runs really ran through the code server, one after the other, and materialized
    # their partitions
    for run_id, partition in ((i1, INGEST_PARTITION), (i2, INGEST_PARTITION_2)):
        assert info[run_id][0] == "SUCCESS", info[run_id]
        mats = prod_env.sql("SELECT asset_key FROM event_logs WHERE run_id = %s AND partition = %s AND "
                            "dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id, partition))
        assert sorted(json.loads(k)[0] for (k,) in mats) == ["episodes_hdf5", "raw_mcap"]
    assert info[i1][2] <= info[i2][1], (info[i1], info[i2])
    # the training runs really started, failed on the missing release, and never overlapped
    for t in (t1, t2, t3):
        assert info[t][0] == "FAILURE" and info[t][1] is not None and info[t][2] is not None, info[t]
        (failure,) = prod_env.sql("SELECT event FROM event_logs WHERE run_id = %s AND step_key = 'checkpoint' "
                                  "AND dagster_event_type = 'STEP_FAILURE'", (t,))
        assert "no-such-release" in failure[0]
    spans = sorted((info[t][1], info[t][2]) for t in (t1, t2, t3))
    assert all(prev_end <= next_start for (_, prev_end), (next_start, _) in zip(spans, spans[1:])), spans
