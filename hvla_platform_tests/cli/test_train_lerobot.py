"""``hvla train --backend lerobot --policy act``: LeRobot's own trainer from the command line, on a
release built by the pipeline (ingest_job → release_job, as ``hvla demo`` does), a few steps,
through ``training_job`` (checkpoint + eval_report); and the one-line refusals of bad
``--backend`` / ``--policy`` values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from hvla_platform_tests.fixtures.recordings import write_recording

HVLA = [sys.executable, "-m", "hvla_platform.cli"]
RELEASE_SPEC = """\
name: lrcli-v1
repo_id: hvla/lrcli
partitions: all
fps: 20
heldout: {episode_ids: [ep-3]}
"""


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HVLA_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for k in ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI"):
        env.pop(k, None)
    return env


def _hvla(args: list[str], home: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(HVLA + args, env=_env(home), capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(("args", "expected"), [
    (["--policy", "act"], "--policy act chooses a LeRobot policy; it needs --backend lerobot"),
    (["--backend", "lerobt"], "unknown training backend 'lerobt' (did you mean 'lerobot'?)"),
    (["--backend", "lerobot", "--policy", "difusion"], "unknown LeRobot policy 'difusion' (did you mean 'diffusion'?)"),
])
def test_bad_backend_or_policy_is_refused_in_one_line(tmp_path, args, expected):
    proc = _hvla(["train", "--exp", "e1", "--release", "nope-v1", *args], tmp_path / "home", timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hvla train: ") and expected in lines[0], proc.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """An HVLA_HOME whose lake holds release ``lrcli-v1`` built by ingest_job and release_job."""
    home = tmp_path_factory.mktemp("hvla-lr")
    recs = tmp_path_factory.mktemp("recs-lr")
    for i in range(4):
        write_recording(recs, episode_id=f"ep-{i}", robot_id="g1-001", seed=i)
    (home / "spec.yaml").write_text(RELEASE_SPEC)
    mp = pytest.MonkeyPatch()
    for k, v in _env(home).items():
        mp.setenv(k, v)
    for k in ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI"):
        mp.delenv(k, raising=False)
    try:
        from hvla_platform.cli.ingest import land_folder
        from hvla_platform.cli.orchestration import ensure_dagster_home, instance, load_defs, run_job
        from hvla_platform.cli.release import register_release_file

        ensure_dagster_home()
        defs, inst = load_defs(), instance()
        for day, robot in land_folder(recs):
            o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": day, "robot": robot}))
            assert o.success, o.error
        release = register_release_file(home / "spec.yaml")
        o = run_job(defs, inst, "release_job", release)
        assert o.success, o.error
    finally:
        mp.undo()
    return home


def test_hvla_train_backend_lerobot_policy_act(home):
    proc = _hvla(["train", "--exp", "lr-cli", "--release", "lrcli-v1", "--backend", "lerobot", "--policy", "act",
                  "--steps", "3", "--trials", "0", "--config-name", "hvla_lerobot_test"], home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    step_dir = home / "lake" / "checkpoints" / "hvla_lerobot_test" / "lr-cli" / "3"
    cfg = json.loads((step_dir / "config.json").read_text())
    assert cfg["backend"] == "lerobot" and cfg["policy"] == "act" and cfg["train_episode_ids"] == ["ep-0", "ep-1", "ep-2"]
    assert (step_dir / "params" / "model.safetensors").is_file()
    manifest = yaml.safe_load((step_dir / "checkpoint_manifest.yaml").read_text())
    assert manifest["serving_allowed"] == ["lab_robot", "staging_demo"]
    # the eval report evaluated the LeRobot checkpoint on the held-out episode
    metrics = json.loads((home / "lake" / "eval-reports" / "lr-cli" / "3" / "metrics.json").read_text())
    assert metrics["offline"]["episode_ids"] == ["ep-3"] and metrics["offline"]["num_frames"] > 0
    assert metrics["offline"]["horizon"] == 10
