"""Every way a ROS bag arrives goes through landing and raw ingest (docs/recordings.md).

One partition holds a recording from our recorder, the same recording re-written in every layout
(sqlite3, split sqlite3, split rosbag2 MCAP, split MCAP files, ROS 1), and bad ones: a corrupted
``.db3``, a truncated ``.bag``, renamed topics, an unknown robot profile. The good layouts pass every
raw check and are published byte for byte under their landed relative paths; the bad ones are
quarantined with a reason naming the file (and the profile and the closest topics); the source
folders are never modified.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE
from hvla_platform.lib.ingest.drop_area import LocalDropArea
from hvla_platform.lib.ingest.landing import find_recordings, land_recording, list_landed_episodes
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform_tests.fixtures.bags import LAYOUTS, as_layout, install_lab_front_cam_profile, rewrite_mcap
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"
HEAD = "/camera/head/image_raw/compressed"
GOOD = {f"ep-{layout.replace('_', '-')}": layout for layout in LAYOUTS}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _set_meta(folder: Path, **robot) -> None:
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["robot"].update(robot)
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layouts")
    src, lake = tmp / "src", LocalLake(tmp / "lake")
    base = write_recording(src, episode_id="ep-mcap", duration_s=1.0, seed=6)
    folders = {"ep-mcap": base}
    for ep, layout in GOOD.items():
        folders[ep] = as_layout(base, src / "nested" / ep, layout)
    _set_meta(folders["ep-sqlite3"], profile=DEFAULT_PROFILE)  # naming the default profile explicitly
    folders["ep-bad-db3"] = as_layout(base, src / "ep-bad-db3", "sqlite3")
    db = folders["ep-bad-db3"] / "bag" / "bag_0.db3"
    data = db.read_bytes()
    db.write_bytes(data[:4096 * 5] + b"\0" * 4096 + data[4096 * 6:])  # one page lost
    folders["ep-cut-bag"] = as_layout(base, src / "ep-cut-bag", "ros1")
    bag = folders["ep-cut-bag"] / "ep-cut-bag.bag"
    bag.write_bytes(bag.read_bytes()[: bag.stat().st_size // 2])
    folders["ep-renamed"] = rewrite_mcap(base, src / "ep-renamed", rename={HEAD: "/cam_front/compressed"})
    folders["ep-typo"] = as_layout(base, src / "ep-typo", "sqlite3")
    _set_meta(folders["ep-typo"], profile="unitree_g1_29")

    source_before = {p: _sha(p) for p in src.rglob("*") if p.is_file()}
    found = find_recordings(src)
    landed = {Path(r.source).name: r for r in (land_recording(lake, f) for f in found)}
    result = ingest_partition(lake, DAY, ROBOT)
    return {"src": src, "lake": lake, "folders": folders, "found": found, "landed": landed, "result": result,
            "by": {e.episode_id: e for e in result.episodes}, "source_before": source_before}


def test_recordings_are_found_without_entering_rosbag2_directories(sc):
    assert sorted(sc["found"]) == sorted(sc["folders"].values())
    assert all(r.status == "landed" for r in sc["landed"].values()), {k: r.reason for k, r in sc["landed"].items()}
    assert list_landed_episodes(sc["lake"], DAY, ROBOT) == sorted(sc["folders"])


@pytest.mark.parametrize("ep", ["ep-mcap", *GOOD])
def test_every_layout_passes_the_raw_checks_and_is_kept_byte_for_byte(sc, ep):
    out, lake, folder = sc["by"][ep], sc["lake"], sc["folders"][ep]
    assert out.convertible and out.status == "published", out.reasons
    assert all(c["passed"] for c in out.checks.values())
    assert "required topics of robot profile unitree_g1_29dof@" in out.checks["required_topics"]["detail"]
    bag = open_bag(folder)
    rels = [bag.layout.relpath(p) for p in bag.layout.all_files]
    prefix = f"raw-mcap/{DAY}/{ROBOT}/{ep}"
    for rel in rels + ["metadata.yaml", "operator_notes.md"]:
        assert lake.sha256(f"{prefix}/{rel}") == _sha(folder / rel), rel
        assert lake.sha256(f"landing/{DAY}/{ROBOT}/{ep}/{rel}") == _sha(folder / rel), rel
    assert out.mcap_key == f"{prefix}/{rels[0]}"
    manifest = lake.read_manifest(prefix)
    index = lake.read_json(f"{prefix}/index.json")
    assert index["path"] == out.mcap_key and index["kind"] == bag.kind
    assert [f["path"] for f in index["files"]] == rels
    assert index["message_count"] == sc["by"]["ep-mcap"].index["message_count"]
    if len(rels) == 1:
        assert manifest["mcap_sha256"] == out.sha256 == _sha(folder / rels[0])
        assert [i["key"] for i in manifest["inputs"]] == [f"landing/{DAY}/{ROBOT}/{ep}/{rels[0]}"]
        assert "files" not in manifest
    else:  # every file is an input and is listed with its sha256
        assert [i["key"] for i in manifest["inputs"]] == [f"landing/{DAY}/{ROBOT}/{ep}/{r}" for r in rels]
        assert [(f["path"], f["sha256"]) for f in manifest["files"]] == [(r, _sha(folder / r)) for r in rels]
        assert manifest["mcap_sha256"] == out.sha256 != _sha(folder / rels[0])


def test_split_and_rosbag2_layouts_have_several_files(sc):
    for ep in ("ep-sqlite3-split", "ep-mcap-split", "ep-mcap-parts"):
        assert len(open_bag(sc["folders"][ep]).files) > 2, ep
    assert "PRAGMA integrity_check ok" in sc["by"]["ep-sqlite3-split"].checks["readable"]["detail"]


def _quarantined(sc, ep: str, check: str, *words: str, published: bool) -> str:
    out, lake = sc["by"][ep], sc["lake"]
    assert not out.convertible
    detail = out.checks[check]["detail"]
    assert not out.checks[check]["passed"]
    for w in words:
        assert w in detail, detail
    reason = lake.read_json(f"quarantine/{DAY}/{ROBOT}/{ep}/reason.json")
    assert reason["reasons"] == out.reasons
    assert (lake.read_manifest(f"raw-mcap/{DAY}/{ROBOT}/{ep}") is not None) == published
    if not published:  # the landed files are kept, byte for byte, under their relative paths
        kept = sorted(k.split("/files/", 1)[1] for k in lake.list_keys(f"quarantine/{DAY}/{ROBOT}/{ep}/files"))
        folder = sc["folders"][ep]
        assert kept == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return detail


def test_a_corrupted_db3_is_quarantined(sc):
    _quarantined(sc, "ep-bad-db3", "readable", "bag/bag_0.db3: unreadable: sqlite3: DatabaseError: database disk "
                                               "image is malformed", published=False)
    assert sc["by"]["ep-bad-db3"].checks["required_topics"]["detail"] == "not checked: file unreadable"


def test_a_truncated_ros1_bag_is_quarantined(sc):
    _quarantined(sc, "ep-cut-bag", "readable", "ep-cut-bag.bag: unreadable: cannot open as ros1", published=False)


def test_renamed_topics_name_the_profile_and_the_closest_topic(sc):
    detail = _quarantined(sc, "ep-renamed", "required_topics", published=True)
    assert detail.startswith(f"ep-renamed_0.mcap: missing {HEAD} (sensor_msgs/msg/CompressedImage) "
                             "(robot profile unitree_g1_29dof@")
    assert f"closest topics in the bag: {HEAD} -> /cam_front/compressed" in detail


def test_an_unknown_profile_is_named_with_the_closest_known_one(sc):
    detail = _quarantined(sc, "ep-typo", "required_topics", published=True)
    assert detail == ("metadata.yaml: robot.profile: unknown robot profile 'unitree_g1_29' "
                      "(did you mean 'unitree_g1_29dof'?)")


def test_the_sources_were_never_modified(sc):
    assert {p: _sha(p) for p in sc["src"].rglob("*") if p.is_file()} == sc["source_before"]


def test_the_drop_area_sees_a_rosbag2_directory_as_part_of_its_recording(sc):
    folders = {f.key: f for f in LocalDropArea(sc["src"]).scan()}
    assert set(folders) == {p.relative_to(sc["src"]).as_posix() for p in sc["folders"].values()}
    sq = folders["nested/ep-sqlite3-split"]
    assert sq.complete and "bag/metadata.yaml" in sq.names and "bag/bag_0.db3" in sq.names


def test_a_folder_with_two_bags_or_an_unknown_storage_is_rejected_at_landing(sc, tmp_path):
    two = shutil.copytree(sc["folders"]["ep-mcap"], tmp_path / "ep-two")
    shutil.copy(sc["folders"]["ep-ros1"] / "ep-ros1.bag", two)
    res = land_recording(sc["lake"], two)
    assert res.status == "rejected" and "several_bags" in res.reason and "ep-ros1.bag" in res.reason
    other = shutil.copytree(sc["folders"]["ep-sqlite3"], tmp_path / "ep-leveldb")
    meta = other / "bag" / "metadata.yaml"
    meta.write_text(meta.read_text().replace("storage_identifier: sqlite3", "storage_identifier: leveldb"))
    res = land_recording(sc["lake"], other)
    assert res.status == "rejected"
    assert res.reason.startswith(f"{other}/bag/metadata.yaml: unsupported_storage: storage_identifier 'leveldb'")
    kept = sc["lake"].read_json(f"{res.evidence}/reason.json")["files"]
    assert "bag/metadata.yaml" in kept and "bag/bag_0.db3" in kept


def test_the_required_topics_are_those_of_the_profile_the_recording_names(sc, tmp_path, monkeypatch):
    """A lab profile (``$HVLA_HOME/profiles``) whose head camera is on another topic: a recording
    naming it is checked against it, not against the default profile."""
    install_lab_front_cam_profile(tmp_path / "home")
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    rec = as_layout(sc["folders"]["ep-mcap"], tmp_path / "src" / "ep-lab", "sqlite3")
    _set_meta(rec, profile="lab_g1_front_cam")
    lake = LocalLake(tmp_path / "lake")
    assert land_recording(lake, rec).status == "landed"
    (out,) = ingest_partition(lake, DAY, ROBOT).episodes
    assert out.checks["readable"]["passed"] and not out.checks["required_topics"]["passed"]
    assert out.checks["required_topics"]["detail"] == (
        "bag: missing /front_cam/image/compressed (sensor_msgs/msg/CompressedImage) (robot profile lab_g1_front_cam@1; "
        f"closest topics in the bag: /front_cam/image/compressed -> {HEAD} (sensor_msgs/msg/CompressedImage))")
