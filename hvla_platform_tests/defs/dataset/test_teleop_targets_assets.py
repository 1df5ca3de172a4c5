"""The ``teleop_target_lerobot`` / ``teleop_target_rlds`` assets end to end: a simulated seed-003
episode (lib/sim/teleop_pick.py: a pick with a failed grasp and a correction) is landed and ingested
by lib/ingest/teleop.py, then the ``planner`` partition of both assets is materialized: both publish,
both read-back checks pass, the metadata states the derivation, and lineage reaches the raw episode.
A damaged RLDS file makes the read-back check fail (the asset finds the dataset ``cached``; TFDS
refuses the corrupted record)."""

from __future__ import annotations

import dagster as dg
import pytest

from hvla_platform.defs.dataset.teleop import teleop_target_lerobot, teleop_target_rlds
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, RldsDatasetManifest, require_manifest
from hvla_platform.lib.ingest.teleop import ingest_teleop_partition, land_teleop_episode
from hvla_platform.lib.sim.teleop_pick import record_teleop_episode

DAY, ROBOT = "2026-11-30", "ur5e-sim-01"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> LocalLake:
    root = tmp_path_factory.mktemp("teleop-assets")
    lk = LocalLake(root / "lake")
    folder = record_teleop_episode(root / "rec", episode_id="tp-0001", robot_id=ROBOT, capture_day=DAY, seed=3)
    assert land_teleop_episode(lk, folder).status == "landed"
    assert [e.usable for e in ingest_teleop_partition(lk, DAY, ROBOT).episodes] == [True]
    return lk


def _run(lake: LocalLake, asset: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as inst:
        return dg.materialize([asset], instance=inst, partition_key="planner", raise_on_error=False,
                              resources={"lake": LakeResource(root=str(lake.root))})


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def results(lake) -> dict[str, dg.ExecuteInProcessResult]:
    return {a.key.path[-1]: _run(lake, a) for a in (teleop_target_lerobot, teleop_target_rlds)}


def test_planner_as_lerobot_and_rlds(lake, results):
    for name, check in (("teleop_target_lerobot", "lerobot_readback"), ("teleop_target_rlds", "rlds_readback")):
        result = results[name]
        assert result.success, name
        checks = _checks(result)
        assert checks[check].passed, checks[check].metadata
        assert checks["rights_standing"].passed
        md = result.asset_materializations_for_node(name)[0].metadata
        assert md["status"].value == "materialized"
        assert md["hvla/target"].value == "planner" and md["hvla/phases"].value == "teleop"
        assert md["hvla/stop_frames_added"].value == 3
        # the raw teleop episode is a raw leaf: counted in the summary, as robot recordings are
        assert "= 1 raw episode(s) from 1 robot(s), 1 capture day(s)" in md["hvla/lineage_upstream"].value
    lr = require_manifest(lake, "lerobot/hvla/ur5e_planner/teleop-planner", LeRobotDatasetManifest)
    rl = require_manifest(lake, "rlds/ur5e_vla_planner", RldsDatasetManifest)
    assert lr.num_frames == rl.num_steps and lr.tasks == rl.tasks and lr.tasks[0]
    assert [i.key for i in lr.inputs] == [i.key for i in rl.inputs] == [f"raw-teleop/{DAY}/{ROBOT}/tp-0001"]


def test_a_damaged_rlds_dataset_fails_the_readback_check(lake, results):
    assert results["teleop_target_rlds"].success
    shard = next((lake.root / "rlds" / "ur5e_vla_planner").rglob("*.tfrecord*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.unlink()  # a new file: never write through a hard link into another artifact
    shard.write_bytes(bytes(data))
    result = _run(lake, teleop_target_rlds)
    md = result.asset_materializations_for_node("teleop_target_rlds")[0].metadata
    assert md["status"].value == "cached"
    check = _checks(result)["rlds_readback"]
    assert not check.passed
    assert "rlds_worker read" in check.metadata["hvla/problems"].value
