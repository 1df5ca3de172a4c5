"""One recording, every layout, the same streams.

Two real recordings — the G1 contract recording of the test fixtures (JPEG cameras) and a sensor
recording (raw rgb8 Image, IMU, a custom type) — are written by our recorder, re-written with
``rosbags``' writers as a sqlite3 bag, a split sqlite3 bag, a split rosbag2 MCAP bag, split MCAP
files directly in the folder and a ROS 1 bag, and read back with :func:`open_bag`: the same topics,
types, counts, log times, header stamps, joint positions and image bytes in every layout. Real bags
written by rosbag2 (``shared/testdata/rosbag2``) are read too.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from rosbags.rosbag1 import Reader as Ros1Reader

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.bags.export import export_recording
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.records import read_summary_view
from hvla_platform_tests.fixtures.bags import CUSTOM_TYPE, LAYOUTS, as_layout, write_sensor_recording
from hvla_platform_tests.fixtures.recordings import write_recording
from hvla_platform_tests.paths import TESTDATA

ROSBAG = TESTDATA / "rosbag2"
KINDS = {"sqlite3": "rosbag2_sqlite3", "sqlite3_split": "rosbag2_sqlite3", "mcap_split": "rosbag2_mcap",
         "mcap_parts": "mcap", "ros1": "ros1"}


def _floats(v: Any) -> tuple[float, ...]:
    return tuple(float(x) for x in v)


def canonical(msgtype: str, m: Any) -> tuple:
    """The fields of a decoded message that must survive every layout, as plain Python values."""
    stamp = (int(m.header.stamp.sec), int(m.header.stamp.nanosec)) if hasattr(m, "header") else None
    if msgtype == "sensor_msgs/msg/JointState":
        body: tuple = (tuple(m.name), _floats(m.position), _floats(m.velocity), _floats(m.effort))
    elif msgtype == "sensor_msgs/msg/CompressedImage":
        body = (m.format, bytes(m.data))
    elif msgtype == "sensor_msgs/msg/Image":
        body = (int(m.height), int(m.width), m.encoding, int(m.is_bigendian), int(m.step), bytes(m.data))
    elif msgtype == "std_msgs/msg/String":
        body = (m.data,)
    elif msgtype == "hvla_msgs/msg/LocomotionCommand":
        body = (int(m.forward_flag), int(m.lateral_flag), int(m.yaw_flag), float(m.stance_height))
    elif msgtype == "sensor_msgs/msg/Imu":
        o, w, a = m.orientation, m.angular_velocity, m.linear_acceleration
        body = ((o.x, o.y, o.z, o.w), (w.x, w.y, w.z), (a.x, a.y, a.z), _floats(m.orientation_covariance))
    elif msgtype == CUSTOM_TYPE:
        body = (int(m.value), m.label)
    else:
        raise AssertionError(f"no canonical form for {msgtype}")
    return stamp, body


def streams(folder: Path) -> dict[str, list[tuple]]:
    """topic -> [(log time, header stamp, fields)] of every message, in the order read."""
    bag = open_bag(folder)
    out: dict[str, list[tuple]] = {t: [] for t in bag.topics()}
    for m in bag.messages(list(bag.topics())):
        out[m.topic].append((m.log_ns, m.stamp_ns, canonical(m.msgtype, m.msg)))
    return out


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    src = {"g1": write_recording(root / "src", episode_id="ep-g1", duration_s=1.0, seed=3),
           "sensors": write_sensor_recording(root / "src", "ep-sensors")}
    out = {}
    for name, folder in src.items():
        out[(name, "source")] = folder
        for layout in LAYOUTS:
            out[(name, layout)] = as_layout(folder, root / layout / f"ep-{name}-{layout.replace('_', '-')}", layout)
    return out


@pytest.fixture(scope="module")
def source_streams(recs):
    return {name: streams(recs[(name, "source")]) for name in ("g1", "sensors")}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", ["g1", "sensors"])
def test_every_layout_decodes_to_the_same_streams(recs, source_streams, name, layout):
    folder = recs[(name, layout)]
    bag = open_bag(folder)
    assert bag.kind == KINDS[layout]
    src_bag = open_bag(recs[(name, "source")])
    assert {t: (i.msgtype, i.message_count) for t, i in bag.topics().items()} == \
           {t: (i.msgtype, i.message_count) for t, i in src_bag.topics().items()}
    got = streams(folder)
    want = source_streams[name]
    assert got.keys() == want.keys()
    for topic in want:
        assert got[topic] == want[topic], topic
    assert sum(len(v) for v in got.values()) == sum(i.message_count for i in src_bag.topics().values())
    # hvla's files are copied unchanged
    for f in ("metadata.yaml", "operator_notes.md"):
        src_meta = yaml.safe_load((recs[(name, "source")] / "metadata.yaml").read_text())
        if f == "metadata.yaml":
            assert {k: v for k, v in yaml.safe_load((folder / f).read_text()).items() if k != "episode_id"} == \
                   {k: v for k, v in src_meta.items() if k != "episode_id"}
        else:
            assert (folder / f).read_bytes() == (recs[(name, "source")] / f).read_bytes()


@pytest.mark.parametrize("layout", ["sqlite3_split", "mcap_split", "mcap_parts"])
def test_split_bags_have_several_files_merged_in_log_time_order(recs, layout):
    bag = open_bag(recs[("g1", layout)])
    assert len(bag.files) >= 3, bag.files
    logs = [m.log_ns for m in bag.messages(list(bag.topics()))]
    assert logs == sorted(logs)
    one_file = [m.log_ns for m in open_bag(recs[("g1", "source")]).raw_messages(list(bag.topics()))]
    assert logs == one_file
    if layout != "mcap_parts":
        info = yaml.safe_load((bag.layout.metadata_file).read_text())["rosbag2_bagfile_information"]
        assert [p.name for p in bag.files] == info["relative_file_paths"] == [f["path"] for f in info["files"]]
        assert info["message_count"] == len(logs) == sum(f["message_count"] for f in info["files"])
        assert info["version"] == 9


def test_only_the_topics_asked_for_are_read(recs):
    bag = open_bag(recs[("g1", "sqlite3_split")])
    got = {m.topic for m in bag.messages(["/joint_states", "/no/such/topic"])}
    assert got == {"/joint_states"}


def test_message_definitions_are_stored_in_every_format(recs):
    sq = recs[("sensors", "sqlite3")] / "bag" / "bag_0.db3"
    with sqlite3.connect(f"{sq.as_uri()}?mode=ro", uri=True) as conn:
        defs = dict(conn.execute("SELECT topic_type, encoded_message_definition FROM message_definitions"))
    assert set(defs) == {"sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/Imu", CUSTOM_TYPE}
    assert "uint8[] data" in defs["sensor_msgs/msg/Image"] and "string label" in defs[CUSTOM_TYPE]
    summary = read_summary_view(open_bag(recs[("sensors", "mcap_split")]).files[0])
    assert {s.name: bool(s.data) for s in summary.schemas.values()}["sensor_msgs/msg/Imu"]
    with Ros1Reader(open_bag(recs[("sensors", "ros1")]).files[0]) as r:
        ros1 = {c.msgtype: c.msgdef.data for c in r.connections}
    assert "MSG: std_msgs/Header" in ros1["sensor_msgs/msg/JointState"] and "uint32 seq" in ros1["sensor_msgs/msg/JointState"]
    assert ros1[CUSTOM_TYPE].startswith("int32 value")


def test_ros1_messages_have_ros2_names_and_a_sec_nanosec_stamp(recs, source_streams):
    bag = open_bag(recs[("g1", "ros1")])
    assert bag.topics()["/joint_states"].msgtype == "sensor_msgs/msg/JointState"
    m = next(iter(bag.messages(["/joint_states"])))
    assert m.msg.header.seq == 0
    assert (m.msg.header.stamp.sec, m.msg.header.stamp.nanosec) == source_streams["g1"]["/joint_states"][0][2][0]


def test_a_sqlite3_bag_without_definitions_is_decoded_with_the_known_ones(recs, source_streams, tmp_path):
    """ROS 2 before Iron stores no definitions: the registry (ros2_msgs.SCHEMAS) decodes the standard
    types; a type nobody defines is an error naming the topic and the type."""
    folder = shutil.copytree(recs[("sensors", "sqlite3")], tmp_path / "ep-old")
    with sqlite3.connect(folder / "bag" / "bag_0.db3") as conn:
        conn.execute("DELETE FROM message_definitions")
    bag = open_bag(folder)
    assert bag.definitions() == {t: None for t in ("sensor_msgs/msg/JointState", "sensor_msgs/msg/Image",
                                                   "sensor_msgs/msg/Imu", CUSTOM_TYPE)}
    assert bag.topics()["/thing"].message_count == 6  # listing never needs a definition
    got: dict[str, list] = {}
    for m in bag.messages(["/joint_states", "/camera/base/image_raw", "/imu"]):
        got.setdefault(m.topic, []).append((m.log_ns, m.stamp_ns, canonical(m.msgtype, m.msg)))
    for topic, msgs in got.items():
        assert msgs == source_streams["sensors"][topic]
    with pytest.raises(RawLogError) as err:
        list(bag.messages(["/thing"]))
    assert err.value.reason == "undecodable"
    assert f"topic /thing: message type {CUSTOM_TYPE}" in str(err.value) and "SCHEMAS" in str(err.value)


def test_export_refuses_what_it_cannot_write(recs, tmp_path):
    with pytest.raises(ValueError, match="split_max_bytes applies to sqlite3 / mcap"):
        export_recording(recs[("g1", "source")], tmp_path / "a", "ros1", split_max_bytes=1000)
    with pytest.raises(ValueError, match="ROS 1 bag"):
        export_recording(recs[("g1", "ros1")], tmp_path / "b", "sqlite3")
    with pytest.raises(ValueError, match="storage must be"):
        export_recording(recs[("g1", "source")], tmp_path / "c", "leveldb")  # type: ignore[arg-type]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("taken")
    with pytest.raises(FileExistsError):
        export_recording(recs[("g1", "source")], tmp_path / "d", "sqlite3")


# ---- real bags written by rosbag2 ----------------------------------------------------------------
def test_talker_rosbag2_directory():
    bag = open_bag(ROSBAG / "talker")
    assert bag.kind == "rosbag2_mcap"
    assert {t: (i.msgtype, i.message_count) for t, i in bag.topics().items()} == {
        "/parameter_events": ("rcl_interfaces/msg/ParameterEvent", 0), "/rosout": ("rcl_interfaces/msg/Log", 10),
        "/topic": ("std_msgs/msg/String", 10)}
    msgs = list(bag.messages(["/topic"]))
    assert [m.msg.data for m in msgs] == [f"Hello, world! {i}" for i in range(10)]
    assert all(m.stamp_ns is None for m in msgs)  # std_msgs/String has no header
    logs = [m.log_ns for m in msgs]
    assert logs == sorted(logs) and logs[0] == 1585866235112609068
    assert {m.msg.name for m in bag.messages(["/rosout"])} == {"minimal_publisher"}


def test_one_file_of_a_split_bag(tmp_path):
    rec = tmp_path / "ep-wbag"
    rec.mkdir()
    shutil.copy(ROSBAG / "wbag_0.mcap", rec)
    bag = open_bag(rec)
    assert bag.kind == "mcap" and bag.files == [rec / "wbag_0.mcap"]
    counts = {t: i.message_count for t, i in bag.topics().items()}
    assert counts == {"AAA": 174, "BBB": 145, "CCC": 157, "DDD": 163, "EEE": 147, "FFF": 171, "GGG": 141, "HHH": 148}
    assert sum(1 for _ in bag.messages(["AAA", "HHH"])) == 174 + 148


def test_service_event_schemas_are_listed_and_refused_cleanly_when_decoded():
    bag = open_bag(ROSBAG / "topics_and_services.mcap")
    topics = bag.topics()
    assert topics["/add_two_ints/_service_event"].msgtype == "example_interfaces/srv/AddTwoInts_Event"
    assert topics["/add_two_ints/_service_event"].message_count == 6
    assert topics["/add_two_ints2/_service_event"].message_count == 0
    assert len(list(bag.messages(["/parameter_events"]))) == 7
    with pytest.raises(RawLogError) as err:
        list(bag.messages(["/add_two_ints/_service_event"]))
    assert err.value.reason == "undecodable" and "/add_two_ints/_service_event" in str(err.value)


def test_every_ros2_test_type_of_rosbag2_decodes():
    bag = open_bag(ROSBAG / "cdr_test_0.mcap")
    arrays = [m.msg for m in bag.messages(["/array_topic"])]
    assert len(arrays) == 4 and arrays[0].string_values == ["Complex Hello1", "Complex Hello2", "Complex Hello3"]
    assert [m.msg.int32_value for m in bag.messages(["/test_topic"])] == [123, 123, 123]
    empty = open_bag(ROSBAG / "rewriter_b_0.mcap")
    assert empty.topics()["a_empty"].msgtype == "test_msgs/msg/Empty"
    assert len(list(empty.messages(["a_empty"]))) == 25
