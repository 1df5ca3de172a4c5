"""Indexing real MCAP files written by other tools (ros2 bag recordings, MCAP conformance suite)."""


import pytest

from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.index import index_mcap
from hvla_platform_tests.paths import TESTDATA

ROSBAG = TESTDATA / "rosbag2"


def test_ros2_talker_bag_is_indexed():
    idx = index_mcap(ROSBAG / "talker" / "talker.mcap")
    assert idx.profile == "ros2"
    assert idx.has_summary
    topic = idx.topics["/topic"]
    assert topic.schema_name == "std_msgs/msg/String"
    assert topic.message_count == 10
    assert topic.monotonic
    assert idx.duration_s > 4.0
    assert len(idx.sha256) == 64 and idx.size_bytes == (ROSBAG / "talker" / "talker.mcap").stat().st_size


def test_service_event_schemas_do_not_crash_the_indexer():
    idx = index_mcap(ROSBAG / "topics_and_services.mcap")
    assert any(s.schema_name.endswith("_Event") for s in idx.topics.values())


def test_truncated_file_is_reported_as_unreadable(tmp_path):
    data = (ROSBAG / "talker" / "talker.mcap").read_bytes()
    bad = tmp_path / "truncated.mcap"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(RawLogError) as err:
        index_mcap(bad)
    assert err.value.reason == "unreadable"
    assert "truncated.mcap" in str(err.value)


def test_not_an_mcap(tmp_path):
    bad = tmp_path / "notes.mcap"
    bad.write_text("hello")
    with pytest.raises(RawLogError, match="unreadable"):
        index_mcap(bad)
