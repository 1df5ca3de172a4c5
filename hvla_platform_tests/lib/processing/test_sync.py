"""Synchronisation rules: linear interpolation, sample-and-hold, nearest camera frame."""

import numpy as np
import pytest

from hvla_platform.lib.processing.sync import (
    SyncError, coverage, frame_times_ns, interpolate_linear, match_nearest, repeated_fraction, repeated_frames,
    sample_and_hold, source_rate_hz)

MS = 1_000_000


def test_frame_times_cover_the_overlap_at_fps():
    t = frame_times_ns([0, 10 * MS, 5 * MS], [1000 * MS, 990 * MS, 2000 * MS], fps=20)
    assert t[0] == 10 * MS
    assert np.all(np.diff(t) == 50 * MS)
    assert t[-1] <= 990 * MS < t[-1] + 50 * MS
    with pytest.raises(SyncError, match="do not overlap"):
        frame_times_ns([0, 500 * MS], [100 * MS, 900 * MS], fps=20)


def test_interpolation_is_linear_between_samples():
    t_src = np.array([0, 100 * MS, 200 * MS])
    v = np.array([[0.0], [1.0], [3.0]])
    out = interpolate_linear(t_src, v, np.array([50 * MS, 150 * MS]))
    np.testing.assert_allclose(out[:, 0], [0.5, 2.0])


def test_commands_are_sample_and_hold():
    t_src = np.array([0, 100 * MS])
    v = np.array([[1.0], [2.0]])
    out = sample_and_hold(t_src, v, np.array([0, 99 * MS, 100 * MS, 150 * MS]))
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 2])
    with pytest.raises(SyncError, match="precedes"):
        sample_and_hold(t_src + 10 * MS, v, np.array([0]))


def test_nearest_camera_frame_and_coverage():
    cam = np.array([0, 66 * MS, 133 * MS, 400 * MS])
    idx, skew = match_nearest(cam, np.array([0, 50 * MS, 100 * MS, 150 * MS, 200 * MS]))
    np.testing.assert_array_equal(idx, [0, 1, 2, 2, 2])  # 100 ms is 34 ms from 66 ms, 33 ms from 133 ms
    assert skew[4] == pytest.approx(0.067)
    assert coverage(skew, 0.05) == pytest.approx(0.8)
    with pytest.raises(SyncError, match="not sorted"):
        match_nearest(cam[::-1], np.array([0]))


def test_a_15_hz_camera_at_20_fps_repeats_a_quarter_of_its_frames():
    cam = np.arange(68) * 1_000_000_000 // 15  # 15 Hz for 4.5 s
    t = frame_times_ns([0], [int(cam[-1])], fps=20)
    idx, _ = match_nearest(cam, t)
    assert len(t) == 90 and repeated_frames(idx) == 22  # the numbers of issue 11
    assert repeated_fraction(idx) == pytest.approx(22 / 90)
    assert source_rate_hz(cam) == pytest.approx(15.0, rel=1e-6)
    assert repeated_frames(np.arange(5)) == 0 and repeated_fraction(np.array([], np.int64)) == 0.0
    assert source_rate_hz(np.array([5])) == 0.0

