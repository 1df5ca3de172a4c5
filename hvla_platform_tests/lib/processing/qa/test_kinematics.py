"""Measured joint speed (``joint_velocity``), open/close toggling (``command_chatter``) and
placeholder instructions (``task_non_empty``) on real recordings converted by the pipeline: what a
supervisor sees in the QA results — the check failed or passed, the joint named, the bound used and
where it came from, the frames — and that a gate zeroes the score."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.processing.build import convert_episode
from hvla_platform.lib.processing.qa.kinematics import measured_speed, overspeed_mask, swing_indices, toggle_mask
from hvla_platform.lib.processing.qa.robot_limits import read_velocity_limits, velocity_limits
from hvla_platform.lib.processing.qa.score import GATES
from hvla_platform.lib.processing.qa.task_text import placeholder_reason
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform_tests.fixtures.profile_recordings import ProfileSignals, write_profile_recording
from hvla_platform_tests.fixtures.recordings import write_recording

TH = QAThresholds()
DAY = "2026-11-10"
PROFILES = Path(__file__).resolve().parents[4] / "hvla_platform" / "profiles"


def _convert(folder: Path, out: Path, profile=None):
    conv = convert_episode(folder, out, day=DAY, robot="r-001", episode_id=folder.name, attrs={}, profile=profile)
    assert conv.status == "converted", conv.reason
    return conv


@pytest.fixture(scope="module")
def g1(tmp_path_factory):
    """G1 fixture recordings (100 Hz joint states, 20 fps episodes): clean, a 0.3 rad one-sample
    jump at 1.2 s (30 rad/s), a 0.12 rad one at 2.6 s (12 rad/s), and a "TODO" task."""
    root = tmp_path_factory.mktemp("g1")
    recs = {
        "ep-clean": write_recording(root / "recs", episode_id="ep-clean", seed=11, duration_s=3.0),
        "ep-jump": write_recording(root / "recs", episode_id="ep-jump", seed=11, duration_s=3.0,
                                   defects=("state_spike",)),
        "ep-small-jump": write_recording(root / "recs", episode_id="ep-small-jump", seed=12, duration_s=3.0,
                                         defects=("state_spike",), defect_params={"state_spike": {
                                             "at": 2.6, "size": -0.12, "joint": "left_wrist_roll_joint"}}),
        "ep-todo": write_recording(root / "recs", episode_id="ep-todo", seed=13, duration_s=3.0, task="TODO"),
    }
    return {k: _convert(f, root / "out") for k, f in recs.items()}


def test_a_clean_recording_passes_and_reports_its_fastest_joint_and_the_bound(g1):
    c = g1["ep-clean"]
    jv = c.qa_checks["joint_velocity"]
    assert jv["passed"] and jv["frames"] == []
    assert jv["detail"].startswith("every joint within its velocity limit; fastest ")
    assert "limit 20 rad/s (default max_joint_speed_rad_s: the unitree_g1 model states none)" in jv["detail"]
    peaks = c.qa_metrics["joint_speed_max_rad_s"]
    assert 0.05 < max(peaks.values()) < 1.0  # the fixture's sines: ≤ 0.3 rad/s, plus stamp effects
    assert c.qa_metrics["joint_velocity_violations"] == 0
    assert c.qa_checks["command_chatter"]["passed"] and c.qa_checks["task_non_empty"]["passed"]


def test_a_jump_faster_than_the_joint_can_move_fails_and_gates(g1):
    c = g1["ep-jump"]
    jv = c.qa_checks["joint_velocity"]
    assert not jv["passed"]
    assert jv["detail"].startswith("right_shoulder_pitch_joint: 2 sample(s) up to 30.")  # out and back
    assert "(limit 20 rad/s (default max_joint_speed_rad_s" in jv["detail"]
    assert jv["frames"] == [24]  # 1.2 s × 20 fps
    assert c.qa_metrics["joint_speed_max_rad_s"]["right_shoulder_pitch_joint"] == pytest.approx(30.0, abs=1.0)
    assert not c.qa_checks["state_spikes"]["passed"]  # the same sample, seen as a position outlier
    assert "joint_velocity" in GATES and c.quality_score == 0.0


def test_a_jump_the_joint_can_make_is_left_to_state_spikes(g1):
    c = g1["ep-small-jump"]
    assert c.qa_checks["joint_velocity"]["passed"], c.qa_checks["joint_velocity"]
    assert c.qa_metrics["joint_speed_max_rad_s"]["left_wrist_roll_joint"] == pytest.approx(12.0, abs=0.6)
    assert not c.qa_checks["state_spikes"]["passed"]


def test_a_placeholder_task_converts_fails_task_non_empty_and_scores_zero(g1):
    c = g1["ep-todo"]
    assert c.qa_checks["task_non_empty"] == {"passed": False, "detail": "'TODO': a placeholder", "frames": []}
    assert [k for k, v in c.qa_checks.items() if not v["passed"]] == ["task_non_empty"]
    assert c.quality_score == 0.0


@pytest.mark.parametrize("task,why", [
    ("", "empty"), ("  \t", "empty"), ("TODO", "a placeholder"), ("todo:", "a placeholder"), (" N/A.", "a placeholder"),
    ("<TASK>", "a placeholder"), ("...", "a placeholder"), ("Untitled", "a placeholder"), ("na", "a placeholder"),
    ("42", "no letter"), ("-- ?", "no letter"), ("touch the red cube", ""), ("test the gripper on the mug", ""),
])
def test_placeholder_instructions(task, why):
    assert placeholder_reason(task) == why


def test_speed_from_stamps_ignores_jitter_and_clock_jumps():
    t = np.array([0, 10, 20, 21, 30, 40, 30], np.int64) * 1_000_000  # ms: a 1 ms pair, then a jump back
    q = np.array([0.0, 0.01, 0.02, 0.021, 0.03, 0.04, 0.05])[:, None]
    v = measured_speed(t, q)[:, 0]
    assert np.isnan(v[0]) and np.isnan(v[6])  # no interval before; an interval that goes backwards
    assert v[1:3] == pytest.approx([1.0, 1.0])
    assert v[3] == pytest.approx(0.001 / 0.005)  # floored at half the median interval, not 1 ms
    lim = np.array([0.5])
    assert overspeed_mask(v[:, None], None, lim)[:, 0].tolist() == [False, True, True, False, True, True, False]
    field = np.zeros((7, 1))
    field[2] = -3.0  # the stream's own velocity field beyond the limit
    assert overspeed_mask(np.zeros((7, 1)), field, np.array([2.0]))[:, 0].nonzero()[0].tolist() == [2]
    with pytest.raises(ValueError, match="do not match"):
        measured_speed(t[:3], q)


def test_swings_count_open_close_not_noise_or_small_moves():
    t = np.arange(60) * 50_000_000  # 20 Hz, 3 s
    close_release = np.r_[np.zeros(10), np.linspace(0, 0.8, 12), np.full(20, 0.8), np.linspace(0.8, 0, 10), np.zeros(8)]
    assert swing_indices(close_release, 0.4).size == 2
    ranges = np.array([0.8])
    assert not toggle_mask(t, close_release[:, None], ranges, 0.5, 4, 1.0).any()
    bounce = np.zeros(60)
    bounce[20:40] = np.repeat([0.8, 0.0] * 4, 3)[:20]  # toggled every 3 messages (0.15 s)
    m = toggle_mask(t, bounce[:, None], ranges, 0.5, 4, 1.0)[:, 0]
    assert m.any() and m.nonzero()[0].min() >= 20 and m.nonzero()[0].max() <= 40
    wiggle = 0.4 + 0.05 * (-1) ** np.arange(60)  # jitter, not toggling: chatter_mask's business
    assert not toggle_mask(t, wiggle[:, None], ranges, 0.5, 4, 1.0).any()
    assert not toggle_mask(t, bounce[:, None], np.array([np.inf]), 0.5, 4, 1.0).any()  # no range, no judgement
    with pytest.raises(ValueError, match="swing must be > 0"):
        swing_indices(bounce, 0.0)


URDF = """<robot name="ur5e_speeds">
  <link name="base_link"/><link name="l1"/><link name="l2"/><link name="l3"/>
  <joint name="shoulder_pan_joint" type="revolute"><parent link="base_link"/><child link="l1"/>
    <limit lower="-6.28" upper="6.28" effort="150" velocity="3.14159"/></joint>
  <joint name="elbow_joint" type="revolute"><parent link="l1"/><child link="l2"/>
    <limit lower="-3.14" upper="3.14" effort="150" velocity="3.14159"/></joint>
  <joint name="wrist_3_joint" type="continuous"><parent link="l2"/><child link="l3"/>
    <limit effort="28" velocity="0"/></joint>
  <joint name="flange" type="fixed"><parent link="l3"/><child link="base_link"/></joint>
</robot>
"""


@pytest.fixture(scope="module")
def ur5e(tmp_path_factory):
    """The shipped UR5e + 2F-85 profile with small cameras and one more attachment: a URDF (in an
    importable package, as profiles require) stating the UR5e arm's velocity limits."""
    root = tmp_path_factory.mktemp("ur5e")
    pkg = root / "site" / "hvla_test_speeds"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "ur5e_speeds.urdf").write_text(URDF)
    sys.path.insert(0, str(root / "site"))
    importlib.invalidate_caches()
    spec = yaml.safe_load((PROFILES / "ur5e_robotiq_2f85.yaml").read_text())
    spec["profile"] = "ur5e_speeds_test"
    spec["robot"]["attachments"].append({"package": "hvla_test_speeds", "path": "ur5e_speeds.urdf"})
    for cam in spec["cameras"].values():
        cam.update(height=24, width=32)
    (root / "ur5e_speeds_test.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        yield root, load_profile("ur5e_speeds_test", search_dirs=[root])
    finally:
        sys.path.remove(str(root / "site"))


class _FastElbowBouncingGripper(ProfileSignals):
    """From 1.0 s the measured elbow moves 0.05 rad per 10 ms for 5 samples (5 rad/s: under the
    20 rad/s default, over the UR5e's π rad/s); from 1.5 s the gripper command toggles open/closed
    every 0.15 s for 1 s."""

    def position(self, joints, t_s):
        q = super().position(joints, t_s)
        if "elbow_joint" in joints:
            ramp = np.clip((np.asarray(t_s, np.float64) - 1.0) / 0.05, 0.0, 1.0) * 0.25
            q[..., joints.index("elbow_joint")] += ramp
        return q

    def target(self, joints, t_s):
        q = super().target(joints, t_s)
        if joints == ["right_driver_joint"]:
            t = np.asarray(t_s, np.float64)
            bouncing = (t >= 1.5) & (t < 2.5)
            q[..., 0] = np.where(bouncing, np.where(np.floor((t - 1.5) / 0.15) % 2 == 0, 0.8, 0.0), 0.0)
        return q


def test_velocity_limits_come_from_a_urdf_and_an_mjcf_states_none(ur5e):
    root, prof = ur5e
    got = read_velocity_limits(root / "site" / "hvla_test_speeds" / "ur5e_speeds.urdf")
    assert got == {"shoulder_pan_joint": 3.14159, "elbow_joint": 3.14159}  # velocity="0" states nothing
    assert velocity_limits(prof, ["elbow_joint", "right_driver_joint"]) == {
        "elbow_joint": (3.14159, "ur5e_speeds.urdf")}
    assert velocity_limits("unitree_g1_29dof", ["left_elbow_joint"]) == {}  # g1.xml: MJCF, no velocity limit


def test_ur5e_the_urdf_bound_is_used_and_gripper_toggling_is_chatter(ur5e, tmp_path):
    _, prof = ur5e
    clean = _convert(write_profile_recording(tmp_path / "recs", prof, ProfileSignals(prof, seed=3),
                                             episode_id="ep-ur5e-clean", duration_s=3.0), tmp_path / "out", prof)
    assert clean.qa_checks["joint_velocity"]["passed"] and clean.qa_checks["command_chatter"]["passed"]
    bad = _convert(write_profile_recording(tmp_path / "recs", prof, _FastElbowBouncingGripper(prof, seed=3),
                                           episode_id="ep-ur5e-bad", duration_s=3.0), tmp_path / "out", prof)
    jv = bad.qa_checks["joint_velocity"]
    assert not jv["passed"]
    assert jv["detail"].startswith("elbow_joint: 5 sample(s) up to ")
    assert bad.qa_metrics["joint_speed_max_rad_s"]["elbow_joint"] == pytest.approx(5.0, abs=0.35)  # ramp ± the sine
    assert jv["detail"].endswith("(limit 3.14159 rad/s from ur5e_speeds.urdf)")
    assert jv["frames"] and all(30 <= f <= 32 for f in jv["frames"])  # 1.00–1.05 s at 30 fps
    ch = bad.qa_checks["command_chatter"]
    assert not ch["passed"] and ch["detail"].startswith("gripper: ") and "['right_driver_joint']" in ch["detail"]
    assert ch["frames"] and all(45 <= f <= 76 for f in ch["frames"])  # 1.5–2.5 s at 30 fps
    assert bad.quality_score == 0.0
