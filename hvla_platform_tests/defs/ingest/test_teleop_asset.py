"""The ``raw_teleop`` asset: registered by the defs folder under its own key and partitions, it
publishes a partition's teleop episodes and reports each raw check per partition; a quarantined
episode fails its check (WARN while another episode is usable) and is named in the metadata."""

from __future__ import annotations

import os

import dagster as dg

from hvla_platform.defs.ingest.teleop import TELEOP_PARTITIONS_NAME, raw_teleop, register_teleop_partitions
from hvla_platform.defs.resources import LakeResource
from hvla_platform.definitions import defs
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.teleop import (TELEOP_CHECKS, find_teleop_episodes, land_teleop_episode,
                                             list_teleop_landing_partitions)
from hvla_platform_tests.lib.formats.teleop.test_teleop_pkl_episode import episode_folder


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_the_defs_folder_registers_raw_teleop_beside_raw_mcap():
    graph = defs().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_teleop", "raw_mcap"} <= keys
    node = graph.get(dg.AssetKey("raw_teleop"))
    assert node.partitions_def.name == TELEOP_PARTITIONS_NAME != graph.get(dg.AssetKey("raw_mcap")).partitions_def.name
    spec = node.assets_def.specs_by_key[dg.AssetKey("raw_teleop")]
    assert spec.group_name == "ingest" and spec.owners == ["team:data-collection"] and spec.kinds
    assert [c.name for c in node.assets_def.check_specs] == list(TELEOP_CHECKS)


def test_materializing_a_partition_publishes_and_reports_the_checks(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    episode_folder(tmp_path / "rec", "tp-good")
    episode_folder(tmp_path / "rec", "tp-evil",
                   mutate=lambda f: f[2].update(phase=_RunsCode(f"touch {tmp_path / 'pwned'}")))
    for folder in find_teleop_episodes(tmp_path / "rec"):
        assert land_teleop_episode(lake, folder).status == "landed"
    with dg.DagsterInstance.ephemeral() as inst:
        assert register_teleop_partitions(inst, list_teleop_landing_partitions(lake)) == ["2026-11-14|ur5e-001"]
        assert register_teleop_partitions(inst, list_teleop_landing_partitions(lake)) == []
        result = dg.materialize([raw_teleop], instance=inst, partition_key="2026-11-14|ur5e-001",
                                resources={"lake": LakeResource(root=str(lake.root))})
        assert result.success
        md = result.asset_materializations_for_node("raw_teleop")[0].metadata
        assert md["hvla/num_episodes"].value == 1 and md["hvla/num_quarantined"].value == 1
        assert md["hvla/episode_ids"].value == "tp-good" and md["hvla/num_frames"].value == 9
        assert "refused global" in md["hvla/quarantined"].value and "tp-evil" in md["hvla/quarantined"].value
        assert "internal_training" in md["hvla/allowed_uses"].value
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert set(checks) == set(TELEOP_CHECKS)
        assert not checks["readable"].passed and checks["readable"].severity == dg.AssetCheckSeverity.WARN
        assert checks["rights"].passed and checks["gripper_range"].passed is False  # not checked when unreadable
        assert inst.get_run_by_id(result.run_id).tags["hvla/ingest"] == "refused 1"
    assert not (tmp_path / "pwned").exists()
