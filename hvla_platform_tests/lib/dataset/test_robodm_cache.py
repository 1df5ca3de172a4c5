"""Robo-DM .vla cache of a LeRobot release, built from the release's source HDF5 frames: count, names,
codecs, manifest (with each episode's QA status, quality score and outcome from the release), round
trip against LeRobot and against the HDF5 frames, no MP4 read, size relative to the release,
reproducible bytes."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest

from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.dataset import robodm_cache as rc
from hvla_platform.lib.core.compat import import_robodm
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.formats.episode_h5 import write_episode_h5
from hvla_platform_tests.lib.episode_factory import make_episode

REPO = "hvla/t-cache"
CREATED = "2026-11-12T08:30:00+00:00"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rc")
    outcomes = {"ep-000": {"success": True, "min_distance_m": 0.015}, "ep-002": {"success": False,
                                                                             "min_distance_m": 0.3}}
    paths = [write_episode_h5(tmp / "h5" / f"ep-{i:03d}.h5", make_episode(
        f"ep-{i:03d}", num_frames=25, seed=i, height=48, width=64, outcome=outcomes.get(f"ep-{i:03d}")))
        for i in range(3)]
    spec = ReleaseSpec.from_mapping({"name": "t-cache", "repo_id": REPO, "fps": 20,
                                     "heldout": {"episode_ids": ["ep-002"]}})
    res = lr.build_lerobot_dataset(spec, paths, tmp / "ds", episode_qa={
        "ep-000": lr.EpisodeQA("passed", 0.91), "ep-002": lr.EpisodeQA("approved", 0.52, "approved by qa-lead")})
    res.h5 = paths  # the source files, for the tests
    return res


def h5_of(release) -> dict:
    """The release's HDF5 keys → the local files (matched by sha256)."""
    return rc.local_hdf5_files(release.root, release.h5)


@pytest.fixture(scope="module")
def cache(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "x264"
    return rc.build_robodm_cache(release.root, REPO, out, release="t-cache", converter_version="test-1",
                                 hdf5_files=h5_of(release))


def test_one_vla_per_episode_with_exact_names(cache, release):
    assert cache.num_episodes == release.num_episodes == 3
    assert [p.name for p in cache.files] == ["episode_000000.vla", "episode_000001.vla", "episode_000002.vla"]
    assert sorted(p.name for p in cache.out_dir.glob("*.vla")) == [p.name for p in cache.files]
    robodm = import_robodm()
    data = robodm.Trajectory(str(cache.files[0])).load(return_type="numpy")
    assert set(data) == {"observation/state", "action", "observation/locomotion_command",
                         "observation/images/head", "observation/images/wrist_right"}
    assert data["observation/state"].shape == (25, 17) and data["observation/state"].dtype == np.float32
    assert data["action"].shape == (25, 14) and data["action"].dtype == np.float32
    assert data["observation/locomotion_command"].shape == (25, 4)
    assert data["observation/images/head"].shape == (25, 48, 64, 3)
    assert data["observation/images/head"].dtype == np.uint8
    assert cache.bytes == sum(p.stat().st_size for p in cache.files)


def test_configured_codec_is_written(cache):
    assert rc.DEFAULT_VIDEO_CODEC == "libx264"
    for name, codecs in cache.codecs.items():
        assert codecs["observation/images/head"] == "h264", name
        assert codecs["observation/images/wrist_right"] == "h264", name
        assert codecs["observation/state"] == "rawvideo"
    assert rc.written_video_codecs(cache.files[1]) == cache.codecs["episode_000001.vla"]
    assert rc.check_cache(cache.out_dir, video_codec="libx264", expected_episode_indices=[0, 1, 2]) == []
    assert any("expected ffv1" in p for p in
               rc.check_cache(cache.out_dir, video_codec="ffv1", expected_episode_indices=[0, 1, 2]))
    assert cache.extra["codec_options"] == {"crf": "23", "preset": "medium", "tune": "zerolatency", "threads": "1"}
    # every image packet carries its own frame's timestamp (no encoder delay: see the module docstring)
    ts = rc.vla_timestamps_ms(cache.files[0])
    assert np.array_equal(ts["observation/images/head"], ts["observation/state"])


def test_size_is_stated_relative_to_the_release(cache, release):
    release_bytes = sum(p.stat().st_size for p in release.root.rglob("*") if p.is_file())
    assert cache.release_bytes == release_bytes
    assert cache.bytes_ratio == pytest.approx(cache.bytes / release_bytes)
    # libx264 from the source frames: about the release's size (ffv1 was ~10x it)
    assert 0.2 < cache.bytes_ratio < 2.0, cache.bytes_ratio
    # the cache names the HDF5 each .vla was built from
    rows = {r["episode_index"]: r for r in lr.read_hvla_episodes(release.root)}
    assert cache.sources["episode_000001.vla"] == {"hdf5_key": rows[1]["hdf5_key"],
                                                   "hdf5_sha256": rows[1]["hdf5_sha256"]}


def test_built_from_the_hdf5_without_the_release_videos(release, cache, tmp_path):
    """The builder never opens the release's MP4s: with videos/ deleted it writes the same files."""
    root = tmp_path / "ds"
    shutil.copytree(release.root, root)
    shutil.rmtree(root / "videos")
    res = rc.build_robodm_cache(root, REPO, tmp_path / "c", release="t-cache", converter_version="test-1",
                                hdf5_files=rc.local_hdf5_files(root, release.h5))
    assert [p.read_bytes() for p in res.files] == [p.read_bytes() for p in cache.files]


def test_frames_match_the_hdf5_frames(cache, release):
    src = h5_of(release)
    for vla in cache.files:
        rep = rc.source_check(vla, src[cache.sources[vla.name]["hdf5_key"]])
        assert rep["ok"], rep
        assert rep["num_frames"] == 25 and set(rep["images"]) == {"observation/images/head",
                                                                  "observation/images/wrist_right"}
        for stats in rep["images"].values():
            assert stats["mean_abs_diff"] <= rc.DEFAULT_SOURCE_ATOL and stats["order_ok"]
            assert stats["shifted_mean_abs_diff"] > stats["mean_abs_diff"]
    # the check can fail: another episode's HDF5 does not match
    other = rc.source_check(cache.files[0], src[cache.sources["episode_000001.vla"]["hdf5_key"]])
    assert not other["ok"] and "mean |diff|" in other["problems"][0]


def test_the_hdf5_must_be_the_one_the_release_was_built_from(release, tmp_path):
    files = h5_of(release)
    key0, key1 = sorted(files)[:2]
    swapped = {**files, key0: files[key1]}
    with pytest.raises(rc.RoboDMCacheError, match="is not the HDF5 the release was built from"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "a", release="t", converter_version="x",
                              created_at=CREATED, hdf5_files=swapped)
    with pytest.raises(rc.RoboDMCacheError, match="no local file for its HDF5"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "b", release="t", converter_version="x",
                              created_at=CREATED, hdf5_files={k: v for k, v in files.items() if k != key1})
    with pytest.raises(rc.RoboDMCacheError, match="no local HDF5 file matches"):
        rc.local_hdf5_files(release.root, release.h5[:2])


def test_manifest(cache, release):
    rows = rc.read_cache_manifest(cache.out_dir)
    assert [r["source_episode_index"] for r in rows] == [0, 1, 2]
    r0 = rows[0]
    for col in ("vla_path", "source_repo_id", "source_dataset_version", "source_episode_index",
                "source_episode_length", "task", "robot_id", "converter_version", "created_at",
                "qa_status", "episode_id", "split"):
        assert col in r0
    assert r0["vla_path"] == "episode_000000.vla" and r0["source_repo_id"] == REPO
    assert r0["source_dataset_version"] == "t-cache" and r0["source_episode_length"] == 25
    assert r0["converter_version"] == "test-1"
    # created_at: when the newest recording ended (24 frames after its first at 20 fps), never the build time
    end_ns = max(r["start_time_ns"] for r in lr.read_hvla_episodes(release.root)) + 24 * 50_000_000
    expected = dt.datetime.fromtimestamp(end_ns // 10**9, dt.timezone.utc).isoformat()
    assert {r["created_at"] for r in rows} == {expected} and expected.startswith("2023-11-14T22:13:21")
    assert [r["split"] for r in rows] == ["train", "train", "heldout"]
    assert [r["episode_id"] for r in rows] == ["ep-000", "ep-001", "ep-002"]
    assert r0["task"].startswith("pick up") and r0["robot_id"] == "g1-001"
    # what QA and the recording know, as the release recorded it (ep-001: written without QA results)
    assert [r["qa_status"] for r in rows] == ["passed", "unchecked", "approved"]
    assert [r["quality_score"] for r in rows] == [0.91, None, 0.52]
    assert [r["success"] for r in rows] == [True, None, False]
    assert [r["min_distance_m"] for r in rows] == [0.015, None, 0.3]


def test_rebuild_is_byte_identical(cache, release, tmp_path):
    """The same release converted again: every .vla and the manifest have the same bytes."""
    again = rc.build_robodm_cache(release.root, REPO, tmp_path / "again", release="t-cache",
                                  converter_version="test-1", hdf5_files=h5_of(release))
    first = {p.name: p.read_bytes() for p in sorted(cache.out_dir.iterdir())}
    second = {p.name: p.read_bytes() for p in sorted(again.out_dir.iterdir())}
    assert sorted(first) == sorted(second) == ["episode_000000.vla", "episode_000001.vla", "episode_000002.vla",
                                               "manifest.parquet"]
    assert [n for n in first if first[n] != second[n]] == []


def test_roundtrip_within_tolerance(cache, release):
    rep = rc.roundtrip_check(cache.files[1], release.root, REPO, 1)
    assert rep["ok"], rep
    assert rep["state_equal"] and rep["action_equal"] and rep["locomotion_equal"] and rep["timestamps_equal"]
    for stats in rep["images"].values():
        assert stats["mean_abs_diff"] <= rc.DEFAULT_IMAGE_ATOL
    # the check can fail: the wrong episode's file does not match
    wrong = rc.roundtrip_check(cache.files[0], release.root, REPO, 1)
    assert not wrong["ok"] and not wrong["state_equal"]


def test_rawvideo_fallback_is_detected(release, tmp_path, monkeypatch):
    """Without our probe fix, robodm 0.1.0 + PyAV>=14 silently writes rawvideo: we must raise."""
    if not rc.robodm_probe_is_broken():
        pytest.skip("robodm's codec probe works in this environment; no fallback to simulate")
    monkeypatch.setattr(rc, "robodm_probe_is_broken", lambda: False)
    with pytest.raises(rc.RoboDMCodecError, match="rawvideo"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "c", release="t", converter_version="x",
                              created_at=CREATED, hdf5_files=h5_of(release))


def test_ffv1_and_bad_inputs(release, cache, tmp_path):
    h5 = h5_of(release)
    res = rc.build_robodm_cache(release.root, REPO, tmp_path / "ffv1", release="t", video_codec="ffv1",
                                converter_version="x", created_at=CREATED, hdf5_files=h5)
    assert {c["observation/images/head"] for c in res.codecs.values()} == {"ffv1"}
    rep = rc.roundtrip_check(res.files[0], release.root, REPO, 0)
    assert rep["ok"], rep
    src = rc.source_check(res.files[0], h5[res.sources[res.files[0].name]["hdf5_key"]])
    x264 = rc.source_check(cache.files[0], h5[res.sources[res.files[0].name]["hdf5_key"]])
    for name, stats in src["images"].items():  # ffv1 loses only the yuv420p conversion: closer than x264
        assert stats["mean_abs_diff"] < x264["images"][name]["mean_abs_diff"], (src, x264)
    assert res.bytes_ratio > 2 * cache.bytes_ratio  # and is much larger
    with pytest.raises(ValueError, match="not one of"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "y", release="t", video_codec="mpeg4",
                              converter_version="x", created_at=CREATED, hdf5_files=h5)
    with pytest.raises(rc.RoboDMCacheError, match="not empty"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "ffv1", release="t", converter_version="x",
                              created_at=CREATED, hdf5_files=h5)
    no_times = [{k: v for k, v in r.items() if k != "start_time_ns"} for r in lr.read_hvla_episodes(release.root)]
    with pytest.raises(rc.RoboDMCacheError, match=r"cannot derive created_at: episodes without start_time_ns: "
                                                  r"\['ep-000', 'ep-001', 'ep-002'\]; pass created_at"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "t", release="t", converter_version="x",
                              episode_meta=no_times, hdf5_files=h5)
    with pytest.raises(rc.RoboDMCacheError, match="episode_meta covers"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "z", release="t", converter_version="x",
                              created_at=CREATED, episode_meta=[{"episode_index": 0, "episode_id": "ep-000"}],
                              hdf5_files=h5)
