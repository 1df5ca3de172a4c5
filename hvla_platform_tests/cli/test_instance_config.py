"""The embedded default instance (``dagster.yaml``, copied by ``ensure_dagster_home``) queues at
most one run per partition, whoever launched it, and monitors launched runs (issue 12 §1, §2)."""

import dagster as dg

from hvla_platform.cli.orchestration import READY_MARKER, ensure_dagster_home
from hvla_platform_tests.cli.test_crash_recovery import _env


def test_the_local_instance_limits_runs_per_partition_and_monitors_runs(tmp_path, monkeypatch):
    for k, v in _env(tmp_path / "home").items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = ensure_dagster_home()
    assert (home / READY_MARKER).is_file()
    with dg.DagsterInstance.from_config(str(home)) as inst:
        limits = inst.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert inst.run_monitoring_enabled
        assert inst.run_monitoring_max_resume_run_attempts == 0
