"""Every asset is in the concurrency pool of its lifecycle stage, so the run queue's per-stage
limits hold for a run however it was launched, also for a selection materialized from the asset
graph (Dagster's implicit asset job, which carries no ``hvla/stage`` tag)."""

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan
from dagster._core.op_concurrency_limits_counter import compute_run_op_concurrency_info_for_snapshot
from dagster._core.snap.execution_plan_snapshot import snapshot_from_execution_plan

from hvla_platform.definitions import defs
from hvla_platform.defs.stages import INGEST, RELEASE, STAGE_TAG, TRAINING


@pytest.fixture(scope="module")
def loaded() -> dg.Definitions:
    return defs()


def _pool(loaded: dg.Definitions, key: dg.AssetKey) -> str | None:
    assets_def = loaded.resolve_asset_graph().get(key).assets_def
    return assets_def.op.pool


def test_every_asset_is_in_the_pool_of_the_stage_of_each_job_that_selects_it(loaded):
    graph = loaded.resolve_asset_graph()
    pools = {k.to_user_string(): _pool(loaded, k) for k in graph.get_all_asset_keys()}
    assert set(pools.values()) == {INGEST, RELEASE, TRAINING}, pools
    jobs = [j for j in loaded.resolve_all_job_defs() if not j.name.startswith("__")]
    staged = 0
    for job in jobs:
        stage = job.run_tags.get(STAGE_TAG)
        assert stage in (INGEST, RELEASE, TRAINING), f"{job.name} has no {STAGE_TAG} run tag"
        for key in job.asset_layer.executable_asset_keys:
            assert pools[key.to_user_string()] == stage, (job.name, key.to_user_string())
            staged += 1
    assert staged >= len(pools)  # every asset is in at least one job


@pytest.mark.parametrize(("selection", "expected"), [
    (["raw_mcap"], {INGEST}),
    (["raw_mcap", "episodes_hdf5"], {INGEST}),
    (["lerobot_dataset", "norm_stats"], {RELEASE}),
    (["checkpoint", "eval_report"], {TRAINING}),
    (["episodes_hdf5", "lerobot_dataset"], {INGEST, RELEASE}),
])
def test_an_asset_graph_selection_holds_the_pools_of_its_stages(loaded, selection, expected):
    """What the queue sees of a run the UI launches for ``selection`` (Dagster's own computation of a
    run's pools from its execution plan, as at run creation)."""
    job = loaded.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection={dg.AssetKey(k) for k in selection})
    # the config the UI asks for before it launches `checkpoint`
    config = {"ops": {"checkpoint": {"config": {"release": "g1-reach-v1"}}}} if "checkpoint" in selection else None
    snapshot = snapshot_from_execution_plan(create_execution_plan(job, run_config=config), job.get_job_snapshot_id())
    info = compute_run_op_concurrency_info_for_snapshot(snapshot)
    assert info is not None and set(info.all_pools) == expected
