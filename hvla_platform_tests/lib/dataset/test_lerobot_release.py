"""LeRobot v3.0 release builder: real files written by LeRobot's writer, reloaded by LeRobot."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.formats.episode_h5 import read_episode_h5, write_episode_h5
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_WAIST_JOINTS
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.core.rights import Rights
from hvla_platform_tests.lib.episode_factory import make_episode, write_episodes

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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lr")
    # written in reverse so the builder's sort order is exercised
    paths = list(reversed(write_episodes(tmp / "h5", 3, num_frames=24)))
    msgs: list[str] = []
    res = lr.build_lerobot_dataset(_spec(), paths, tmp / "ds", rights=RIGHTS, progress=msgs.append)
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
    assert res.episode_ids == ["ep-000", "ep-001", "ep-002"]
    assert len(msgs) == 3


def test_parquet_values_match_hdf5(built):
    res, paths, _ = built
    table = pq.read_table(sorted((res.root / "data").rglob("*.parquet"))[0]).to_pydict()
    ep_idx = np.asarray(table["episode_index"])
    state = np.asarray(table["observation.state"], dtype=np.float32)
    action = np.asarray(table["action"], dtype=np.float32)
    src = read_episode_h5([p for p in paths if p.stem == "ep-002"][0], load_images=False)
    names = src.state_names
    sel = [names.index(j) for j in G1_WAIST_JOINTS + G1_ARM_JOINTS]
    np.testing.assert_array_equal(state[ep_idx == 2], src.state[:, sel])
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
    item = ds[24 + 5]  # episode 1, frame 5
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 5
    src = read_episode_h5([p for p in paths if p.stem == "ep-001"][0])
    dec = (item["observation.images.head"].permute(1, 2, 0).numpy() * 255.0)
    assert np.abs(dec - src.images["head"][5].astype(np.float32)).mean() < 12.0
    assert item["task"] == src.task


def test_split_file_and_card(built):
    res, _, _ = built
    rows = lr.read_hvla_episodes(res.root)
    assert [r["episode_id"] for r in rows] == ["ep-000", "ep-001", "ep-002"]
    assert [r["split"] for r in rows] == ["train", "heldout", "train"]
    assert all(len(r["hdf5_sha256"]) == 64 and r["source_uri"].startswith("lake://") for r in rows)
    assert res.train_episode_indices == [0, 2] and res.heldout_episode_indices == [1]
    card = (res.root / "README.md").read_text()
    for needle in ("CC-BY-NC-4.0", "internal_training, lab_robot", "Acme Robotics", "consent-0042",
                   "lab-hanoi", "2030-01-01", "Contains human video: True", "Held-out: 1 episodes",
                   "Train: 2 episodes", "unitree_g1", "head, wrist_right", "20 fps"):
        assert needle in card, needle


def test_schema_stability(built):
    res, _, _ = built
    cur = lr.feature_schema(lr.read_info(res.root))
    assert lr.schema_diff(cur, cur) == []
    prev = json.loads(json.dumps(cur))
    prev["fps"] = 30
    prev["features"]["action"]["shape"] = [12]
    prev["features"]["observation.state"]["names"][0] = "waist_roll_joint"
    del prev["features"]["observation.locomotion_command"]
    diffs = lr.schema_diff(prev, cur)
    assert "fps changed: 30 -> 20" in diffs
    assert "action: shape changed: [12] -> [14]" in diffs
    assert any(d.startswith("feature added: observation.locomotion_command") for d in diffs)
    assert any("observation.state: names changed: [0] waist_roll_joint -> waist_yaw_joint" in d for d in diffs)
    assert "video.codec" not in json.dumps(cur)


def test_rejects_bad_inputs(tmp_path):
    ok = write_episodes(tmp_path / "h5", 1, num_frames=8)
    with pytest.raises(lr.LeRobotReleaseError, match="ep-000.*30 fps"):
        lr.build_lerobot_dataset(_spec(fps=30), ok, tmp_path / "a")
    ep = make_episode("ep-bad", num_frames=8)
    ep.state_names = ["x" + n for n in ep.state_names]
    bad = write_episode_h5(tmp_path / "h5" / "ep-bad.h5", ep)
    with pytest.raises(lr.LeRobotReleaseError, match="ep-bad.*waist_yaw_joint"):
        lr.build_lerobot_dataset(_spec(), [bad], tmp_path / "b")
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        lr.build_lerobot_dataset(_spec(), ok, tmp_path / "exists")
    with pytest.raises(lr.LeRobotReleaseError, match="no camera"):
        lr.build_lerobot_dataset(_spec(cameras=["head"]), [write_episode_h5(
            tmp_path / "h5" / "ep-cam.h5", make_episode("ep-cam", num_frames=8, cameras=("wrist_right",)))],
            tmp_path / "c")
