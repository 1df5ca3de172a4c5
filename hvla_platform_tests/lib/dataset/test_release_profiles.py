"""Releases of any robot profile: the spec states its profile, the release holds that profile's
episodes only, and features, sizes and robot type come from the profile, not from G1 constants.

* A test-local arm profile (``$HVLA_HOME/profiles/test_arm.yaml``: other joint names, no
  locomotion, one JPEG colour camera at 120 × 160 and one 16-bit depth camera): format-3 HDF5
  episodes written with ``write_episode_h5`` (real JPEG bytes from Pillow) become a LeRobot release
  through the functions the ``lerobot_dataset`` asset's build runs (``build_lerobot_dataset``,
  ``load_and_probe``, ``check_lerobot_timestamps``), reloaded with ``LeRobotDataset``; then the
  Robo-DM cache, norm stats, a few training steps and offline evaluation run on it.
* A real lake (recordings landed, ingested and converted) holding episodes of two profiles: the
  G1 and a lab's copy of it (``g1_lab``): ``build_release`` of each spec leaves the other's
  episodes out with reason ``other_profile``, in the manifest.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.dataset import robodm_cache as rc
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import (
    OTHER_PROFILE, episode_profile, lerobot_prefix, register_release, select_episodes)
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps
from hvla_platform.lib.evaluation.offline import evaluate_policy_offline
from hvla_platform.lib.formats.episode_h5 import (
    EncodedFrames, EpisodeData, EpisodeReader, decode_frame, encode_png, write_episode_h5)
from hvla_platform.lib.formats.norm_stats import compute_norm_stats
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS, G1_WAIST_JOINTS
from hvla_platform.lib.training import Policy, TrainConfig, train_policy
from hvla_platform.lib.training.data import load_split
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording
from hvla_platform_tests.lib.episode_factory import make_episode, make_images
from hvla_platform_tests.paths import REPO_ROOT

ARM = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_roll"]
STATE = [*ARM, "gripper"]
H, W = 120, 160  # the colour camera: not the G1's 96 × 128
DH, DW = 60, 80  # the depth camera
FPS = 10
REPO = "hvla/test-arm"
RIGHTS = {"data_owners": ["Acme Robotics"], "sites": ["lab-hanoi"], "customers": ["internal"],
          "consent_refs": ["consent-0042"], "licenses": ["CC-BY-NC-4.0"],
          "allowed_uses": ["internal_training", "lab_robot"], "retention_until": "2030-01-01",
          "contains_human_video": False, "contains_customer_environment": False}

TEST_ARM = f"""\
profile: test_arm
version: 2
description: a test arm with a gripper, a wrist camera and a depth camera (no locomotion)
robot:
  model: test_arm_model
  description_file: {{package: hvla_platform, path: profiles/test_arm.urdf}}
fps: {FPS}
joint_state:
  topic: /arm/joint_states
  type: sensor_msgs/msg/JointState
  rate_hz: 100
  joints: {STATE}
commands:
  arm: {{topic: /arm/command, type: std_msgs/msg/Float64MultiArray, rate_hz: 50, joints: {ARM}}}
  gripper: {{topic: /gripper/command, type: std_msgs/msg/Float64, rate_hz: 10, joints: [gripper]}}
task: {{topic: /task, type: std_msgs/msg/String, rate_hz: 1}}
cameras:
  wrist: {{topic: /wrist/image/compressed, type: sensor_msgs/msg/CompressedImage, encoding: jpeg,
          height: {H}, width: {W}, rate_hz: 5}}
  depth: {{topic: /depth/image, type: sensor_msgs/msg/Image, encoding: 16UC1, height: {DH}, width: {DW},
          rate_hz: 10}}
features: {{action: [arm, gripper]}}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """``$HVLA_HOME`` with the test arm's profile and a lab's copy of the G1 profile (``g1_lab``)."""
    root = tmp_path_factory.mktemp("home")
    (root / "profiles").mkdir()
    (root / "profiles" / "test_arm.yaml").write_text(TEST_ARM)
    g1 = (REPO_ROOT / "hvla_platform" / "profiles" / "unitree_g1_29dof.yaml").read_text()
    (root / "profiles" / "g1_lab.yaml").write_text(g1.replace("profile: unitree_g1_29dof", "profile: g1_lab"))
    env = pytest.MonkeyPatch()
    env.setenv("HVLA_HOME", str(root))
    yield root
    env.undo()


def _jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def arm_episode(episode_id: str, *, seed: int, frames: int = 16) -> EpisodeData:
    """A format-3 episode of ``test_arm@2``: the wrist camera at half the frame rate (each JPEG
    shown twice), the depth camera at the frame rate (16-bit PNG, mm), no locomotion command."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0.0, 0.02, size=(frames + 1, len(STATE))), axis=0) + rng.uniform(-0.5, 0.5, len(STATE))
    state = walk[:-1].astype(np.float32)
    action = (walk[1:] + rng.normal(0.0, 0.002, size=(frames, len(STATE)))).astype(np.float32)
    n_rgb = (frames + 1) // 2
    rgb = make_images(rng, n_rgb, H, W, phase=seed)
    depth = (rng.uniform(300, 3000, size=(frames, DH, DW))).astype(np.uint16)
    return EpisodeData(
        episode_id=episode_id, robot_id="arm-001", capture_day="2026-11-12", task="pick the part and place it",
        fps=float(FPS), timestamps=np.arange(frames, dtype=np.float64) / FPS,
        state=state, state_names=list(STATE), velocity=(np.diff(walk, axis=0) * FPS).astype(np.float32),
        action=action, action_names=[*ARM, "gripper"], locomotion_command=None, images={},
        skew={"wrist": np.zeros(frames, np.float32), "depth": np.zeros(frames, np.float32)},
        start_time_ns=1_800_000_000_000_000_000 + seed,
        attrs={"source_key": f"raw-mcap/2026-11-12/arm-001/{episode_id}/{episode_id}_0.mcap",
               "source_sha256": f"{seed:064x}"},
        source_index={"wrist": np.arange(frames, dtype=np.int64) // 2, "depth": np.arange(frames, dtype=np.int64)},
        source_rate_hz={"wrist": FPS / 2, "depth": float(FPS)},
        encoded={
            "wrist": EncodedFrames(frames=[_jpeg(f) for f in rgb], encoding="jpeg", kind="rgb", height=H, width=W,
                                   source_encoding="jpeg"),
            "depth": EncodedFrames(frames=[encode_png(d) for d in depth], encoding="png", kind="depth",
                                   height=DH, width=DW, source_encoding="16UC1"),
        },
        profile="test_arm@2",
    )


def arm_spec(**kw) -> ReleaseSpec:
    doc = {"name": "arm-v1", "repo_id": REPO, "profile": "test_arm", "fps": FPS,
           "heldout": {"episode_ids": ["arm-002"]}}
    doc.update(kw)
    return ReleaseSpec.from_mapping(doc, source="releases/arm-v1.yaml")


@pytest.fixture(scope="module")
def arm_release(home, tmp_path_factory):
    """The arm's release, written the way ``build_release`` writes a version."""
    tmp = tmp_path_factory.mktemp("arm")
    paths = [write_episode_h5(tmp / "h5" / f"arm-{i:03d}.h5", arm_episode(f"arm-{i:03d}", seed=i)) for i in range(3)]
    spec = arm_spec()
    root = tmp / "dataset"
    res = lr.build_lerobot_dataset(spec, paths, root, rights=RIGHTS)
    probe = lr.load_and_probe(root, REPO)
    return {"spec": spec, "paths": paths, "result": res, "root": root, "probe": probe,
            "timestamps": check_lerobot_timestamps(root), "tmp": tmp}


# ------------------------------------------------------------------------------------------------
# The release spec
# ------------------------------------------------------------------------------------------------

def test_spec_defaults_come_from_the_profile(home):
    spec = arm_spec()
    assert spec.profile == "test_arm" and spec.robot_profile().key == "test_arm@2"
    assert spec.cameras == ("wrist",)  # the colour cameras only: depth stays in the HDF5 layer
    assert spec.state_joints == tuple(STATE) and spec.action_joints == (*ARM, "gripper")
    assert spec.robot_type == "test_arm_model"
    d = spec.to_dict()
    assert list(d)[:3] == ["name", "repo_id", "profile"] and d["profile"] == "test_arm"
    assert ReleaseSpec.from_mapping(d) == spec and ReleaseSpec.from_mapping(d).digest() == spec.digest()
    # a subset of the profile's names is a valid choice
    assert arm_spec(state_joints=["elbow", "gripper"], action_joints=["gripper"]).state_joints == ("elbow", "gripper")


def test_g1_specs_are_unchanged_by_profiles(home):
    """The G1 (default profile) keeps today's defaults, and naming it changes neither the canonical
    form nor the digest (so existing releases keep their fingerprints)."""
    base = {"name": "g1-v1", "repo_id": "hvla/g1"}
    implicit = ReleaseSpec.from_mapping(base)
    explicit = ReleaseSpec.from_mapping({**base, "profile": "unitree_g1_29dof"})
    assert implicit == explicit and implicit.to_dict() == explicit.to_dict() and "profile" not in implicit.to_dict()
    assert implicit.digest() == explicit.digest()
    assert implicit.state_joints == tuple(G1_WAIST_JOINTS + G1_ARM_JOINTS)
    assert implicit.action_joints == tuple(G1_ARM_JOINTS) and implicit.cameras == ("head", "wrist_right")
    assert implicit.robot_type == "unitree_g1"
    lab = ReleaseSpec.from_mapping({**base, "profile": "g1_lab"})  # another profile: every state joint
    assert lab.state_joints == tuple(G1_JOINTS) and lab.to_dict()["profile"] == "g1_lab"
    assert lab.digest() != implicit.digest()


@pytest.mark.parametrize("extra,expected", [
    ({"cameras": ["wrist", "depth"]},
     "cameras: 'depth' is a depth camera of robot profile test_arm: a LeRobot release carries colour cameras "
     "only (video features), depth stays in the HDF5 layer — its colour cameras are ['wrist']"),
    ({"cameras": ["wirst"]},
     "cameras: unknown camera(s) of robot profile test_arm: 'wirst' (did you mean 'wrist'?) — its colour "
     "cameras are ['wrist']"),
    ({"state_joints": ["shoulder_pan", "elbo"]},
     "state_joints: not among robot profile test_arm's joint_state joints: 'elbo' (did you mean 'elbow'?)"),
    ({"action_joints": ["waist_yaw_joint"]},
     "action_joints: not among robot profile test_arm's action joints (commands ['arm', 'gripper']): "
     "'waist_yaw_joint' (known: elbow, gripper, shoulder_lift, … 5 in all)"),
    ({"profile": "test_armm"}, "profile: unknown robot profile 'test_armm' (did you mean 'test_arm'?)"),
    ({"profile": "test_arm@2"},
     "profile: must be a robot profile name (lower case, digits, '_'; no '@<version>'), got 'test_arm@2'"),
    ({"state_joints": ["elbow", "elbow"]}, "state_joints: state joint(s) listed twice: ['elbow']"),
])
def test_spec_refuses_what_the_profile_does_not_have_in_one_line(home, extra, expected):
    with pytest.raises(ReleaseSpecError) as err:
        arm_spec(**extra)
    assert str(err.value) == f"releases/arm-v1.yaml: {expected}"
    assert "\n" not in str(err.value)


def test_a_depth_camera_is_refused_in_yaml_too(home):
    text = f"name: arm-v1\nrepo_id: {REPO}\nprofile: test_arm\ncameras: [depth]\n"
    with pytest.raises(ReleaseSpecError, match=r"^arm\.yaml: cameras: 'depth' is a depth camera"):
        ReleaseSpec.from_yaml(text, source="arm.yaml")


# ------------------------------------------------------------------------------------------------
# The arm's release, reloaded with LeRobot
# ------------------------------------------------------------------------------------------------

def test_arm_release_features_come_from_the_profile(arm_release):
    res, root = arm_release["result"], arm_release["root"]
    ds = import_lerobot_dataset()(REPO, root=root, video_backend="torchcodec")
    feats = ds.meta.features
    assert feats["observation.state"]["names"] == STATE and tuple(feats["observation.state"]["shape"]) == (5,)
    assert feats["action"]["names"] == [*ARM, "gripper"] and tuple(feats["action"]["shape"]) == (5,)
    assert "observation.locomotion_command" not in feats  # the arm has no locomotion
    assert list(ds.meta.video_keys) == ["observation.images.wrist"]  # the depth camera is not a video
    assert not any("depth" in k for k in feats)
    assert tuple(feats["observation.images.wrist"]["shape"]) == (H, W, 3)
    assert ds.meta.robot_type == "test_arm_model" and ds.fps == FPS
    assert res.profile == "test_arm@2" and res.robot_type == "test_arm_model"
    assert res.episode_ids == ["arm-000", "arm-001", "arm-002"] and res.heldout_episode_ids == ["arm-002"]
    probe = arm_release["probe"]
    assert probe["cameras"] == {"observation.images.wrist": [3, H, W]} and probe["robot_type"] == "test_arm_model"
    assert probe["state_shape"] == [5] and probe["action_shape"] == [5] and probe["num_frames"] == 48
    assert all(r["passed"] for r in arm_release["timestamps"].values())
    # frame 5 of episode 1 decodes close to the JPEG the HDF5 stores for it
    item = ds[16 + 5]
    assert int(item["episode_index"]) == 1 and int(item["frame_index"]) == 5
    with EpisodeReader(arm_release["paths"][1]) as r:
        src = r.frame("wrist", 5)
        assert np.array_equal(src, decode_frame(r.encoded_frame("wrist", 2), "rgb"))  # frame 5 shows JPEG 2
    dec = item["observation.images.wrist"].permute(1, 2, 0).numpy() * 255.0
    assert np.abs(dec - src.astype(np.float32)).mean() < 12.0
    np.testing.assert_array_equal(item["observation.state"].numpy(), np.asarray(arm_episode("arm-001", seed=1).state[5]))


def test_arm_release_card_states_the_profile_and_features(arm_release):
    card = (arm_release["root"] / "README.md").read_text()
    for needle in ("robot profile `test_arm@2`", "Robot type: `test_arm_model`", "tags: [LeRobot, hvla-platform, "
                   "test-arm-model]", "`observation.images.wrist`: video (120, 160, 3)",
                   "`observation.state`: float32 (5,)", "`action`: float32 (5,)",
                   "No `observation.locomotion_command`: robot profile `test_arm@2` has none.",
                   "Depth camera(s) of the profile (depth) stay in the HDF5 layer",
                   "shoulder_pan, shoulder_lift, elbow, wrist_roll, gripper",
                   "- `observation.images.wrist`: recorded at 5.0 Hz"):
        assert needle in card, needle
    assert "unitree" not in card and "humanoid" not in card.lower()


def test_an_episode_of_another_profile_is_refused_before_anything_is_written(arm_release, tmp_path):
    g1 = write_episode_h5(tmp_path / "g1.h5", make_episode("ep-g1", num_frames=16, fps=FPS))
    out = tmp_path / "mixed"
    with pytest.raises(lr.LeRobotReleaseError) as err:
        lr.build_lerobot_dataset(arm_spec(), [*arm_release["paths"], g1], out)
    assert "episode ep-g1" in str(err.value) and "follows robot profile unitree_g1_29dof" in str(err.value)
    assert OTHER_PROFILE in str(err.value) and not out.exists()
    assert episode_profile(g1) == "unitree_g1_29dof"  # no profile attribute: the default profile
    assert episode_profile(arm_release["paths"][0]) == "test_arm@2"


def _traced_peak(fn) -> int:
    """Peak bytes Python and numpy allocate while ``fn()`` runs (tracemalloc)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_episode_length(arm_release, tmp_path):
    """The LeRobot writer and the Robo-DM cache builder stream frames: a 3x longer episode does not
    raise their peak by half of what its extra frames would take decoded (the release's image
    stats sample at most 12 frames per episode; the cache builder decodes one HDF5 frame at a time)."""
    frame_bytes = H * W * 3
    peaks: dict[str, list[int]] = {"lerobot": [], "cache": []}
    lengths = (120, 360)
    for n in lengths:
        path = write_episode_h5(tmp_path / f"h5-{n}" / "arm-000.h5", arm_episode("arm-000", seed=7, frames=n))
        spec = arm_spec(name=f"arm-long-{n}", heldout={"episode_ids": []})
        root = tmp_path / f"ds-{n}"
        peaks["lerobot"].append(_traced_peak(lambda: lr.build_lerobot_dataset(spec, [path], root)))
        peaks["cache"].append(_traced_peak(lambda: rc.build_robodm_cache(
            root, REPO, tmp_path / f"cache-{n}", release=spec.name, converter_version="test",
            hdf5_files=rc.local_hdf5_files(root, [path]))))
    extra = (lengths[1] - lengths[0]) * frame_bytes  # the longer episode's extra frames, decoded: 13.8 MB
    for what, (short, long) in peaks.items():
        assert long - short < extra / 2, (what, short, long, extra)


# ------------------------------------------------------------------------------------------------
# Cache, norm stats, training and evaluation of the arm's release
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arm_cache(arm_release):
    out = arm_release["tmp"] / "robodm-cache"
    res = rc.build_robodm_cache(arm_release["root"], REPO, out, release="arm-v1", converter_version="test",
                                hdf5_files=rc.local_hdf5_files(arm_release["root"], arm_release["paths"]))
    return res


def test_robodm_cache_has_no_locomotion_and_the_real_image_size(arm_release, arm_cache):
    streams = rc.written_video_codecs(arm_cache.files[0])
    assert sorted(streams) == ["action", "observation/images/wrist", "observation/state"]
    assert rc.check_cache(arm_cache.out_dir, video_codec=rc.DEFAULT_VIDEO_CODEC, expected_episode_indices=[0, 1, 2]) == []
    rep = rc.roundtrip_check(arm_cache.files[1], arm_release["root"], REPO, 1)
    assert rep["ok"], rep
    assert rep["state_equal"] and rep["action_equal"] and rep["locomotion_equal"] is None and rep["num_frames"] == 16
    assert rep["images"]["observation/images/wrist"]["mean_abs_diff"] <= rep["image_atol"]
    wrong = rc.roundtrip_check(arm_cache.files[0], arm_release["root"], REPO, 1)
    assert not wrong["ok"] and not wrong["state_equal"]


def test_training_and_offline_evaluation_take_names_and_shapes_from_the_release(arm_release, arm_cache, tmp_path):
    spec = arm_release["spec"]
    stats = compute_norm_stats(arm_release["root"], train_episode_indices=[0, 1])
    assert stats.names["state"] == STATE and stats.stats["actions"]["mean"].shape == (5,)
    eps = load_split(arm_cache.out_dir, "train")  # every camera of the cache
    assert [list(e.images) for e in eps] == [["wrist"], ["wrist"]]
    assert eps[0].images["wrist"].shape == (16, H, W, 3) and eps[0].state.shape == (16, 5)
    cfg = TrainConfig(exp_name="arm", release="arm-v1", steps=3, batch_size=8, image_size=(24, 32), log_every=1)
    assert cfg.cameras is None  # the release's cameras
    res = train_policy(arm_cache.out_dir, stats.to_openpi(), cfg, out_dir=tmp_path / "ckpt", rights=RIGHTS,
                       state_names=list(spec.state_joints), action_names=list(spec.action_joints))
    config = json.loads((res.step_dir / "config.json").read_text())
    assert config["train_config"]["cameras"] == ["wrist"] and config["camera_shapes"] == {"wrist": [H, W, 3]}
    policy = Policy.load(res.step_dir)
    md = policy.metadata
    assert md["cameras"] == ["wrist"] and md["state_names"] == STATE and md["action_names"] == [*ARM, "gripper"]
    report = evaluate_policy_offline(policy, arm_cache.out_dir, split="heldout", max_frames_per_episode=4)
    assert report["episode_ids"] == ["arm-002"] and report["action_names"] == [*ARM, "gripper"]
    assert len(report["policy"]["first"]["mae_per_dim"]) == 5


# ------------------------------------------------------------------------------------------------
# A real lake holding two profiles: releases do not mix them
# ------------------------------------------------------------------------------------------------

DAY, ROBOT = "2026-11-10", "g1-001"


@pytest.fixture(scope="module")
def mixed_lake(home, tmp_path_factory):
    """ep-a, ep-b recorded as the G1 (default profile), ep-c naming ``g1_lab`` in its metadata.yaml;
    landed, ingested and converted by the real pipeline."""
    tmp = tmp_path_factory.mktemp("mixed")
    for i, ep in enumerate(("ep-a", "ep-b", "ep-c")):
        folder = write_recording(tmp / "recs", episode_id=ep, seed=i + 1, duration_s=2.0)
        if ep == "ep-c":
            meta = yaml.safe_load((folder / "metadata.yaml").read_text())
            meta["robot"]["profile"] = "g1_lab"
            (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    lake = LocalLake(tmp / "lake")
    land_and_convert(lake, tmp / "recs", DAY, ROBOT)
    return lake


def test_a_release_leaves_episodes_of_another_profile_out(mixed_lake):
    lake = mixed_lake
    spec = register_release(lake, f"name: g1-mixed\nrepo_id: hvla/g1-mixed\npartitions: [{{capture_day: '{DAY}', "
                                  f"robot_id: {ROBOT}}}]\nheldout: {{fraction: 0.0}}\n")
    build = build_release(lake, spec)
    m = build.manifest
    assert sorted(m.episode_ids) == ["ep-a", "ep-b"] and m.num_episodes == 2
    assert m.excluded["ep-c"] == (f"{OTHER_PROFILE}: the episode follows robot profile g1_lab@1, "
                                  "release g1-mixed follows unitree_g1_29dof")
    assert {i.episode_ids[0]: i.extra["profile"] for i in m.inputs} == {"ep-a": "unitree_g1_29dof@1",
                                                                        "ep-b": "unitree_g1_29dof@1"}
    with lake.local_artifact(lerobot_prefix(build.spec)) as root:
        ds = import_lerobot_dataset()("hvla/g1-mixed", root=Path(root), video_backend="torchcodec")
        assert ds.meta.robot_type == "unitree_g1" and ds.num_episodes == 2
        assert "observation.locomotion_command" in ds.meta.features
        assert "robot profile `unitree_g1_29dof@1`" in (Path(root) / "README.md").read_text()

    lab = register_release(lake, f"name: lab-mixed\nrepo_id: hvla/lab-mixed\nprofile: g1_lab\npartitions: "
                                 f"[{{capture_day: '{DAY}', robot_id: {ROBOT}}}]\nheldout: {{fraction: 0.0}}\n")
    sel = select_episodes(lake, lab)
    assert [e.episode_id for e in sel.episodes] == ["ep-c"] and sel.episodes[0].profile == "g1_lab@1"
    assert sorted(sel.excluded) == ["ep-a", "ep-b"]
    assert all(why.startswith(f"{OTHER_PROFILE}: the episode follows robot profile unitree_g1_29dof")
               for why in sel.excluded.values())

    arm = register_release(lake, f"name: arm-mixed\nrepo_id: hvla/arm-mixed\nprofile: test_arm\nfps: {FPS}\n")
    with pytest.raises(ValueError, match=r"selects no usable episode .*other_profile"):
        build_release(lake, arm)
