"""``fast_decoder`` decodes the contract's hot types to exactly what ``mcap_ros2`` decodes, and declines
every schema whose layout differs."""

from __future__ import annotations

import math
import struct
from types import SimpleNamespace

import pytest
from mcap.records import Schema
from mcap_ros2._dynamic import serialize_dynamic
from mcap_ros2.decoder import DecoderFactory

from hvla_platform.lib.formats.mcap.fastcdr import fast_decoder
from hvla_platform.lib.formats.recording.contract import (
    MSG_COMPRESSED_IMAGE,
    MSG_JOINT_STATE,
    MSG_LOCOMOTION_COMMAND,
    MSG_STRING,
)
from hvla_platform.lib.formats.recording.ros2_msgs import (
    MSG_FLOAT64,
    MSG_FLOAT64_MULTI_ARRAY,
    MSG_IMAGE,
    MSG_IMU,
    SCHEMAS,
)

FAST = [MSG_JOINT_STATE, MSG_FLOAT64_MULTI_ARRAY, MSG_FLOAT64, MSG_COMPRESSED_IMAGE, MSG_IMAGE, MSG_IMU,
        MSG_LOCOMOTION_COMMAND]


def _plain(x):
    """A decoded message as nested dicts of (type name, value): equal only if fields, values and types are."""
    if isinstance(x, SimpleNamespace):
        names = getattr(type(x), "__slots__", None) or list(vars(x))
        return {k: _plain(getattr(x, k)) for k in names}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    if isinstance(x, float) and math.isnan(x):
        return ("float", "nan")
    return (type(x).__name__, x)


def _reference(msgtype: str, text: str | None = None):
    schema = Schema(id=1, name=msgtype, encoding="ros2msg", data=(text or SCHEMAS[msgtype]).encode())
    return DecoderFactory().decoder_for("cdr", schema)


def _header(sec: int, frame_id: str) -> dict:
    return {"stamp": {"sec": sec, "nanosec": 123_456_789}, "frame_id": frame_id}


def _samples(msgtype: str) -> list[dict]:
    if msgtype == MSG_JOINT_STATE:
        return [
            {"header": _header(1_700_000_000, "base"), "name": [f"j{i}" for i in range(30)],
             "position": [0.1 * i for i in range(30)], "velocity": [float("nan"), -1.5, 2e300], "effort": []},
            {"header": _header(0, ""), "name": [], "position": [], "velocity": [], "effort": []},
            {"header": _header(5, "abc"), "name": ["", "é"], "position": [1.0, -0.0], "velocity": [], "effort": [3.0]},
        ]
    if msgtype == MSG_FLOAT64_MULTI_ARRAY:
        return [
            {"layout": {"dim": [], "data_offset": 0}, "data": [1.0, 2.5, -3.25]},
            {"layout": {"dim": [{"label": "joints", "size": 3, "stride": 3}, {"label": "x", "size": 1, "stride": 1}],
                        "data_offset": 7}, "data": []},
        ]
    if msgtype == MSG_FLOAT64:
        return [{"data": 0.5}, {"data": float("-inf")}]
    if msgtype == MSG_COMPRESSED_IMAGE:
        return [{"header": _header(12, "cam"), "format": "jpeg", "data": bytes(range(256)) * 3},
                {"header": _header(12, "c"), "format": "", "data": b""}]
    if msgtype == MSG_IMU:
        vec = {"x": 0.25, "y": -1.0, "z": 9.81}
        return [{"header": _header(9, frame), "orientation": {"x": 0.0, "y": 0.0, "z": 0.6, "w": 0.8},
                 "orientation_covariance": [float(i) for i in range(9)], "angular_velocity": vec,
                 "angular_velocity_covariance": [0.0] * 8 + [float("nan")], "linear_acceleration": vec,
                 "linear_acceleration_covariance": [-1.0] + [0.0] * 8} for frame in ("imu", "", "imu_link")]
    if msgtype == MSG_LOCOMOTION_COMMAND:
        return [{"header": _header(4, frame), "forward_flag": f, "lateral_flag": -1, "yaw_flag": 0, "stance_height": h}
                for frame, f, h in (("base", 1, 0.75), ("", -1, 0.0), ("ab", 0, 1e-3))]
    return [  # MSG_IMAGE
        {"header": _header(3, "depth_optical"), "height": 2, "width": 3, "encoding": "16UC1", "is_bigendian": 0,
         "step": 6, "data": bytes(range(12))},
        {"header": _header(3, "x"), "height": 1, "width": 1, "encoding": "rgb8", "is_bigendian": 1, "step": 3,
         "data": b"\x01\x02\x03"},
    ]


@pytest.mark.parametrize("msgtype", FAST)
def test_decodes_like_mcap_ros2(msgtype):
    fast = fast_decoder(msgtype, SCHEMAS[msgtype])
    assert fast is not None
    ref = _reference(msgtype)
    encode = serialize_dynamic(msgtype, SCHEMAS[msgtype])[msgtype]
    samples = _samples(msgtype)
    # repeats and changes in turn: one decoder keeps state (JointState's names) from message to message
    for sample in [samples[0], samples[0], *samples, samples[-1], samples[0], samples[0]]:
        data = encode(sample)
        assert _plain(fast(data)) == _plain(ref(data))


def test_joint_state_names_are_fresh_lists_and_follow_changes():
    encode = serialize_dynamic(MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE])[MSG_JOINT_STATE]
    fast = fast_decoder(MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE])
    base = _samples(MSG_JOINT_STATE)[0]
    first, second = fast(encode(base)), fast(encode(base))
    assert first.name == second.name and first.name is not second.name
    first.name.append("mutated")
    renamed = {**base, "name": ["k" + n[1:] for n in base["name"]]}  # same lengths, other bytes
    assert fast(encode(renamed)).name == renamed["name"] and fast(encode(base)).name == base["name"]


def test_big_endian_joint_state_decodes_like_mcap_ros2():
    # CDR_BE JointState built by hand: header (sec, nanosec, frame_id "ab"), 1 name "j", position [1.5], no velocity/effort
    body = struct.pack(">iI", 7, 8) + struct.pack(">I", 3) + b"ab\0" + b"\0"  # pad to 4
    body += struct.pack(">I", 1) + struct.pack(">I", 2) + b"j\0" + b"\0\0"  # names, pad to 4 (byte 28)
    body += struct.pack(">I", 1) + struct.pack(">d", 1.5)  # count at 28, the doubles at 32: aligned to 8
    body += struct.pack(">I", 0) + struct.pack(">I", 0)
    data = b"\x00\x00\x00\x00" + body
    fast = fast_decoder(MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE])
    ref = _reference(MSG_JOINT_STATE)
    out = fast(data)
    assert out.header.stamp.sec == 7 and out.name == ["j"] and out.position == [1.5]
    assert _plain(out) == _plain(ref(data))


@pytest.mark.parametrize("msgtype", FAST)
def test_truncated_messages_raise_as_mcap_ros2_does(msgtype):
    fast, ref = fast_decoder(msgtype, SCHEMAS[msgtype]), _reference(msgtype)
    data = serialize_dynamic(msgtype, SCHEMAS[msgtype])[msgtype](_samples(msgtype)[0])
    for cut in (0, 3, 4, 9, len(data) // 2, len(data) - 1):
        short = data[:cut]
        try:
            expected = _plain(ref(short))
        except Exception as exc:  # noqa: BLE001 - whatever mcap_ros2 raises, ours raises the same class
            with pytest.raises(type(exc)):
                fast(short)
        else:
            assert _plain(fast(short)) == expected


def test_comments_constants_and_bare_package_types_still_match():
    text = ("# joint state with comments\nstd_msgs/Header header  # the stamp\nuint8 SOME_CONSTANT=3\n\n"
            "string[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n"
            "================================================================================\n"
            "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n")
    fast = fast_decoder("sensor_msgs/JointState", text)
    assert fast is not None
    data = serialize_dynamic(MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE])[MSG_JOINT_STATE](_samples(MSG_JOINT_STATE)[0])
    assert _plain(fast(data)) == _plain(_reference(MSG_JOINT_STATE, text)(data))
    layout = SCHEMAS[MSG_FLOAT64_MULTI_ARRAY].replace("std_msgs/MultiArrayLayout layout", "MultiArrayLayout layout")
    assert fast_decoder(MSG_FLOAT64_MULTI_ARRAY, layout) is not None


@pytest.mark.parametrize("msgtype, text", [
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("float64[] effort\n", "float64[] effort\nuint8 extra\n")),
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("float64[] position", "float32[] position")),
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("string[] name", "string[30] name")),
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].split("=" * 80)[0]),  # no Header section: mcap_ros2 cannot decode
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("std_msgs/Header header", "Header header")),
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("string frame_id", "string frame_id\nuint32 seq")),
    (MSG_JOINT_STATE, SCHEMAS[MSG_JOINT_STATE].replace("int32 sec", "int64 sec")),
    (MSG_COMPRESSED_IMAGE, SCHEMAS[MSG_COMPRESSED_IMAGE].replace("uint8[] data", "uint8[<=100] data")),
    (MSG_IMU, SCHEMAS[MSG_IMU].replace("float64[9] orientation_covariance", "float64[] orientation_covariance")),
    (MSG_IMU, SCHEMAS[MSG_IMU].replace("float64 w\n", "")),  # a Quaternion without w
    (MSG_LOCOMOTION_COMMAND, SCHEMAS[MSG_LOCOMOTION_COMMAND].replace("float32 stance_height", "float64 stance_height")),
    (MSG_STRING, SCHEMAS[MSG_STRING]),
    ("my_msgs/msg/JointState", SCHEMAS[MSG_JOINT_STATE]),
])
def test_other_layouts_are_left_to_mcap_ros2(msgtype, text):
    assert fast_decoder(msgtype, text) is None


def test_time_without_its_section_reads_sec_unsigned_like_mcap_ros2():
    text = SCHEMAS[MSG_COMPRESSED_IMAGE].split("=" * 80 + "\nMSG: builtin_interfaces/Time")[0]
    assert "builtin_interfaces/Time\n" not in text.split("MSG:")[-1]
    fast = fast_decoder(MSG_COMPRESSED_IMAGE, text)
    assert fast is not None
    data = bytearray(serialize_dynamic(MSG_COMPRESSED_IMAGE, SCHEMAS[MSG_COMPRESSED_IMAGE])[MSG_COMPRESSED_IMAGE](
        _samples(MSG_COMPRESSED_IMAGE)[0]))
    data[4:8] = struct.pack("<i", -5)  # a negative sec: mcap_ros2's built-in Time reads it as uint32
    out, ref = fast(bytes(data)), _reference(MSG_COMPRESSED_IMAGE, text)(bytes(data))
    assert out.header.stamp.sec == ref.header.stamp.sec == 2**32 - 5
    signed = fast_decoder(MSG_COMPRESSED_IMAGE, SCHEMAS[MSG_COMPRESSED_IMAGE])(bytes(data))
    assert signed.header.stamp.sec == _reference(MSG_COMPRESSED_IMAGE)(bytes(data)).header.stamp.sec == -5
