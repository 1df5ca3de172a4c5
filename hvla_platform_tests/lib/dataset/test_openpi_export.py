"""The openpi-ready export of a release (lib/dataset/openpi_export.py, openpi_v21.py, openpi_video.py,
openpi_norm_stats.py), on a real release built from MCAP recordings through the production path:

* the export holds the release's train episodes only, renumbered 0..N-1, in LeRobot v2.1 layout
  (meta/info.json, episodes.jsonl, tasks.jsonl renumbered, episodes_stats.jsonl, one Parquet and one
  MP4 per episode and camera); the held-out episodes are a dataset of their own;
* the rows are the release's rows (values identical, indices rewritten), the videos hold exactly the
  episode's frames, close to the release's decoded frames;
* norm_stats.json sits at openpi's assets/<config>/<repo_id>/ path for absolute and delta actions and
  equals statistics computed here independently with numpy from the export's Parquet;
* the export's own check fails on a broken export; publishing is idempotent and refuses bad input.

:func:`build_openpi_lake` is shared with the peer test (LeRobot 0.3.3) and the asset test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hvla_platform.lib.core.keys import UnsafeIdError, openpi_export_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, require_manifest
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats, load_norm_stats
from hvla_platform.lib.dataset.openpi_export import (
    LAYOUT_FILE, build_openpi_export, check_export, load_export_manifest, norm_stats_path, openpi_repo_id)
from hvla_platform.lib.dataset.openpi_norm_stats import action_chunks, delta_chunks, delta_layout
from hvla_platform.lib.dataset.openpi_video import EpisodeCut, VideoCutError, count_frames, cut_episode_videos
from hvla_platform.lib.dataset.releases import lerobot_prefix, register_release
from hvla_platform.lib.formats.norm_stats import read_norm_stats_json
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"
RED, BLUE = "touch the red cube with the right hand", "touch the blue ball with the left hand"
#: episode id → task; ep-b is held out. The release orders train first: ep-a, ep-c, ep-d, then ep-b.
EPISODES = {"ep-a": RED, "ep-b": BLUE, "ep-c": BLUE, "ep-d": RED}
SPEC = f"""\
name: t-openpi
repo_id: hvla/t-openpi
partitions: [{{capture_day: "{DAY}", robot_id: {ROBOT}}}]
fps: 20
heldout: {{episode_ids: [ep-b]}}
"""
HORIZON = 10
CONFIG = "pi05_test"


def build_openpi_lake(root: Path, *, horizon: int = HORIZON, config_name: str = CONFIG) -> dict:
    """A lake with release ``t-openpi`` (4 episodes of 2 s, 2 tasks, ep-b held out), its norm stats
    and its openpi export."""
    recs = root / "recs"
    for i, (ep, task) in enumerate(EPISODES.items()):
        write_recording(recs, episode_id=ep, seed=i + 1, duration_s=2.0, task=task)
    lake = LocalLake(root / "lake")
    land_and_convert(lake, recs, DAY, ROBOT)
    spec = register_release(lake, SPEC)
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    export = build_openpi_export(lake, spec, config_name=config_name, action_horizon=horizon)
    return {"lake": lake, "spec": spec, "export": export,
            "release": require_manifest(lake, lerobot_prefix(spec), LeRobotDatasetManifest),
            "export_root": Path(lake.root) / openpi_export_prefix(spec.name),
            "release_root": Path(lake.root) / lerobot_prefix(spec)}


@pytest.fixture(scope="module")
def built(openpi_lake):
    """:func:`build_openpi_lake`'s lake, built once per session (``openpi_lake`` in the conftest)."""
    return openpi_lake


def _jsonl(p: Path) -> list[dict]:
    return [json.loads(line) for line in p.read_text().splitlines()]


def _rows(root: Path) -> list[dict]:
    return pq.read_table(sorted((root / "data").rglob("*.parquet"))).to_pylist()


# ----------------------------------------------------------------------------- layout and content

def test_export_layout_train_split_only_renumbered(built):
    m, rel, root = built["export"].manifest, built["release"], built["export_root"]
    assert built["export"].status == "materialized" and m.problems == []
    assert m.openpi_repo_id == "hvla/t-openpi" and m.heldout_repo_id == "hvla/t-openpi_heldout"
    assert [e["episode_id"] for e in m.train_episodes] == rel.train_episode_ids == ["ep-a", "ep-c", "ep-d"]
    assert [e["episode_id"] for e in m.heldout_episodes] == ["ep-b"]
    train = root / "lerobot" / "hvla" / "t-openpi"
    info = json.loads((train / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["video_path"] == "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    eps = _jsonl(train / "meta" / "episodes.jsonl")
    assert [e["episode_index"] for e in eps] == [0, 1, 2]
    assert [e["tasks"] for e in eps] == [[RED], [BLUE], [RED]]  # ep-a, ep-c, ep-d
    assert _jsonl(train / "meta" / "tasks.jsonl") == [{"task_index": 0, "task": RED}, {"task_index": 1, "task": BLUE}]
    assert info["total_episodes"] == 3 and info["total_tasks"] == 2 and info["total_chunks"] == 1
    assert info["total_frames"] == sum(e["length"] for e in eps) == m.num_frames
    assert info["total_videos"] == 6 and info["chunks_size"] == 1000 and info["splits"] == {"train": "0:3"}
    assert "data_files_size_in_mb" not in info and info["fps"] == 20
    assert len(_jsonl(train / "meta" / "episodes_stats.jsonl")) == 3
    for e in range(3):
        assert (train / f"data/chunk-000/episode_{e:06d}.parquet").is_file()
        for cam in ("observation.images.head", "observation.images.wrist_right"):
            assert count_frames(train / f"videos/chunk-000/{cam}/episode_{e:06d}.mp4") == eps[e]["length"]
    held = root / "lerobot" / "hvla" / "t-openpi_heldout"
    assert [e["tasks"] for e in _jsonl(held / "meta" / "episodes.jsonl")] == [[BLUE]]
    assert json.loads((held / "meta" / "info.json").read_text())["splits"] == {"test": "0:1"}
    layout = json.loads((root / LAYOUT_FILE).read_text())
    assert layout["repo_id"] == m.openpi_repo_id and layout["train_episodes"] == m.train_episodes


def test_rows_are_the_release_rows_with_new_indices(built):
    rel, root = built["release"], built["export_root"]
    src = _rows(built["release_root"])
    out = _rows(root / "lerobot" / "hvla" / "t-openpi")
    by_release = {}
    for r in src:
        by_release.setdefault(r["episode_index"], []).append(r)
    want = [r for i in rel.train_episode_indices for r in sorted(by_release[i], key=lambda r: r["frame_index"])]
    assert len(out) == len(want)
    assert [r["index"] for r in out] == list(range(len(out)))
    for a, b in zip(out, want):
        assert a["observation.state"] == b["observation.state"] and a["action"] == b["action"]
        assert a["timestamp"] == b["timestamp"] and a["frame_index"] == b["frame_index"]
    tasks = {0: RED, 1: BLUE}
    ids = {i: e for e, i in rel.episode_index.items()}
    assert all(tasks[r["task_index"]] == EPISODES[ids[rel.train_episode_indices[r["episode_index"]]]] for r in out)


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.int16)


def test_episode_videos_are_cut_exactly_by_frame(built):
    """Exported episode e holds exactly the release's frames from_index .. from_index + length - 1
    (same count), each within 2 grey levels on average of the release's decoded frame (one more
    lossy generation) and closer to it than to the release's next frame (no off-by-one)."""
    rel_root = built["release_root"]
    meta = {r["episode_index"]: r for r in pq.read_table(
        next((rel_root / "meta" / "episodes").rglob("*.parquet"))).to_pylist()}
    cam = "observation.images.wrist_right"
    source = _decode(rel_root / f"videos/{cam}/chunk-000/file-000.mp4")
    for new, old in enumerate(built["release"].train_episode_indices):
        first = round(meta[old][f"videos/{cam}/from_timestamp"] * 20)
        got = _decode(built["export_root"] / f"lerobot/hvla/t-openpi/videos/chunk-000/{cam}/episode_{new:06d}.mp4")
        want = source[first:first + meta[old]["length"]]
        assert got.shape == want.shape
        err = np.abs(got - want).mean()
        assert err < 2.0, err
        shifted = source[first + 1:first + 1 + len(got)]
        assert err < np.abs(got[:len(shifted)] - shifted).mean()


def test_cut_refuses_a_video_shorter_than_its_metadata(built, tmp_path):
    src = built["release_root"] / "videos/observation.images.head/chunk-000/file-000.mp4"
    n = count_frames(src)
    with pytest.raises(VideoCutError, match="short"):
        cut_episode_videos(src, [EpisodeCut(n - 5, 10, tmp_path / "e.mp4")], fps=20, vcodec="h264")
    with pytest.raises(VideoCutError, match="overlap"):
        cut_episode_videos(src, [EpisodeCut(0, 10, tmp_path / "a.mp4"), EpisodeCut(5, 10, tmp_path / "b.mp4")],
                           fps=20, vcodec="h264")


# ----------------------------------------------------------------------------- norm stats

def test_delta_layout_pairs_joints_by_name():
    state = ["waist_yaw", "l_sh", "l_el", "r_sh", "r_el"]
    lay = delta_layout(state, ["l_sh", "l_el", "r_sh", "r_el"])
    assert lay.state_order == [1, 2, 3, 4, 0] and lay.mask == [True] * 4
    assert lay.state_names == ["l_sh", "l_el", "r_sh", "r_el", "waist_yaw"]
    # a gripper command without a state joint: not subtracted, a spare state joint holds its place
    lay = delta_layout(state, ["l_sh", "grip", "r_el"])
    assert lay.mask == [True, False, True] and lay.state_order[0] == 1 and lay.state_order[2] == 4
    assert sorted(lay.state_order) == list(range(5))
    with pytest.raises(ValueError, match="delta actions undefined"):
        delta_layout(state, ["grip"])


def test_chunks_pad_with_the_last_action_and_delta_subtracts_current_state():
    actions = np.arange(6, dtype=np.float32).reshape(3, 2)  # T=3, A=2
    chunks = action_chunks(actions, 4)
    assert chunks.shape == (3, 4, 2)
    assert chunks[1].tolist() == [[2, 3], [4, 5], [4, 5], [4, 5]]
    state = np.asarray([[10, 1, 2], [20, 3, 4], [30, 5, 6]], np.float32)  # waist, a0, a1
    lay = delta_layout(["w", "a0", "a1"], ["a0", "a1"])
    d = delta_chunks(chunks, state, lay)
    for t in range(3):
        for k in range(4):
            assert d[t, k].tolist() == [chunks[t, k, 0] - state[t, 1], chunks[t, k, 1] - state[t, 2]]
    assert chunks[0, 0].tolist() == [0, 1]  # the input is not modified


def test_norm_stats_at_openpi_path_equal_an_independent_computation(built):
    m, root = built["export"].manifest, built["export_root"]
    assert m.norm_stats == {"absolute": norm_stats_path(CONFIG, "hvla/t-openpi"),
                            "delta": norm_stats_path(CONFIG + "_delta", "hvla/t-openpi")}
    assert (root / "assets" / CONFIG / "hvla" / "t-openpi" / "norm_stats.json").is_file()
    assert (root / "assets" / f"{CONFIG}_delta" / "hvla" / "t-openpi" / "norm_stats.json").is_file()
    info = json.loads((root / "lerobot/hvla/t-openpi/meta/info.json").read_text())
    snames, anames = info["features"]["observation.state"]["names"], info["features"]["action"]["names"]
    col = [snames.index(a) for a in anames]
    order = col + [j for j in range(len(snames)) if j not in col]
    states, absolute, delta = [], [], []
    for f in sorted((root / "lerobot/hvla/t-openpi/data").rglob("*.parquet")):
        t = pq.read_table(f).to_pydict()
        s = np.asarray(t["observation.state"], np.float32)
        a = np.asarray(t["action"], np.float32)
        for i in range(len(a)):
            ch = a[[min(i + k, len(a) - 1) for k in range(HORIZON)]]
            absolute.append(ch)
            delta.append(ch - s[i, col][None, :])
        states.append(s[:, order])
    data = {"absolute": np.concatenate(absolute), "delta": np.concatenate(delta)}
    st = np.concatenate(states)
    assert m.num_action_vectors == len(st) * HORIZON == data["absolute"].shape[0]
    for variant, acts in data.items():
        got = read_norm_stats_json(root / m.norm_stats[variant])
        for key, x in (("state", st), ("actions", acts)):
            x = x.astype(np.float64)
            q = np.quantile(x, [0.01, 0.99], axis=0, method="inverted_cdf")
            assert np.array_equal(got[key]["q01"], q[0]) and np.array_equal(got[key]["q99"], q[1]), (variant, key)
            np.testing.assert_allclose(got[key]["mean"], x.mean(0), rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got[key]["std"], x.std(0), rtol=1e-9, atol=1e-12)
    # the delta chunks are small corrections around the current position, the absolute ones are not
    a, d = read_norm_stats_json(root / m.norm_stats["absolute"]), read_norm_stats_json(root / m.norm_stats["delta"])
    assert np.abs(d["actions"]["mean"]).max() < np.abs(a["actions"]["mean"]).max()
    # the state is the release's, reordered: its stats are the release norm stats' in that order
    ref = load_norm_stats(built["lake"], built["spec"].name)["norm_stats"]["state"]
    assert a["state"]["q99"].tolist() == [ref["q99"][j] for j in order]


# ----------------------------------------------------------------------------- check, idempotence, refusals

def test_check_export_fails_on_a_broken_export(built, tmp_path):
    rel, ns = built["release"], load_norm_stats(built["lake"], built["spec"].name)
    assert check_export(built["export_root"], rel, ns) == []
    broken = tmp_path / "export"
    shutil.copytree(built["export_root"], broken)
    info_p = broken / "lerobot/hvla/t-openpi/meta/info.json"
    info_p.write_text(info_p.read_text().replace('"v2.1"', '"v3.0"'))
    (broken / "lerobot/hvla/t-openpi/videos/chunk-000/observation.images.head/episode_000001.mp4").unlink()
    (broken / norm_stats_path(CONFIG + "_delta", "hvla/t-openpi")).unlink()
    layout = json.loads((broken / LAYOUT_FILE).read_text())
    layout["train_episodes"].append(layout["heldout_episodes"][0])  # a held-out episode listed as train
    (broken / LAYOUT_FILE).write_text(json.dumps(layout))
    problems = check_export(broken, rel, ns)
    text = "\n".join(problems)
    assert "codebase_version is 'v3.0'" in text
    assert "episode_000001.mp4 missing" in text
    assert "delta norm stats missing" in text
    assert "holds episodes ['ep-a', 'ep-c', 'ep-d', 'ep-b']" in text


def test_publish_is_idempotent_and_follows_the_horizon(built):
    lake, spec = built["lake"], built["spec"]
    again = build_openpi_export(lake, spec, config_name=CONFIG, action_horizon=HORIZON)
    assert again.status == "cached" and again.manifest.fingerprint == built["export"].manifest.fingerprint
    assert load_export_manifest(lake, spec.name).action_horizon == HORIZON
    assert {i.kind for i in again.manifest.inputs} == {"lerobot_dataset", "norm_stats"}
    assert sorted(again.manifest.episode_ids) == ["ep-a", "ep-b", "ep-c", "ep-d"]
    assert again.manifest.rights == built["release"].rights


def test_refusals(built):
    lake, spec = built["lake"], built["spec"]
    with pytest.raises(UnsafeIdError, match="openpi config name"):
        build_openpi_export(lake, spec, config_name="../x")
    with pytest.raises(ValueError, match="action_horizon"):
        build_openpi_export(lake, spec, action_horizon=0)
    assert openpi_repo_id("hvla/g1-reach", "g1-reach-v1.2") == "hvla/g1-reach-v1.2"
    assert openpi_repo_id("solo", "r1") == "r1"


def test_release_without_heldout_episodes_has_no_heldout_dataset(built):
    lake = built["lake"]
    spec = register_release(lake, SPEC.replace("t-openpi", "t-openpi-all").replace(
        "heldout: {episode_ids: [ep-b]}", "heldout: {fraction: 0.0}"))
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    m = build_openpi_export(lake, spec, config_name=CONFIG, action_horizon=HORIZON).manifest
    assert m.problems == [] and m.heldout_repo_id is None and m.heldout_episodes == []
    assert [e["episode_id"] for e in m.train_episodes] == ["ep-a", "ep-b", "ep-c", "ep-d"]
    root = Path(lake.root) / openpi_export_prefix(spec.name) / "lerobot" / "hvla"
    assert sorted(p.name for p in root.iterdir()) == ["t-openpi-all"]
