"""LeRobot v3.0 release builder: real files written by LeRobot's writer, reloaded by LeRobot.

The release holds three episodes, ``ep-001`` held out: LeRobot's own metadata must say so (train
episodes first, ``splits`` with a ``test`` range, ``stats.json`` of the train episodes only), and
QA status, quality score, outcome and camera source rates reach LeRobot's episode metadata and the
card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.formats.episode_h5 import read_episode_h5, write_episode_h5
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_WAIST_JOINTS
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.core.rights import Rights
from hvla_platform_tests.lib.episode_factory import make_episode, write_episodes
from hvla_platform_tests.paths import REPO_ROOT

RIGHTS = Rights.from_dict({
    "data_owners": ["Acme Robotics"], "sites": ["lab-hanoi"], "customers": ["internal"],
    "consent_refs": ["consent-0042"], "licenses": ["CC-BY-NC-4.0"],
    "allowed_uses": ["internal_training", "lab_robot"], "retention_until": "2030-01-01",
    "contains_human_video": True, "contains_customer_environment": False,
}).to_dict()


def _spec(**kw) -> ReleaseSpec:
    base = {"name": "t-rel", "repo_id": "hvla/t-rel", "fps": 20, "heldout": {"episode_ids": ["ep-001"]}}
    base.update(kw)
    return ReleaseSpec.from_mapping(base)


OUTCOMES = {"ep-000": {"success": True, "min_distance_m": 0.012}, "ep-001": {"success": False, "min_distance_m": 0.21}}
QA = {"ep-000": lr.EpisodeQA("passed", 0.93), "ep-001": lr.EpisodeQA("passed", 0.88),
      "ep-002": lr.EpisodeQA("approved", 0.41, "quality score 0.41 below min_quality 0.6; approved by qa-lead")}


def _write(out: Path) -> list[Path]:
    """ep-000..ep-002, 24 frames, cameras at 15 Hz (repeated frames recorded), outcomes on two."""
    return [write_episode_h5(out / f"ep-{i:03d}.h5", make_episode(
        f"ep-{i:03d}", num_frames=24, seed=i, camera_hz=15.0, outcome=OUTCOMES.get(f"ep-{i:03d}")))
        for i in range(3)]


def _data(root: Path) -> dict:
    """Every frame row of the dataset (all ``data`` files, in file order: the held-out episodes
    start their own file)."""
    return pa.concat_tables([pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet"))]).to_pydict()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lr")
    # written in reverse so the builder's sort order is exercised
    paths = list(reversed(_write(tmp / "h5")))
    msgs: list[str] = []
    res = lr.build_lerobot_dataset(_spec(), paths, tmp / "ds", rights=RIGHTS, progress=msgs.append, episode_qa=QA)
    return res, paths, msgs


def test_features_fps_counts(built):
    res, _paths, msgs = built
    info = json.loads((res.root / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0"
    assert info["fps"] == 20 and res.fps == 20
    assert info["total_episodes"] == 3 == res.num_episodes
    assert info["total_frames"] == 72 == res.num_frames
    f = info["features"]
    assert f["observation.state"]["shape"] == [17] and f["observation.state"]["dtype"] == "float32"
    assert f["observation.state"]["names"] == G1_WAIST_JOINTS + G1_ARM_JOINTS
    assert f["action"]["shape"] == [14] and f["action"]["names"] == G1_ARM_JOINTS
    assert f["observation.locomotion_command"]["names"] == [
        "forward_flag", "lateral_flag", "yaw_flag", "stance_height"]
    for cam in ("head", "wrist_right"):
        v = f[f"observation.images.{cam}"]
        assert v["dtype"] == "video" and v["shape"] == [48, 64, 3]
        assert v["info"]["video.codec"] == "h264"
    assert res.episode_ids == ["ep-000", "ep-002", "ep-001"]  # train first, then held out
    assert len(msgs) == 3


def test_parquet_values_match_hdf5(built):
    res, paths, _ = built
    table = _data(res.root)
    ep_idx = np.asarray(table["episode_index"])
    state = np.asarray(table["observation.state"], dtype=np.float32)
    action = np.asarray(table["action"], dtype=np.float32)
    src = read_episode_h5([p for p in paths if p.stem == "ep-001"][0], load_images=False)
    names = src.state_names
    sel = [names.index(j) for j in G1_WAIST_JOINTS + G1_ARM_JOINTS]
    np.testing.assert_array_equal(state[ep_idx == 2], src.state[:, sel])  # held out: the last index
    np.testing.assert_array_equal(action[ep_idx == 2], src.action)
    ts = np.asarray(table["timestamp"])[ep_idx == 2]
    np.testing.assert_allclose(ts, np.arange(24) / 20, atol=1e-6)


def test_reload_and_decode_with_lerobot(built):
    res, paths, _ = built
    probe = lr.load_and_probe(res.root, "hvla/t-rel", video_backend="torchcodec")
    assert probe["num_episodes"] == 3 and probe["num_frames"] == 72
    assert probe["cameras"]["observation.images.head"] == [3, 48, 64]
    assert probe["state_shape"] == [17] and probe["action_shape"] == [14]
    # decoded pixels resemble the source frame (lossy h264 at crf 30: loose bound)
    from hvla_platform.lib.core.compat import import_lerobot_dataset
    ds = import_lerobot_dataset()("hvla/t-rel", root=res.root, video_backend="torchcodec")
    item = ds[24 + 5]  # episode 1 (ep-002, the second train episode), frame 5
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 5
    src = read_episode_h5([p for p in paths if p.stem == "ep-002"][0])
    dec = (item["observation.images.head"].permute(1, 2, 0).numpy() * 255.0)
    assert np.abs(dec - src.images["head"][5].astype(np.float32)).mean() < 12.0
    assert item["task"] == src.task


def test_split_file_and_card(built):
    res, _, _ = built
    rows = lr.read_hvla_episodes(res.root)
    assert [r["episode_id"] for r in rows] == ["ep-000", "ep-002", "ep-001"]
    assert [r["split"] for r in rows] == ["train", "train", "heldout"]
    assert all(len(r["hdf5_sha256"]) == 64 for r in rows)
    assert [r["hdf5_key"] for r in rows] == [f"episodes-hdf5/2026-11-10/g1-001/{e}.h5" for e in res.episode_ids]
    assert [r["source_key"] for r in rows] == [f"raw-mcap/2026-11-10/g1-001/{e}/{e}_0.mcap" for e in res.episode_ids]
    assert res.train_episode_indices == [0, 1] and res.heldout_episode_indices == [2]
    assert res.train_episode_ids == ["ep-000", "ep-002"] and res.heldout_episode_ids == ["ep-001"]
    card = (res.root / "README.md").read_text()
    for needle in ("CC-BY-NC-4.0", "internal_training, lab_robot", "Acme Robotics", "consent-0042",
                   "lab-hanoi", "2030-01-01", "Contains human video: True", "Held-out: 1 episodes",
                   "Train: 2 episodes", "unitree_g1", "head, wrist_right", "20 fps"):
        assert needle in card, needle
    assert "Built at" not in card


def test_lerobot_metadata_states_the_split_and_train_only_stats(built):
    """What `lerobot-train` sees: info.json splits, stats.json of the train episodes, loaded by LeRobot."""
    res, _, _ = built
    info = json.loads((res.root / "meta" / "info.json").read_text())
    assert info["splits"] == {"train": "0:2", "test": "2:3"} == res.splits
    from hvla_platform.lib.core.compat import import_lerobot_dataset
    ds = import_lerobot_dataset()("hvla/t-rel", root=res.root, video_backend="torchcodec")
    assert ds.meta.info["splits"] == {"train": "0:2", "test": "2:3"}
    table = _data(res.root)
    ep_idx = np.asarray(table["episode_index"])
    for key in ("observation.state", "action"):
        x = np.asarray(table[key], dtype=np.float64)
        train, everything = x[ep_idx < 2], x
        st = ds.meta.stats[key]
        assert int(np.asarray(st["count"]).item()) == 48  # the two train episodes' frames
        np.testing.assert_allclose(st["mean"], train.mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(st["std"], train.std(0), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(st["min"], train.min(0), rtol=0, atol=1e-7)
        assert not np.allclose(st["mean"], everything.mean(0), rtol=1e-5, atol=1e-6)  # held-out rows left out
    video = ds.meta.stats["observation.images.head"]
    assert np.asarray(video["mean"]).shape == (3, 1, 1) and int(np.asarray(video["count"]).item()) > 0
    doc = json.loads((res.root / "meta" / "stats.json").read_text())
    assert list(doc) == sorted(doc)  # deterministic key order


def test_qa_and_outcome_reach_lerobot_episode_metadata_and_card(built):
    res, _, _ = built
    from hvla_platform.lib.core.compat import import_lerobot_dataset
    ds = import_lerobot_dataset()("hvla/t-rel", root=res.root, video_backend="torchcodec")
    eps = ds.meta.episodes
    assert list(eps["hvla/episode_id"]) == ["ep-000", "ep-002", "ep-001"]
    assert list(eps["hvla/split"]) == ["train", "train", "heldout"]
    assert list(eps["hvla/qa_status"]) == ["passed", "approved", "passed"]
    assert list(eps["hvla/quality_score"]) == [0.93, 0.41, 0.88]
    assert list(eps["hvla/success"]) == [True, None, False]
    assert list(eps["hvla/min_distance_m"]) == [0.012, None, 0.21]
    rows = lr.read_hvla_episodes(res.root)
    assert [(r["qa_status"], r["quality_score"], r["success"]) for r in rows] == [
        ("passed", 0.93, True), ("approved", 0.41, None), ("passed", 0.88, False)]
    card = (res.root / "README.md").read_text()
    assert "| 0 | ep-000 | train | passed | 0.930 | success | 0.0120 |" in card
    assert "| 1 | ep-002 | train | approved | 0.410 | unknown | – |" in card
    assert "| 2 | ep-001 | heldout | passed | 0.880 | miss | 0.2100 |" in card
    assert "- ep-002: quality score 0.41 below min_quality 0.6; approved by qa-lead" in card
    assert "QA status: 2 passed" in card and "1 approved by a supervisor" in card
    assert "Recorded outcome: 1 success, 1 miss, 1 unknown" in card
    # the cameras' own rate and the repeated frames of the upsampling
    src = read_episode_h5(res.root.parent / "h5" / "ep-000.h5", load_images=False)
    assert src.source_rate_hz == {"head": 15.0, "wrist_right": 15.0}
    repeats = sum(int(np.count_nonzero(np.diff(read_episode_h5(res.root.parent / "h5" / f"ep-00{i}.h5",
                                                             load_images=False).source_index["head"]) == 0))
                  for i in range(3))
    assert 0.2 < repeats / 72 < 0.3
    assert (f"- `observation.images.head`: recorded at 15.0 Hz, upsampled to the dataset's 20 fps by showing the "
            f"nearest source frame at each frame time (no interpolation): {repeats} of 72 frames "
            f"({repeats / 72:.1%}) repeat the previous frame exactly.") in card
    assert "`meta/info.json` `splits`: `{\"train\": \"0:2\", \"test\": \"2:3\"}`" in card
    assert "LeRobot's `test` split **is the held-out split**" in card
    assert "--dataset.episodes='[0,1]'" in card


def test_two_builds_in_fresh_processes_are_byte_identical(built, tmp_path):
    """Same HDF5 files, two interpreters with different hash seeds: every file of the dataset equal."""
    res, paths, _ = built
    code = ("import sys; from pathlib import Path; "
            "from hvla_platform.lib.dataset import lerobot_release as lr; "
            "from hvla_platform_tests.lib.dataset.test_lerobot_release import QA, RIGHTS, _spec; "
            "lr.build_lerobot_dataset(_spec(), sorted(Path(sys.argv[1]).glob('*.h5')), Path(sys.argv[2]), "
            "rights=RIGHTS, episode_qa=QA)")
    roots = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = tmp_path / f"build-{seed}"
        p = subprocess.run([sys.executable, "-c", code, str(paths[0].parent), str(out)], env=env, cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        roots.append(out)
    files = [{p.relative_to(r).as_posix(): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()} for r in roots]
    assert sorted(files[0]) == sorted(files[1])
    assert [k for k in files[0] if files[0][k] != files[1][k]] == []
    assert {"README.md", "meta/stats.json", "meta/info.json", "meta/hvla_episodes.parquet"} <= set(files[0])
    for name, data in files[0].items():  # no path of the machine that built it
        assert str(tmp_path).encode() not in data and str(paths[0].parent).encode() not in data, name


def test_every_episode_held_out_gives_an_evaluation_only_release_without_stats(tmp_path):
    """A small release can draw every episode into held-out: no stats of held-out data are left for
    anyone to normalise with, and LeRobot still loads it."""
    paths = _write(tmp_path / "h5")
    res = lr.build_lerobot_dataset(_spec(heldout={"episode_ids": ["ep-000", "ep-001", "ep-002"]}), paths,
                                   tmp_path / "ds")
    assert res.train_episode_indices == [] and res.heldout_episode_indices == [0, 1, 2]
    assert json.loads((res.root / "meta" / "info.json").read_text())["splits"] == {"train": "0:0", "test": "0:3"}
    assert not (res.root / "meta" / "stats.json").exists()
    from hvla_platform.lib.core.compat import import_lerobot_dataset
    ds = import_lerobot_dataset()("hvla/t-rel", root=res.root, video_backend="torchcodec")
    assert ds.meta.stats is None and ds.num_episodes == 3
    card = (res.root / "README.md").read_text()
    assert "- Train: 0 episodes: an evaluation-only release." in card and "No `meta/stats.json`" in card
    with pytest.raises(lr.LeRobotReleaseError, match="unknown QA status"):
        lr.build_lerobot_dataset(_spec(), paths, tmp_path / "ds2", episode_qa={"ep-000": lr.EpisodeQA("ok")})
