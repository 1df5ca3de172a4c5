"""The embedded default's files at the repository root (what `hvla demo` and `hvla ui` use) stay a
working local setup next to the production ones in deploy/: SQLite storage under DAGSTER_HOME and
the code location loaded in process."""

from __future__ import annotations

import shutil

import dagster as dg
import yaml

from hvla_platform_tests.deploy.conftest import REPO_ROOT


def test_root_instance_is_sqlite_under_dagster_home(tmp_path, monkeypatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster._core.storage.runs import SqliteRunStorage

    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as inst:
        assert isinstance(inst.run_storage, SqliteRunStorage)
        assert isinstance(inst.run_coordinator, QueuedRunCoordinator)
        conc = inst.get_concurrency_config()
        assert conc.run_queue_config.max_concurrent_runs == 2
        # one run per stage at a time, by the stage's pool (every asset is in one)
        assert conc.pool_config.default_pool_limit == 1 and conc.pool_config.pool_granularity.value == "run"
        assert inst.telemetry_enabled is False
    assert (home / "history" / "runs.db").is_file() and (home / "schedules" / "schedules.db").is_file()


def test_root_workspace_loads_the_module_in_process():
    ws = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    (entry,) = ws["load_from"]
    assert entry["python_module"]["module_name"] == "hvla_platform.definitions"
    assert entry["python_module"]["location_name"] == "hvla_platform"
