"""``read_episode_streams`` reads the contract topics through the indexed reader and keeps its errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from mcap.records import Channel, Header, Message, Schema
from mcap.writer import CompressionType, Writer

from hvla_platform.lib.formats.bags import mcap_source as streams_module
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.records import iter_records, read_summary_view
from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS, REQUIRED_TOPICS, TOPIC_TASK
from hvla_platform_tests.fixtures import bad_mcap as bad
from hvla_platform_tests.fixtures.recordings import write_recording

WRIST = CAMERA_TOPICS["wrist_right"]


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return bad.only_mcap(write_recording(tmp_path_factory.mktemp("streams"), episode_id="ep-1", seed=1))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    return dst


def _same(a, b) -> None:
    for key in ("joint_states", "arm_command"):
        x, y = getattr(a, key), getattr(b, key)
        assert np.array_equal(x.stamps_ns, y.stamps_ns) and np.array_equal(x.position, y.position)
        assert np.array_equal(x.velocity, y.velocity) and x.names == y.names
    assert np.array_equal(a.locomotion, b.locomotion)
    assert np.array_equal(a.locomotion_stamps_ns, b.locomotion_stamps_ns) and a.task == b.task
    assert a.cameras.keys() == b.cameras.keys()
    for cam in a.cameras:
        assert np.array_equal(a.cameras[cam].stamps_ns, b.cameras[cam].stamps_ns)
        assert a.cameras[cam].frames == b.cameras[cam].frames and a.cameras[cam].formats == b.cameras[cam].formats


def test_contract_topics_are_read_with_the_indexed_reader(good, monkeypatch):
    calls = []
    original = streams_module.iter_indexed_messages

    def spy(path, topics=None):
        calls.append(topics)
        return original(path, topics=topics)

    monkeypatch.setattr(streams_module, "iter_indexed_messages", spy)
    assert read_summary_view(good).chunk_indexes, "the recording is chunk-indexed"
    s = read_episode_streams(good)
    assert [set(c) for c in calls] == [set(REQUIRED_TOPICS)]
    assert len(s.cameras[next(iter(CAMERA_TOPICS))].frames) > 0 and s.task


@pytest.mark.parametrize("options", [dict(summary=False), dict(chunked=False), dict(compression="none")],
                         ids=["no_summary", "unchunked", "uncompressed"])
def test_other_layouts_give_the_same_streams(good, tmp_path, options):
    other = bad.rewrite(good, tmp_path / "other.mcap", **options)
    _same(read_episode_streams(other), read_episode_streams(good))


@pytest.mark.parametrize("summary", [True, False], ids=["summary", "no_summary"])
def test_empty_and_missing_topics(good, tmp_path, summary):
    empty = bad.rewrite(good, tmp_path / "empty.mcap", transform=bad.drop_messages(WRIST), summary=summary)
    with pytest.raises(RawLogError, match=f"required topic {WRIST} has no messages") as err:
        read_episode_streams(empty)
    assert err.value.reason == "empty_topic"

    missing = bad.only_mcap(write_recording(tmp_path, episode_id="ep-m", seed=3, defect="missing_topic"))
    if not summary:
        missing = bad.rewrite(missing, missing, summary=False)
    with pytest.raises(RawLogError, match=f"required topic {WRIST} \\(sensor_msgs/msg/CompressedImage\\) "
                                          "is not in the file") as err:
        read_episode_streams(missing)
    assert err.value.reason == "missing_topic"


def test_wrong_type(good, tmp_path):
    """The task topic re-registered with another schema name."""
    path = tmp_path / "wrong.mcap"
    ids: dict[int, int] = {}
    with open(path, "wb") as f:
        w = Writer(f, compression=CompressionType.NONE)
        for rec in iter_records(good):
            if isinstance(rec, Header):
                w.start(rec.profile, rec.library)
            elif isinstance(rec, Schema) and rec.id not in ids:
                name = "my_msgs/msg/Other" if rec.name == REQUIRED_TOPICS[TOPIC_TASK] else rec.name
                ids[rec.id] = w.register_schema(name, rec.encoding, rec.data)
            elif isinstance(rec, Channel) and ("c", rec.id) not in ids:
                ids[("c", rec.id)] = w.register_channel(rec.topic, rec.message_encoding, ids[rec.schema_id])
            elif isinstance(rec, Message):
                w.add_message(ids[("c", rec.channel_id)], rec.log_time, rec.data, rec.publish_time, rec.sequence)
        w.finish()
    with pytest.raises(RawLogError, match=f"topic {TOPIC_TASK} has type 'my_msgs/msg/Other', expected") as err:
        read_episode_streams(path)
    assert err.value.reason == "wrong_type"


def test_unreadable_files_keep_their_reason(good, tmp_path):
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(RawLogError) as err:
        read_episode_streams(cut)
    assert err.value.reason == "unreadable"
    flipped = _copy(good, tmp_path / "flipped.mcap")
    bad.flip_byte_in_zstd_chunk(flipped)
    with pytest.raises(RawLogError, match="CRC mismatch in Chunk") as err:
        read_episode_streams(flipped)
    assert err.value.reason == "unreadable"
