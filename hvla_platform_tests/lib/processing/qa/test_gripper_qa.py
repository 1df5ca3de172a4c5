"""Episode QA on robots with grippers and hands (profile ``role: gripper`` command streams): a clean
grasp passes every check — a gripper command is a step the fingers stop short of, and contact pushes
the held arm while the gripper closes — while a frozen arm command with the gripper idle, or an arm
that moves far more than contact explains, is still a stall."""

import numpy as np
import pytest

from hvla_platform.lib.formats.recording.profile import RobotProfile, load_profile
from hvla_platform.lib.formats.recording.streams import JointStream
from hvla_platform.lib.processing.build import convert_episode
from hvla_platform.lib.processing.qa.metrics import command_stalls
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.sim.recorder import record_episode

TH = QAThresholds()


@pytest.mark.parametrize("profile, robot", [("ur5e_robotiq_2f85", "ur5e-001"), ("unitree_g1_29dof_hands", "g1h-001")])
def test_clean_simulated_grasp_passes_every_check(tmp_path, profile, robot):
    folder = record_episode(tmp_path / "rec", episode_id=f"ep-{robot}", robot_id=robot, capture_day="2026-11-12",
                            seed=6, profile=profile, frames="synthetic", duration_s=4.5)
    conv = convert_episode(folder, tmp_path / "out", day="2026-11-12", robot=robot, episode_id=f"ep-{robot}",
                           attrs={})
    assert conv.status == "converted", conv.reason
    failed = {k: v["detail"] for k, v in conv.qa_checks.items() if not v["passed"]}
    assert failed == {}
    assert conv.quality_score > 0.9
    grippers = [n for n, c in load_profile(profile).commands.items() if c.role == "gripper"]
    assert conv.qa_metrics["gripper_streams"] == grippers and grippers
    # the gripper's joints are left out of tracking, not the arm's
    tracked = set(conv.qa_metrics["tracking_error_p95_by_joint_rad"])
    gripper_joints = {j for n in grippers for j in load_profile(profile).commands[n].joints}
    assert tracked and not tracked & gripper_joints


def _streams(motion_rad: float):
    """A 2 s held arm command at 50 Hz while the measured wrist drifts by ``motion_rad`` (100 Hz)."""
    t_cmd = np.arange(100, dtype=np.int64) * 20_000_000
    cmd = JointStream(t_cmd, np.zeros((100, 1)), np.zeros((100, 1)), ["wrist_1_joint"])
    t_js = np.arange(200, dtype=np.int64) * 10_000_000
    js = JointStream(t_js, np.linspace(0.0, motion_rad, 200)[:, None], np.zeros((200, 1)), ["wrist_1_joint"])
    return cmd, js


@pytest.mark.parametrize("motion, gripper_moved, stalled", [
    (0.10, True, False),   # contact deflection while the gripper closes: not a stall
    (0.10, False, True),   # the same drift with the gripper idle: the teleop stream froze
    (0.40, True, True),    # far beyond contact deflection: a stall even while grasping
])
def test_grasp_hold_bound(motion, gripper_moved, stalled):
    cmd, js = _streams(motion)
    grasps = {"right": np.array([600_000_000], np.int64)} if gripper_moved else {}
    stalls, _ = command_stalls(cmd, js, TH.frozen_s, TH.stall_motion_rad, name="arm", grasps=grasps,
                               grasp_motion_rad=TH.stall_grasp_motion_rad)
    assert bool(stalls) == stalled
    if stalls:
        assert stalls[0]["grasp"] == gripper_moved and stalls[0]["joint"] == "wrist_1_joint"


def test_gripper_role_is_validated_strictly():
    prof = load_profile("ur5e_robotiq_2f85").model_dump()
    prof["commands"]["gripper"]["role"] = "grasper"
    with pytest.raises(ValueError, match="role"):
        RobotProfile.model_validate(prof)
