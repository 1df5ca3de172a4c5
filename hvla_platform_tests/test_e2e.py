"""End to end: the whole graph materialized through Dagster on tiny real recordings.

raw_mcap → episodes_hdf5 → lerobot_dataset → norm_stats, robodm_cache, openpi_export → checkpoint
(trained out of process, through Dagster Pipes) → eval_report,
on a SQLite Dagster instance and a local lake; the LeRobot output is reloaded with LeRobot itself,
and every materialization carries owners, kinds and rights metadata.
"""

import json
import time

import dagster as dg
import pytest

from hvla_platform_tests.fixtures.recordings import write_recording

RELEASE_SPEC = """\
name: e2e-v1
repo_id: hvla/e2e
partitions: all
fps: 20
heldout: {episode_ids: [ep-b-2]}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    home = tmp_path_factory.mktemp("hvla")
    env = pytest.MonkeyPatch()  # module scope: undone after the module's tests
    env.setenv("HVLA_HOME", str(home))
    env.delenv("HVLA_LAKE_ROOT", raising=False)
    env.delenv("MLFLOW_TRACKING_URI", raising=False)
    env.setenv("DAGSTER_HOME", str(home / "dagster"))
    recs = tmp_path_factory.mktemp("recs")
    write_recording(recs / "a", episode_id="ep-a-1", robot_id="g1-001", seed=1, duration_s=3.0)
    write_recording(recs / "a", episode_id="ep-a-2", robot_id="g1-001", seed=2, duration_s=3.0)
    write_recording(recs / "b", episode_id="ep-b-1", robot_id="g1-002", seed=3, duration_s=3.0)
    write_recording(recs / "b", episode_id="ep-b-2", robot_id="g1-002", seed=4, duration_s=3.0)
    write_recording(recs / "b", episode_id="ep-b-bad", robot_id="g1-002", seed=5, defect="no_rights")
    (home / "spec.yaml").write_text(RELEASE_SPEC)
    yield home, recs
    env.undo()


@pytest.fixture(scope="module")
def lifecycle(env):
    """The whole graph materialized once (ingest → release → training), as the demo does."""
    from hvla_platform.cli.ingest import land_folder
    from hvla_platform.cli.release import register_release_file
    from hvla_platform.cli.train import training_run_config
    from hvla_platform.cli.orchestration import add_partitions, ensure_dagster_home, instance, load_defs, run_job

    home, recs = env
    ensure_dagster_home()
    defs, inst = load_defs(), instance()
    parts = land_folder(recs)
    assert parts == [("2026-11-10", "g1-001"), ("2026-11-10", "g1-002")]
    for day, robot in parts:
        o = run_job(defs, inst, "ingest_job", f"{day}|{robot}")
        assert o.success, o.error
    release = register_release_file(home / "spec.yaml")
    o = run_job(defs, inst, "release_job", release)
    assert o.success, o.error
    add_partitions(inst, "experiment", ["e2e-exp"])
    cfg = training_run_config(release, steps=60, seed=0, trials=1, config_name="hvla_test")
    cfg["ops"]["eval_report"]["config"]["max_steps"] = 10  # one short closed-loop trial in the G1 simulator
    o = run_job(defs, inst, "training_job", "e2e-exp", run_config=cfg)
    assert o.success, o.error
    return defs, inst, release


@pytest.mark.e2e
def test_whole_lifecycle_materializes_with_owners_kinds_rights_and_checks(lifecycle):
    from hvla_platform.cli.orchestration import run_job
    from hvla_platform.defs.resources import lake_from_env

    defs, inst, release = lifecycle
    # every asset of the robot lifecycle (the three jobs' assets; the other sources have their own
    # tests and demo) materialized, with owners + kinds on the spec and rights metadata on the event
    graph = defs.resolve_asset_graph()
    lifecycle_keys = {k for job in ("ingest_job", "release_job", "training_job")
                      for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}
    assert {k.to_user_string() for k in lifecycle_keys} == {
        "raw_mcap", "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export", "checkpoint",
        "eval_report"}
    for key in graph.get_all_asset_keys():
        spec = graph.get(key).assets_def.specs_by_key[key]
        assert spec.owners and spec.kinds
    for key in lifecycle_keys:
        spec = graph.get(key).assets_def.specs_by_key[key]
        assert spec.owners and spec.kinds
        recs_ = inst.fetch_materializations(key, limit=10).records
        assert recs_, f"{key.to_user_string()} was not materialized"
        md = recs_[0].asset_materialization.metadata
        assert "hvla/allowed_uses" in md and "hvla/license" in md and "dagster/uri" in md, key
        assert md["hvla/allowed_uses"].value == "internal_training, lab_robot, staging_demo"

    ck_md = inst.fetch_materializations(dg.AssetKey("checkpoint"), limit=1).records[0].asset_materialization.metadata
    assert "ep-a-1" in ck_md["hvla/lineage_upstream"].value and "ep-b-2" not in ck_md["hvla/lineage_upstream"].value
    # the eval report's closed loop ran through inspect-robots, per task, and links its EvalLog
    ev_md = inst.fetch_materializations(dg.AssetKey("eval_report"), limit=1).records[0].asset_materialization.metadata
    assert ev_md["hvla/closed_loop_harness"].value.startswith("inspect-robots ")
    assert "/logs/inspect/hvla-reach-touch_" in ev_md["hvla/inspect_eval_log"].value
    assert ev_md["hvla/closed_loop_per_task"].value.startswith("| task | trained on | success | 95% Wilson |")

    # the bad episode was quarantined and the check that judged it names it
    checks = {}
    for key in graph.get_all_asset_keys():
        for ck in graph.get(key).assets_def.check_keys:
            ev = inst.event_log_storage.get_latest_asset_check_execution_by_key([ck]).get(ck)
            if ev is not None and ev.event is not None:
                checks[(key.to_user_string(), ck.name)] = ev.event.asset_check_evaluation
    rights_checks = [c for (a, n), c in checks.items() if a == "raw_mcap" and n == "rights"]
    assert any(not c.passed and "ep-b-bad" in json.dumps(c.metadata["hvla/failing_episodes"].value) for c in rights_checks)
    assert checks[("lerobot_dataset", "episode_count")].passed
    # dataset-stage checks are per release partition and linked to their materialization (what the
    # declarative automation of norm_stats / robodm_cache judges blocking checks by)
    assert checks[("lerobot_dataset", "schema_stable")].partition == release
    assert checks[("lerobot_dataset", "schema_stable")].target_materialization_data is not None
    assert checks[("lerobot_dataset", "timestamps_regular")].passed
    for qa_check in ("quality_score", "joint_limits", "camera_frozen", "action_spikes", "dropped_messages"):
        assert checks[("episodes_hdf5", qa_check)].passed, qa_check
    md = inst.fetch_materializations(dg.AssetKey("episodes_hdf5"), limit=1).records[0].asset_materialization.metadata
    assert md["hvla/qa_report"].value.endswith("/qa_report.html")
    assert md["hvla/qa_mlflow_run_id"].value not in ("", "(not logged)")
    assert checks[("robodm_cache", "codec_written")].passed
    assert checks[("robodm_cache", "roundtrip")].passed
    assert checks[("openpi_export", "train_split_only_v21")].passed
    assert checks[("openpi_export", "norm_stats_at_openpi_path")].passed
    assert checks[("checkpoint", "loss_fell")].passed

    # the LeRobot output reloads with LeRobot itself and decodes a video frame
    lake = lake_from_env().get_lake()
    from hvla_platform.lib.dataset.lerobot_release import load_and_probe

    with lake.local_artifact("lerobot/hvla/e2e/e2e-v1") as root:
        probe = load_and_probe(root, "hvla/e2e")
    assert probe["num_episodes"] == 4
    m = lake.read_manifest("norm-stats/e2e-v1")
    assert m["excluded_heldout_episode_ids"] == ["ep-b-2"]
    assert lake.read_manifest("checkpoints/hvla_test/e2e-exp/60")["serving_blocked"] == ["public_api", "third_party_resale"]
    summary = lake.read_bytes("checkpoints/hvla_test/e2e-exp/60/training_data_summary.md").decode()
    assert "release `e2e-v1`" in summary and "train split: 3 episodes" in summary and "ep-b-2" in summary
    with lake.local_artifact("lerobot/hvla/e2e/e2e-v1") as root:
        card = (root / "README.md").read_text()
    assert "## Deletion and consent withdrawal" in card and "consent-2026-0001" in card
    assert any(k.endswith("report.html") for k in lake.list_keys("eval-reports/e2e-exp"))
    metrics = lake.read_json("eval-reports/e2e-exp/60/metrics.json")
    assert metrics["closed_loop"]["trials"] == 1 and metrics["closed_loop"]["per_trial"][0]["steps"] == 10
    # the closed loop ran through the policy server and robot client: both logs are published with the report
    served = metrics["closed_loop"]["served_via"]
    assert served["protocol"].startswith("openpi-websocket") and served["requests"] == 2  # 10 steps / replan 5
    safety = lake.read_bytes("eval-reports/e2e-exp/60/logs/robot_safety.jsonl").decode()
    assert '"mode": "ready"' in safety and '"reason": "timeout"' in safety
    inference = [k for k in lake.list_keys("eval-reports/e2e-exp/60/logs/serving") if k.endswith(".jsonl")]
    assert len(inference) == 1 and lake.read_bytes(inference[0]).decode().count('"event": "request"') == 2
    assert metrics["offline"]["episode_ids"] == ["ep-b-2"]

    # re-running the release is idempotent
    o = run_job(defs, inst, "release_job", release)
    assert o.success and o.materializations["lerobot_dataset"]["status"] == "cached"


@pytest.mark.e2e
def test_serve_and_deploy_the_trained_checkpoint(lifecycle, env):
    """`hvla serve` on the lake key of the checkpoint the pipeline produced; `hvla deploy` drives the
    simulated G1 with it; a blocked deployment use is refused."""
    import subprocess
    import sys
    import urllib.request

    from hvla_platform_tests.cli.test_serving_cli import free_port

    home, _ = env
    key = "checkpoints/hvla_test/e2e-exp/60"
    hvla = [sys.executable, "-m", "hvla_platform.cli"]
    refused = subprocess.run(hvla + ["serve", "--checkpoint", key, "--use", "public_api", "--port", str(free_port())],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "may not be served for 'public_api'" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    port = free_port()
    server = subprocess.Popen(hvla + ["serve", "--checkpoint", key, "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.3)
        # a 30 s query deadline: the robot's default 0.5 s is tested in test_deploy_safety, and a 2-core
        # machine busy with the other test worker can miss it
        p = subprocess.run(hvla + ["deploy", "--port", str(port), "--max-steps", "15", "--query-timeout", "30",
                                   "--result-json", str(home / "deploy.json")],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f"connected: checkpoint {key} (serving use lab_robot)" in p.stdout
        res = json.loads((home / "deploy.json").read_text())
        assert res["trials_run"] == 1 and res["per_trial"][0]["queries"] == 3  # 15 steps, re-query every 5
    finally:
        server.terminate()
        server.wait(timeout=30)
    logs = list((home / "logs" / "serving").glob("inference-*.jsonl"))
    assert logs and logs[0].read_text().count('"status": "ok"') == 3
    assert list((home / "logs" / "robot").glob("safety-*.jsonl"))


@pytest.mark.e2e
def test_a_rebuild_after_a_decision_is_a_new_version_and_the_checkpoint_keeps_its_data(lifecycle, env):
    """Issue 11 §1: a supervisor's decision and a rebuild make `e2e-v1.1`; `e2e-v1`, which the
    checkpoint was trained on, is untouched and still names the same episodes."""
    import subprocess
    import sys

    from hvla_platform.cli.orchestration import run_job
    from hvla_platform.defs.resources import lake_from_env
    from hvla_platform.lib.processing.qa.decisions import record_decision

    defs, inst, release = lifecycle
    home, _ = env
    lake = lake_from_env().get_lake()
    v0 = "lerobot/hvla/e2e/e2e-v1"
    before = {k: lake.sha256(k) for k in lake.list_keys(v0)}
    record_decision(lake, "ep-a-2", "reject", "object fell off the table", by="qa-lead")
    o = run_job(defs, inst, "release_job", release)
    assert o.success, o.error
    assert o.materializations["lerobot_dataset"]["hvla/release"] == "e2e-v1.1"
    assert o.materializations["norm_stats"]["hvla/release"] == "e2e-v1.1"
    assert o.materializations["robodm_cache"]["hvla/release"] == "e2e-v1.1"
    assert {k: lake.sha256(k) for k in lake.list_keys(v0)} == before  # the trained-on version is untouched
    assert "ep-a-2" in lake.read_manifest(v0)["episode_ids"]
    assert "ep-a-2" not in lake.read_manifest("lerobot/hvla/e2e/e2e-v1.1")["episode_ids"]
    assert lake.read_manifest("norm-stats/e2e-v1")["release"] == "e2e-v1"  # still there, for the checkpoint
    assert lake.read_manifest("checkpoints/hvla_test/e2e-exp/60")["release"] == "e2e-v1"

    hvla = [sys.executable, "-m", "hvla_platform.cli"]
    p = subprocess.run(hvla + ["release", "versions", "e2e-v1", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = {r["release"]: r for r in json.loads(p.stdout)}
    assert rows["e2e-v1"]["used_by"] == ["checkpoints/hvla_test/e2e-exp/60", "eval-reports/e2e-exp/60"]
    assert rows["e2e-v1.1"]["used_by"] == [] and rows["e2e-v1.1"]["num_episodes"] == 3
    p = subprocess.run(hvla + ["release", "build", "e2e-v1.1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == [
        "hvla release: 'e2e-v1.1' is version 1 of release 'e2e-v1', and versions never change; "
        "`hvla release build e2e-v1` builds a new version when its content changed"], p.stderr
