"""Camera frames of every encoding a profile may name (PNG, bgr8, mono8, 32FC1 depth), rendered and
synthetic: sizes, dtypes, noise that never freezes a camera, and depth in the right units."""

from __future__ import annotations

import numpy as np
import pytest

from hvla_platform.lib.formats.recording.profile import available_profiles, parse_profile
from hvla_platform.lib.sim.builders import build_profile_scene
from hvla_platform.lib.sim.core import RobotSim
from hvla_platform.lib.sim.frames import CameraFrames, NoiseBank, add_noise_u8, headroom
from hvla_platform.lib.sim.recorder import record_episode
from hvla_platform_tests.lib.sim.test_profile_recordings import check_recording

UR5E = available_profiles()["ur5e_robotiq_2f85"].read_text()
#: The UR5e with a PNG wrist camera, a mono8 base camera (bgr8 as a third) and a 32FC1 wrist depth.
VARIANT = (UR5E.replace("profile: ur5e_robotiq_2f85", "profile: ur5e_encodings")
           .replace("    encoding: jpeg\n    height: 240\n    width: 320", "    encoding: png\n    height: 60\n    width: 80")
           .replace("    encoding: rgb8", "    encoding: mono8")
           .replace("extras:", "  base_bgr:\n    topic: /base_camera/bgr\n    type: sensor_msgs/msg/Image\n    encoding: bgr8\n"
                                 "    height: 48\n    width: 64\n    rate_hz: 10\n"
                                 "  wrist_depth:\n    topic: /wrist_camera/depth\n    type: sensor_msgs/msg/Image\n"
                                 "    encoding: 32FC1\n    height: 48\n    width: 64\n    rate_hz: 10\nextras:")
           .replace("    wrench_site: ft_sensor", "    wrench_site: ft_sensor\n    cameras: {wrist_depth: wrist, base_bgr: base}"))


@pytest.fixture(scope="module")
def variant():
    return parse_profile(VARIANT)


@pytest.mark.parametrize("mode", ["rendered", "synthetic"])
def test_every_encoding(variant, mode):
    sim = RobotSim(build_profile_scene(variant), render=True, height=60, width=80)
    try:
        sim.reset((0.5, 0.0), "red", "cube")
        frames = CameraFrames(sim, variant.cameras, np.random.default_rng(0), mode=mode)
        png = frames.frame("wrist", 0.0)
        assert png.shape == (60, 80, 3) and png.dtype == np.uint8
        assert frames.payload("wrist", 0.0)[:8] == b"\x89PNG\r\n\x1a\n"
        mono = frames.frame("base", 0.0)
        assert mono.shape == (96, 128) and mono.dtype == np.uint8 and mono.std() > 5
        bgr, rgb_like = frames.frame("base_bgr", 0.0), sim.render("base_bgr", 48, 64)
        assert bgr.shape == (48, 64, 3)
        # bgr8 is the colour image with its channels reversed (up to the sensor noise)
        assert np.abs(bgr[..., ::-1].astype(int) - rgb_like.astype(int)).mean() < 6
        depth = frames.frame("wrist_depth", 0.0)
        assert depth.dtype == np.float32 and depth.shape == (48, 64)
        valid = depth[np.isfinite(depth)]
        assert valid.size > 0.5 * depth.size and 0.1 < np.median(valid) < 2.0, "metres, REP 118"
        again = frames.frame("wrist", 0.0)
        assert not np.array_equal(png, again), "fresh sensor noise on every frame"
    finally:
        sim.close()


def test_the_variant_records(tmp_path, variant):
    folder = record_episode(tmp_path, episode_id="ep-enc", robot_id="ur5e-009", capture_day="2026-11-12", seed=2,
                            duration_s=0.5, profile=variant, frames="synthetic")
    msgs = check_recording(folder, variant, 0.5)
    m = msgs["/wrist_camera/depth"][0][2]
    assert (m.encoding, m.step) == ("32FC1", 64 * 4)


def test_noise_bank_adds_without_wrapping():
    rng = np.random.default_rng(0)
    bank = NoiseBank((20, 30, 3), 2.0, rng, dtype="uint8")
    assert bank.bound == 6
    black, white = np.zeros((20, 30, 3), np.uint8), np.full((20, 30, 3), 255, np.uint8)
    for img in (black, white):
        out = add_noise_u8(headroom(img, bank.bound), bank)
        assert out.min() >= 0 and out.max() <= 255 and abs(int(out.mean()) - (6 if img is black else 249)) <= 1
    noise = add_noise_u8(np.full((20, 30, 3), 128, np.uint8), bank).astype(int) - 128
    assert noise.std() == pytest.approx(2.0, abs=0.4) and np.abs(noise).max() <= 6
