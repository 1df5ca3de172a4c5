"""Training stays manual: nothing automatic launches it, and the launchpad starts from a valid config."""

import dagster as dg

from hvla_platform.definitions import defs as load_defs


def test_no_schedule_or_sensor_launches_training():
    repo = load_defs().get_repository_def()
    targets = {s.name: {t.job_name for t in s.targets} for s in repo.sensor_defs if s.targets}
    targets |= {s.name: {s.job_name} for s in repo.schedule_defs}
    assert targets == {"landing_sensor": {"ingest_job"}, "nightly_ingest_schedule": {"ingest_job"},
                       "nightly_release_refresh": {"release_job"},
                       "human_video_landing_sensor": {"human_video_ingest_job"}}
    automated = repo.get_sensor_def("release_derivatives_automation").asset_selection.resolve(repo.asset_graph)
    assert {k.to_user_string() for k in automated} == {"norm_stats", "robodm_cache", "openpi_export"}


def test_training_launchpad_config_is_valid_and_editable(tmp_path, monkeypatch):
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))  # an empty lake: the demo release's name
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    monkeypatch.delenv("HVLA_LAKE_ROOT", raising=False)
    job = load_defs().resolve_job_def("training_job")
    default = job.partitioned_config.get_run_config_for_partition_key("exp-demo")
    assert default["ops"]["checkpoint"]["config"]["release"] == "g1-reach-v1"
    dg.validate_run_config(job, default)
    edited = {"ops": {"checkpoint": {"config": {"release": "g1-reach-v1-20261112", "steps": 50}},
                      "eval_report": {"config": {"closed_loop_trials": 0}}}}
    assert dg.validate_run_config(job, edited)["ops"]["checkpoint"]["config"]["steps"] == 50
    assert job.run_tags["hvla/stage"] == "training"
