"""Two ``hvla ingest --materialize`` of the same partition started together on a fresh
``HVLA_HOME`` (issue 12 §2), as real subprocesses: both succeed (no first-use migration race), the
runs do not overlap (one materialization per partition at a time), the work is done once (the
second finds the artifact ``cached``) and MLflow holds one QA record."""

from __future__ import annotations

import sys
import shutil

import dagster as dg

from hvla_platform_tests import procs
from hvla_platform_tests.cli.test_crash_recovery import PARTITION, RECORDING, _env, _instance, _mlflow


def test_two_materializations_of_one_partition_on_a_fresh_home_run_one_after_the_other(tmp_path):
    home, rec = tmp_path / "home", tmp_path / "recs" / RECORDING.name
    shutil.copytree(RECORDING, rec)
    logs = [tmp_path / f"ingest-{i}.log" for i in range(2)]
    with procs.running([]) as ps:
        for log in logs:
            ps.append(procs.spawn([sys.executable, "-m", "hvla_platform.cli", "ingest", str(rec.parent),
                                   "--materialize"], env=_env(home), log=log))
        codes = procs.wait_all(ps, 600)
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], "\n----\n".join(o[-2500:] for o in outs)
    hdf5 = sorted(line.split("episodes_hdf5:")[1].split("→")[0].strip() for o in outs for line in o.splitlines()
                  if "✓ episodes_hdf5:" in line)
    assert hdf5 == ["cached", "materialized"]
    inst = _instance(home)
    try:
        runs = inst.get_run_records(filters=dg.RunsFilter(job_name="ingest_job"))
        assert [r.dagster_run.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
        assert {r.dagster_run.tags["dagster/partition"] for r in runs} == {PARTITION}
        first, second = sorted(runs, key=lambda r: r.start_time)
        assert first.end_time <= second.start_time, "the two runs of the partition overlapped"
    finally:
        inst.dispose()
    client = _mlflow(home)
    exp = client.get_experiment_by_name("hvla-qa")
    qa = client.search_runs([exp.experiment_id], filter_string=f"tags.`hvla.partition` = '{PARTITION}'")
    assert [r.info.status for r in qa] == ["FINISHED"]
