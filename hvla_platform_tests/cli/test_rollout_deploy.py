"""`hvla deploy --record-rollout DIR --runtime-policy FILE` against a real `hvla serve`: the rollout is
recorded on the robot side with the server's checkpoint and instance, lands like any recording, its
checklist runs, and `hvla lineage` connects it to the checkpoint both ways. Refusals are one line."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ingest.rollouts import run_rollout_checklist
from hvla_platform_tests.cli.test_serving_cli import HVLA, lines, start_server
from hvla_platform_tests.fixtures.checkpoints import SERVE_KEY, lake_root_of
from hvla_platform_tests.lib.formats.recording.test_runtime_policy import NO_PERMISSION
from hvla_platform_tests.lib.formats.recording.test_runtime_policy import policy as policy_doc



@pytest.fixture(scope="module")
def served(step_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout-deploy")
    env = {**os.environ, "HVLA_HOME": str(root / "home"), "HVLA_API_KEY": "robot-key-1"}
    env.pop("HVLA_LAKE_ROOT", None)
    port, proc = start_server(step_dir, env, root / "serving")
    yield port, root / "serving", env
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def deploy(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(HVLA + ["deploy", *args], env=env, capture_output=True, text=True, timeout=300)


def write_policy(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_refusals_are_one_line_before_the_robot_moves(tmp_path):
    env = {**os.environ, "HVLA_HOME": str(tmp_path / "home")}
    p = deploy(env, "--port", "9", "--record-rollout", str(tmp_path / "rec"))
    assert p.returncode == 2 and p.stderr.strip() == (
        "hvla deploy: refused: --record-rollout DIR and --runtime-policy FILE go together (a rollout's rights "
        "come from the deployment's runtime-data policy)")
    doc = policy_doc()
    doc["retrain_permision"] = doc.pop("retrain_permission")
    pol = write_policy(tmp_path / "policy.yaml", doc)
    p = deploy(env, "--port", "9", "--record-rollout", str(tmp_path / "rec"), "--runtime-policy", str(pol))
    err = p.stderr.strip()
    assert p.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in p.stderr
    assert err.startswith(f"hvla deploy: refused: {pol}: ") and "'retrain_permision'" in err
    assert "did you mean 'retrain_permission'" in err
    assert not (tmp_path / "rec").exists()


def test_a_deployed_rollout_loops_back_with_its_checklist_and_lineage(served, step_dir, tmp_path):
    port, log_dir, env = served
    pol = write_policy(tmp_path / "policy.yaml", NO_PERMISSION)
    p = deploy(env, "--port", str(port), "--episodes", "1", "--max-steps", "8", "--replan-every", "4",
               "--safety-log", str(tmp_path / "safety.jsonl"), "--record-rollout", str(tmp_path / "rec"),
               "--runtime-policy", str(pol), "--robot-id", "g1-site-007")
    assert p.returncode in (0, 4), p.stdout + p.stderr  # done, or stopped on a fault: both are rollouts
    [folder] = find_recordings(tmp_path / "rec")
    assert f"rollout recorded: {folder}" in p.stdout
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    [start] = [ln for ln in lines(next(log_dir.glob("inference-*.jsonl"))) if ln["event"] == "start"]
    ro = meta["rollout"]
    assert (ro["checkpoint_key"], ro["server_instance"], ro["server"]) == (
        SERVE_KEY, start["instance"], f"ws://127.0.0.1:{port}")
    assert meta["rights"]["allowed_uses"] == ["lab_robot"] and meta["customer"] == "acme"
    safety = [ln["event"] for ln in lines(tmp_path / "safety.jsonl")]
    assert "stop" in safety  # the robot safety log is still written in full

    # a lake that holds the serving checkpoint (a copy of its folder) receives the rollout
    lake = LocalLake(tmp_path / "lake")
    shutil.copytree(lake_root_of(step_dir) / SERVE_KEY, lake.path(SERVE_KEY))
    assert land_recording(lake, folder).status == "landed"
    day, robot, ep = folder.parent.parent.name, folder.parent.name, folder.name
    assert [e.status for e in ingest_partition(lake, day, robot).episodes] == ["published"]
    result = run_rollout_checklist(lake, day, robot, ep)
    assert not result.retrain_permitted and result.outcome == ro["outcome"]
    assert not result.checks["customer_permission_checked"]["passed"]
    assert result.checks["incident_data_labeled"]["passed"], result.checks

    lin_env = {**env, "HVLA_LAKE_ROOT": str(lake.root)}
    up = subprocess.run(HVLA + ["lineage", "upstream", result.prefix, "--json"], env=lin_env, capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    children = {c["type"]: c for c in json.loads(up.stdout)["tree"]["children"]}
    assert children["checkpoint"]["key"] == SERVE_KEY and children["checkpoint"]["sha256_matches"] is True
    assert children["raw_mcap_episode"]["episode_ids"] == [ep]
    down = subprocess.run(HVLA + ["lineage", "downstream", f"checkpoint:{SERVE_KEY}"], env=lin_env,
                          capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert result.prefix in down.stdout and f"raw-mcap/{day}/{robot}/{ep}" in down.stdout
