"""A full read of a bag (what raw ingest checks): the same index in every layout, and damaged bags
refused with a reason naming the file."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import yaml

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.bags.index import bag_sha256, index_bag
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.index import index_mcap
from hvla_platform_tests.fixtures.bags import LAYOUTS, as_layout
from hvla_platform_tests.fixtures.recordings import write_recording


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    src = write_recording(root / "src", episode_id="ep-src", duration_s=1.0, seed=5)
    return {"source": src, **{layout: as_layout(src, root / layout / f"ep-{layout.replace('_', '-')}", layout)
                              for layout in LAYOUTS}}


def _sha(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_a_single_mcap_is_indexed_as_before(recs):
    (mcap,) = recs["source"].glob("*.mcap")
    idx = index_bag(open_bag(recs["source"]))
    old = index_mcap(mcap)
    assert idx.sha256 == old.sha256 == _sha(mcap)
    assert idx.topics == old.topics
    assert {k: v for k, v in idx.to_dict().items() if k not in ("kind", "files", "path")} == \
           {k: v for k, v in old.to_dict().items() if k != "path"}
    assert idx.describe() == (f"{old.message_count} messages on {len(old.topics)} topics, {old.chunk_count} chunk(s) "
                              f"({old.chunks_without_crc} without a CRC to check), with summary")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_the_same_topic_statistics(recs, layout):
    want = index_bag(open_bag(recs["source"]))
    bag = open_bag(recs[layout])
    idx = index_bag(bag)
    assert idx.kind == bag.kind
    assert idx.message_count == want.message_count
    for topic, st in want.topics.items():
        got = idx.topics[topic]
        assert (got.schema_name, got.message_count, got.first_log_time_ns, got.last_log_time_ns, got.first_stamp_ns,
                got.last_stamp_ns, got.monotonic) == \
               (st.schema_name, st.message_count, st.first_log_time_ns, st.last_log_time_ns, st.first_stamp_ns,
                st.last_stamp_ns, True), topic
    # files: relative to the recording folder, data files in read order then rosbag2's metadata.yaml
    rels = [bag.layout.relpath(p) for p in bag.layout.all_files]
    assert [f.path for f in idx.files] == rels
    assert all(f.sha256 == _sha(recs[layout] / f.path) for f in idx.files)
    assert idx.sha256 == bag_sha256(idx.files)
    assert idx.size_bytes == sum((recs[layout] / r).stat().st_size for r in rels)
    assert idx.to_dict()["message_count"] == want.message_count


def test_a_corrupted_db3_is_unreadable(recs, tmp_path):
    folder = shutil.copytree(recs["sqlite3"], tmp_path / "ep-bad")
    db = folder / "bag" / "bag_0.db3"
    data = db.read_bytes()
    db.write_bytes(data[:4096 * 5] + b"\0" * 4096 + data[4096 * 6:])  # one page lost
    with pytest.raises(RawLogError) as err:
        index_bag(open_bag(folder))
    assert err.value.reason == "unreadable"
    assert err.value.path == str(db) and "malformed" in err.value.detail


def test_a_truncated_ros1_bag_is_unreadable(recs, tmp_path):
    folder = shutil.copytree(recs["ros1"], tmp_path / "ep-cut")
    (bag,) = folder.glob("*.bag")
    bag.write_bytes(bag.read_bytes()[: bag.stat().st_size * 2 // 3])
    with pytest.raises(RawLogError) as err:
        index_bag(open_bag(folder))
    assert err.value.reason == "unreadable" and err.value.path == str(bag)


def test_a_truncated_part_of_a_split_mcap_bag_is_named(recs, tmp_path):
    folder = shutil.copytree(recs["mcap_parts"], tmp_path / "ep-parts")
    part = open_bag(folder).files[1]
    part.write_bytes(part.read_bytes()[:-200])
    with pytest.raises(RawLogError) as err:
        index_bag(open_bag(folder))
    assert err.value.reason == "unreadable" and err.value.path == str(part) and "truncated" in err.value.detail


def test_mcap_files_that_overlap_in_time_are_not_one_split_bag(recs, tmp_path):
    folder = tmp_path / "ep-two"
    folder.mkdir()
    (mcap,) = recs["source"].glob("*.mcap")
    shutil.copy(mcap, folder / "ep-two_0.mcap")
    shutil.copy(mcap, folder / "ep-two_1.mcap")
    with pytest.raises(RawLogError) as err:
        index_bag(open_bag(folder))
    assert err.value.reason == "several_bags" and "ep-two_1.mcap starts at log time" in str(err.value)


def test_rosbag2_metadata_must_count_what_the_files_hold(recs, tmp_path):
    folder = shutil.copytree(recs["sqlite3_split"], tmp_path / "ep-count")
    meta = folder / "bag" / "metadata.yaml"
    doc = yaml.safe_load(meta.read_text())
    doc["rosbag2_bagfile_information"]["message_count"] += 1
    meta.write_text(yaml.safe_dump(doc))
    with pytest.raises(RawLogError) as err:
        index_bag(open_bag(folder))
    assert err.value.reason == "unreadable" and err.value.path == str(meta)
    assert "the bag's files hold" in err.value.detail
