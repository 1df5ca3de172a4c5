"""The ``mixture_release`` asset: materialized for a mixture partition it publishes the mixture with
its sources, weights and feature-map tables, rights and lineage metadata and passing checks; its
checks re-read the published artifact, so a damaged one fails them (the asset finds it ``cached``).

The lake holds the LeRobot datasets of ``add_stand_ins`` (lib/dataset/test_mixture.py, written
with LeRobot's writer): the video-only ``ego-manip`` and the 30 fps arm ``arm-30fps``.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from hvla_platform.defs.dataset.mixture import MIXTURE_PARTITIONS_NAME, mixture_release
from hvla_platform.defs.resources import LakeResource
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.dataset.mixture import register_mixture
from hvla_platform_tests.lib.dataset.test_mixture import ARM_EGO as SPEC
from hvla_platform_tests.lib.dataset.test_mixture import add_stand_ins


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> LocalLake:
    root = tmp_path_factory.mktemp("mixture-asset")
    lk = LocalLake(root / "lake")
    add_stand_ins(lk, root)
    register_mixture(lk, SPEC)
    return lk


def _materialize(lake: LocalLake, inst: dg.DagsterInstance, name: str = "arm-ego") -> dg.ExecuteInProcessResult:
    if name not in inst.get_dynamic_partitions(MIXTURE_PARTITIONS_NAME):
        inst.add_dynamic_partitions(MIXTURE_PARTITIONS_NAME, [name])
    return dg.materialize([mixture_release], instance=inst, partition_key=name, raise_on_error=False,
                          resources={"lake": LakeResource(root=str(lake.root))})


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_the_asset_publishes_the_mixture_with_tables_and_passing_checks(lake):
    with dg.DagsterInstance.ephemeral() as inst:
        result = _materialize(lake, inst)
        assert result.success
        md = result.asset_materializations_for_node("mixture_release")[0].metadata
        assert md["status"].value == "materialized" and md["hvla/mixture"].value == "arm-ego"
        sources = md["hvla/sources"].value
        assert "| arm-30fps | arm-30fps (latest) | rollout | 3 | 75.0 % |" in sources
        assert "| ego-manip | ego-manip (latest) | human_video | 1 | 25.0 % |" in sources
        assert "| ego-manip | observation.images.ego | observation.images.ego | camera slot |" in md["hvla/feature_map"].value
        assert "| action_mask | bool | [7] | – |" in md["hvla/target_features"].value
        assert md["hvla/allowed_uses"].value == "internal_training"
        assert md["hvla/contains_human_video"].value is True
        assert md["hvla/lineage_command"].value == "hvla lineage upstream mixtures/arm-ego/arm-ego"
        assert "lerobot/hvla/ego/ego-manip" in md["hvla/lineage_upstream"].value
        assert md["dagster/row_count"].value == 2 + 3
        checks = _checks(result)
        assert {n: c.passed for n, c in checks.items()} == {
            "weights_sum": True, "rights_computed": True, "feature_map_complete": True, "rights_standing": True}
        again = _materialize(lake, inst)
        assert again.asset_materializations_for_node("mixture_release")[0].metadata["status"].value == "cached"


def test_checks_fail_on_a_damaged_mixture(lake):
    root = Path(lake.root) / "mixtures" / "arm-ego" / "arm-ego"
    with dg.DagsterInstance.ephemeral() as inst:
        assert _materialize(lake, inst).success
        table_path, manifest_path = root / "sampling_weights.parquet", root / MANIFEST_NAME
        saved_table, saved_manifest = table_path.read_bytes(), manifest_path.read_text()
        try:
            # the two sources' weights swapped: the table still sums to 1, the shares no longer match
            t = pl.read_parquet(table_path)
            swapped = t.with_columns(pl.when(pl.col("source") == "arm-30fps").then(pl.col("episode_weight") / 3)
                                     .otherwise(pl.col("episode_weight") * 3).alias("episode_weight"))
            swapped = swapped.with_columns((pl.col("episode_weight") / pl.col("num_frames")).alias("frame_weight"))
            swapped.write_parquet(table_path)
            doc = json.loads(saved_manifest)
            doc["sources"][0]["dims"]["action"] = [9, 7]  # wider than the target: the mapping is not complete
            doc["rights"]["allowed_uses"] = ["internal_training", "lab_robot"]  # not what the sources allow
            manifest_path.write_text(json.dumps(doc))
            checks = _checks(_materialize(lake, inst))
        finally:
            table_path.write_bytes(saved_table)
            manifest_path.write_text(saved_manifest)
    assert not checks["weights_sum"].passed
    assert "source arm-30fps: its rows sum to 0.25, its share is 0.75" in checks["weights_sum"].metadata[
        "hvla/problems"].value
    assert not checks["feature_map_complete"].passed
    assert "arm-30fps: action → action has dims [9, 7]" in checks["feature_map_complete"].metadata[
        "hvla/problems"].value
    assert not checks["rights_computed"].passed
    assert "differ from the sources' combined rights in ['allowed_uses']" in checks["rights_computed"].metadata[
        "hvla/problems"].value


def test_the_code_location_loads_the_asset_and_its_job():
    from hvla_platform.definitions import defs  # the whole code location, as `dagster dev` loads it

    d = defs()
    graph = d.resolve_asset_graph()
    key = dg.AssetKey("mixture_release")
    assert key in graph.get_all_asset_keys()
    assert graph.get(key).partitions_def.name == MIXTURE_PARTITIONS_NAME
    assert d.resolve_job_def("mixture_job") is not None
