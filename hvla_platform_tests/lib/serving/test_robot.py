"""The robot side through a real server and client: chunks executed open-loop, re-queries, the
action guard, the emergency stop, faults, and the robot safety log."""

import json

import numpy as np
import pytest

from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS
from hvla_platform.lib.serving.client import PolicyClient
from hvla_platform.lib.serving.robot import RobotConfig, run_robot
from hvla_platform.lib.serving.safety import ActionGuard, EmergencyStop, SafetyLog
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform_tests.lib.serving.test_control_loop import STATE_NAMES, ArmReachEnv, oracle_policy

LIMITS = (np.full(14, -1.5), np.full(14, 1.5))
META = {"checkpoint": "oracle", "action_horizon": 10, "action_dim": 14, "state_names": STATE_NAMES,
        "action_names": list(G1_ARM_JOINTS), "cameras": ["head", "wrist_right"]}


@pytest.fixture(autouse=True)
def _fresh_envs():
    ArmReachEnv.instances.clear()


class OraclePolicy:
    """Reads the goal from the head image (see ArmReachEnv); counts its queries."""

    metadata = META

    def __init__(self, after=None):
        self.calls = 0
        self.after = after  # (call index, actions) to return from that call on

    def infer(self, obs):
        self.calls += 1
        out = oracle_policy(obs)
        if self.after and self.calls >= self.after[0]:
            out["actions"] = self.after[1]
        return out


def drive(policy, cfg, tmp_path, **kw):
    slog = SafetyLog(tmp_path / "safety.jsonl")
    with PolicyServer(policy, port=0) as server, PolicyClient("127.0.0.1", server.port) as client:
        res = run_robot(client.infer, client.metadata, ArmReachEnv, LIMITS, cfg, safety_log=slog, **kw)
    slog.close()
    lines = [json.loads(ln) for ln in (tmp_path / "safety.jsonl").read_text().splitlines()]
    return res, lines


def test_closed_loop_through_server_succeeds_and_logs_modes(tmp_path):
    policy = OraclePolicy()
    res, lines = drive(policy, RobotConfig(episodes=2, seed=3, max_steps=60, replan_every=4, max_step_rad=0.25), tmp_path)
    assert res["successes"] == 2 and res["stopped_by"] is None
    assert [t["stop_reason"] for t in res["per_trial"]] == ["success", "success"]
    assert policy.calls == sum(t["queries"] for t in res["per_trial"])
    for t in res["per_trial"]:
        assert t["queries"] == -(-t["steps"] // 4)  # re-queried every 4 executed actions
        assert t["clipped_steps"] >= 1  # the oracle jumps to the goal; the guard limits the step to 0.25 rad
    # the guard: no command moved a joint more than 0.25 rad from the previous command
    for env in ArmReachEnv.instances:
        cmds = np.stack([np.zeros(14, np.float32)] + env.received)
        assert np.abs(np.diff(cmds, axis=0)).max() <= 0.25 + 1e-6
    modes = [ln["mode"] for ln in lines if ln["event"] == "mode"]
    assert modes == ["ready", "running", "running", "stopped"]
    assert [ln["reason"] for ln in lines if ln["event"] == "stop"] == ["success", "success"]
    limits = [ln for ln in lines if ln["event"] == "limit"]
    assert limits and limits[0]["max_excess_rad"] > 0 and set(limits[0]["joints"]) <= set(G1_ARM_JOINTS)


def test_emergency_stop_file_stops_before_the_next_command(tmp_path):
    stop_file = tmp_path / "ESTOP"
    estop = EmergencyStop(stop_file)

    class Touching(OraclePolicy):
        def infer(self, obs):
            if self.calls == 2:
                stop_file.touch()  # the operator presses the button during the second chunk
            return super().infer(obs)

    res, lines = drive(Touching(), RobotConfig(episodes=3, max_steps=100, replan_every=2), tmp_path, estop=estop)
    assert res["stopped_by"] == "estop" and res["trials_run"] == 1
    trial = res["per_trial"][0]
    assert trial["stop_reason"] == "estop" and trial["steps"] == 4  # pressed during the 3rd query: none of its commands went out
    assert len(ArmReachEnv.instances[0].received) == 4
    estop_lines = [ln for ln in lines if ln["event"] == "mode" and ln["mode"] == "estop"]
    assert len(estop_lines) == 1 and "stop file" in estop_lines[0]["reason"]


def test_server_error_is_a_fault_the_robot_stops_on(tmp_path):
    bad = np.full((10, 14), np.nan, np.float32)
    res, lines = drive(OraclePolicy(after=(2, bad)), RobotConfig(episodes=2, max_steps=100, replan_every=5), tmp_path)
    assert res["stopped_by"] == "fault" and res["trials_run"] == 1
    assert res["per_trial"][0]["stop_reason"] == "fault" and res["per_trial"][0]["steps"] == 5
    fault = [ln for ln in lines if ln["event"] == "mode" and ln["mode"] == "fault"]
    assert "the policy produced invalid actions" in fault[0]["error"]


def test_without_stop_on_fault_the_error_is_raised(tmp_path):
    from hvla_platform.lib.serving.client import ServerError

    bad = np.full((10, 14), np.nan, np.float32)
    with pytest.raises(ServerError, match="invalid actions"):
        drive(OraclePolicy(after=(1, bad)), RobotConfig(max_steps=20), tmp_path, stop_on_fault=False)


def test_replan_longer_than_the_horizon_is_refused(tmp_path):
    with pytest.raises(ValueError, match="between 1 and the server's action horizon 10"):
        run_robot(lambda o: {}, META, ArmReachEnv, LIMITS, RobotConfig(replan_every=11))


def test_guard_limits():
    g = ActionGuard([-1, -1], [1, 1], max_step_rad=0.1)
    safe, info = g.filter(np.array([0.05, 2.0]), np.array([0.0, 0.95]))
    np.testing.assert_allclose(safe, [0.05, 1.0], atol=1e-7)
    assert info == {"joints": [1], "max_excess_rad": pytest.approx(1.0)}
    assert g.filter(np.array([0.0, 0.0]), np.zeros(2))[1] is None
    with pytest.raises(ValueError, match="non-finite"):
        g.filter(np.array([np.inf, 0.0]), np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        g.filter(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError):
        ActionGuard([1], [0])


def test_estop_latches(tmp_path):
    e = EmergencyStop()
    assert not e.is_set()
    e.trigger("operator")
    e.trigger("second")
    assert e.is_set() and e.reason == "operator"
