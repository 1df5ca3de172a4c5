"""The closed-loop runner against a small honest environment with ReachEnv's interface."""

from __future__ import annotations

import numpy as np
import pytest

from hvla_platform.lib.evaluation import run_closed_loop
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS, G1_WAIST_JOINTS

STATE_NAMES = G1_WAIST_JOINTS + G1_ARM_JOINTS
ARM_IDX = [G1_JOINTS.index(n) for n in G1_ARM_JOINTS]
TOL = 0.02
DT = 0.05


class ArmReachEnv:
    """First-order arm: each step the 14 arm joints move halfway to the commanded targets.

    The goal (14 arm joint angles in [-1, -0.4] ∪ [0.4, 1]) is drawn from the reset seed and
    written into the head image (row 0, one pixel per joint, ``(goal + 1) / 2 * 255``), so a
    policy that reads the image can solve the task. Success: every arm joint within TOL of the goal.
    """

    instances: list["ArmReachEnv"] = []

    def __init__(self):
        self.closed = False
        self.steps = 0
        self.received: list[np.ndarray] = []
        ArmReachEnv.instances.append(self)

    def reset(self, seed: int):
        rng = np.random.default_rng(seed)
        self.goal = (rng.uniform(0.4, 1.0, 14) * rng.choice([-1, 1], 14)).astype(np.float32)
        self.q = np.zeros(29, np.float32)
        self.q[[G1_JOINTS.index(n) for n in G1_WAIST_JOINTS]] = 0.01  # distinguishable from arm joints
        self.t = 0.0
        self.task = "reach the goal posture"
        return self._obs()

    def _obs(self):
        head = np.zeros((96, 128, 3), np.uint8)
        head[0, :14, 0] = np.round((self.goal + 1) / 2 * 255).astype(np.uint8)
        return {"state": self.q.copy(), "velocity": np.zeros(29, np.float32),
                "images": {"head": head, "wrist_right": np.zeros((96, 128, 3), np.uint8)},
                "task": self.task, "time_s": self.t}

    def step(self, arm_targets):
        arm_targets = np.asarray(arm_targets, np.float32)
        assert arm_targets.shape == (14,)
        self.received.append(arm_targets)
        self.q[ARM_IDX] += 0.5 * (arm_targets - self.q[ARM_IDX])
        self.t += DT
        self.steps += 1
        return self._obs()

    @property
    def success(self) -> bool:
        return bool(np.all(np.abs(self.q[ARM_IDX] - self.goal) < TOL))

    def close(self):
        self.closed = True


def oracle_policy(obs, horizon=10, action_order=G1_ARM_JOINTS):
    """Decode the goal from the head image; command it for the whole chunk."""
    assert obs["observation/state"].shape == (17,)
    assert np.allclose(obs["observation/state"][:3], 0.01), "waist joints must be selected by name"
    goal = obs["observation/images/head"][0, :14, 0].astype(np.float32) / 255 * 2 - 1
    goal = goal[[G1_ARM_JOINTS.index(n) for n in action_order]]
    return {"actions": np.repeat(goal[None], horizon, axis=0)}


def zero_policy(obs):
    return {"actions": np.zeros((10, 14), np.float32)}


@pytest.fixture(autouse=True)
def _reset_instances():
    ArmReachEnv.instances.clear()


def test_oracle_succeeds():
    res = run_closed_loop(oracle_policy, ArmReachEnv, trials=3, seed=7, max_steps=50, replan_every=4,
                          state_names=STATE_NAMES)
    assert res["trials"] == 3 and res["successes"] == 3 and res["success_rate"] == 1.0
    for t in res["per_trial"]:
        # halving the error from ≤ 1 rad each step reaches 0.02 (minus ≤ 0.004 rad quantisation) in 6-7 steps
        assert t["success"] and 5 <= t["steps"] <= 9
        assert t["queries"] == -(-t["steps"] // 4)  # ceil(steps / replan_every)
        assert t["sim_time_s"] == pytest.approx(t["steps"] * DT)
    assert [t["seed"] for t in res["per_trial"]] == [7, 8, 9]
    assert all(env.closed for env in ArmReachEnv.instances) and len(ArmReachEnv.instances) == 3
    assert res["timing"]["infer_ms_mean"] is not None and res["mean_steps_success"] > 0


def test_zero_policy_fails():
    res = run_closed_loop(zero_policy, ArmReachEnv, trials=2, seed=0, max_steps=30, replan_every=5,
                          state_names=STATE_NAMES)
    assert res["successes"] == 0 and res["success_rate"] == 0.0
    assert [t["steps"] for t in res["per_trial"]] == [30, 30]
    assert res["mean_steps_success"] is None


def test_action_order_is_mapped_to_env_order():
    reordered = list(reversed(G1_ARM_JOINTS))
    res = run_closed_loop(lambda o: oracle_policy(o, action_order=reordered), ArmReachEnv, trials=1, seed=3,
                          max_steps=50, replan_every=2, state_names=STATE_NAMES, action_names=reordered)
    assert res["success_rate"] == 1.0
    # and the same policy without telling the runner about the order fails
    res = run_closed_loop(lambda o: oracle_policy(o, action_order=reordered), ArmReachEnv, trials=1, seed=3,
                          max_steps=50, replan_every=2, state_names=STATE_NAMES)
    assert res["success_rate"] == 0.0


def test_executes_chunk_open_loop():
    def ramp(obs):
        return {"actions": np.arange(10, dtype=np.float32)[:, None].repeat(14, 1)}

    run_closed_loop(ramp, ArmReachEnv, trials=1, seed=0, max_steps=7, replan_every=3, state_names=STATE_NAMES)
    sent = [a[0] for a in ArmReachEnv.instances[0].received]
    assert sent == [0, 1, 2, 0, 1, 2, 0]


def test_errors():
    kw = dict(trials=1, seed=0, max_steps=5, state_names=STATE_NAMES)
    with pytest.raises(ValueError, match="fewer than replan_every"):
        run_closed_loop(zero_policy, ArmReachEnv, replan_every=11, **kw)
    with pytest.raises(ValueError, match="shape"):
        run_closed_loop(lambda o: {"actions": np.zeros((10, 7))}, ArmReachEnv, replan_every=1, **kw)
    with pytest.raises(ValueError, match="non-finite"):
        run_closed_loop(lambda o: {"actions": np.full((10, 14), np.nan)}, ArmReachEnv, replan_every=1, **kw)
    with pytest.raises(ValueError, match="state_names"):
        run_closed_loop(zero_policy, ArmReachEnv, replan_every=1, **{**kw, "state_names": ["nope_joint"]})
    with pytest.raises(ValueError, match="permutation"):
        run_closed_loop(zero_policy, ArmReachEnv, replan_every=1, action_names=G1_ARM_JOINTS[:7], **kw)
    assert all(env.closed for env in ArmReachEnv.instances), "env must be closed even when the policy fails"
