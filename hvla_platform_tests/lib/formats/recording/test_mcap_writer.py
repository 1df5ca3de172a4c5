"""RecordingWriter writes every message type a robot profile may name, with ROS 2 Humble definitions
that ``mcap_ros2`` and ``rosbags`` both read, and streams to disk in log-time order."""

from __future__ import annotations

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.decoder import DecoderFactory
from rosbags.typesys import Stores, get_typestore

from hvla_platform.lib.formats.recording.mcap_writer import RecordingWriter
from hvla_platform.lib.formats.recording.profile import EXTRA_COLUMNS, MSG_IMAGE
from hvla_platform.lib.formats.recording.ros2_msgs import SCHEMAS


def _read(path) -> list[tuple[str, str, int, int, object]]:
    with open(path, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        return [(c.topic, s.name, m.log_time, m.publish_time, d)
                for s, c, m, d in reader.iter_decoded_messages(log_time_order=False)]


def _fields(msgdef: str) -> list[list[str]]:
    """Each block of a ros2msg schema (main, then dependencies) as its 'type name' lines, with
    builtin_interfaces/Time spelled like rosbags spells it."""
    blocks = msgdef.split("=" * 80 + "\n")
    out = []
    for b in blocks:
        lines = [ln.strip() for ln in b.splitlines() if ln.strip() and not ln.startswith("MSG:")]
        out.append([ln.replace("builtin_interfaces/Time", "time") for ln in lines])
    return out


@pytest.mark.parametrize("datatype", ["sensor_msgs/msg/Image", "std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float64",
                                      "sensor_msgs/msg/Imu", "geometry_msgs/msg/WrenchStamped",
                                      "sensor_msgs/msg/JointState", "sensor_msgs/msg/CompressedImage",
                                      "std_msgs/msg/String"])
def test_definitions_are_the_ros2_humble_ones(datatype):
    theirs, _ = get_typestore(Stores.ROS2_HUMBLE).generate_msgdef(datatype)
    ours = _fields(SCHEMAS[datatype])
    # rosbags does not list builtin_interfaces/Time (a builtin for it); everything else is identical
    assert [b for b in ours if b != ["int32 sec", "uint32 nanosec"]] == _fields(theirs)


HEADER = {"stamp": {"sec": 1_791_000_123, "nanosec": 999_999_999}, "frame_id": "héad_ö"}
SAMPLES = {
    "sensor_msgs/msg/JointState": [
        {"header": HEADER, "name": ["a", "bb", "ccc"], "position": [0.1, -2.0, 3e-9], "velocity": [], "effort": [1.0]},
        {"header": {**HEADER, "frame_id": ""}, "name": [], "position": [], "velocity": [], "effort": []}],
    "sensor_msgs/msg/CompressedImage": [{"header": HEADER, "format": "jpeg", "data": bytes(range(7))},
                                        {"header": HEADER, "format": "", "data": b""}],
    "sensor_msgs/msg/Image": [{"header": HEADER, "height": 2, "width": 3, "encoding": "16UC1", "is_bigendian": 0,
                               "step": 6, "data": bytes(12)}],
    "std_msgs/msg/String": [{"data": "grasp the red cube"}, {"data": ""}],
    "std_msgs/msg/Float64": [{"data": -0.125}],
    "std_msgs/msg/Float64MultiArray": [
        {"layout": {"dim": [{"label": "joints", "size": 3, "stride": 3}], "data_offset": 0}, "data": [1.0, 2.0, 3.5]},
        {"layout": {"dim": [], "data_offset": 7}, "data": []}],
    "sensor_msgs/msg/Imu": [{"header": HEADER, "orientation": {"x": 0.1, "y": 0.2, "z": 0.3, "w": 0.9},
                             "orientation_covariance": [float(i) for i in range(9)],
                             "angular_velocity": {"x": 1.0, "y": 2.0, "z": 3.0}, "angular_velocity_covariance": [0.5] * 9,
                             "linear_acceleration": {"x": 0.0, "y": 0.0, "z": 9.81},
                             "linear_acceleration_covariance": [0.0] * 9}],
    "geometry_msgs/msg/WrenchStamped": [{"header": HEADER, "wrench": {"force": {"x": 1.0, "y": 2.0, "z": 3.0},
                                                                      "torque": {"x": -1.0, "y": -2.0, "z": -3.0}}}],
    "hvla_msgs/msg/LocomotionCommand": [{"header": HEADER, "forward_flag": -1, "lateral_flag": 0, "yaw_flag": 1,
                                         "stance_height": 0.74}],
}


@pytest.mark.parametrize("datatype", sorted(SAMPLES))
def test_every_schema_encodes_and_decodes_back(datatype):
    """Each message type the writer knows round-trips through mcap_ros2's encoder and decoder."""
    from mcap.records import Schema
    from mcap_ros2.decoder import DecoderFactory

    encode = serialize_dynamic(datatype, SCHEMAS[datatype])[datatype]
    decode = DecoderFactory().decoder_for("cdr", Schema(id=1, name=datatype, encoding="ros2msg",
                                                        data=SCHEMAS[datatype].encode()))
    for msg in SAMPLES[datatype]:
        _assert_same(decode(encode(msg)), msg, datatype)
    assert set(SCHEMAS) == set(SAMPLES)


def _assert_same(got, want, where: str) -> None:
    """``got`` (a decoded message) holds every value of ``want`` (the dict that was encoded)."""
    if isinstance(want, dict):
        for key, value in want.items():
            _assert_same(getattr(got, key), value, f"{where}.{key}")
    elif isinstance(want, (bytes, bytearray)):
        assert bytes(got) == bytes(want), where
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6), where  # float32 fields round
    else:
        assert got == want, where


def test_other_schemas_use_the_generic_encoder(tmp_path):
    w = RecordingWriter(tmp_path / "x.mcap", extra_schemas={"my_msgs/msg/Odd": "int16 a\nstring b\n"})
    w.add("/odd", "my_msgs/msg/Odd", {"a": -3, "b": "x"}, 10)
    w.close()
    assert [(t, n, (d.a, d.b)) for t, n, _, _, d in _read(tmp_path / "x.mcap")] == [("/odd", "my_msgs/msg/Odd", (-3, "x"))]


def test_every_profile_message_type_round_trips(tmp_path):
    path = tmp_path / "x.mcap"
    w = RecordingWriter(path)
    w.joint_targets("std_msgs/msg/Float64MultiArray", "/arm/commands", 1_000, 1_500, ["a", "b"], [0.5, -0.25])
    w.joint_targets("std_msgs/msg/Float64", "/gripper/command", 1_000, 1_600, ["g"], [0.8])
    w.joint_targets("sensor_msgs/msg/JointState", "/arm/joint_command", 1_000, 1_700, ["a", "b"], [0.1, 0.2])
    depth = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 100)
    w.raw_image("/depth", 2_000, 2_100, depth, "16UC1", frame_id="head_depth_camera_optical_frame")
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 3), dtype=np.uint8)
    w.raw_image("/rgb", 2_000, 2_200, rgb, "rgb8")
    w.raw_image("/metric", 2_000, 2_250, depth.astype(np.float32) / 1000, "32FC1")
    w.imu("/imu", 3_000, 3_100, [0, 0, 0, 1], [0.1, 0.2, 0.3], [0.0, 0.0, 9.81], angular_velocity_covariance=1e-5)
    w.wrench("/ft", 3_000, 3_200, [1, 2, 3], [4, 5, 6], frame_id="tool0")
    w.locomotion(3_000, 3_300, 1, 0, -1, 0.7, topic="/h1/locomotion/command")
    w.task(3_400, "grasp the red cube", topic="/h1/task/instruction")
    w.close()
    got = {t: (name, lt, pt, d) for t, name, lt, pt, d in _read(path)}
    name, lt, pt, arr = got["/arm/commands"]
    assert name == "std_msgs/msg/Float64MultiArray" and (lt, pt) == (1_500, 1_000), "the stamp is the publish time"
    assert list(arr.data) == [0.5, -0.25] and (arr.layout.dim[0].size, arr.layout.dim[0].stride) == (2, 2)
    assert got["/gripper/command"][3].data == 0.8
    assert list(got["/arm/joint_command"][3].name) == ["a", "b"]
    img = got["/depth"][3]
    assert (img.height, img.width, img.encoding, img.step, img.is_bigendian) == (3, 4, "16UC1", 8, 0)
    assert np.array_equal(np.frombuffer(bytes(img.data), "<u2").reshape(3, 4), depth)
    img = got["/rgb"][3]
    assert img.step == 12 and np.array_equal(np.frombuffer(bytes(img.data), np.uint8).reshape(3, 4, 3), rgb)
    assert got["/metric"][3].step == 16
    imu = got["/imu"][3]
    assert (imu.orientation.w, imu.linear_acceleration.z) == (1.0, 9.81)
    assert list(imu.angular_velocity_covariance) == [1e-5, 0, 0, 0, 1e-5, 0, 0, 0, 1e-5]
    assert list(imu.orientation_covariance) == [0.0] * 9
    ft = got["/ft"][3]
    assert (ft.wrench.force.x, ft.wrench.torque.z, ft.header.frame_id) == (1.0, 6.0, "tool0")
    assert got["/h1/locomotion/command"][3].yaw_flag == -1 and got["/h1/task/instruction"][3].data.startswith("grasp")
    assert len(EXTRA_COLUMNS["sensor_msgs/msg/Imu"]) == 10  # what the conversion reads back from an Imu


def test_malformed_messages_are_refused(tmp_path):
    w = RecordingWriter(tmp_path / "x.mcap")
    with pytest.raises(ValueError, match="16UC1 needs \\(H, W\\) uint16"):
        w.raw_image("/d", 0, 0, np.zeros((3, 4), np.float32), "16UC1")
    with pytest.raises(ValueError, match="unknown raw image encoding"):
        w.raw_image("/d", 0, 0, np.zeros((3, 4), np.uint8), "yuv422")
    with pytest.raises(ValueError, match="carries one joint"):
        w.joint_targets("std_msgs/msg/Float64", "/g", 0, 0, ["a", "b"], [1.0, 2.0])
    with pytest.raises(ValueError, match="9 values"):
        w.imu("/imu", 0, 0, [0, 0, 0, 1], [0, 0, 0], [0, 0, 0], orientation_covariance=[1.0, 2.0])
    assert MSG_IMAGE in w.schemas


def test_flush_streams_in_log_time_order_and_refuses_older_messages(tmp_path):
    path = tmp_path / "x.mcap"
    w = RecordingWriter(path)
    for i in (3, 1, 2, 6, 5):
        w.task(i * 1000, f"m{i}")
    assert w.flush(3000) == 3 and w.pending == 2
    with pytest.raises(ValueError, match="before messages already flushed"):
        w.task(2500, "late")
    w.task(4000, "m4")
    w.close()
    assert [d.data for *_, d in _read(path)] == ["m1", "m2", "m3", "m4", "m5", "m6"]
    # keep_order writes in call order, flushed or not (how tests plant backwards timestamps)
    w = RecordingWriter(tmp_path / "y.mcap", keep_order=True)
    w.task(2000, "a")
    w.flush(0)
    w.task(1000, "b")
    w.close()
    assert [d.data for *_, d in _read(tmp_path / "y.mcap")] == ["a", "b"]
