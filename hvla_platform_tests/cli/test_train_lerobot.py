"""``hvla train --backend lerobot --policy act``: LeRobot's own trainer from the command line, on the
demo release (the committed recordings and ``releases/g1-reach-v1.yaml``, built by ingest_job →
release_job as ``hvla demo`` does), a few steps, through ``training_job`` (checkpoint + eval_report);
the checkpoint served by ``hvla serve`` to the real openpi-client; and the one-line refusals of bad
``--backend`` / ``--policy`` values."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, require_manifest
from hvla_platform_tests.paths import REPO_ROOT

#: End to end (ingest → release → training → serving): run early (conftest.py).
pytestmark = pytest.mark.e2e

HVLA = [sys.executable, "-m", "hvla_platform.cli"]
#: The demo's release spec and recordings (what ``hvla demo`` builds).
RELEASE_SPEC = REPO_ROOT / "releases" / "g1-reach-v1.yaml"
RECORDINGS = REPO_ROOT / "data" / "recordings"
RELEASE = "g1-reach-v1"


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
    """An HVLA_HOME whose lake holds the demo release ``g1-reach-v1`` (the committed recordings),
    built by ingest_job and release_job as ``hvla demo`` does."""
    home = tmp_path_factory.mktemp("hvla-lr")
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
        for day, robot in land_folder(RECORDINGS):
            o = run_job(defs, inst, "ingest_job", f"{day}|{robot}")
            assert o.success, o.error
        release = register_release_file(RELEASE_SPEC)
        assert release == RELEASE
        o = run_job(defs, inst, "release_job", release)
        assert o.success, o.error
    finally:
        mp.undo()
    return home


def test_hvla_train_backend_lerobot_policy_act(home):
    proc = _hvla(["train", "--exp", "lr-cli", "--release", RELEASE, "--backend", "lerobot", "--policy", "act",
                  "--steps", "3", "--trials", "0", "--config-name", "hvla_lerobot_test"], home)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    release = require_manifest(LocalLake(home / "lake"), f"lerobot/hvla/g1-reach/{RELEASE}", LeRobotDatasetManifest)
    assert len(release.train_episode_ids) == 6 and len(release.heldout_episode_ids) == 2
    step_dir = home / "lake" / "checkpoints" / "hvla_lerobot_test" / "lr-cli" / "3"
    cfg = json.loads((step_dir / "config.json").read_text())
    assert cfg["backend"] == "lerobot" and cfg["policy"] == "act"
    assert cfg["train_episode_ids"] == release.train_episode_ids  # LeRobot trained on the train split only
    assert (step_dir / "params" / "model.safetensors").is_file()
    manifest = yaml.safe_load((step_dir / "checkpoint_manifest.yaml").read_text())
    assert manifest["serving_allowed"] == ["lab_robot", "staging_demo"]
    # the eval report evaluated the LeRobot checkpoint on the held-out episodes
    metrics = json.loads((home / "lake" / "eval-reports" / "lr-cli" / "3" / "metrics.json").read_text())
    assert metrics["offline"]["episode_ids"] == release.heldout_episode_ids and metrics["offline"]["num_frames"] > 0
    assert metrics["offline"]["horizon"] == 10


def test_hvla_serve_serves_the_lerobot_checkpoint_to_openpi_client(home, tmp_path):
    """`hvla serve` of the checkpoint the test above trained, queried by openpi-client 0.1.2 (its own venv)."""
    step_dir = home / "lake" / "checkpoints" / "hvla_lerobot_test" / "lr-cli" / "3"
    assert step_dir.is_dir(), "runs after test_hvla_train_backend_lerobot_policy_act"
    client_py = REPO_ROOT / ".venv-openpi" / "bin" / "python"
    assert client_py.exists(), f"{client_py} missing: scripts/install.sh installs it"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "key").write_text("k-lr-cli\n")
    server = subprocess.Popen(HVLA + ["serve", "--checkpoint", "checkpoints/hvla_lerobot_test/lr-cli/3",
                                      "--port", str(port), "--api-key-file", str(tmp_path / "key"),
                                      "--use", "lab_robot", "--log-dir", str(tmp_path / "logs")],
                              env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, server.communicate()[1][-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        probe = REPO_ROOT / "hvla_platform_tests" / "lib" / "serving" / "openpi_client_probe.py"
        proc = subprocess.run([str(client_py), str(probe), "127.0.0.1", str(port), "k-lr-cli"],
                              capture_output=True, text=True, timeout=300)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["metadata"]["checkpoint"].endswith("hvla_lerobot_test/lr-cli/3")
    assert out["metadata"]["action_horizon"] == 10 and out["metadata"]["serving_use"] == "lab_robot"
    assert out["actions_shape"] == [10, 14] and out["actions_dtype"] == "float32"
    assert out["broker_matches_chunk"] and out["bad_observation_error"] and out["wrong_key_error"]
