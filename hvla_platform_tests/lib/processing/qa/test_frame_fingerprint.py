"""Near-duplicates by frame fingerprints (issue 14), through the real pipeline: a copy of a recording
whose measured joint positions were perturbed (σ = 10 mrad, beyond ``near_duplicate_rad``) but whose
camera frames are the recording's own bytes is a near duplicate naming the original; a different
clean recording of the same scene (the fixture's frames differ only by sensor noise) is not."""

import dataclasses

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.formats.recording.contract import TOPIC_JOINT_STATES
from hvla_platform.lib.processing.qa.duplicates import (
    FINGERPRINT_SAMPLES,
    frame_fingerprint,
    near_duplicate,
    near_duplicate_frames,
)
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform_tests.fixtures.bad_mcap import only_mcap, rewrite
from hvla_platform_tests.fixtures.planted import DAY, DAY2, ROBOT, run_suite
from hvla_platform_tests.fixtures.recordings import write_duplicate, write_recording

TH = QAThresholds()
JOINT_STATE = "sensor_msgs/msg/JointState"


def perturb_joint_states(sigma_rad: float, seed: int):
    """A :func:`rewrite` transform adding N(0, σ) radians to every measured joint position (real CDR
    re-serialised with ``rosbags``); every other message keeps its bytes."""
    store, rng = get_typestore(Stores.ROS2_HUMBLE), np.random.default_rng(seed)

    def tf(topic, n, log_time, data):
        if topic != TOPIC_JOINT_STATES:
            return [(log_time, data)]
        msg = store.deserialize_cdr(data, JOINT_STATE)
        noise = rng.normal(0.0, sigma_rad, msg.position.shape)
        moved = dataclasses.replace(msg, position=msg.position + noise)
        return [(log_time, bytes(store.serialize_cdr(moved, JOINT_STATE)))]
    return tf


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("framefp")
    recs = root / "recs"
    same = dict(robot_id=ROBOT, capture_day=DAY, duration_s=3.0)
    orig = write_recording(recs / DAY, episode_id="ep-orig", seed=31, **same)
    write_recording(recs / DAY, episode_id="ep-other", seed=32, **same)  # another recording of the same scene
    copy = write_duplicate(orig, recs / DAY2, "ep-perturbed", capture_day=DAY2)
    rewrite(only_mcap(orig), only_mcap(copy), transform=perturb_joint_states(0.01, seed=5))
    return run_suite(LocalLake(root / "lake"), recs)


def test_copy_with_perturbed_joints_is_a_near_duplicate_by_its_frames(converted):
    orig, copy = converted["ep-orig"], converted["ep-perturbed"]
    assert copy.status == "converted", copy.reason
    # the signal rule alone does not find it: the joints moved by more than near_duplicate_rad
    assert not near_duplicate(orig.qa_metrics["fingerprint"], copy.qa_metrics["fingerprint"], TH)
    chk = copy.qa_checks["duplicate"]
    assert not chk["passed"] and chk["kind"] == "near" and chk["original"] == "ep-orig", chk
    assert "same video (frame fingerprints of head, wrist_right within 4 bits)" in chk["detail"], chk
    assert orig.qa_checks["duplicate"]["passed"]
    assert copy.quality_score == 0.0  # duplicate is a gate


def test_different_recordings_of_the_same_scene_are_not_near_duplicates(converted):
    orig, other = converted["ep-orig"], converted["ep-other"]
    assert other.qa_checks["duplicate"]["passed"], other.qa_checks["duplicate"]
    fa, fb = orig.qa_metrics["frame_fingerprint"], other.qa_metrics["frame_fingerprint"]
    assert set(fa) == {"head", "wrist_right"} and all(len(v) == FINGERPRINT_SAMPLES for v in fa.values())
    assert near_duplicate_frames(fa, fb, 3.0, 3.0, TH) == []
    assert near_duplicate_frames(fa, fa, 3.0, 3.0, TH) == ["head", "wrist_right"]
    assert near_duplicate_frames(fa, fa, 3.0, 3.2, TH) == []  # durations disagree


def _hex(values):
    return [f"{int(v):016x}" for v in values]


def test_frame_rule_needs_motion_and_sample_by_sample_agreement():
    rng = np.random.default_rng(0)
    moving = rng.integers(0, 2**63, 16, dtype=np.uint64)  # samples ~32 bits apart: the camera sees motion
    one_off, two_off = moving.copy(), moving.copy()
    one_off[3] ^= np.uint64(0xFFFF)
    two_off[[3, 9]] ^= np.uint64(0xFFFF)
    assert near_duplicate_frames({"head": _hex(moving)}, {"head": _hex(one_off)}, 3.0, 3.0, TH) == ["head"]
    assert near_duplicate_frames({"head": _hex(moving)}, {"head": _hex(two_off)}, 3.0, 3.0, TH) == []
    assert near_duplicate_frames({"head": _hex(moving)}, {"head": _hex(moving[::-1])}, 3.0, 3.0, TH) == []
    # a static view: every sample within 2 bits of the first, the same in two recordings -> never a duplicate
    static = np.uint64(0x0F0F_F0F0_3C3C_C3C3) ^ (np.uint64(1) << rng.integers(0, 64, 16).astype(np.uint64))
    assert near_duplicate_frames({"head": _hex(static)}, {"head": _hex(static)}, 3.0, 3.0, TH) == []


def test_frame_fingerprint_samples_frames_nearest_to_even_times():
    stamps = np.array([0, 10, 20, 30, 40], np.int64) * 10**8
    hashes = np.arange(5, dtype=np.uint64) + np.uint64(2**63)
    fp = frame_fingerprint(stamps[::-1], hashes[::-1], samples=3)  # any order
    assert fp == [f"{2**63:016x}", f"{2**63 + 2:016x}", f"{2**63 + 4:016x}"]
    assert frame_fingerprint(stamps[:1], hashes[:1]) == []
