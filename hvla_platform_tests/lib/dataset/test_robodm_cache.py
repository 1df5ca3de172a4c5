"""Robo-DM .vla cache from a LeRobot release: count, names, codecs, manifest (with each episode's QA
status, quality score and outcome from the release), round trip, reproducible bytes."""

from __future__ import annotations

import datetime as dt

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
    return lr.build_lerobot_dataset(spec, paths, tmp / "ds", episode_qa={
        "ep-000": lr.EpisodeQA("passed", 0.91), "ep-002": lr.EpisodeQA("approved", 0.52, "approved by qa-lead")})


@pytest.fixture(scope="module")
def cache(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache") / "ffv1"
    return rc.build_robodm_cache(release.root, REPO, out, release="t-cache", converter_version="test-1")


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
    for name, codecs in cache.codecs.items():
        assert codecs["observation/images/head"] == "ffv1", name
        assert codecs["observation/images/wrist_right"] == "ffv1", name
        assert codecs["observation/state"] == "rawvideo"
    assert rc.written_video_codecs(cache.files[1]) == cache.codecs["episode_000001.vla"]
    assert rc.check_cache(cache.out_dir, video_codec="ffv1", expected_episode_indices=[0, 1, 2]) == []
    assert any("expected h264" in p for p in
               rc.check_cache(cache.out_dir, video_codec="libx264", expected_episode_indices=[0, 1, 2]))


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
                                  converter_version="test-1")
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
                              created_at=CREATED)


def test_libx264_and_bad_inputs(release, tmp_path):
    res = rc.build_robodm_cache(release.root, REPO, tmp_path / "x264", release="t", video_codec="libx264",
                                converter_version="x", created_at=CREATED)
    assert {c["observation/images/head"] for c in res.codecs.values()} == {"h264"}
    rep = rc.roundtrip_check(res.files[0], release.root, REPO, 0, image_atol=6.0)
    assert rep["ok"], rep
    with pytest.raises(ValueError, match="not one of"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "y", release="t", video_codec="mpeg4",
                              converter_version="x", created_at=CREATED)
    with pytest.raises(rc.RoboDMCacheError, match="not empty"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "x264", release="t", converter_version="x",
                              created_at=CREATED)
    no_times = [{k: v for k, v in r.items() if k != "start_time_ns"} for r in lr.read_hvla_episodes(release.root)]
    with pytest.raises(rc.RoboDMCacheError, match=r"cannot derive created_at: episodes without start_time_ns: "
                                                  r"\['ep-000', 'ep-001', 'ep-002'\]; pass created_at"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "t", release="t", converter_version="x",
                              episode_meta=no_times)
    with pytest.raises(rc.RoboDMCacheError, match="episode_meta covers"):
        rc.build_robodm_cache(release.root, REPO, tmp_path / "z", release="t", converter_version="x",
                              created_at=CREATED, episode_meta=[{"episode_index": 0, "episode_id": "ep-000"}])
