"""Raw partition → HDF5 artifact (``convert_partition``) on real MCAP recordings: the recording's
outcome reaches the HDF5 file and the QA results, each camera's source rate and the frames it
repeats are recorded, the raw MCAP is named by its lake key, and converting the same recordings
in two lakes gives byte-identical files with neither lake's path in them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.formats.episode_h5 import FORMAT_VERSION, read_episode_h5
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.processing.sync import repeated_fraction, repeated_frames
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"
OUTCOME = {"success": True, "min_distance_m": 0.0213}


def with_outcome(folder: Path, outcome: dict) -> Path:
    """Add an ``outcome`` block to a recording's ``metadata.yaml`` (what ``hvla sim record`` writes)."""
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["outcome"] = outcome
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recs")
    with_outcome(write_recording(root, episode_id="ep-out-1", seed=1, duration_s=4.5), OUTCOME)
    write_recording(root, episode_id="ep-out-2", seed=2, duration_s=4.5)  # states no outcome
    return root


def _converted_lake(root: Path, recordings: Path) -> LocalLake:
    lake = LocalLake(root)
    assert land_and_convert(lake, recordings, DAY, ROBOT, SyncConfig(fps=20)) == "materialized"
    return lake


@pytest.fixture(scope="module")
def lakes(tmp_path_factory, recordings) -> tuple[LocalLake, LocalLake]:
    """The same recordings converted in two lakes at different places."""
    return (_converted_lake(tmp_path_factory.mktemp("first") / "lake", recordings),
            _converted_lake(tmp_path_factory.mktemp("second") / "elsewhere" / "lake-2", recordings))


def _artifact_files(lake: LocalLake) -> dict[str, bytes]:
    prefix = episodes_prefix(DAY, ROBOT)
    return {k[len(prefix) + 1:]: lake.read_bytes(k) for k in lake.list_keys(prefix)}


def test_outcome_reaches_the_hdf5_file_and_the_qa_results(lakes):
    lake = lakes[0]
    manifest = lake.read_manifest(episodes_prefix(DAY, ROBOT))
    by_id = {c["episode_id"]: c for c in manifest["conversions"]}
    assert by_id["ep-out-1"]["outcome"] == OUTCOME
    assert by_id["ep-out-2"]["outcome"] is None
    assert manifest["config"]["hdf5_format_version"] == FORMAT_VERSION == 3
    with lake.local_artifact(episodes_prefix(DAY, ROBOT)) as root:
        ep1 = read_episode_h5(Path(root) / "ep-out-1.h5", load_images=False)
        ep2 = read_episode_h5(Path(root) / "ep-out-2.h5", load_images=False)
        with h5py.File(Path(root) / "ep-out-1.h5", "r") as f:
            assert int(f.attrs["format_version"]) == 3
    assert json.loads(ep1.attrs["outcome"]) == OUTCOME
    assert json.loads(ep2.attrs["outcome"]) is None
    assert ep1.attrs["source_key"] == f"raw-mcap/{DAY}/{ROBOT}/ep-out-1/ep-out-1_0.mcap"
    assert "source_uri" not in ep1.attrs
    assert lake.exists(ep1.attrs["source_key"])  # a key of this lake, relative to its root


def test_camera_source_rate_and_repeated_frames_are_recorded(lakes):
    lake = lakes[0]
    with lake.local_artifact(episodes_prefix(DAY, ROBOT)) as root:
        ep = read_episode_h5(Path(root) / "ep-out-1.h5")
    assert set(ep.source_rate_hz) == set(ep.source_index) == {"head", "wrist_right"}
    for cam, rate in ep.source_rate_hz.items():
        assert rate == pytest.approx(15.0, abs=0.05), cam
        idx = ep.source_index[cam]
        assert idx.shape == (ep.num_frames,) and idx.dtype == np.int64
        # a repeated frame is the previous frame, pixel for pixel; the camera's sensor noise makes
        # every distinct source frame differ, so "same source index" is exactly "same pixels"
        same_pixels = np.all(ep.images[cam][1:] == ep.images[cam][:-1], axis=(1, 2, 3))
        assert repeated_frames(idx) == int(same_pixels.sum())
        assert 0.2 < repeated_fraction(idx) < 0.3  # 15 Hz shown at 20 fps: about a quarter repeats
    assert ep.num_frames == 90 and repeated_frames(ep.source_index["head"]) == 22  # the numbers


def test_two_lakes_give_byte_identical_files_without_their_paths(lakes):
    a, b = (_artifact_files(lake) for lake in lakes)
    assert sorted(a) == sorted(b)
    assert {"ep-out-1.h5", "ep-out-2.h5", "qa_report.html", "qa_metrics.json"} <= set(a)
    differ = [name for name in a if a[name] != b[name] and name != MANIFEST_NAME]
    assert differ == [], differ  # the manifest differs only by its creation time
    for lake in lakes:
        root = Path(lake.root).resolve()
        needles = [str(root).encode(), root.as_uri().encode(), str(root.parent).encode()]
        for name, data in _artifact_files(lake).items():
            assert not [n for n in needles if n in data], (name, [n for n in needles if n in data])


def test_the_sha256_in_the_manifest_is_the_files(lakes):
    lake = lakes[0]
    files = {f["path"]: f["sha256"] for f in lake.read_manifest(episodes_prefix(DAY, ROBOT))["files"]}
    for name, data in _artifact_files(lake).items():
        if name != MANIFEST_NAME:
            assert files[name] == hashlib.sha256(data).hexdigest(), name
