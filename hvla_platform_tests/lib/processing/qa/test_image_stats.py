"""Camera image statistics (issue 14): real JPEG frames of a moving textured scene with sensor noise go
through pass 1's :class:`CameraScanner` and replace the head camera of a real recording in
``assess_streams``: a blurred span is flagged by ``camera_blur`` at its frames, an exposure step and
an exposure shift by ``camera_exposure_shift``, clean frames pass, black frames are judged by
``camera_black`` only; both checks lower the score without gating it."""

import io
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image

from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform.lib.processing.convert import (
    CameraScan, CameraScanner, SyncConfig, decode_cameras, synchronise, to_episode)
from hvla_platform.lib.processing.qa.image_stats import dhash, frame_image_stats, grey_small, hamming
from hvla_platform.lib.processing.qa.metrics import assess_streams
from hvla_platform.lib.processing.qa.report import write_qa_report
from hvla_platform.lib.processing.qa.score import GATES, SCORE_ONLY, quality_score
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform_tests.fixtures.recordings import write_recording

TH = QAThresholds()
IMAGE_CHECKS = ("camera_exposure_shift", "camera_blur")
TEXTURE = np.kron(np.random.default_rng(0).integers(50, 170, (12, 48)), np.ones((8, 8))).astype(np.int16)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A real 3 s recording (46 head frames at 15 Hz): streams, pass-1 scans and the synchronised episode."""
    root = tmp_path_factory.mktemp("imgstats")
    folder = write_recording(root, episode_id="ep-img", seed=11, duration_s=3.0)
    streams = read_episode_streams(next(folder.glob("*.mcap")))
    cams = decode_cameras(streams)
    synced = synchronise(streams, SyncConfig(), cameras=cams)
    ep = to_episode(streams, synced, episode_id="ep-img", robot_id="r",
                    capture_day="2026-11-10", fps=20)
    return streams, cams, ep


def scene(k: int, rng: np.random.Generator, *, blur: float = 0.0, gain: float = 0.0,
          black: bool = False) -> bytes:
    """JPEG (q 90) of frame ``k`` of a 128 × 96 textured scene panning 2 px per frame, with σ = 2
    sensor noise; optionally Gaussian-blurred (σ px), offset by ``gain`` levels, or black."""
    img = np.repeat(TEXTURE[:, 2 * k:2 * k + 128, None], 3, axis=2) + gain
    img = np.clip(img + rng.normal(0.0, 2.0, img.shape), 0, 255).astype(np.uint8)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    if black:
        img = np.zeros_like(img)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def scan(streams, frames: list[bytes]) -> CameraScan:
    """The frames through pass 1's scanner as the head camera, on the recording's head stamps."""
    prof = streams.profile
    sc = CameraScanner("head", prof.cameras["head"], prof, saturated_level=TH.saturated_level)
    for i, (data, stamp) in enumerate(zip(frames, streams.cameras["head"].stamps_ns)):
        sc.add(i, int(stamp), SimpleNamespace(format="jpeg", data=data))
    return sc.result()


def judge(recording, **per_frame):
    """``assess_streams`` with the head camera replaced by the scene; ``per_frame[name]`` maps a frame
    index to :func:`scene`'s keyword ``name``. Returns (checks, metrics, scan, episode)."""
    streams, cams, ep = recording
    rng = np.random.default_rng(1)
    n = streams.cameras["head"].stamps_ns.size
    frames = [scene(k, rng, **{name: f(k) for name, f in per_frame.items()}) for k in range(n)]
    head = scan(streams, frames)
    checks, metrics = assess_streams(streams, {**cams, "head": head}, ep, TH)
    return checks, metrics, head, ep


def frames_of(stamps_ns: np.ndarray, ep) -> list[int]:
    """Synchronised frames nearest to the stamps (what a check's ``frames`` name)."""
    return sorted({int(f) for f in np.round((stamps_ns - ep.start_time_ns) / 1e9 * ep.fps)})


def test_dhash_and_sharpness_of_frames():
    ramp = np.tile(np.arange(0, 180, 10, dtype=np.uint8), (8, 1))  # brighter to the right
    assert dhash(ramp) == 2**64 - 1 and dhash(ramp[:, ::-1]) == 0
    assert hamming(np.array([0, 2**64 - 1], np.uint64), 0).tolist() == [0, 64]
    big = cv2.resize(np.repeat(TEXTURE[:, :128, None], 3, axis=2).astype(np.uint8), (640, 480),
                     interpolation=cv2.INTER_NEAREST)
    assert grey_small(big).shape == (240, 320)  # downscaled to 320 px wide, aspect kept
    sharp, _ = frame_image_stats(big)
    soft, _ = frame_image_stats(cv2.GaussianBlur(big, (0, 0), 3))
    assert soft < TH.min_sharpness_ratio * sharp


def test_clean_frames_pass(recording):
    checks, metrics, head, _ = judge(recording)
    assert head.sharpness.dtype == np.float64 and head.dhash.dtype == np.uint64
    assert head.sharpness.shape == head.dhash.shape == head.mean_level.shape == (46,)
    assert len(set(head.dhash.tolist())) > 40  # the panning scene changes the hash frame to frame
    for name in IMAGE_CHECKS:
        assert checks[name]["passed"], checks[name]
    assert metrics["camera_exposure"]["head"] == pytest.approx(float(np.median(head.mean_level)), abs=1e-3)
    assert metrics["camera_sharpness"]["head"] == pytest.approx(float(np.median(head.sharpness)), abs=1e-3)
    assert metrics["camera_exposure_shift_frames"] == {"head": 0, "wrist_right": 0}
    assert metrics["camera_blur_frames"] == {"head": 0, "wrist_right": 0}
    assert metrics["camera_bad_fraction"]["head"] == 0.0
    assert len(metrics["frame_fingerprint"]["head"]) == 16


def test_blurred_span_is_flagged_at_its_frames_and_lowers_the_score(recording):
    checks, metrics, head, ep = judge(recording, blur=lambda k: 2.0 if 15 <= k < 30 else 0.0)
    chk = checks["camera_blur"]
    assert not chk["passed"] and "head: 15 blurred frame(s) of 46" in chk["detail"], chk
    assert chk["frames"] == frames_of(head.stamps_ns[15:30], ep)
    assert metrics["camera_blur_frames"]["head"] == 15
    assert checks["camera_exposure_shift"]["passed"] and checks["camera_black"]["passed"]
    assert "camera_blur" in SCORE_ONLY and "camera_blur" not in GATES
    score, comps = quality_score(checks, metrics, TH)
    assert comps["camera_quality"] == round(1 - 15 / 46, 4) and score > 0


def test_exposure_step_is_flagged(recording):
    # +30 levels from frame 30 on (lights switched): under the 40-level shift bound, over the 25-level step
    checks, metrics, head, ep = judge(recording, gain=lambda k: 30.0 if k >= 30 else 0.0)
    chk = checks["camera_exposure_shift"]
    assert not chk["passed"] and "1 step(s)" in chk["detail"], chk
    assert chk["frames"] == frames_of(head.stamps_ns[30:], ep)  # the shorter stretch departs from the norm
    assert metrics["camera_exposure_steps"]["head"] == 1
    assert metrics["camera_exposure_shift_frames"]["head"] == 16
    assert checks["camera_blur"]["passed"]
    score, comps = quality_score(checks, metrics, TH)
    assert comps["camera_quality"] == round(1 - 16 / 46, 4) and score > 0


def test_exposure_shift_of_a_few_frames_is_flagged(recording):
    checks, metrics, head, ep = judge(recording, gain=lambda k: 60.0 if 20 <= k < 23 else 0.0)
    chk = checks["camera_exposure_shift"]
    assert not chk["passed"] and chk["frames"] == frames_of(head.stamps_ns[20:23], ep), chk
    assert metrics["camera_exposure_steps"]["head"] == 0
    assert metrics["camera_exposure_shift_frames"]["head"] == 3


def test_black_frames_are_not_counted_twice(recording):
    checks, metrics, _, _ = judge(recording, black=lambda k: 10 <= k < 20)
    assert not checks["camera_black"]["passed"]
    for name in IMAGE_CHECKS:
        assert checks[name]["passed"], checks[name]
    assert metrics["camera_exposure_shift_frames"]["head"] == 0 and metrics["camera_blur_frames"]["head"] == 0
    assert metrics["camera_bad_fraction"]["head"] == pytest.approx(10 / 46)


def test_qa_report_shows_the_camera_statistics(recording, tmp_path):
    checks, metrics, _, _ = judge(recording, blur=lambda k: 2.0 if 15 <= k < 30 else 0.0)
    row = {"episode_id": "ep-img", "status": "converted", "quality_score": 0.67, "quality_components": {},
           "qa_checks": checks, "qa_metrics": metrics}
    page = write_qa_report(tmp_path, partition="2026-11-10|g1-001", conversions=[row], skipped=[],
                           thresholds={}, thumbnails={}).read_text()
    lv, sh = metrics["camera_exposure"]["head"], metrics["camera_sharpness"]["head"]
    assert f"head: level {lv:.1f}, sharpness {sh:.1f} (0 shifted, 15 blurred frame(s))" in page
