"""The real openpi-client 0.1.2 (its own venv, numpy < 2) against our server: handshake metadata,
``WebsocketClientPolicy.infer``, ``ActionChunkBroker``, error frames and the API key."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from hvla_platform.lib.serving.checkpoint import server_metadata
from hvla_platform.lib.serving.server import PolicyServer

REPO = Path(__file__).resolve().parents[3]
VENV = Path(os.environ.get("HVLA_OPENPI_VENV", REPO / ".venv-openpi"))
PROBE = Path(__file__).with_name("openpi_client_probe.py")


@pytest.fixture(scope="module")
def openpi_python() -> Path:
    py = VENV / "bin" / "python"
    if not py.exists():  # a missing client must fail CI, not skip it
        pytest.fail(f"{py} not found: run scripts/install_openpi_client.sh (scripts/install.sh does)")
    return py


def test_openpi_client_against_our_server(openpi_python, policy, step_dir):
    meta = server_metadata(policy.metadata, use="lab_robot", checkpoint_key="checkpoints/hvla_serve_test/serve/5")
    with PolicyServer(policy, port=0, api_key="k-123", metadata=meta) as server:
        proc = subprocess.run([str(openpi_python), str(PROBE), "127.0.0.1", str(server.port), "k-123"],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["numpy"].startswith("1."), "the client must run in its own numpy<2 venv"
    assert out["metadata"] == {"checkpoint": "checkpoints/hvla_serve_test/serve/5", "action_horizon": 10,
                               "action_dim": 14, "serving_use": "lab_robot",
                               "protocol": "openpi-websocket (openpi-client 0.1.2)"}
    assert out["actions_shape"] == [10, 14] and out["actions_dtype"] == "float32"
    assert out["server_timing_keys"] == ["infer_ms"]  # prev_total_ms appears from the second request on
    assert out["broker_step_shape"] == [14]
    assert out["broker_matches_chunk"] and out["broker_requeried_same"]
    assert "observation rejected" in out["bad_observation_error"]
    assert "'observation/state' must have shape (17,), got (3,)" in out["bad_observation_error"]
    assert "401" in out["wrong_key_error"]
