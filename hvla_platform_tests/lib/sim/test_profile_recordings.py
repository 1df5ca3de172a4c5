"""``record_episode(profile=...)`` writes what a ``ros2 bag`` of that robot would contain: every topic
the profile requires, with its message type, at its rate, with the profile's joints, image sizes and
encodings, and a ``metadata.yaml`` naming the profile. Read back with ``mcap`` + ``mcap_ros2``."""

from __future__ import annotations

import io

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from PIL import Image

from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata
from hvla_platform.lib.formats.recording.profile import RobotProfile, load_profile
from hvla_platform.lib.sim.recorder import CAMERA_START_DELAY_S, record_episode

DAY = "2026-11-12"
HEADERLESS = {"std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float64", "std_msgs/msg/String"}


def _read(folder) -> tuple[dict[str, str], dict[str, list]]:
    """(topic -> schema name, topic -> [(log_ns, publish_ns, decoded)]) of the episode's MCAP."""
    msgs: dict[str, list] = {}
    with open(next(folder.glob("*.mcap")), "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None and summary.chunk_indexes
        types = {ch.topic: summary.schemas[ch.schema_id].name for ch in summary.channels.values()}
        last = -1
        for _schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
            assert message.log_time >= last, "messages are written in log-time order"
            last = message.log_time
            msgs.setdefault(channel.topic, []).append((message.log_time, message.publish_time, decoded))
    return types, msgs


def _stamp(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def check_recording(folder, prof: RobotProfile, duration_s: float, *, named: bool = True) -> dict[str, list]:
    """The checks every profile's recording must pass; returns the messages per topic."""
    types, msgs = _read(folder)
    expected_types = {**prof.required_topics, **prof.optional_topics}
    assert types == expected_types
    # rates: message counts and stamp spacing match the nominal rates within 20 %
    starts = {c.topic: CAMERA_START_DELAY_S for c in prof.cameras.values()}
    for topic, rate in prof.nominal_rates_hz.items():
        got = msgs[topic]
        start = starts.get(topic, 0.0)
        expected = int(np.floor((duration_s - start) * rate + 1e-6)) + 1
        assert abs(len(got) - expected) <= max(1, 0.2 * expected), (topic, len(got), expected)
        if len(got) >= 5:
            times = np.array([p if types[topic] in HEADERLESS else _stamp(m) for _, p, m in got], dtype=np.int64)
            assert np.all(np.diff(times) > 0), topic
            measured = (len(times) - 1) / ((times[-1] - times[0]) / 1e9)
            assert measured == pytest.approx(rate, rel=0.2), topic
            logs = np.array([lt for lt, _, _ in got])
            assert np.all(logs >= times - 5_000_000) and np.std(logs - times) > 0, f"{topic}: log times carry jitter"
    # joint state: the profile's joints, in order
    js = msgs[prof.joint_state.topic]
    for _, _, m in js[:3]:
        assert list(m.name) == prof.state_names
        assert len(m.position) == len(m.velocity) == len(m.effort) == len(prof.state_names)
        assert np.all(np.isfinite(m.position))
    # commands: by type
    for cmd in prof.commands.values():
        first = msgs[cmd.topic][0][2]
        if cmd.type == "sensor_msgs/msg/JointState":
            assert list(first.name) == cmd.joints and len(first.position) == len(cmd.joints)
        elif cmd.type == "std_msgs/msg/Float64MultiArray":
            assert len(first.data) == len(cmd.joints)
            assert [(d.size, d.stride) for d in first.layout.dim] == [(len(cmd.joints), len(cmd.joints))]
        else:
            assert isinstance(first.data, float)
    # cameras: sizes and encodings of the profile
    for name, cam in prof.cameras.items():
        frames = msgs[cam.topic]
        for _, _, m in (frames[0], frames[-1]):
            assert m.header.frame_id == f"{name}_camera_optical_frame"
            if cam.type == "sensor_msgs/msg/CompressedImage":
                assert m.format == cam.encoding
                img = Image.open(io.BytesIO(bytes(m.data)))
                assert img.format == cam.encoding.upper() and np.asarray(img).shape == (cam.height, cam.width, 3), name
            else:
                assert (m.height, m.width, m.encoding, m.is_bigendian) == (cam.height, cam.width, cam.encoding, 0)
                bpp = {"rgb8": 3, "bgr8": 3, "mono8": 1, "16UC1": 2, "32FC1": 4}[cam.encoding]
                assert m.step == cam.width * bpp and len(m.data) == m.step * m.height, name
        if not cam.is_depth and len(frames) > 1:
            a, b = (bytes(frames[i][2].data) for i in (0, 1))
            assert a != b, f"{name}: consecutive frames differ (sensor noise), never frozen"
    # metadata.yaml: valid, names the profile (when asked for one) and lists the profile's topics
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    parsed = parse_recording_metadata(meta, source=str(folder / "metadata.yaml"))
    assert parsed.profile_name == (prof.profile if named else None)
    assert meta["robot"]["model"] == prof.robot.model
    assert meta["topics"] == sorted(expected_types) and meta["duration_s"] == duration_s
    return msgs


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("profile-recordings")


def test_g1_profile_named_explicitly(root):
    prof = load_profile("unitree_g1_29dof")
    folder = record_episode(root, episode_id="ep-g1", robot_id="g1-009", capture_day=DAY, seed=3, duration_s=1.0,
                            profile="unitree_g1_29dof")
    msgs = check_recording(folder, prof, 1.0)
    assert yaml.safe_load((folder / "metadata.yaml").read_text())["robot"] == {
        "id": "g1-009", "model": "unitree_g1", "profile": "unitree_g1_29dof"}
    loco = msgs[prof.locomotion.topic][0][2]
    assert (loco.forward_flag, loco.lateral_flag, loco.yaw_flag) == (0, 0, 0) and loco.stance_height > 0.5


def test_g1_with_hands_commands_the_hands(root):
    prof = load_profile("unitree_g1_29dof_hands")
    folder = record_episode(root, episode_id="ep-hands", robot_id="g1-dex3-001", capture_day=DAY, seed=2,
                            duration_s=1.5, profile=prof)
    msgs = check_recording(folder, prof, 1.5)
    hands = np.array([m.position for _, _, m in msgs["/hand_controller/joint_command"]])
    assert hands.shape[1] == 14 and np.ptp(hands, axis=0).max() > 0.1, "the expert moves the hand joints"
    state = np.array([m.position for _, _, m in msgs["/joint_states"]])
    assert np.ptp(state[:, 29:], axis=0).max() > 0.05, "the hand joints follow their commands"
    assert yaml.safe_load((folder / "metadata.yaml").read_text())["task"].startswith("grasp the ")


def test_h1_three_cameras_depth_and_imu_synthetic_frames(root):
    prof = load_profile("unitree_h1_3cam")
    folder = record_episode(root, episode_id="ep-h1-syn", robot_id="h1-001", capture_day=DAY, seed=1,
                            duration_s=1.5, profile=prof, frames="synthetic")
    msgs = check_recording(folder, prof, 1.5)
    depth = msgs["/h1/camera/head/depth/image_rect_raw"][-1][2]
    mm = np.frombuffer(bytes(depth.data), dtype="<u2").reshape(depth.height, depth.width)
    valid = mm[mm > 0]
    assert valid.size > 0.5 * mm.size, "most pixels have a depth return"
    assert 300 < np.median(valid) < 3000 and valid.max() < 10_000, "depth in millimetres, table-top distances"
    imu = [m for _, _, m in msgs["/h1/imu/data"]]
    acc = np.array([[m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z] for m in imu])
    quat = np.array([[m.orientation.x, m.orientation.y, m.orientation.z, m.orientation.w] for m in imu])
    assert np.linalg.norm(acc, axis=1) == pytest.approx(9.81, abs=0.5), "an accelerometer at rest reads gravity"
    assert np.linalg.norm(quat, axis=1) == pytest.approx(1.0, abs=1e-6)
    assert imu[0].angular_velocity_covariance[0] > 0 and imu[0].header.frame_id
    arm = np.array([m.data for _, _, m in msgs["/h1/upper_body_controller/commands"]])
    assert arm.shape[1] == 8 and np.ptp(arm, axis=0).max() > 0.1, "the expert moves an arm"
    assert {m.data for _, _, m in msgs["/h1/task/instruction"]} == {yaml.safe_load(
        (folder / "metadata.yaml").read_text())["task"]}


def test_h1_rendered_frames(root):
    prof = load_profile("unitree_h1_3cam")
    folder = record_episode(root, episode_id="ep-h1-ren", robot_id="h1-001", capture_day=DAY, seed=4,
                            duration_s=0.3, profile=prof, frames="rendered")
    msgs = check_recording(folder, prof, 0.3)
    head = np.asarray(Image.open(io.BytesIO(bytes(msgs["/h1/camera/head/color/image_raw/compressed"][0][2].data))))
    assert head.std() > 10, "a rendered scene, not a flat image"
    depth = msgs["/h1/camera/head/depth/image_rect_raw"][0][2]
    mm = np.frombuffer(bytes(depth.data), dtype="<u2")
    assert 300 < np.median(mm[mm > 0]) < 3000


def test_ur5e_with_gripper(root):
    prof = load_profile("ur5e_robotiq_2f85")
    folder = record_episode(root, episode_id="ep-ur5e", robot_id="ur5e-001", capture_day=DAY, seed=5,
                            duration_s=1.0, profile=prof)
    msgs = check_recording(folder, prof, 1.0)
    assert prof.locomotion is None and not any("locomotion" in t for t in msgs)
    base = msgs["/base_camera/image_raw"][0][2]
    rgb = np.frombuffer(bytes(base.data), np.uint8).reshape(base.height, base.width, 3)
    assert rgb.std() > 10
    wrench = msgs["/force_torque_sensor_broadcaster/wrench"][0][2]
    assert np.isfinite([wrench.wrench.force.x, wrench.wrench.force.z, wrench.wrench.torque.y]).all()
    assert len(msgs["/joint_states"][0][2].name) == 7
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    assert "hand" not in meta["scene"] and meta["task"].startswith("grasp the ")


def test_ur5e_expert_grasps_the_object(root):
    """A whole episode (synthetic frames keep it quick): the gripper closes around the object."""
    prof = load_profile("ur5e_robotiq_2f85")
    folder = record_episode(root, episode_id="ep-ur5e-full", robot_id="ur5e-001", capture_day=DAY, seed=6,
                            duration_s=3.6, profile=prof, frames="synthetic")
    msgs = check_recording(folder, prof, 3.6)
    grip = np.array([m.data for _, _, m in msgs["/robotiq_gripper/command"]])
    assert grip[0] == 0.0 and grip[-1] == pytest.approx(0.8), "the gripper command goes from open to closed"
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    assert meta["outcome"]["success"], meta["outcome"]
