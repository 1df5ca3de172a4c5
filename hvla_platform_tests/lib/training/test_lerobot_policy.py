"""A checkpoint trained by LeRobot's trainer, loaded with LeRobot's own ``from_pretrained`` and
processor pipelines behind the openpi interface of the JAX ``Policy``, and served to the real
openpi-client 0.1.2 (its own venv) by our policy server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.serving.checkpoint import server_metadata
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform.lib.training.lerobot_policy import LeRobotPolicy
from hvla_platform.lib.training.policy import Policy
from hvla_platform.lib.training.policy_loader import checkpoint_backend, load_policy
from hvla_platform_tests.lib.training import lerobot_checkpoint as lc

REPO = Path(__file__).resolve().parents[3]
OPENPI_VENV = Path(os.environ.get("HVLA_OPENPI_VENV", REPO / ".venv-openpi"))
#: the openpi-client probe the JAX server test runs (hvla_platform_tests/lib/serving/test_openpi_client.py)
PROBE = REPO / "hvla_platform_tests" / "lib" / "serving" / "openpi_client_probe.py"
CAMS = ("head", "wrist_right")


@pytest.fixture(scope="module")
def act(tmp_path_factory) -> lc.LeRobotFixture:
    return lc.trained_act(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def lr_policy(act) -> LeRobotPolicy:
    return load_policy(act.step_dir)


def _obs(seed: int = 0, **over) -> dict:
    rng = np.random.default_rng(seed)
    obs = {"observation/state": rng.uniform(-0.5, 0.5, 17).astype(np.float32),
           **{f"observation/images/{c}": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for c in CAMS},
           "prompt": lc.TRAIN_TASK}
    obs.update(over)
    return obs


def test_load_policy_picks_the_backend_from_config_json(act, lr_policy, step_dir):
    assert checkpoint_backend(act.step_dir) == "lerobot" and isinstance(lr_policy, LeRobotPolicy)
    assert checkpoint_backend(step_dir) == "jax"  # the JAX fixture checkpoint: no "backend" key needed
    assert isinstance(load_policy(step_dir, warmup=False), Policy)


def test_infer_returns_a_float32_chunk_in_radians(lr_policy, act):
    out = lr_policy.infer(_obs())
    a = out["actions"]
    assert a.shape == (10, 14) and a.dtype == np.float32 and np.all(np.isfinite(a))
    assert set(out["policy_timing"]) == {"infer_ms"} and out["policy_timing"]["infer_ms"] > 0
    # unnormalised with the train stats: actions are joint targets around the demonstrations' range, not
    # normalised values around 0 with unit spread
    stats = json.loads((act.step_dir / "norm_stats.json").read_text())["norm_stats"]["actions"]
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    assert np.all(np.abs(a - mean) < 50 * std + 1.0)
    # ACT in eval mode is deterministic; the images are inputs (another image, another chunk)
    np.testing.assert_array_equal(lr_policy.infer(_obs())["actions"], a)
    other = _obs(**{"observation/images/head": np.zeros((96, 128, 3), np.uint8)})
    assert not np.allclose(lr_policy.infer(other)["actions"], a)
    # the prompt is optional and does not change ACT's answer (it has no language input)
    no_prompt = _obs()
    del no_prompt["prompt"]
    np.testing.assert_array_equal(lr_policy.infer(no_prompt)["actions"], a)


def test_metadata_has_every_key_the_jax_policy_sends(lr_policy, policy, act):
    md = lr_policy.metadata
    assert set(policy.metadata) <= set(md), sorted(set(policy.metadata) - set(md))
    assert md["policy"] == "lerobot act" and md["backend"] == "lerobot"
    assert md["checkpoint"] == "checkpoints/c/lr-act/4" and md["step"] == lc.ACT_STEPS
    assert (md["action_horizon"], md["action_dim"], md["state_dim"]) == (10, 14, 17)
    assert md["cameras"] == list(CAMS) and md["image_shapes"] == {c: [96, 128, 3] for c in CAMS}
    assert md["tasks"] == [lc.TRAIN_TASK] and md["prompt_used"] is False
    assert md["serving_allowed"] == ["lab_robot", "staging_demo"]
    json.dumps(md)  # the handshake sends it as msgpack/JSON-like data


@pytest.mark.parametrize(("obs", "message"), [
    ({"observation/state": np.zeros(17, np.float32)}, "observation is missing key(s) ['observation/images/head'"),
    (_obs(**{"observation/state": np.zeros(3, np.float32)}), "'observation/state' must have shape (17,), got (3,)"),
    (_obs(**{"observation/state": np.array(["a"] * 17)}), "'observation/state' must be numeric"),
    (_obs(**{"observation/state": np.full(17, np.nan, np.float32)}), "contains non-finite values"),
    (_obs(**{"observation/images/head": np.zeros((48, 64, 3), np.uint8)}), "must have shape (96, 128, 3)"),
    (_obs(**{"observation/images/wrist_right": np.zeros((96, 128, 3), np.float32)}), "must be uint8"),
    (_obs(prompt=3), "'prompt' must be a str, got int"),
    ([1, 2], "observation must be a dict, got list"),
])
def test_bad_observations_are_value_errors_like_the_jax_policy(lr_policy, obs, message):
    with pytest.raises(ValueError) as err:
        lr_policy.infer(obs)
    assert message in str(err.value)


def test_openpi_client_gets_chunks_of_the_right_shape_from_the_served_lerobot_checkpoint(lr_policy):
    py = OPENPI_VENV / "bin" / "python"
    if not py.exists():  # a missing client must fail CI, not skip it
        pytest.fail(f"{py} not found: run scripts/install_openpi_client.sh (scripts/install.sh does)")
    meta = server_metadata(lr_policy.metadata, use="lab_robot", checkpoint_key="checkpoints/c/lr-act/4")
    with PolicyServer(lr_policy, port=0, api_key="k-lr", metadata=meta) as server:
        proc = subprocess.run([str(py), str(PROBE), "127.0.0.1", str(server.port), "k-lr"],
                              capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["metadata"] == {"checkpoint": "checkpoints/c/lr-act/4", "action_horizon": 10, "action_dim": 14,
                               "serving_use": "lab_robot", "protocol": "openpi-websocket (openpi-client 0.1.2)"}
    assert out["actions_shape"] == [10, 14] and out["actions_dtype"] == "float32"
    assert out["broker_step_shape"] == [14] and out["broker_matches_chunk"] and out["broker_requeried_same"]
    assert "'observation/state' must have shape (17,), got (3,)" in out["bad_observation_error"]
    assert "401" in out["wrong_key_error"]
