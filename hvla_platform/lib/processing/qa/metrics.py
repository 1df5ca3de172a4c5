"""Episode QA metrics and per-check verdicts.

Inputs are the decoded raw streams (:class:`~hvla_platform.lib.formats.mcap.streams.EpisodeStreams`:
original stamps and rates, before any resampling), the decoded source camera frames, and the
synchronised :class:`~hvla_platform.lib.formats.episode_h5.EpisodeData`. Every check returns
``{"passed": bool, "detail": str, "frames": [frame indices]}`` (frames of the synchronised episode
where the problem is, when that makes sense, for thumbnails in the QA report).

Smoothness follows Balasubramanian, Melendez-Calderon, Roby-Brami & Burdet, "On the analysis of
movement smoothness", J. NeuroEng. Rehabil. 12:112 (2015): RMS jerk of the commanded arm-joint
path, and the log dimensionless jerk LDLJ = −ln((T³ / v_peak²) ∫ ‖d²v/dt²‖² dt) of its joint-space
velocity (closer to 0 = smoother; reported, not thresholded, as no normative value exists for robot
demonstrations).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hvla_platform.lib.processing.convert import DecodedCamera
from hvla_platform.lib.formats.episode_h5 import EpisodeData
from hvla_platform.lib.processing.qa.robot_limits import limits_array
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.formats.mcap.streams import EpisodeStreams
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    NOMINAL_RATES_HZ,
    TOPIC_ARM_COMMAND,
    TOPIC_JOINT_STATES,
    TOPIC_LOCOMOTION_COMMAND,
)

#: Check names, in the order the QA report and the Dagster checks list them.
QA_CHECKS = (
    "dropped_messages", "clock_jumps", "duration", "camera_frame_count",
    "nan_inf", "joint_limits", "action_spikes", "frozen_joints", "smoothness", "action_state_divergence",
    "camera_black", "camera_saturated", "camera_frozen", "camera_undecodable", "task_non_empty",
)


def _ok(passed: bool, detail: str, frames: list[int] | None = None) -> dict[str, Any]:
    return {"passed": bool(passed), "detail": detail, "frames": sorted(set(int(f) for f in (frames or [])))[:50]}


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where ``mask`` is true."""
    out, start = [], None
    for i, m in enumerate(mask):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def _frame_of(t_ns: np.ndarray | int, ep: EpisodeData) -> np.ndarray:
    """Nearest synchronised frame index for raw times (ns)."""
    t = (np.asarray(t_ns, dtype=np.int64) - ep.start_time_ns) / 1e9
    return np.clip(np.round(t * ep.fps), 0, max(ep.num_frames - 1, 0)).astype(int)


def stream_timing(stamps_ns: np.ndarray, rate_hz: float, th: QAThresholds) -> dict[str, Any]:
    """Gaps, dropped messages and clock jumps of one stream.

    Returns ``{"count", "expected", "dropped", "dropped_fraction", "gaps": [(index, interval_s)],
    "jumps": [(index, interval_s)]}``; a gap is an interval > ``gap_factor / rate``; a clock jump an
    interval > ``clock_jump_s`` or < 0.
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    period = 1.0 / rate_hz
    if t.size < 2:
        return {"count": int(t.size), "expected": int(t.size), "dropped": 0, "dropped_fraction": 0.0, "gaps": [], "jumps": []}
    dt = np.diff(t) / 1e9
    jumps = [(int(i), float(d)) for i, d in enumerate(dt) if d < 0 or d > th.clock_jump_s]
    gaps = [(int(i), float(d)) for i, d in enumerate(dt) if th.gap_factor * period < d <= th.clock_jump_s]
    dropped = int(sum(max(0, round(d / period) - 1) for _, d in gaps))
    span = max((t[-1] - t[0]) / 1e9, 0.0)
    expected = int(round(span * rate_hz)) + 1
    return {"count": int(t.size), "expected": expected, "dropped": dropped,
            "dropped_fraction": dropped / max(expected, 1), "gaps": gaps, "jumps": jumps}


def ldlj(velocity: np.ndarray, dt: float) -> float:
    """Log dimensionless jerk of a (N, D) velocity path sampled every ``dt`` seconds (velocity-based
    form, Balasubramanian et al. 2015); ``nan`` if the path does not move."""
    v = np.asarray(velocity, dtype=np.float64)
    if v.shape[0] < 4:
        return float("nan")
    speed = np.linalg.norm(v, axis=1)
    v_peak = float(speed.max())
    if v_peak <= 1e-9:
        return float("nan")
    jerk = np.diff(v, n=2, axis=0) / dt**2
    duration = dt * (v.shape[0] - 1)
    integral = float(np.sum(np.sum(jerk**2, axis=1)) * dt)
    dlj = duration**3 / v_peak**2 * integral
    return float(-np.log(dlj)) if dlj > 0 else float("nan")


def assess_streams(streams: EpisodeStreams, cameras: dict[str, DecodedCamera], ep: EpisodeData | None,
                   th: QAThresholds) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Timing, camera and label checks from the raw streams (needs no synchronisation).

    Returns ``(checks, metrics)``.
    """
    checks: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    streams_t = {TOPIC_JOINT_STATES: streams.joint_states.stamps_ns, TOPIC_ARM_COMMAND: streams.arm_command.stamps_ns,
                 TOPIC_LOCOMOTION_COMMAND: streams.locomotion_stamps_ns}
    for cam, topic in CAMERA_TOPICS.items():
        if cam in streams.cameras:
            streams_t[topic] = streams.cameras[cam].stamps_ns
    timing = {topic: stream_timing(t, NOMINAL_RATES_HZ[topic], th) for topic, t in streams_t.items()}
    metrics["timing"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("gaps", "jumps")} for k, v in timing.items()}
    frames_gap: list[int] = []
    frames_jump: list[int] = []
    for topic, tm in timing.items():
        if ep is not None:
            frames_gap += [int(_frame_of(streams_t[topic][i + 1], ep)) for i, _ in tm["gaps"]]
            frames_jump += [int(_frame_of(streams_t[topic][i + 1], ep)) for i, _ in tm["jumps"]]
    worst = max(timing.items(), key=lambda kv: kv[1]["dropped_fraction"])
    checks["dropped_messages"] = _ok(
        worst[1]["dropped_fraction"] <= th.max_dropped_fraction,
        "; ".join(f"{t}: {v['dropped']} dropped of {v['expected']} ({v['dropped_fraction']:.1%})"
                  for t, v in timing.items() if v["dropped"]) or "no gaps beyond "
        f"{th.gap_factor}× the nominal period on any stream", frames_gap)
    jumps = {t: v["jumps"] for t, v in timing.items() if v["jumps"]}
    checks["clock_jumps"] = _ok(not jumps, "; ".join(
        f"{t}: {len(j)} jump(s), largest {max(abs(d) for _, d in j):.3f} s" for t, j in jumps.items())
        or f"no interval < 0 or > {th.clock_jump_s} s", frames_jump)
    js = streams.joint_states.stamps_ns
    duration = float((js[-1] - js[0]) / 1e9) if js.size else 0.0
    metrics["duration_s"] = duration
    checks["duration"] = _ok(th.min_duration_s <= duration <= th.max_duration_s,
                             f"{duration:.2f} s (bounds {th.min_duration_s}–{th.max_duration_s} s)")
    ratios = {}
    for cam, topic in CAMERA_TOPICS.items():
        n = cameras[cam].total if cam in cameras else 0
        ratios[cam] = n / max(duration * NOMINAL_RATES_HZ[topic], 1e-9)
    metrics["camera_frame_ratio"] = ratios
    checks["camera_frame_count"] = _ok(all(r >= th.min_camera_frame_ratio for r in ratios.values()),
                                       ", ".join(f"{c}: {r:.1%} of duration × rate" for c, r in ratios.items()))
    # cameras
    black, sat, frozen, undec, per_cam = {}, {}, {}, {}, {}
    fb: list[int] = []
    fs: list[int] = []
    ff: list[int] = []
    fu: list[int] = []
    for cam, dc in cameras.items():
        f = dc.frames.astype(np.float32) if dc.frames.size else np.zeros((0, 1, 1, 3), np.float32)
        mean = f.mean(axis=(1, 2, 3)) if len(f) else np.zeros(0)
        is_black = mean < th.black_level
        is_sat = (f >= th.saturated_level).mean(axis=(1, 2, 3)) > th.saturated_fraction if len(f) else np.zeros(0, bool)
        mad = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2, 3)) if len(f) > 1 else np.zeros(0)
        # black/saturated frames are reported as such, not a second time as a frozen camera
        plain = ~(is_black | is_sat)
        same = np.concatenate([[False], (mad < th.frozen_frame_mad) & plain[1:] & plain[:-1]]) if len(f) else np.zeros(0, bool)
        is_frozen = np.zeros(len(f), bool)
        min_len = max(2, int(np.ceil(th.frozen_s * NOMINAL_RATES_HZ[CAMERA_TOPICS[cam]])))
        for a, b in _runs(same):
            if b - a + 1 >= min_len:
                is_frozen[a - 1:b] = True
        total = max(dc.total, 1)
        black[cam], sat[cam], frozen[cam], undec[cam] = int(is_black.sum()), int(is_sat.sum()), int(is_frozen.sum()), len(dc.undecodable)
        per_cam[cam] = (black[cam] + sat[cam] + frozen[cam] + undec[cam]) / total
        if ep is not None:
            fb += list(_frame_of(dc.stamps_ns[is_black], ep))
            fs += list(_frame_of(dc.stamps_ns[is_sat], ep))
            ff += list(_frame_of(dc.stamps_ns[is_frozen], ep))
    metrics["camera_bad_fraction"] = per_cam
    metrics["camera_black_frames"], metrics["camera_saturated_frames"] = black, sat
    metrics["camera_frozen_frames"], metrics["camera_undecodable_frames"] = frozen, undec

    def cam_check(counts: dict[str, int], what: str, frames: list[int]) -> dict[str, Any]:
        bad = {c: n for c, n in counts.items() if n / max(cameras[c].total, 1) > th.max_bad_frame_fraction}
        return _ok(not bad, ", ".join(f"{c}: {n} {what} frame(s) of {cameras[c].total}" for c, n in counts.items()), frames)

    checks["camera_black"] = cam_check(black, "black", fb)
    checks["camera_saturated"] = cam_check(sat, "saturated", fs)
    checks["camera_frozen"] = cam_check(frozen, "frozen", ff)
    checks["camera_undecodable"] = _ok(not any(undec.values()),
                                       ", ".join(f"{c}: {n} undecodable" for c, n in undec.items()), fu)
    checks["task_non_empty"] = _ok(bool(streams.task.strip()), repr(streams.task[:80]))
    return checks, metrics


def assess_signals(streams: EpisodeStreams, ep: EpisodeData, th: QAThresholds,
                   action_joints: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Signal checks: NaN/Inf, joint limits, action spikes, frozen joints/state, smoothness,
    action/state divergence. Returns ``(checks, metrics)``."""
    checks: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    low = {"state": ep.state, "velocity": ep.velocity, "action": ep.action, "locomotion_command": ep.locomotion_command}
    bad_rows = sorted({int(i) for a in low.values() for i in np.where(~np.isfinite(a).all(axis=1))[0]})
    raw_nan = int((~np.isfinite(streams.joint_states.position)).sum() + (~np.isfinite(streams.arm_command.position)).sum())
    metrics["nonfinite_values"] = int(sum((~np.isfinite(a)).sum() for a in low.values())) + raw_nan
    checks["nan_inf"] = _ok(metrics["nonfinite_values"] == 0,
                            f"{metrics['nonfinite_values']} non-finite value(s) in {len(bad_rows)} frame(s)", bad_rows)
    # joint limits (robot model), on the measured raw positions
    lim = limits_array(streams.joint_states.names)
    pos = streams.joint_states.position
    below = pos < lim[:, 0] - th.joint_limit_margin_rad
    above = pos > lim[:, 1] + th.joint_limit_margin_rad
    viol = below | above
    names = [n for n, v in zip(streams.joint_states.names, viol.any(axis=0)) if v]
    metrics["joint_limit_violations"] = int(viol.sum())
    checks["joint_limits"] = _ok(not names, (f"outside the G1 model's limits: {names}" if names else
                                             "all joints within the G1 model's limits"),
                                 list(_frame_of(streams.joint_states.stamps_ns[viol.any(axis=1)], ep)))
    # action spikes on the raw command stream
    cmd = streams.arm_command.position
    d = np.diff(cmd, axis=0) if len(cmd) > 1 else np.zeros((0, cmd.shape[1]))
    sigma = 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0) if len(d) else np.zeros(cmd.shape[1])
    spike = (np.abs(d) > th.spike_k * sigma) & (np.abs(d) > th.spike_min_rad)
    rows = np.where(spike.any(axis=1))[0] + 1
    spiky = [n for n, s in zip(streams.arm_command.names, spike.any(axis=0)) if s]
    metrics["action_spikes"] = int(spike.sum())
    checks["action_spikes"] = _ok(not spiky, f"{int(spike.sum())} spike(s) on {spiky}" if spiky else
                                  f"no command step > {th.spike_k}·σ and > {th.spike_min_rad} rad",
                                  list(_frame_of(streams.arm_command.stamps_ns[rows], ep)) if rows.size else [])
    # frozen joints / frozen state on the raw joint stream (bit-identical values)
    rate = NOMINAL_RATES_HZ[TOPIC_JOINT_STATES]
    min_len = max(2, int(np.ceil(th.frozen_s * rate)))
    same = np.vstack([np.zeros((1, pos.shape[1]), bool), np.diff(pos, axis=0) == 0]) if len(pos) else np.zeros((0, pos.shape[1]), bool)
    frozen_joints, frozen_frames = [], []
    for j, name in enumerate(streams.joint_states.names):
        for a, b in _runs(same[:, j]):
            if b - a + 1 >= min_len:
                frozen_joints.append(name)
                frozen_frames += list(_frame_of(streams.joint_states.stamps_ns[a - 1:b], ep))
                break
    state_frozen = any(b - a + 1 >= min_len for a, b in _runs(same.all(axis=1))) if len(pos) else False
    metrics["frozen_joints"] = frozen_joints
    checks["frozen_joints"] = _ok(not frozen_joints and not state_frozen,
                                  ("whole state frozen; " if state_frozen else "") +
                                  (f"frozen for ≥ {th.frozen_s} s: {frozen_joints}" if frozen_joints else
                                   f"no joint bit-identical for ≥ {th.frozen_s} s"), frozen_frames)
    # smoothness of the commanded arm path
    t_cmd = (streams.arm_command.stamps_ns - streams.arm_command.stamps_ns[0]) / 1e9 if len(cmd) else np.zeros(0)
    dt = float(np.median(np.diff(t_cmd))) if len(t_cmd) > 1 else 1.0 / NOMINAL_RATES_HZ[TOPIC_ARM_COMMAND]
    if len(cmd) >= 4:
        vel = np.diff(cmd, axis=0) / dt
        jerk = np.diff(cmd, n=3, axis=0) / dt**3
        rms_jerk = float(np.sqrt(np.mean(np.sum(jerk**2, axis=1))))
        metrics["ldlj"] = ldlj(vel, dt)
    else:
        rms_jerk, metrics["ldlj"] = 0.0, float("nan")
    metrics["rms_jerk"] = rms_jerk
    checks["smoothness"] = _ok(rms_jerk <= th.max_rms_jerk,
                               f"RMS jerk {rms_jerk:.1f} rad/s³ (max {th.max_rms_jerk}), LDLJ {metrics['ldlj']:.2f}")
    # action/state divergence on the synchronised episode
    joints = action_joints or ep.action_names
    si = [ep.state_names.index(n) for n in joints if n in ep.state_names]
    ai = [ep.action_names.index(n) for n in joints if n in ep.state_names]
    err = np.abs(ep.action[:, ai] - ep.state[:, si]) if si else np.zeros((ep.num_frames, 0))
    med = float(np.nanmedian(err)) if err.size else 0.0
    metrics["tracking_error_median_rad"] = med
    metrics["tracking_error_p95_rad"] = float(np.nanpercentile(err, 95)) if err.size else 0.0
    worst_frames = list(np.where(err.max(axis=1) > th.max_tracking_error_rad)[0]) if err.size else []
    affected = set(bad_rows) | set(_frame_of(streams.joint_states.stamps_ns[viol.any(axis=1)], ep).tolist())
    affected |= set(_frame_of(streams.arm_command.stamps_ns[rows], ep).tolist()) if rows.size else set()
    affected |= set(int(f) for f in frozen_frames)
    metrics["signal_bad_fraction"] = len(affected) / max(ep.num_frames, 1)
    checks["action_state_divergence"] = _ok(med <= th.max_tracking_error_rad,
                                            f"median |target − position| {med:.4f} rad, p95 "
                                            f"{metrics['tracking_error_p95_rad']:.4f} rad (max median {th.max_tracking_error_rad})",
                                            worst_frames)
    return checks, metrics
