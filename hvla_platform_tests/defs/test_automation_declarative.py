"""A release's norm stats and Robo-DM cache follow its LeRobot dataset: the code location's
declarative-automation sensor evaluated against a real instance, with the dataset's materialization
and check results reported to it."""

import dagster as dg
import pytest
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from hvla_platform.definitions import defs as load_defs

LEROBOT_CHECKS = ("episode_count", "schema_stable", "tasks_non_empty", "timestamps_regular")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HVLA_HOME", str(tmp_path_factory.mktemp("home")))
        yield load_defs().get_repository_def()


@pytest.fixture()
def automation(repo):
    """(report(release, schema_stable_passed), tick()) on a fresh instance with releases rel-a, rel-b."""
    sensor = repo.get_sensor_def("release_derivatives_automation")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("release", ["rel-a", "rel-b"])
        cursor = [None]

        def tick() -> dict[str, list[str]]:
            with dg.build_sensor_context(instance_ref=instance.get_ref(), repository_def=repo, cursor=cursor[0]) as ctx:
                res = sensor.evaluate_tick(ctx)
            cursor[0] = res.cursor
            out: dict[str, list[str]] = {}
            for r in res.run_requests:
                subset = r.asset_graph_subset
                pairs = ([(k, p) for k, s in subset.partitions_subsets_by_asset_key.items() for p in s.get_partition_keys()]
                         if subset else [(k, r.partition_key) for k in r.asset_selection])
                for k, p in pairs:
                    out.setdefault(p, []).append(k.to_user_string())
            return {p: sorted(v) for p, v in out.items()}

        def report(release: str, schema_stable: bool = True) -> None:
            """What a run materializing only lerobot_dataset[release] writes to the event log."""
            instance.report_runless_asset_event(dg.AssetMaterialization("lerobot_dataset", partition=release))
            rec = instance.fetch_materializations(dg.AssetKey("lerobot_dataset"), limit=1).records[0]
            # a check run in the same step as the materialization is linked to it, as here
            target = AssetCheckEvaluationTargetMaterializationData(storage_id=rec.storage_id, run_id=rec.run_id,
                                                                   timestamp=rec.timestamp)
            for check in LEROBOT_CHECKS:
                instance.report_runless_asset_event(dg.AssetCheckEvaluation(
                    asset_key=dg.AssetKey("lerobot_dataset"), check_name=check, partition=release,
                    passed=schema_stable or check != "schema_stable", target_materialization_data=target))

        assert tick() == {}  # first evaluation: existing releases are not rebuilt
        yield report, tick


def test_derivatives_follow_a_dataset_built_on_its_own(automation):
    report, tick = automation
    report("rel-a")
    assert tick() == {"rel-a": ["norm_stats", "openpi_export", "robodm_cache"]}
    assert tick() == {}  # requested once


def test_a_failed_blocking_check_stops_them(automation):
    report, tick = automation
    report("rel-b", schema_stable=False)
    assert tick() == {}


def test_a_failed_check_of_one_release_is_not_hidden_by_a_later_release(automation):
    report, tick = automation
    report("rel-b", schema_stable=False)
    report("rel-a")
    assert tick() == {"rel-a": ["norm_stats", "openpi_export", "robodm_cache"]}
