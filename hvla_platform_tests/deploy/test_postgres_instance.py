"""deploy/dagster.yaml, unmodified, against a real PostgreSQL: the instance it configures is
Postgres-backed with the documented limits, and a partition materialized through it lands in
Postgres (run, materializations, asset check results), read back with plain SQL."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from hvla_platform_tests.deploy.conftest import DEPLOY, ProdEnv
from hvla_platform_tests.fixtures.recordings import write_recording

PARTITION = "2026-11-10|g1-001"


def test_instance_file_is_the_committed_one(prod_env: ProdEnv):
    assert (prod_env.dagster_home / "dagster.yaml").read_bytes() == (DEPLOY / "dagster.yaml").read_bytes()


def test_instance_is_postgres_backed_with_stage_limits(prod_env: ProdEnv, prod_instance: dg.DagsterInstance):
    from dagster._core.launcher import DefaultRunLauncher
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    inst = prod_instance
    assert isinstance(inst.run_storage, PostgresRunStorage)
    assert isinstance(inst.event_log_storage, PostgresEventLogStorage)
    assert isinstance(inst.schedule_storage, PostgresScheduleStorage)
    # host, port and database come from DAGSTER_PG_*; the driver is psycopg2
    pg = prod_env.pg
    assert inst.run_storage.postgres_url.startswith("postgresql+psycopg2://")
    assert inst.run_storage.postgres_url.endswith(f"@{pg.host}:{pg.port}/{prod_env.db}")
    assert isinstance(inst.run_coordinator, QueuedRunCoordinator)
    assert isinstance(inst.run_launcher, DefaultRunLauncher)
    assert inst.telemetry_enabled is False
    assert inst.run_monitoring_enabled and inst.run_retries_enabled and inst.run_retries_max_retries == 1

    conc = inst.get_concurrency_config()
    limits = {(t["key"], str(t.get("value"))): t["limit"] for t in conc.run_queue_config.tag_concurrency_limits}
    # one run per partition at a time (docs/operations.md); the stages are limited by their pools
    # (deploy/init-instance.sh sets their limits: test_run_queue.py)
    assert limits == {("dagster/partition", "{'applyLimitPerUniqueValue': True}"): 1}
    assert conc.run_queue_config.max_concurrent_runs == 8
    assert conc.pool_config.default_pool_limit == 1 and conc.pool_config.pool_granularity.value == "run"

    # the instance created Dagster's schema in the throwaway database
    tables = {r[0] for r in prod_env.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "run_tags", "event_logs", "asset_keys", "asset_check_executions", "jobs", "job_ticks",
            "instigators", "dynamic_partitions", "concurrency_limits"} <= tables


def test_ingest_partition_is_stored_in_postgres(prod_env: ProdEnv, prod_instance: dg.DagsterInstance,
                                                tmp_path: Path):
    from hvla_platform.defs.resources import lake_from_env
    from hvla_platform.lib.ingest.landing import land_recording
    from hvla_platform.cli.orchestration import add_partitions, load_defs, run_job

    lake = lake_from_env().get_lake()
    assert Path(lake.root_uri().removeprefix("file://")).resolve() == prod_env.lake_root.resolve()
    landed = [land_recording(lake, write_recording(tmp_path / "recs", episode_id=f"ep-pg-{i}", seed=i))
              for i in (1, 2)]
    assert [r.status for r in landed] == ["landed", "landed"]
    add_partitions(prod_instance, "capture_day_robot", [PARTITION])

    out = run_job(load_defs(), prod_instance, "ingest_job", PARTITION, tags={"hvla/stage": "ingest"})
    assert out.success, out.error
    assert set(out.materializations) == {"raw_mcap", "episodes_hdf5"}
    assert out.checks, "ingest_job evaluated no asset checks"

    # --- read it back from Postgres with SQL, not through Dagster -------------------------------
    (status, job_name), = prod_env.sql("SELECT status, pipeline_name FROM runs WHERE run_id = %s", (out.run_id,))
    assert (status, job_name) == ("SUCCESS", "ingest_job")
    tags = dict(prod_env.sql("SELECT key, value FROM run_tags WHERE run_id = %s", (out.run_id,)))
    assert tags["hvla/stage"] == "ingest" and tags["dagster/partition"] == str(PARTITION)

    mats = prod_env.sql("SELECT asset_key, partition, event FROM event_logs WHERE run_id = %s "
                        "AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY id", (out.run_id,))
    assert [(json.loads(k), p) for k, p, _ in mats] == [(["raw_mcap"], str(PARTITION)),
                                                        (["episodes_hdf5"], str(PARTITION))]
    raw_event = json.loads(mats[0][2])
    assert "raw-mcap/2026-11-10/g1-001" in json.dumps(raw_event), "raw_mcap's URI metadata is not in the stored event"

    # every check result is stored with its status, next to the materialization it evaluated
    checks = prod_env.sql(
        "SELECT c.asset_key, c.check_name, c.execution_status, e.asset_key, e.partition "
        "FROM asset_check_executions c LEFT JOIN event_logs e ON e.id = c.materialization_event_storage_id "
        "WHERE c.run_id = %s", (out.run_id,))
    stored = {(json.loads(k)[0], name): st for k, name, st, _mk, _mp in checks}
    expected = {(asset, name): "SUCCEEDED" if passed else "FAILED" for asset, name, passed, _sev in out.checks}
    assert stored == expected
    assert ("raw_mcap", "readable") in stored and ("episodes_hdf5", "no_nan") in stored
    assert all(mk == k and mp == str(PARTITION) for k, _n, _s, mk, mp in checks), \
        "a check result is not linked to its asset's materialization of this partition"

    parts = set(prod_env.sql("SELECT partitions_def_name, partition FROM dynamic_partitions"))
    assert ("capture_day_robot", PARTITION) in parts

    # and Dagster's own reads of the same storage agree
    ev = prod_instance.get_latest_materialization_event(dg.AssetKey("episodes_hdf5"))
    assert ev is not None and ev.run_id == out.run_id and ev.dagster_event.partition == str(PARTITION)

