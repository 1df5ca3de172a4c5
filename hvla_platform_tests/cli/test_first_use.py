"""Several processes using a fresh ``HVLA_HOME`` at the same moment (issue 12 §2): the Dagster
instance and the MLflow store are initialised once, under a file lock, whoever comes first.

Real subprocesses, released together once all of them have imported their libraries."""

from __future__ import annotations

import os
from pathlib import Path


from hvla_platform_tests import procs

N = 4
_REDIRECTING = ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI", "HVLA_MLFLOW_ARTIFACT_ROOT",
                "DAGSTER_HOME", "HVLA_HOME")

_BARRIER = """
import pathlib, sys, time
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
deadline = time.monotonic() + 120
while not go.exists() and time.monotonic() < deadline:
    time.sleep(0.002)
"""

MLFLOW_USER = """
from hvla_platform.lib.core.tracking import TrackedRun
""" + _BARRIER + """
run = TrackedRun(sys.argv[3], "hvla-qa", run_name="first use", artifact_dir=sys.argv[4])
run.log_metrics({"x": 1.0})
run.finish()
print("ok", run.run_id)
"""

DAGSTER_USER = """
from hvla_platform.cli.orchestration import instance
""" + _BARRIER + """
inst = instance()
inst.get_runs(limit=1)
inst.all_instigator_state()
inst.add_dynamic_partitions("release", ["p-" + sys.argv[3]])
print("ok")
"""


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING}
    env["HVLA_HOME"] = str(home)
    return env


def _race(tmp_path: Path, code: str, args_of) -> list[tuple[int, str]]:
    """Start N copies of ``code``, release them together, return (exit code, log) of each."""
    home = tmp_path / "home"
    sync = tmp_path / "sync"
    sync.mkdir()
    go = sync / "go"
    logs = [tmp_path / f"proc-{i}.log" for i in range(N)]
    with procs.running([]) as ps:
        for i in range(N):
            ps.append(procs.python(code, str(sync / f"ready-{i}"), str(go), *args_of(i, home),
                                   env=_env(home), log=logs[i]))
        for i in range(N):
            procs.wait_for_file(sync / f"ready-{i}", 120, ps)
        go.touch()
        codes = procs.wait_all(ps, 180)
    return [(c, log.read_text()) for c, log in zip(codes, logs)]


def test_processes_starting_together_on_a_fresh_mlflow_store_all_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    results = _race(tmp_path, MLFLOW_USER, lambda i, home: (uri, (tmp_path / "mlruns").as_uri()))
    failed = [log[-1500:] for c, log in results if c != 0]
    assert not failed, f"{len(failed)} of {N} failed; first:\n{failed[0] if failed else ''}"
    from mlflow import MlflowClient  # noqa: PLC0415 - deferred: mlflow takes seconds to import

    client = MlflowClient(tracking_uri=uri)
    exps = [e for e in client.search_experiments() if e.name == "hvla-qa"]
    assert len(exps) == 1
    assert len(client.search_runs([exps[0].experiment_id])) == N


def test_processes_starting_together_on_a_fresh_dagster_instance_all_succeed(tmp_path):
    results = _race(tmp_path, DAGSTER_USER, lambda i, home: (str(i),))
    failed = [log[-1500:] for c, log in results if c != 0]
    assert not failed, f"{len(failed)} of {N} failed; first:\n{failed[0] if failed else ''}"
    import dagster as dg  # noqa: PLC0415 - deferred: only this test needs it

    inst = dg.DagsterInstance.from_config(str(tmp_path / "home" / "dagster"))
    try:
        assert sorted(inst.get_dynamic_partitions("release")) == [f"p-{i}" for i in range(N)]
    finally:
        inst.dispose()
