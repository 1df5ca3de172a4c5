"""Closed-loop env: shapes, and the scripted expert succeeds while holding still does not."""

import numpy as np
import pytest

from hvla_platform.lib.sim.env import ReachEnv


@pytest.fixture(scope="module")
def env():
    e = ReachEnv(control_hz=20.0, render=False)
    yield e
    e.close()


def test_observation_shapes():
    e = ReachEnv(control_hz=20.0, render=True)
    try:
        obs = e.reset(seed=1)
        assert obs["state"].shape == (29,) and obs["state"].dtype == np.float32
        assert obs["images"]["head"].shape == (96, 128, 3) and obs["images"]["wrist_right"].dtype == np.uint8
        obs2 = e.step(e.expert_action())
        assert obs2["time_s"] == pytest.approx(0.05)
        with pytest.raises(ValueError):
            e.step(np.zeros(13))
    finally:
        e.close()


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_expert_succeeds_in_closed_loop(env, seed):
    env.reset(seed)
    for _ in range(80):
        env.step(env.expert_action())
        if env.success:
            break
    assert env.success, f"expert missed (closest {env.min_distance_m:.3f} m) on seed {seed}"


def test_holding_the_nominal_pose_fails(env):
    obs = env.reset(0)
    hold = obs["state"][[int(i) for i in env.sim.scene.arm_idx]]
    for _ in range(80):
        env.step(hold)
    assert not env.success and env.min_distance_m > 0.1
