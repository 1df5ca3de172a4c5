"""Which bag a recording folder holds (docs/recordings.md): the three layouts, and a one-line error
for everything else. Only names and the rosbag2 metadata.yaml are read here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.formats.bags.layout import locate_bag
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform_tests.paths import TESTDATA

ROSBAG = TESTDATA / "rosbag2"


def _recording(tmp_path: Path, *names: str) -> Path:
    rec = tmp_path / "ep-1"
    rec.mkdir(parents=True)
    (rec / "metadata.yaml").write_text("episode_id: ep-1\n")  # hvla's: never taken for a rosbag2 bag
    for n in names:
        (rec / n).parent.mkdir(parents=True, exist_ok=True)
        (rec / n).write_bytes(b"")
    return rec


def _rosbag2_dir(path: Path, storage: str, files: list[str], **extra) -> Path:
    path.mkdir(parents=True)
    for f in files:
        (path / Path(f).name).write_bytes(b"")
    info = {"version": 9, "storage_identifier": storage, "relative_file_paths": files, "message_count": 0,
            "duration": {"nanoseconds": 0}, "starting_time": {"nanoseconds_since_epoch": 0},
            "topics_with_message_count": [], "compression_format": "", "compression_mode": "", **extra}
    (path / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}))
    return path


def _refused(path: Path, reason: str, *words: str) -> str:
    with pytest.raises(RawLogError) as err:
        locate_bag(path)
    msg = str(err.value)
    assert err.value.reason == reason, msg
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg
    return msg


def test_one_mcap_as_the_recorder_writes_it(tmp_path):
    rec = _recording(tmp_path, "ep-1_0.mcap", "operator_notes.md")
    layout = locate_bag(rec)
    assert (layout.kind, layout.files, layout.bag_dir, layout.root) == ("mcap", (rec / "ep-1_0.mcap",), None, rec)
    assert layout.all_files == [rec / "ep-1_0.mcap"]


def test_split_mcap_parts_are_ordered_by_their_number_not_their_name(tmp_path):
    rec = _recording(tmp_path, *[f"ep-1_{k}.mcap" for k in (10, 2, 0, 1, 3, 4, 5, 6, 7, 8, 9, 11)])
    layout = locate_bag(rec)
    assert layout.kind == "mcap"
    assert [p.name for p in layout.files] == [f"ep-1_{k}.mcap" for k in range(12)]


def test_a_rosbag2_directory_written_by_rosbag2(tmp_path):
    """talker/ is a real rosbag2 bag (mcap storage): directly, or as the subfolder of a recording."""
    direct = locate_bag(ROSBAG / "talker")
    assert (direct.kind, direct.files) == ("rosbag2_mcap", (ROSBAG / "talker" / "talker.mcap",))
    assert direct.metadata_file == ROSBAG / "talker" / "metadata.yaml"
    rec = _recording(tmp_path, "operator_notes.md")
    shutil.copytree(ROSBAG / "talker", rec / "talker")
    layout = locate_bag(rec)
    assert (layout.kind, layout.root, layout.bag_dir) == ("rosbag2_mcap", rec, rec / "talker")
    assert [layout.relpath(p) for p in layout.all_files] == ["talker/talker.mcap", "talker/metadata.yaml"]


def test_a_split_sqlite3_bag_keeps_the_order_metadata_yaml_lists(tmp_path):
    rec = _recording(tmp_path)
    # old rosbag2 versions list "<bag dir>/<file>": only the file name counts
    _rosbag2_dir(rec / "bag", "sqlite3", ["bag/bag_1.db3", "bag/bag_0.db3"])
    layout = locate_bag(rec)
    assert layout.kind == "rosbag2_sqlite3"
    assert [p.name for p in layout.files] == ["bag_1.db3", "bag_0.db3"]
    assert locate_bag(rec / "bag" / "bag_0.db3").bag_dir == rec / "bag"  # a .db3 stands for its bag


def test_a_ros1_bag(tmp_path):
    rec = _recording(tmp_path, "ep-1.bag")
    assert (locate_bag(rec).kind, locate_bag(rec).files) == ("ros1", (rec / "ep-1.bag",))
    assert locate_bag(rec / "ep-1.bag").kind == "ros1"


def test_no_bag(tmp_path):
    _refused(_recording(tmp_path, "operator_notes.md"), "no_bag", "ep-1", "no bag", "docs/recordings.md")
    _refused(tmp_path / "nowhere", "no_bag", "no such file or folder")


def test_a_db3_outside_its_rosbag2_directory_is_named(tmp_path):
    rec = _recording(tmp_path, "bag/bag_0.db3")
    _refused(rec, "no_bag", "bag/bag_0.db3", "rosbag2 bag directory with its metadata.yaml")


@pytest.mark.parametrize("names,words", [
    (["ep-1_0.mcap", "ep-1.bag"], ["2 bags", "ep-1.bag"]),
    (["a_0.mcap", "b_0.mcap"], [".mcap files of 2 bags", "a_0.mcap", "b_0.mcap"]),
    (["ep-1.bag", "ep-2.bag"], ["ep-1.bag", "ep-2.bag"]),
])
def test_two_bags(tmp_path, names, words):
    _refused(_recording(tmp_path, *names), "several_bags", "a recording holds one bag", *words)


def test_two_rosbag2_directories(tmp_path):
    rec = _recording(tmp_path)
    _rosbag2_dir(rec / "bag_a", "mcap", ["bag_a_0.mcap"])
    _rosbag2_dir(rec / "bag_b", "sqlite3", ["bag_b_0.db3"])
    _refused(rec, "several_bags", "bag_a/", "bag_b/")


def test_a_split_part_missing(tmp_path):
    _refused(_recording(tmp_path, "ep-1_0.mcap", "ep-1_2.mcap"), "incomplete_bag", "ep-1_1.mcap")
    rec = _recording(tmp_path / "x")
    _rosbag2_dir(rec / "bag", "sqlite3", ["bag_0.db3", "bag_1.db3"])
    (rec / "bag" / "bag_1.db3").unlink()
    _refused(rec, "incomplete_bag", "bag_1.db3")


def test_unknown_storage_and_compressed_bags_are_refused(tmp_path):
    rec = _recording(tmp_path)
    _rosbag2_dir(rec / "bag", "rosbag_v2_leveldb", ["bag_0.ldb"])
    _refused(rec, "unsupported_storage", "storage_identifier 'rosbag_v2_leveldb'", "mcap", "sqlite3")
    rec2 = _recording(tmp_path / "z")
    _rosbag2_dir(rec2 / "bag", "sqlite3", ["bag_0.db3.zstd"], compression_mode="FILE", compression_format="zstd")
    _refused(rec2, "unsupported_storage", "compression_mode 'file'", "ros2 bag convert")


def test_a_broken_rosbag2_metadata_yaml_is_unreadable(tmp_path):
    rec = _recording(tmp_path)
    (rec / "bag").mkdir()
    (rec / "bag" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: [9\n")
    _refused(rec, "unreadable", "bag/metadata.yaml", "not valid YAML")
