"""Issue 16's "done when": recordings of every shipped robot profile, and bags in every storage
format (rosbag2 sqlite3, a split rosbag2 MCAP bag, ROS 1), go through the whole lifecycle — land,
raw ingest, conversion to HDF5, a LeRobot release per profile — and each release reloads with
LeRobot with the profile's features (``hvla profile check`` on a renamed topic:
``cli/test_profile_cli.py``).

Recordings are made by ``hvla sim record --profile …`` (the H1's three 480 × 640 cameras with
synthesised frames to keep the time down), one partition (capture day × robot) per profile.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import lerobot_prefix, register_release
from hvla_platform.lib.formats.bags import open_bag
from hvla_platform.lib.formats.bags.export import export_recording
from hvla_platform.lib.formats.episode_h5 import EpisodeReader
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.sim.recorder import record_episode
from hvla_platform_tests.fixtures.lakes import land_and_convert

#: End to end (every profile and storage format through to a release): run early (conftest.py).
pytestmark = pytest.mark.e2e

DAY = "2026-11-20"
#: profile → (robot id, frames mode, episode seconds, episodes)
PLAN = {
    "unitree_g1_29dof": ("g1-101", "rendered", 2.0, 4),
    "unitree_g1_29dof_hands": ("g1-dex3-101", "rendered", 2.0, 2),
    "unitree_h1_3cam": ("h1-101", "synthetic", 2.0, 2),
    "ur5e_robotiq_2f85": ("ur5e-101", "rendered", 2.0, 2),
}
#: G1 episodes whose bag is re-written in another storage format before landing.
EXPORTS = {2: ("sqlite3", None), 3: ("mcap", 200_000), 4: ("ros1", None)}


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    root = tmp_path_factory.mktemp("profiles")
    recs, staged = root / "recordings", root / "staged"
    kinds: dict[str, str] = {}
    for profile, (robot, frames, duration, n) in PLAN.items():
        for i in range(1, n + 1):
            ep = f"ep-{robot}-{i:03d}"
            folder = record_episode(staged, episode_id=ep, robot_id=robot, capture_day=DAY, seed=100 + i,
                                    duration_s=duration, profile=profile, frames=frames)
            dst = recs / DAY / robot / ep
            if profile == "unitree_g1_29dof" and i in EXPORTS:
                storage, split = EXPORTS[i]
                export_recording(folder, dst, storage, split_max_bytes=split)
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(folder, dst)
            kinds[ep] = open_bag(dst).kind
    lake = LocalLake(root / "lake")
    out = {"lake": lake, "recs": recs, "kinds": kinds, "releases": {}}
    for profile, (robot, *_rest) in PLAN.items():
        land_and_convert(lake, recs / DAY / robot, DAY, robot)
        prof = load_profile(profile)
        spec_text = yaml.safe_dump({
            "name": f"life-{robot}", "repo_id": f"hvla/life-{robot}", "profile": profile,
            "partitions": [{"capture_day": DAY, "robot_id": robot}], "fps": int(prof.fps),
            "min_quality": 0.0})
        spec = register_release(lake, spec_text)
        out["releases"][profile] = (spec, build_release(lake, spec))
    return out


def test_every_storage_format_was_recorded(lifecycle):
    kinds = lifecycle["kinds"]
    assert kinds["ep-g1-101-002"] == "rosbag2_sqlite3"
    assert kinds["ep-g1-101-003"] == "rosbag2_mcap"
    assert len(open_bag(lifecycle["recs"] / DAY / "g1-101" / "ep-g1-101-003").files) > 1  # a split bag
    assert kinds["ep-g1-101-004"] == "ros1"
    assert kinds["ep-g1-101-001"] == "mcap"


def test_every_episode_converts_with_its_profile(lifecycle):
    lake = lifecycle["lake"]
    for profile, (robot, _frames, duration, n) in PLAN.items():
        prof = load_profile(profile)
        manifest = lake.read_manifest(episodes_prefix(DAY, robot))
        conv = {c["episode_id"]: c for c in manifest["conversions"]}
        assert len(conv) == n
        bad = {e: c["reason"] for e, c in conv.items() if c["status"] != "converted"}
        assert not bad, f"{profile}: not converted: {bad}"
        with lake.local_artifact(episodes_prefix(DAY, robot)) as d:
            for ep in conv:
                with EpisodeReader(Path(d) / f"{ep}.h5") as r:
                    low = r.low_dim()
                    assert low.profile == prof.key
                    assert low.state_names == prof.state_names and low.action_names == prof.action_names
                    assert (low.locomotion_command is None) == (prof.locomotion is None)
                    assert set(r.cameras) == set(prof.cameras)
                    for cam, info in r.cameras.items():
                        spec = prof.cameras[cam]
                        assert (info.height, info.width) == (spec.height, spec.width)
                        frame = r.frame(cam, r.num_frames // 2)
                        assert frame.shape[:2] == (spec.height, spec.width)
                        assert info.kind == ("depth" if spec.is_depth else "rgb")
                    assert abs(r.num_frames / prof.fps - duration) < 0.5
                    assert set(low.extras) == set(prof.extras)


def test_the_g1_bags_in_other_formats_hold_the_same_kind_of_episode(lifecycle):
    lake = lifecycle["lake"]
    with lake.local_artifact(episodes_prefix(DAY, "g1-101")) as d:
        frames = {}
        for i in range(1, 5):
            with EpisodeReader(Path(d) / f"ep-g1-101-{i:03d}.h5") as r:
                frames[i] = r.num_frames
                assert r.cameras["head"].encoding == "jpeg"  # the recording's JPEG bytes, kept
    assert len(set(frames.values())) == 1, frames


def test_one_release_per_profile_reloads_with_lerobot(lifecycle):
    LeRobotDataset = import_lerobot_dataset()
    lake = lifecycle["lake"]
    for profile, (spec, build) in lifecycle["releases"].items():
        prof = load_profile(profile)
        robot, _frames, _d, n = PLAN[profile]
        assert build.manifest.profile == prof.key and build.manifest.robot_type == prof.robot.model
        with lake.local_artifact(lerobot_prefix(build.spec)) as root:
            ds = LeRobotDataset(spec.repo_id, root=root, video_backend="torchcodec")
            info = json.loads((Path(root) / "meta" / "info.json").read_text())
            assert info["robot_type"] == prof.robot.model
            assert info["fps"] == int(prof.fps)
            assert ds.meta.total_episodes == n
            videos = sorted(k for k, f in info["features"].items() if f["dtype"] == "video")
            assert videos == sorted(f"observation.images.{c}" for c in prof.rgb_cameras)
            assert info["features"]["action"]["names"] == prof.action_names
            assert ("observation.locomotion_command" in info["features"]) == (prof.locomotion is not None)
            item = ds[len(ds) // 2]
            for cam in prof.rgb_cameras:
                c = prof.cameras[cam]
                assert tuple(item[f"observation.images.{cam}"].shape) == (3, c.height, c.width)
            assert np.isfinite(item["observation.state"].numpy()).all()
            assert prof.key in (Path(root) / "README.md").read_text()
