"""Video QA on real MP4s (H.264, PyAV) of simulated egocentric clips with planted defects: each
defect is caught by its own check, where it was planted; clean clips raise nothing."""

from pathlib import Path

import pytest

from hvla_platform.lib.formats.human_video import write_mp4
from hvla_platform.lib.processing.qa.video_qa import VIDEO_CHECKS, VIDEO_GATES, VideoQAThresholds, clip_qa
from hvla_platform_tests.fixtures.human_video_clips import FPS, blurred_span, frozen_span, shaken_span, sim_frames


def _qa(tmp_path: Path, frames, role: str, name: str, **kw):
    video = write_mp4(tmp_path / f"{name}.mp4", list(frames), FPS, **kw)
    return clip_qa(video, role)


@pytest.mark.parametrize("role", ["manipulation", "locomotion"])
@pytest.mark.parametrize("seed", [0, 1])
def test_clean_clips_pass_every_check(tmp_path, role, seed):
    q = _qa(tmp_path, sim_frames(role, seed)[0], role, f"clean-{role}-{seed}")
    assert q.failed == [], {c: q.checks[c]["detail"] for c in q.failed}
    assert q.quality_score == 1.0
    assert set(q.checks) == set(VIDEO_CHECKS)
    assert all(c["spans"] == [] for c in q.checks.values())


def _only(q, check):
    assert q.failed == [check], {c: q.checks[c]["detail"] for c in q.failed}


def test_blurred_span_is_found_where_planted(tmp_path):
    frames = sim_frames("manipulation")[0]
    q = _qa(tmp_path, blurred_span(frames, 10, 20), "manipulation", "blur")
    _only(q, "video_blur")
    assert q.checks["video_blur"]["spans"] == [[1.0, 1.9, "video"]]
    assert q.quality_score == pytest.approx(1 - 10 / 30, abs=1e-6)  # score-only: the clip stays usable


def test_shaken_span_is_found_where_planted(tmp_path):
    frames = sim_frames("manipulation")[0]
    q = _qa(tmp_path, shaken_span(frames, 10, 20), "manipulation", "shake")
    _only(q, "video_shake")
    spans = q.checks["video_shake"]["spans"]
    assert spans and all(1.0 <= a <= b <= 2.0 for a, b, _ in spans)
    assert 0 < q.quality_score < 1


def test_a_cut_to_another_view_is_a_cut(tmp_path):
    manip, loco = sim_frames("manipulation")[0], sim_frames("locomotion")[0]
    q = _qa(tmp_path, list(manip[:15]) + list(loco[15:]), "manipulation", "cut")
    assert "video_cuts" in q.failed and q.quality_score == 0.0
    assert q.checks["video_cuts"]["spans"] == [[1.5, 1.5, "video"]]


def test_frozen_span_is_found_where_planted(tmp_path):
    frames = sim_frames("manipulation")[0]
    q = _qa(tmp_path, frozen_span(frames, 15, 23), "manipulation", "frozen")
    _only(q, "video_frozen")
    (a, b, _), = q.checks["video_frozen"]["spans"]
    assert 1.5 <= a <= 1.7 and 2.1 <= b <= 2.2
    assert q.quality_score == 0.0


def test_too_short_clip_fails_clip_length(tmp_path):
    frames = sim_frames("locomotion")[0]
    q = _qa(tmp_path, frames[:12], "locomotion", "short")
    _only(q, "clip_length")
    assert "1.20 s" in q.checks["clip_length"]["detail"]


def test_time_gap_fails_temporal_continuity(tmp_path):
    frames = sim_frames("manipulation")[0]
    pts = [i / FPS + (0.6 if i >= 15 else 0.0) for i in range(len(frames))]
    q = _qa(tmp_path, frames, "manipulation", "gap", pts_s=pts)
    _only(q, "temporal_continuity")
    assert q.checks["temporal_continuity"]["spans"] == [[2.1, 2.1, "video"]]  # the frame after the gap


def test_bucket_assignment_is_checked_both_ways(tmp_path):
    loco_as_manip = _qa(tmp_path, sim_frames("locomotion")[0], "manipulation", "loco-as-manip")
    _only(loco_as_manip, "bucket_motion")
    assert "large whole-scene motion" in loco_as_manip.checks["bucket_motion"]["detail"]
    manip_as_loco = _qa(tmp_path, sim_frames("manipulation")[0], "locomotion", "manip-as-loco")
    _only(manip_as_loco, "bucket_motion")
    assert "bucket_motion" in VIDEO_GATES and manip_as_loco.quality_score == 0.0


def test_threshold_overrides_are_checked():
    assert VideoQAThresholds.with_overrides({"max_jitter": 0.05}).max_jitter == 0.05
    with pytest.raises(ValueError, match="max_jiter"):
        VideoQAThresholds.with_overrides({"max_jiter": 0.05})
