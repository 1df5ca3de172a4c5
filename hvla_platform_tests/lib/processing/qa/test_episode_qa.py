"""Episode QA on real recordings with planted defects: each defect is flagged by its check, at
the right frames, and lowers the quality score; a clean recording passes everything."""

import pytest

from hvla_platform.lib.processing.convert import SyncConfig, decode_cameras, synchronise, to_episode
from hvla_platform.lib.processing.qa.metrics import QA_CHECKS, assess_signals, assess_streams, ldlj
from hvla_platform.lib.processing.qa.score import quality_score
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform_tests.fixtures.recordings import write_recording

TH = QAThresholds()


def assess(folder):
    mcap = next(folder.glob("*.mcap"))
    streams = read_episode_streams(mcap)
    cams = decode_cameras(streams, path=mcap)
    ep = to_episode(streams, synchronise(streams, SyncConfig(), cameras=cams), episode_id="e", robot_id="r",
                    capture_day="2026-11-10", fps=20)
    checks, metrics = assess_streams(streams, cams, ep, TH)
    c2, m2 = assess_signals(streams, ep, TH)
    checks.update(c2)
    metrics.update(m2)
    score, comps = quality_score(checks, metrics, TH)
    return checks, metrics, score, comps


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return assess(write_recording(tmp_path_factory.mktemp("clean"), episode_id="ep-clean", seed=11, duration_s=3.0))


def test_clean_recording_passes_every_check(clean):
    checks, metrics, score, _ = clean
    assert set(checks) == set(QA_CHECKS)
    assert [k for k, c in checks.items() if not c["passed"]] == []
    assert metrics["command_idle_fraction"] == 0.0 and metrics["command_stalls"] == []
    assert score > 0.9
    assert metrics["duration_s"] == pytest.approx(3.0, abs=0.02)


@pytest.mark.parametrize("defect,check,frames", [
    ("frozen_joint", "frozen_joints", (10, 34)),
    ("black_camera", "camera_black", (16, 30)),
    ("clock_jump", "clock_jumps", (20, 40)),
    ("spike", "action_spikes", (24, 26)),
    ("out_of_limits", "joint_limits", (20, 24)),
    ("frozen_camera", "camera_frozen", (10, 30)),
    ("drop_frames", "dropped_messages", (10, 30)),
])
def test_planted_defect_is_flagged_at_its_frames(tmp_path, clean, defect, check, frames):
    checks, metrics, score, comps = assess(write_recording(tmp_path, episode_id=f"ep-{defect}", seed=11,
                                                          duration_s=3.0, defects=(defect,)))
    assert not checks[check]["passed"], checks[check]
    flagged = checks[check]["frames"]
    assert flagged and all(frames[0] <= f <= frames[1] for f in flagged), (flagged, frames)
    assert score < clean[2]
    others = {k for k, c in checks.items() if not c["passed"] and k != check}
    # consequences that must fire together with the defect's own check, and nothing else
    # (the jump stretches the duration; a frozen or out-of-limits measured joint no longer follows its
    # command, which the per-joint tracking check sees, and jumps faster than any joint can move: the
    # frozen joint back when it resumes, the out-of-limits one there and back)
    also = {"spike": {"smoothness"}, "drop_frames": {"camera_frame_count"},
            "clock_jump": {"camera_frame_count"}, "frozen_joint": {"action_state_divergence", "joint_velocity"},
            "out_of_limits": {"action_state_divergence", "joint_velocity"}}.get(defect, set())
    assert others == also, others


def test_gates_zero_the_score(tmp_path):
    _, _, score, comps = assess(write_recording(tmp_path, episode_id="ep-limits", seed=3, defects=("out_of_limits",)))
    assert score == 0.0 and comps["gates_failed"] >= 1


def test_ldlj_prefers_smooth_motion():
    import numpy as np

    t = np.linspace(0, 1, 200)
    smooth = (30 * t**2 - 60 * t**3 + 30 * t**4)[:, None]  # minimum-jerk velocity profile
    jerky = smooth + 0.05 * np.sin(60 * t)[:, None]
    assert ldlj(smooth, t[1]) > ldlj(jerky, t[1])
    assert np.isnan(ldlj(np.zeros((50, 2)), 0.01))
