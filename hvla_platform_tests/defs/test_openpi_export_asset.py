"""The ``openpi_export`` asset: materialized for a release partition it publishes the export with
lineage and rights metadata and passes its checks; its checks re-read the published files, so a
damaged export fails them (the asset finds the export ``cached`` and still reports the damage)."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from hvla_platform.defs.dataset.openpi_export import openpi_export
from hvla_platform.defs.resources import LakeResource
from hvla_platform_tests.lib.dataset.test_openpi_export import CONFIG


@pytest.fixture(scope="module")
def built(openpi_lake):
    """The lake of ``build_openpi_lake`` (lib/dataset/test_openpi_export.py), once per session (conftest)."""
    return openpi_lake


def _materialize(built: dict, inst: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    if "t-openpi" not in inst.get_dynamic_partitions("release"):
        inst.add_dynamic_partitions("release", ["t-openpi"])
    return dg.materialize([openpi_export], instance=inst, partition_key="t-openpi", raise_on_error=False,
                          resources={"lake": LakeResource(root=str(built["lake"].root))},
                          run_config={"ops": {"openpi_export": {"config": {"config_name": CONFIG, "action_horizon": 10}}}})


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_asset_materializes_with_metadata_and_passing_checks(built):
    with dg.DagsterInstance.ephemeral() as inst:
        result = _materialize(built, inst)
        assert result.success
        mat = result.asset_materializations_for_node("openpi_export")[0]
        md = mat.metadata
        assert md["status"].value == "cached"  # build_openpi_lake published it with the same config
        assert md["hvla/openpi_repo_id"].value == "hvla/t-openpi"
        assert md["hvla/codebase_version"].value == "v2.1"
        assert [e["episode_id"] for e in md["hvla/train_episodes"].value] == ["ep-a", "ep-c", "ep-d"]
        assert md["hvla/norm_stats"].value["delta"] == f"assets/{CONFIG}_delta/hvla/t-openpi/norm_stats.json"
        assert "hvla lineage upstream openpi-exports/t-openpi" == md["hvla/lineage_command"].value
        assert "lerobot/hvla/t-openpi/t-openpi" in md["hvla/lineage_upstream"].value
        assert "internal_training" in md["hvla/allowed_uses"].value
        checks = _checks(result)
        assert checks["train_split_only_v21"].passed and checks["norm_stats_at_openpi_path"].passed


def test_checks_fail_on_a_damaged_export(built):
    root = Path(built["lake"].root) / "openpi-exports" / "t-openpi"
    eps = root / "lerobot/hvla/t-openpi/meta/episodes.jsonl"
    saved = eps.read_text()
    ns = root / f"assets/{CONFIG}/hvla/t-openpi/norm_stats.json"
    saved_ns = ns.read_text()
    try:
        eps.write_text(saved + json.dumps({"episode_index": 3, "tasks": ["x"], "length": 5}) + "\n")
        doc = json.loads(saved_ns)
        doc["norm_stats"]["state"]["q99"][0] += 1.0
        ns.write_text(json.dumps(doc))
        with dg.DagsterInstance.ephemeral() as inst:
            checks = _checks(_materialize(built, inst))
        assert not checks["train_split_only_v21"].passed
        assert "4 in episodes.jsonl" in checks["train_split_only_v21"].metadata["hvla/problems"].value
        assert not checks["norm_stats_at_openpi_path"].passed
        assert "state q99 differs" in checks["norm_stats_at_openpi_path"].metadata["hvla/problems"].value
    finally:
        eps.write_text(saved)
        ns.write_text(saved_ns)
