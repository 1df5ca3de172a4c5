"""Synchronise multi-rate robot streams onto one clock at a fixed frame rate.

Conventions (what the episode HDF5 and the LeRobot release mean by "frame k"):

* frame times are ``t_k = t_0 + k / fps`` where ``t_0`` is the latest first-sample time over the
  required streams (so every stream has a sample at or before every frame) and the last frame is
  the last ``t_k`` not after the earliest last-sample time;
* **continuous measurements** (joint positions, velocities) are linearly interpolated at ``t_k``;
* **commands** (arm joint targets, locomotion command) are sample-and-hold: the latest command
  issued at or before ``t_k``, which is what the robot was executing at that instant;
* **camera frames** are matched to the nearest frame stamp, and the absolute skew
  ``|stamp - t_k|`` is reported per frame; frames whose skew exceeds the bound count as
  uncovered (see :func:`coverage`), and the processing checks judge the episode on that.
  A camera slower than ``fps`` (the G1's 15 Hz cameras in a 20 fps episode) is **upsampled by
  repeating** the nearest source frame: the matched source index of every frame is kept
  (HDF5 ``alignment/source_index/<camera>``), and :func:`repeated_fraction` says how many frames
  repeat the previous one (about 1 - 15/20 = 25 % at 15 Hz → 20 fps).
"""

from __future__ import annotations

import numpy as np


class SyncError(ValueError):
    """Streams cannot be synchronised (no overlap, unsorted times, skew over the bound)."""


def frame_times_ns(starts_ns: list[int], ends_ns: list[int], fps: float) -> np.ndarray:
    """Frame times (T,) int64 ns covering the overlap of all streams at ``fps`` Hz.

    Raises:
        SyncError: the streams do not overlap for at least one frame, or ``fps`` ≤ 0.
    """
    if fps <= 0:
        raise SyncError(f"fps must be positive, got {fps}")
    t0, t1 = max(starts_ns), min(ends_ns)
    if t1 < t0:
        raise SyncError(f"streams do not overlap (latest start {t0} ns > earliest end {t1} ns)")
    period = 1e9 / fps
    n = int(np.floor((t1 - t0) / period + 1e-9)) + 1
    return t0 + np.round(np.arange(n) * period).astype(np.int64)


def _check_sorted(t: np.ndarray, name: str) -> None:
    if t.ndim != 1 or t.size == 0:
        raise SyncError(f"{name}: no samples")
    if np.any(np.diff(t) < 0):
        raise SyncError(f"{name}: sample times are not sorted")


def interpolate_linear(t_src_ns: np.ndarray, values: np.ndarray, t_query_ns: np.ndarray, name: str = "stream") -> np.ndarray:
    """Linearly interpolate ``values`` (N, D) sampled at ``t_src_ns`` (N,) at ``t_query_ns`` (T,).

    Query times outside the source range are clamped to the end values. Returns (T, D) float64.

    Raises:
        SyncError: no samples or unsorted source times.
    """
    _check_sorted(t_src_ns, name)
    x = (t_src_ns - t_src_ns[0]).astype(np.float64)
    q = (t_query_ns - t_src_ns[0]).astype(np.float64)
    v = np.asarray(values, np.float64).reshape(len(t_src_ns), -1)
    return np.stack([np.interp(q, x, v[:, d]) for d in range(v.shape[1])], axis=1)


def sample_and_hold(t_src_ns: np.ndarray, values: np.ndarray, t_query_ns: np.ndarray, name: str = "stream") -> np.ndarray:
    """Latest value at or before each query time: (T, D) float64 from (N, D) at (N,) times.

    Raises:
        SyncError: no samples, unsorted times, or a query before the first sample.
    """
    _check_sorted(t_src_ns, name)
    idx = np.searchsorted(t_src_ns, t_query_ns, side="right") - 1
    if np.any(idx < 0):
        raise SyncError(f"{name}: a frame time precedes the first command")
    return np.asarray(values, np.float64).reshape(len(t_src_ns), -1)[idx]


def match_nearest(t_src_ns: np.ndarray, t_query_ns: np.ndarray, name: str = "camera") -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest source sample for each query time, and the absolute skew.

    Returns:
        ``(indices (T,) int64, skew (T,) float32 seconds)``.

    Raises:
        SyncError: no samples or unsorted times.
    """
    _check_sorted(t_src_ns, name)
    right = np.clip(np.searchsorted(t_src_ns, t_query_ns), 0, len(t_src_ns) - 1)
    left = np.clip(right - 1, 0, len(t_src_ns) - 1)
    d_right = np.abs(t_src_ns[right] - t_query_ns)
    d_left = np.abs(t_src_ns[left] - t_query_ns)
    idx = np.where(d_left <= d_right, left, right)
    skew = (np.minimum(d_left, d_right) / 1e9).astype(np.float32)
    return idx.astype(np.int64), skew


def coverage(skew_s: np.ndarray, max_skew_s: float) -> float:
    """Fraction of frames whose matched camera image lies within ``max_skew_s`` seconds (1.0 if no frames)."""
    return float(np.mean(skew_s <= max_skew_s)) if skew_s.size else 1.0


def source_rate_hz(stamps_ns: np.ndarray) -> float:
    """Mean rate of a stream, Hz: ``(N - 1) / (last stamp - first stamp)`` over its (N,) int64 ns
    stamps; 0.0 when it has fewer than two samples or they all share one stamp."""
    t = np.asarray(stamps_ns, dtype=np.int64)
    if t.size < 2 or int(t[-1]) == int(t[0]):
        return 0.0
    return float((t.size - 1) * 1e9 / float(int(t[-1]) - int(t[0])))


def repeated_frames(source_index: np.ndarray) -> int:
    """Number of frames that show the same source frame as the frame before them.

    ``source_index`` is the (T,) int64 index of the source frame each frame shows
    (:func:`match_nearest`'s indices); frame 0 never counts as a repeat.
    """
    idx = np.asarray(source_index)
    return int(np.count_nonzero(idx[1:] == idx[:-1])) if idx.size > 1 else 0


def repeated_fraction(source_index: np.ndarray) -> float:
    """:func:`repeated_frames` over all T frames (0.0 for T = 0); about 0.25 at 15 Hz → 20 fps."""
    idx = np.asarray(source_index)
    return repeated_frames(idx) / idx.size if idx.size else 0.0
