"""A refused training launch leaves no experiment partition behind (issue 13 §5): the run-failure
sensor, evaluated on real failed training runs, deletes the partition when nothing was made in it
and keeps one that has a checkpoint."""

import dagster as dg
import pytest

from hvla_platform.cli.train import training_run_config
from hvla_platform.definitions import defs as load_defs

CONFIG = training_run_config("no-such-release", steps=1, seed=0, trials=0, config_name="hvla_g1_reach_small")


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    monkeypatch.delenv("HVLA_LAKE_ROOT", raising=False)
    repo = load_defs().get_repository_def()
    (tmp_path / "dagster").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield repo, instance


def _failed_training_run(repo, instance, experiment: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions("experiment", [experiment])
    # a release that does not exist: the checkpoint asset refuses the run, as in a launch from the UI
    res = repo.get_job("training_job").execute_in_process(
        instance=instance, partition_key=experiment, raise_on_error=False,
        run_config=CONFIG)
    assert not res.success
    return res


def _evaluate(repo, instance, res) -> None:
    sensor = repo.get_sensor_def("unused_experiment_cleanup")
    with dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=res.get_run_failure_event(),
                                            dagster_instance=instance, dagster_run=res.dagster_run) as ctx:
        sensor(ctx.for_run_failure())


def test_a_refused_experiment_partition_is_deleted_and_one_with_a_checkpoint_kept(env):
    repo, instance = env
    refused = _failed_training_run(repo, instance, "exp-refused")
    # an experiment that trained before (a checkpoint exists), then failed on a later launch
    instance.report_runless_asset_event(dg.AssetMaterialization("checkpoint", partition="exp-trained"))
    retrain = _failed_training_run(repo, instance, "exp-trained")
    assert set(instance.get_dynamic_partitions("experiment")) == {"exp-refused", "exp-trained"}

    _evaluate(repo, instance, refused)
    _evaluate(repo, instance, retrain)
    assert instance.get_dynamic_partitions("experiment") == ["exp-trained"]
    # the refused run itself stays in the run history, with its partition tag
    kept = instance.get_run_by_id(refused.run_id)
    assert kept.status == dg.DagsterRunStatus.FAILURE and kept.tags["dagster/partition"] == "exp-refused"
    # evaluating again (the partition is gone) changes nothing and does not fail
    _evaluate(repo, instance, refused)
    assert instance.get_dynamic_partitions("experiment") == ["exp-trained"]


def test_an_experiment_with_another_run_in_progress_is_kept(env):
    repo, instance = env
    res = _failed_training_run(repo, instance, "exp-retry")
    # the supervisor already launched it again, and that run is in progress
    again = instance.create_run_for_job(repo.get_job("training_job"), tags={"dagster/partition": "exp-retry"},
                                        status=dg.DagsterRunStatus.STARTED, run_config=CONFIG)
    assert again.status == dg.DagsterRunStatus.STARTED
    _evaluate(repo, instance, res)
    assert instance.get_dynamic_partitions("experiment") == ["exp-retry"]
