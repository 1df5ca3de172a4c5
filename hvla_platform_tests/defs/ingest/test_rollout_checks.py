"""The rollout checklist in Dagster: materializing ``raw_mcap`` for a partition holding a rollout
evaluates the four ``before_retraining_from_runtime`` checks on it (a rollout without the customer's
permission fails ``customer_permission_checked``, naming the episode), and ``episodes_hdf5`` gets
``rollout_private_frames_filtered`` over the processed frames.

A real rollout (the simulated G1 in the real control loop, recorded by the robot-side recorder) is
landed and materialized on a persistent SQLite instance.
"""

from pathlib import Path

import dagster as dg
import pytest

from hvla_platform_tests.lib.formats.recording.test_runtime_policy import NO_PERMISSION
from hvla_platform_tests.lib.serving.test_rollout_recording import record_rollouts



@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(rollout episode id, ExecuteInProcessResult of raw_mcap + episodes_hdf5 and the rollout checks)."""
    from hvla_platform.cli.orchestration import instance
    from hvla_platform.defs.ingest.assets import raw_mcap
    from hvla_platform.defs.ingest.rollouts import rollout_checklist, rollout_episodes_private_frames
    from hvla_platform.defs.partitions import register_raw_partitions
    from hvla_platform.defs.processing.assets import episodes_hdf5
    from hvla_platform.defs.resources import MlflowResource, lake_from_env
    from hvla_platform.lib.ingest.landing import land_recording

    home = tmp_path_factory.mktemp("hvla")
    env = pytest.MonkeyPatch()
    env.setenv("HVLA_HOME", str(home))
    env.setenv("DAGSTER_HOME", str(home / "dagster"))
    env.delenv("HVLA_LAKE_ROOT", raising=False)
    env.delenv("HVLA_LAKE_BACKEND", raising=False)
    try:
        (folder,), _, _ = record_rollouts(Path(home) / "rec", NO_PERMISSION, max_steps=22)
        inst, lake = instance(), lake_from_env()
        land_recording(lake.get_lake(), folder)
        day, robot = folder.parent.parent.name, folder.parent.name
        register_raw_partitions(inst, [(day, robot)])
        res = dg.materialize([raw_mcap, episodes_hdf5, rollout_checklist, rollout_episodes_private_frames],
                             instance=inst, partition_key=f"{day}|{robot}", raise_on_error=False,
                             resources={"lake": lake, "mlflow": MlflowResource()},
                             run_config={"ops": {"episodes_hdf5": {"config": {"log_to_mlflow": False}}}})
        assert res.success
        yield folder.name, res
    finally:
        env.undo()


def checks(res: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in res.get_asset_check_evaluations() if e.asset_key == dg.AssetKey(asset)}


def test_the_checklist_is_on_the_raw_partition(run):
    ep, res = run
    got = checks(res, "raw_mcap")
    assert {n: got[n].passed for n in ("customer_permission_checked", "private_frames_filtered",
                                        "incident_data_labeled", "deletion_request_process_defined")} == {
        "customer_permission_checked": False, "private_frames_filtered": True, "incident_data_labeled": True,
        "deletion_request_process_defined": True}
    failed = got["customer_permission_checked"]
    assert failed.severity == dg.AssetCheckSeverity.WARN  # kept as incident evidence; the partition is usable
    assert ep in failed.metadata["hvla/failing_episodes"].value
    assert "does not permit retraining" in failed.metadata["hvla/failing_episodes"].value


def test_the_processed_episode_is_checked_for_private_frames(run):
    ep, res = run
    check = checks(res, "episodes_hdf5")["rollout_private_frames_filtered"]
    assert check.passed and check.metadata["hvla/num_episodes"].value == 1
    assert f"`{ep}`: ok — processed episode: 6 private frame(s) of ['head']" in check.metadata["hvla/details"].value
