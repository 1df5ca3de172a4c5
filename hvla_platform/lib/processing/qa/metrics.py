"""Episode QA metrics and per-check verdicts.

Inputs are the decoded raw streams (:class:`~hvla_platform.lib.formats.recording.streams.RecordingStreams`:
original stamps and rates, before any resampling, read the way the recording's robot profile says),
the per-frame camera statistics of pass 1 (:class:`~hvla_platform.lib.processing.convert.CameraScan`:
no pixels are kept), and the synchronised, low-dimensional
:class:`~hvla_platform.lib.formats.episode_h5.EpisodeData`. Joint limits come from the profile's
robot description file, nominal rates from the profile. Black/saturated/frozen frames, exposure shifts
and blur (:mod:`~hvla_platform.lib.processing.qa.image_stats`: against the camera's own episode median)
are judged on colour cameras only; a depth camera reports the fraction of its pixels with no reading (zero) as
``camera_depth_zero_fraction`` and is judged for frame count, coverage, offset and decodability. Every check returns
``{"passed": bool, "detail": str, "frames": [frame indices]}`` (frames of the synchronised episode
where the problem is, when that makes sense, for thumbnails in the QA report); the checks that have a
place in time (:data:`~hvla_platform.lib.processing.qa.findings.TIMED_CHECKS`) also carry
``"spans": [[start_s, end_s, subject], ...]`` (seconds from frame 0; format and mapping in
:mod:`~hvla_platform.lib.processing.qa.findings`).

Smoothness follows Balasubramanian, Melendez-Calderon, Roby-Brami & Burdet, "On the analysis of
movement smoothness", J. NeuroEng. Rehabil. 12:112 (2015): RMS jerk of the commanded arm-joint
path (each ``features.action`` command stream), and the log dimensionless jerk LDLJ = −ln((T³ / v_peak²) ∫ ‖d²v/dt²‖² dt) of its joint-space
velocity (closer to 0 = smoother; reported, not thresholded, as no normative value exists for robot
demonstrations).

Spikes in the measured joint states use the Hampel identifier (Hampel, "The influence curve and its
role in robust estimation", JASA 69 (1974); Pearson, "Outliers in process modeling and
identification", IEEE TCST 10 (2002)): a sample further than k robust σ from the running median
of its neighbours. Unlike a step test it separates a one-sample glitch (which returns) from a fast
real movement (which stays). Chatter is the command going back and forth on consecutive messages
(lerobot-doctor calls the held case "consecutive identical actions"; kalanos reports "idle %").

The two checks that need the rest of the lake (``duplicate``: the same recording under another
episode id; ``recording_complete``: the MCAP covers the duration its ``metadata.yaml`` states) are
in :mod:`hvla_platform.lib.processing.qa.duplicates` (:data:`LAKE_QA_CHECKS`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import median_filter

from hvla_platform.lib.formats.episode_h5 import EpisodeData
from hvla_platform.lib.formats.recording.profile import RobotProfile
from hvla_platform.lib.formats.recording.streams import JointStream, RecordingStreams
from hvla_platform.lib.processing.convert import CameraScan
from hvla_platform.lib.processing.qa.duplicates import LAKE_QA_CHECKS, frame_fingerprint, signal_fingerprint
from hvla_platform.lib.processing.qa.findings import RawSpan, mask_spans, timeline_spans
from hvla_platform.lib.processing.qa.image_stats import blurred_frames, exposure_shift
from hvla_platform.lib.processing.qa.kinematics import measured_speed, overspeed_mask, toggle_mask
from hvla_platform.lib.processing.qa.robot_limits import limits_array, velocity_limits
from hvla_platform.lib.processing.qa.task_text import placeholder_reason
from hvla_platform.lib.processing.qa.thresholds import QAThresholds

#: The name the streams had before robot profiles.
EpisodeStreams = RecordingStreams

#: Check names, in the order the QA report and the Dagster checks list them.
QA_CHECKS = (
    "dropped_messages", "clock_jumps", "duration", "camera_frame_count", "camera_offset",
    "nan_inf", "joint_limits", "joint_limit_proximity", "joint_velocity", "state_spikes", "action_spikes",
    "command_chatter",
    "command_stall", "frozen_joints", "smoothness", "action_state_divergence",
    "camera_black", "camera_saturated", "camera_frozen", "camera_undecodable",
    "camera_exposure_shift", "camera_blur", "task_non_empty",
)

#: Every episode QA check: :data:`QA_CHECKS` (from the episode alone) and the lake-wide ones.
ALL_QA_CHECKS = QA_CHECKS + LAKE_QA_CHECKS


def _ok(passed: bool, detail: str, frames: list[int] | None = None,
        spans: list[list[Any]] | None = None) -> dict[str, Any]:
    out = {"passed": bool(passed), "detail": detail, "frames": sorted(set(int(f) for f in (frames or [])))[:50]}
    if spans is not None:  # a timed check (findings.TIMED_CHECKS): where its findings are; none when it passed
        out["spans"] = [] if passed else spans
    return out


def _spans(raw: list[RawSpan], ep: EpisodeData | None) -> list[list[Any]]:
    """A timed check's ``"spans"`` (:mod:`~hvla_platform.lib.processing.qa.findings`) on ``ep``'s
    timeline; empty without a synchronised episode (no timeline)."""
    return timeline_spans(raw, ep.start_time_ns, ep.fps, ep.num_frames) if ep is not None else []


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

    Returns ``{"count", "expected", "dropped", "rate_hz", "dropped_fraction", "gaps": [(index, interval_s)],
    "jumps": [(index, interval_s)]}``; a gap is an interval > ``gap_factor / rate``; a clock jump an
    interval > ``clock_jump_s`` or < 0 (:func:`assess_streams` then turns a forward one that no other
    stream shares into a gap).
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    period = 1.0 / rate_hz
    if t.size < 2:
        return {"count": int(t.size), "expected": int(t.size), "dropped": 0, "rate_hz": float(rate_hz),
                "dropped_fraction": 0.0, "gaps": [], "jumps": []}
    dt = np.diff(t) / 1e9
    jumps = [(int(i), float(d)) for i, d in enumerate(dt) if d < 0 or d > th.clock_jump_s]
    gaps = [(int(i), float(d)) for i, d in enumerate(dt) if th.gap_factor * period < d <= th.clock_jump_s]
    dropped = int(sum(max(0, round(d / period) - 1) for _, d in gaps))
    span = max((t[-1] - t[0]) / 1e9, 0.0)
    expected = int(round(span * rate_hz)) + 1
    return {"count": int(t.size), "expected": expected, "dropped": dropped, "rate_hz": float(rate_hz),
            "dropped_fraction": dropped / max(expected, 1), "gaps": gaps, "jumps": jumps}


def _isolated_jumps_are_gaps(timing: dict[str, dict[str, Any]], stamps: dict[str, np.ndarray]) -> None:
    """Reclassify, in place, a forward interval > ``clock_jump_s`` of one stream as a gap (its
    messages dropped) when no other stream has such an interval overlapping it: a clock jump moves
    every stream's stamps at once (all are stamped by the robot's clock), a stream that stops
    publishing for 0.5 s leaves the others running. Negative intervals stay clock jumps."""
    spans = {topic: [(int(stamps[topic][i]), int(stamps[topic][i + 1])) for i, d in tm["jumps"] if d > 0]
             for topic, tm in timing.items()}
    for topic, tm in timing.items():
        period = 1.0 / tm["rate_hz"]
        keep = []
        for i, d in tm["jumps"]:
            a, b = int(stamps[topic][i]), int(stamps[topic][i + 1])
            shared = d < 0 or any(a < b2 and a2 < b for other, sp in spans.items() if other != topic for a2, b2 in sp)
            if shared:
                keep.append((i, d))
                continue
            tm["gaps"].append((i, d))
            tm["dropped"] += max(0, round(d / period) - 1)
        tm["jumps"] = keep
        tm["dropped_fraction"] = tm["dropped"] / max(tm["expected"], 1)


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


def camera_offsets_s(streams: RecordingStreams) -> dict[str, float]:
    """Per camera, the offset of its header stamps relative to the joint states', measured on the raw
    log times before any matching, seconds.

    ``offset = median(joint-state log time − stamp) − median(camera log time − stamp)``: every
    message's log time is when the one recorder received it, so the difference of the two median
    (log − stamp) delays is the camera's clock offset plus its extra transport latency. Positive:
    the camera stamps frames later than the joint states would (a camera stamped +150 ms reads about
    +0.14 s); a nearest-stamp synchroniser cannot see it (it matches on the shifted stamps). Cameras
    or joint states without log times (streams not read from a file) are left out.
    """
    js = streams.joint_states
    if js.log_ns.size == 0 or js.log_ns.size != js.stamps_ns.size:
        return {}
    ref = float(np.median(js.log_ns - js.stamps_ns))
    out = {}
    for cam, im in streams.cameras.items():
        if im.log_ns.size and im.log_ns.size == im.stamps_ns.size:
            out[cam] = (ref - float(np.median(im.log_ns - im.stamps_ns))) / 1e9
    return out


def hampel_outliers(x: np.ndarray, window: int, k: float, floor: float) -> np.ndarray:
    """(N, D) bool: samples of the (N, D) float64 signal ``x`` further than ``k`` × robust σ and
    ``floor`` from the running median of ``window`` samples of their own column (the Hampel
    identifier; σ = 1.4826 × MAD of the column's residuals, Rousseeuw & Croux 1993). Non-finite
    samples are not outliers here (``nan_inf`` reports them)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] < 3:
        return np.zeros(x.shape, bool)
    filled = np.where(np.isfinite(x), x, 0.0)
    resid = filled - median_filter(filled, size=(max(3, int(window)), 1), mode="nearest")
    sigma = 1.4826 * np.median(np.abs(resid - np.median(resid, axis=0)), axis=0)
    return (np.abs(resid) > k * sigma) & (np.abs(resid) > floor) & np.isfinite(x)


def chatter_mask(cmd: np.ndarray, step_rad: float, reversals: int) -> np.ndarray:
    """(N, D) bool: command samples inside chatter, i.e. ``reversals`` or more consecutive sign
    reversals of steps of at least ``step_rad`` on one joint of the (N, D) command ``cmd`` (radians)."""
    cmd = np.asarray(cmd, dtype=np.float64)
    out = np.zeros(cmd.shape, bool)
    if cmd.shape[0] < 3:
        return out
    d = np.diff(cmd, axis=0)
    big = np.abs(d) >= step_rad
    rev = (np.sign(d[1:]) == -np.sign(d[:-1])) & big[1:] & big[:-1]  # rev[i]: step i+1 reverses step i
    for j in range(cmd.shape[1]):
        for a, b in _runs(rev[:, j]):
            if b - a >= reversals:
                out[a:b + 2, j] = True  # samples a .. b+1 take part in steps a .. b
    return out


def grasp_changes(streams: RecordingStreams) -> dict[str, np.ndarray]:
    """Stamps (ns) at which a gripper command (profile ``role: gripper``) changes, per side: key
    ``left`` / ``right`` for the columns of ``left_*`` / ``right_*`` joints, ``""`` for a gripper
    without a side (it applies to every arm)."""
    out: dict[str, list[np.ndarray]] = {}
    for name, spec in streams.profile.commands.items():
        cs = streams.commands.get(name)
        if spec.role != "gripper" or cs is None or len(cs.position) < 2:
            continue
        sides = {side: [i for i, n in enumerate(cs.names) if n.startswith(side + "_")] for side in ("left", "right")}
        sides = {k: v for k, v in sides.items() if v} or {"": list(range(len(cs.names)))}
        for side, cols in sides.items():
            moved = np.any(np.diff(cs.position[:, cols], axis=0) != 0, axis=1)
            out.setdefault(side, []).append(cs.stamps_ns[1:][moved])
    return {k: np.sort(np.concatenate(v)) for k, v in out.items()}


def command_stalls(cmd: JointStream, js: JointStream, min_s: float, motion_rad: float, *,
                   name: str = "arm", grasps: dict[str, np.ndarray] | None = None,
                   grasp_motion_rad: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """Held commands per arm, and how long the command stream is idle.

    An arm (``left_*`` / ``right_*`` joints of the command; a command without such joints, e.g. a
    single arm or a gripper, is one arm called ``name``) is *held* over a run of bit-identical
    command rows lasting ≥ ``min_s`` seconds; the hold is a *stall* when one of that arm's measured
    joints travels (max − min) more than ``motion_rad`` radians during it: the command froze while
    the robot kept moving. Returns ``(stalls, idle_fraction)``: each stall ``{"arm", "start_ns",
    "end_ns", "seconds", "joint", "motion_rad"}``; ``idle_fraction`` the fraction of the command
    stream's span during which **every** command joint is held (reported, like kalanos' "idle %").
    A hold during which, or in the 0.5 s before which, a gripper of the same side (any gripper for
    an arm without a side, a gripper without a side for any arm) changes its command (``grasps``, from :func:`grasp_changes`) is a *grasp hold*:
    it is a stall only when the arm moves more than ``grasp_motion_rad`` (contact pushes a held arm
    while the gripper closes); such stalls carry ``"grasp": True``.
    """
    stalls: list[dict[str, Any]] = []
    t = cmd.stamps_ns
    if len(t) < 2:
        return stalls, 0.0
    span = max((t[-1] - t[0]) / 1e9, 1e-9)
    same_all = np.all(np.diff(cmd.position, axis=0) == 0, axis=1)
    idle = sum((t[b] - t[a]) / 1e9 for a, b in _runs(same_all) if (t[b] - t[a]) / 1e9 >= min_s)
    groups = [(arm, [i for i, n in enumerate(cmd.names) if n.startswith(arm + "_")]) for arm in ("left", "right")]
    groups = [(arm, ci) for arm, ci in groups if ci] or [(name, list(range(len(cmd.names))))]
    for arm, ci in groups:
        ji = [js.names.index(cmd.names[i]) for i in ci if cmd.names[i] in js.names]
        if not ci or not ji:
            continue
        same = np.all(np.diff(cmd.position[:, ci], axis=0) == 0, axis=1)
        for a, b in _runs(same):  # rows a .. b are identical
            t0, t1 = int(t[a]), int(t[b])
            if (t1 - t0) / 1e9 < min_s:
                continue
            w = (js.stamps_ns >= t0) & (js.stamps_ns <= t1)
            if w.sum() < 2:
                continue
            q = js.position[w][:, ji]
            travel = np.nanmax(q, axis=0) - np.nanmin(q, axis=0)
            j = int(np.argmax(travel))
            changes = [c for side, c in (grasps or {}).items() if side in ("", arm) or arm not in ("left", "right")]
            grasp = grasp_motion_rad is not None and any(
                bool(((c >= t0 - 500_000_000) & (c <= t1)).any()) for c in changes)
            if travel[j] > (grasp_motion_rad if grasp else motion_rad):
                stalls.append({"arm": arm, "start_ns": t0, "end_ns": t1, "seconds": (t1 - t0) / 1e9,
                               "joint": js.names[ji[j]], "motion_rad": float(travel[j]), "grasp": grasp})
    return stalls, float(min(1.0, idle / span))


def _stream_topics(streams: RecordingStreams) -> dict[str, np.ndarray]:
    """Topic → (N,) int64 stamps of every stream the recording carries (joint state, commands,
    locomotion, cameras, extras present), in that order."""
    p = streams.profile
    out = {p.joint_state.topic: streams.joint_state.stamps_ns}
    out.update({p.commands[name].topic: c.stamps_ns for name, c in streams.commands.items()})
    if p.locomotion is not None and streams.locomotion_stamps_ns is not None:
        out[p.locomotion.topic] = streams.locomotion_stamps_ns
    out.update({p.cameras[cam].topic: cs.stamps_ns for cam, cs in streams.cameras.items()})
    out.update({p.extras[name].topic: e.stamps_ns for name, e in streams.extras.items()})
    return out


def assess_streams(streams: RecordingStreams, cameras: dict[str, CameraScan], ep: EpisodeData | None,
                   th: QAThresholds) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Timing, camera and label checks from the raw streams (needs no synchronisation).

    ``cameras`` are pass 1's per-frame statistics (:class:`~hvla_platform.lib.processing.convert.CameraScan`);
    ``ep`` (low-dimensional; None when synchronisation failed) places flagged samples on frames.
    Returns ``(checks, metrics)``.

    Raises:
        ValueError: a camera was scanned with another ``saturated_level`` than ``th``'s.
    """
    profile = streams.profile
    rates = profile.nominal_rates_hz
    checks: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    streams_t = _stream_topics(streams)
    timing = {topic: stream_timing(t, rates[topic], th) for topic, t in streams_t.items()}
    _isolated_jumps_are_gaps(timing, streams_t)
    metrics["timing"] = {k: {kk: vv for kk, vv in v.items() if kk not in ("gaps", "jumps")} for k, v in timing.items()}
    frames_gap: list[int] = []
    frames_jump: list[int] = []
    span_gap: list[RawSpan] = []
    span_jump: list[RawSpan] = []
    for topic, tm in timing.items():
        t = streams_t[topic]
        if tm["dropped_fraction"] > th.max_dropped_fraction:  # the streams that fail the check
            span_gap += [(int(t[i]), int(t[i + 1]), topic, abs(d)) for i, d in tm["gaps"]]
        span_jump += [(int(t[i]), int(t[i + 1]), topic, abs(d)) for i, d in tm["jumps"]]
        if ep is not None:
            frames_gap += [int(_frame_of(streams_t[topic][i + 1], ep)) for i, _ in tm["gaps"]]
            frames_jump += [int(_frame_of(streams_t[topic][i + 1], ep)) for i, _ in tm["jumps"]]
    worst = max(timing.items(), key=lambda kv: kv[1]["dropped_fraction"])
    checks["dropped_messages"] = _ok(
        worst[1]["dropped_fraction"] <= th.max_dropped_fraction,
        "; ".join(f"{t}: {v['dropped']} dropped of {v['expected']} ({v['dropped_fraction']:.1%})"
                  for t, v in timing.items() if v["dropped"]) or "no gaps beyond "
        f"{th.gap_factor}× the nominal period on any stream", frames_gap, _spans(span_gap, ep))
    jumps = {t: v["jumps"] for t, v in timing.items() if v["jumps"]}
    checks["clock_jumps"] = _ok(not jumps, "; ".join(
        f"{t}: {len(j)} jump(s), largest {max(abs(d) for _, d in j):.3f} s" for t, j in jumps.items())
        or f"no interval < 0 or > {th.clock_jump_s} s", frames_jump, _spans(span_jump, ep))
    js = streams.joint_state.stamps_ns
    duration = float((js[-1] - js[0]) / 1e9) if js.size else 0.0
    metrics["duration_s"] = duration
    checks["duration"] = _ok(th.min_duration_s <= duration <= th.max_duration_s,
                             f"{duration:.2f} s (bounds {th.min_duration_s}–{th.max_duration_s} s)")
    ratios = {}
    for cam, spec in profile.cameras.items():
        n = cameras[cam].total if cam in cameras else 0
        ratios[cam] = n / max(duration * spec.rate_hz, 1e-9)
    metrics["camera_frame_ratio"] = ratios
    checks["camera_frame_count"] = _ok(all(r >= th.min_camera_frame_ratio for r in ratios.values()),
                                       ", ".join(f"{c}: {r:.1%} of duration × rate" for c, r in ratios.items()))
    offsets = camera_offsets_s(streams)
    metrics["camera_offset_s"] = offsets
    off_bad = {c: o for c, o in offsets.items() if abs(o) > th.max_camera_offset_s}
    checks["camera_offset"] = _ok(bool(offsets) and not off_bad, (
        ", ".join(f"{c}: stamps {o * 1e3:+.0f} ms vs the joint states" for c, o in offsets.items())
        + f" (max ±{th.max_camera_offset_s * 1e3:.0f} ms)") if offsets else
        "not measurable: the streams carry no log times")
    metrics["fingerprint"] = signal_fingerprint(streams.joint_state)
    # cameras: black / saturated / frozen / exposure / blur on colour cameras, no-reading pixels on depth cameras
    black, sat, frozen, undec, per_cam, zero = {}, {}, {}, {}, {}, {}
    shifted, blurred, exposure, sharpness, steps, frame_fp = {}, {}, {}, {}, {}, {}
    fb: list[int] = []
    fs: list[int] = []
    ff: list[int] = []
    fu: list[int] = []
    fe: list[int] = []
    fbl: list[int] = []
    cam_spans: dict[str, list[RawSpan]] = {k: [] for k in ("black", "sat", "frozen", "undec", "shift", "blur")}
    for cam, sc in cameras.items():
        total = max(sc.total, 1)
        undec[cam] = len(sc.undecodable)
        every = streams.cameras[cam].stamps_ns if cam in streams.cameras else np.zeros(0, np.int64)
        if sc.undecodable and len(every) == sc.total:  # stream positions → their header stamps
            bad_pos = np.zeros(len(every), bool)
            bad_pos[np.asarray(sc.undecodable, np.int64)] = True
            cam_spans["undec"] += mask_spans(every, bad_pos, cam)
        if sc.kind == "depth":
            zero[cam] = float(sc.zero_fraction.mean()) if sc.zero_fraction.size else 0.0
            per_cam[cam] = undec[cam] / total
            continue
        if sc.saturated_level != th.saturated_level:
            raise ValueError(f"camera {cam} was scanned with saturated_level {sc.saturated_level}, the thresholds "
                             f"say {th.saturated_level}: scan the recording with the thresholds it is judged by")
        n = sc.stamps_ns.size
        is_black = sc.mean_level < th.black_level
        is_sat = sc.saturated_fraction > th.saturated_fraction
        # black/saturated frames are reported as such, not a second time as a frozen camera
        plain = ~(is_black | is_sat)
        same = (np.concatenate([[False], (sc.mad_prev[1:] < th.frozen_frame_mad) & plain[1:] & plain[:-1]])
                if n else np.zeros(0, bool))
        is_frozen = np.zeros(n, bool)
        min_len = max(2, int(np.ceil(th.frozen_s * profile.cameras[cam].rate_hz)))
        for a, b in _runs(same):
            if b - a + 1 >= min_len:
                is_frozen[a - 1:b] = True
        black[cam], sat[cam], frozen[cam] = int(is_black.sum()), int(is_sat.sum()), int(is_frozen.sum())
        # exposure and sharpness against the camera's own episode median (image_stats), plain frames only
        shift = exposure_shift(sc.mean_level, plain, profile.cameras[cam].rate_hz, th)
        is_blur, sharp_med = blurred_frames(sc.sharpness, plain, th)
        shifted[cam], blurred[cam], steps[cam] = int(shift.bad.sum()), int(is_blur.sum()), len(shift.steps)
        if plain.any():
            exposure[cam], sharpness[cam] = round(shift.median_level, 3), round(sharp_med, 3)
        frame_fp[cam] = frame_fingerprint(sc.stamps_ns, sc.dhash)
        for key, mask, size in (("black", is_black, None), ("sat", is_sat, None), ("frozen", is_frozen, None),
                                ("shift", shift.bad, np.abs(sc.mean_level - shift.median_level)),
                                ("blur", is_blur, None)):
            cam_spans[key] += mask_spans(sc.stamps_ns, mask, cam, size)
        bad = is_black | is_sat | is_frozen | shift.bad | is_blur
        per_cam[cam] = (int(bad.sum()) + undec[cam]) / total
        if ep is not None:
            fb += list(_frame_of(sc.stamps_ns[is_black], ep))
            fs += list(_frame_of(sc.stamps_ns[is_sat], ep))
            ff += list(_frame_of(sc.stamps_ns[is_frozen], ep))
            fe += list(_frame_of(sc.stamps_ns[shift.bad], ep))
            fbl += list(_frame_of(sc.stamps_ns[is_blur], ep))
    metrics["camera_bad_fraction"] = per_cam
    metrics["camera_black_frames"], metrics["camera_saturated_frames"] = black, sat
    metrics["camera_frozen_frames"], metrics["camera_undecodable_frames"] = frozen, undec
    metrics["camera_depth_zero_fraction"] = zero
    metrics["camera_exposure"], metrics["camera_sharpness"] = exposure, sharpness
    metrics["camera_exposure_shift_frames"], metrics["camera_exposure_steps"] = shifted, steps
    metrics["camera_blur_frames"] = blurred
    metrics["frame_fingerprint"] = frame_fp

    def cam_check(counts: dict[str, int], what: str, frames: list[int], key: str, norms: str = "") -> dict[str, Any]:
        bad = {c: n for c, n in counts.items() if n / max(cameras[c].total, 1) > th.max_bad_frame_fraction}
        detail = ", ".join(f"{c}: {n} {what} frame(s) of {cameras[c].total}" for c, n in counts.items())
        # spans of the failing cameras only (a camera within the bound passed)
        return _ok(not bad, (detail + norms) if detail else "no colour camera", frames,
                   _spans([s for s in cam_spans[key] if s[2] in bad], ep))

    checks["camera_black"] = cam_check(black, "black", fb, "black")
    checks["camera_saturated"] = cam_check(sat, "saturated", fs, "sat")
    checks["camera_frozen"] = cam_check(frozen, "frozen", ff, "frozen")
    checks["camera_undecodable"] = _ok(not any(undec.values()),
                                       ", ".join(f"{c}: {n} undecodable" for c, n in undec.items()), fu,
                                       _spans(cam_spans["undec"], ep))
    checks["camera_exposure_shift"] = cam_check(shifted, "exposure-shifted", fe, "shift", (
        "; median level " + ", ".join(f"{c} {v:.1f}" + (f" ({steps[c]} step(s))" if steps[c] else "")
                                      for c, v in exposure.items())
        + f" (shifted: > {th.max_exposure_shift_levels:g} levels from it, or past a > {th.exposure_step_levels:g}-level step)"))
    checks["camera_blur"] = cam_check(blurred, "blurred", fbl, "blur", (
        "; median variance of the Laplacian " + ", ".join(f"{c} {v:.1f}" for c, v in sharpness.items())
        + f" (blurred: < {th.min_sharpness_ratio:g} × it)"))
    why = placeholder_reason(streams.task)
    checks["task_non_empty"] = _ok(not why, f"{streams.task[:80]!r}" + (f": {why}" if why else ""))
    return checks, metrics


def _joint_spans(stamps_ns: np.ndarray, mask: np.ndarray, names: list[str],
                 magnitude: np.ndarray | None = None) -> list[RawSpan]:
    """Raw spans (:func:`~hvla_platform.lib.processing.qa.findings.mask_spans`) of an (N, J) mask
    over a joint stream's (N,) stamps, one subject per joint column (``names``)."""
    return [s for j in np.flatnonzero(mask.any(axis=0))
            for s in mask_spans(stamps_ns, mask[:, j], names[j], None if magnitude is None else magnitude[:, j])]


def _joined(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def _joint_velocity(js: JointStream, profile: RobotProfile,
                    th: QAThresholds) -> tuple[np.ndarray, dict[str, float], str]:
    """``(fast, peaks, detail)`` of the ``joint_velocity`` check: (N, J) bool samples of the measured
    joints faster than their velocity limit (:mod:`~hvla_platform.lib.processing.qa.kinematics`;
    the limit the profile's description file states, else ``th.max_joint_speed_rad_s``), the
    largest measured speed per joint (rad/s), and the detail naming joints, speeds and bounds."""
    stated = velocity_limits(profile, js.names)
    lim = np.array([stated[n][0] if n in stated else th.max_joint_speed_rad_s for n in js.names], dtype=np.float64)
    speed = measured_speed(js.stamps_ns, js.position)
    vel = js.velocity if js.velocity.shape == js.position.shape else None
    fast = overspeed_mask(speed, vel, lim)
    both = np.abs(np.stack([speed, vel if vel is not None else np.zeros_like(speed)]))
    both = np.where(np.isfinite(both), both, 0.0).max(axis=0)  # non-finite values: nan_inf's business
    peaks = both.max(axis=0) if len(both) else np.zeros(len(js.names))
    default = (f"{th.max_joint_speed_rad_s:g} rad/s (default max_joint_speed_rad_s: the {profile.robot.model} "
               "model states none)")

    def bound(n: str) -> str:
        return f"{stated[n][0]:g} rad/s from {stated[n][1]}" if n in stated else default

    bad = [j for j in range(len(js.names)) if fast[:, j].any()]
    if bad:
        detail = "; ".join(f"{js.names[j]}: {int(fast[:, j].sum())} sample(s) up to {peaks[j]:.1f} rad/s "
                           f"(limit {bound(js.names[j])})" for j in bad)
    else:
        j = int(np.argmax(peaks)) if len(peaks) else -1
        detail = (f"every joint within its velocity limit; fastest {js.names[j]} {peaks[j]:.2f} rad/s "
                  f"(limit {bound(js.names[j])})") if j >= 0 else "no joint"
    return fast, {n: round(float(v), 4) for n, v in zip(js.names, peaks)}, detail


def assess_signals(streams: RecordingStreams, ep: EpisodeData, th: QAThresholds,
                   action_joints: list[str] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Signal checks: NaN/Inf, joint limits (from the profile's robot description file) and their
    proximity, measured joint speed against the velocity limits,
    measured-state spikes, action spikes, command chatter, stalled (held) commands,
    frozen joints/state, smoothness, per-joint action/state divergence. Command checks run on each
    ``features.action`` command stream (details name the stream when there are several; a stream
    whose profile ``role`` is ``gripper`` is judged for chatter only, and its joints are left out of
    the divergence check: a grasp command is a step the fingers stop short of). Returns
    ``(checks, metrics)``; ``checks[name]["frames"]`` are frames of the synchronised ``ep``.

    Raises:
        ProfileError: the profile's description file lacks a state joint (or cannot be read).
    """
    profile = streams.profile
    model = profile.robot.model
    checks: dict[str, dict[str, Any]] = {}
    metrics: dict[str, Any] = {}
    js = streams.joint_state
    actions = streams.action_commands
    several = len(actions) > 1
    low = {"state": ep.state, "velocity": ep.velocity, "action": ep.action}
    if ep.locomotion_command is not None:
        low["locomotion_command"] = ep.locomotion_command
    low.update({f"extras/{k}": v for k, v in ep.extras.items()})
    bad_rows = sorted({int(i) for a in low.values() for i in np.where(~np.isfinite(a).all(axis=1))[0]})
    raw_nan = int((~np.isfinite(js.position)).sum() + sum((~np.isfinite(c.position)).sum() for _, c in actions))
    metrics["nonfinite_values"] = int(sum((~np.isfinite(a)).sum() for a in low.values())) + raw_nan
    checks["nan_inf"] = _ok(metrics["nonfinite_values"] == 0,
                            f"{metrics['nonfinite_values']} non-finite value(s) in {len(bad_rows)} frame(s)", bad_rows)
    # joint limits (the robot's own model), on the measured raw positions
    lim = limits_array(js.names, profile)
    pos = js.position
    below = pos < lim[:, 0] - th.joint_limit_margin_rad
    above = pos > lim[:, 1] + th.joint_limit_margin_rad
    viol = below | above
    names = [n for n, v in zip(js.names, viol.any(axis=0)) if v]
    metrics["joint_limit_violations"] = int(viol.sum())
    past = np.maximum(lim[:, 0] - pos, pos - lim[:, 1])  # rad beyond the nearer limit
    checks["joint_limits"] = _ok(not names, (f"outside the {model} model's limits: {names}" if names else
                                             f"all joints within the {model} model's limits"),
                                 list(_frame_of(js.stamps_ns[viol.any(axis=1)], ep)),
                                 _spans(_joint_spans(js.stamps_ns, viol, js.names, past), ep))
    # proximity to the limits (score-only): within max_joint_limit_fraction of the range (limited joints)
    width = lim[:, 1] - lim[:, 0]
    # a gripper's joints rest at their open/closed limits by design: not reported as near a limit
    tool = {j for c in profile.commands.values() if c.role == "gripper" for j in c.joints}
    limited = np.isfinite(width) & np.array([n not in tool for n in js.names], bool)
    near = (((pos < lim[:, 0] + th.max_joint_limit_fraction * width)
             | (pos > lim[:, 1] - th.max_joint_limit_fraction * width)) & ~viol & limited)
    near_frac = near.mean(axis=0) if len(pos) else np.zeros(pos.shape[1])
    near_names = {n: float(f) for n, f in zip(js.names, near_frac) if f > 0}
    metrics["joint_limit_near_fraction"] = near_names
    checks["joint_limit_proximity"] = _ok(
        not near_names, (", ".join(f"{n}: {f:.0%} of samples" for n, f in near_names.items())
                         + f" within {th.max_joint_limit_fraction:.0%} of the range of a limit") if near_names
        else f"no joint within {th.max_joint_limit_fraction:.0%} of its range of a limit",
        list(_frame_of(js.stamps_ns[near.any(axis=1)], ep)) if near.any() else [])
    # measured joint speed against the joint's velocity limit (the model's, else the default bound)
    fast, metrics["joint_speed_max_rad_s"], speed_txt = _joint_velocity(js, profile, th)
    fast_rows = np.where(fast.any(axis=1))[0]
    metrics["joint_velocity_violations"] = int(fast.sum())
    checks["joint_velocity"] = _ok(not fast_rows.size, speed_txt,
                                   list(_frame_of(js.stamps_ns[fast_rows], ep)) if fast_rows.size else [],
                                   _spans(_joint_spans(js.stamps_ns, fast, js.names), ep))
    # spikes in the measured joint states (Hampel identifier)
    st_spike = hampel_outliers(pos, th.state_spike_window, th.spike_k, th.spike_min_rad)
    st_size = (np.abs(pos - median_filter(np.where(np.isfinite(pos), pos, 0.0),
                                          size=(max(3, int(th.state_spike_window)), 1), mode="nearest"))
               if st_spike.any() else None)  # the outlier's distance from its running median, rad
    st_rows = np.where(st_spike.any(axis=1))[0]
    st_names = [n for n, v in zip(js.names, st_spike.any(axis=0)) if v]
    metrics["state_spikes"] = int(st_spike.sum())
    checks["state_spikes"] = _ok(not st_names, f"{int(st_spike.sum())} outlier sample(s) on {st_names}" if st_names
                                 else f"no measured sample > {th.spike_k}·σ and > {th.spike_min_rad} rad from its "
                                      f"{int(th.state_spike_window)}-sample running median",
                                 list(_frame_of(js.stamps_ns[st_rows], ep)) if st_rows.size else [],
                                 _spans(_joint_spans(js.stamps_ns, st_spike, js.names, st_size), ep))
    # the command streams of the action: spikes, chatter, stalls, smoothness
    n_spikes = n_chat = 0
    spike_txt, chat_txt, stall_txt, smooth_txt = [], [], [], []
    spike_frames: list[int] = []
    chat_frames: list[int] = []
    stall_frames: list[int] = []
    spike_spans: list[RawSpan] = []
    chat_spans: list[RawSpan] = []
    all_stalls: list[dict[str, Any]] = []
    idles: list[float] = []
    jerks: list[tuple[float, float]] = []
    any_spiky = any_chat = False
    # a gripper command (role: gripper) changes in steps and the fingers stop short of it on contact:
    # judged for chatter only, not for spikes, holds, smoothness or tracking
    grippers = {n for n, c in profile.commands.items() if c.role == "gripper"}
    grasps = grasp_changes(streams)
    metrics["gripper_streams"] = sorted(n for n, _ in actions if n in grippers)
    for cname, cs in actions:
        gripper = cname in grippers
        tag = f"{cname}: " if several else ""
        cmd = cs.position
        d = np.diff(cmd, axis=0) if len(cmd) > 1 else np.zeros((0, cmd.shape[1]))
        sigma = 1.4826 * np.median(np.abs(d - np.median(d, axis=0)), axis=0) if len(d) else np.zeros(cmd.shape[1])
        spike = (np.abs(d) > th.spike_k * sigma) & (np.abs(d) > th.spike_min_rad) & (not gripper)
        rows = np.where(spike.any(axis=1))[0] + 1
        spiky = [n for n, s_ in zip(cs.names, spike.any(axis=0)) if s_]
        n_spikes += int(spike.sum())
        any_spiky |= bool(spiky)
        if spiky:
            spike_txt.append(f"{tag}{int(spike.sum())} spike(s) on {spiky}")
        spike_frames += list(_frame_of(cs.stamps_ns[rows], ep)) if rows.size else []
        spike_spans += _joint_spans(cs.stamps_ns[1:], spike, cs.names, d) if rows.size else []
        chat = chatter_mask(cmd, th.chatter_step_rad, int(th.chatter_reversals))
        c_lim = limits_array(cs.names, profile)
        chat |= toggle_mask(cs.stamps_ns, cmd, c_lim[:, 1] - c_lim[:, 0], th.toggle_swing_fraction,
                            int(th.toggle_count), th.toggle_window_s)
        chat_rows = np.where(chat.any(axis=1))[0]
        chat_names = [n for n, v in zip(cs.names, chat.any(axis=0)) if v]
        n_chat += int(chat.any(axis=1).sum())
        any_chat |= bool(chat_names)
        if chat_names:
            chat_txt.append(f"{tag}{len(chat_rows)} command message(s) chattering on {chat_names}")
        chat_frames += list(_frame_of(cs.stamps_ns[chat_rows], ep)) if chat_rows.size else []
        chat_spans += _joint_spans(cs.stamps_ns, chat, cs.names)
        if gripper:
            continue
        stalls, idle = command_stalls(cs, js, th.frozen_s, th.stall_motion_rad, name=cname, grasps=grasps,
                                      grasp_motion_rad=th.stall_grasp_motion_rad)
        idles.append(idle)
        all_stalls += stalls
        stall_txt += [f"{st['arm']} arm command held {st['seconds']:.2f} s while {st['joint']} moved "
                      f"{st['motion_rad']:.3f} rad" for st in stalls]
        stall_frames += [int(f) for st in stalls
                         for f in range(int(_frame_of(st["start_ns"], ep)), int(_frame_of(st["end_ns"], ep)) + 1)]
        t_cmd = (cs.stamps_ns - cs.stamps_ns[0]) / 1e9 if len(cmd) else np.zeros(0)
        dt = float(np.median(np.diff(t_cmd))) if len(t_cmd) > 1 else 1.0 / profile.commands[cname].rate_hz
        if len(cmd) >= 4 and dt > 0:
            jerk = np.diff(cmd, n=3, axis=0) / dt**3
            rms = float(np.sqrt(np.mean(np.sum(jerk**2, axis=1))))
            jerks.append((rms, ldlj(np.diff(cmd, axis=0) / dt, dt)))
        else:
            jerks.append((0.0, float("nan")))
        if several:
            smooth_txt.append(f"{cname} {jerks[-1][0]:.1f}")
    metrics["action_spikes"] = n_spikes
    checks["action_spikes"] = _ok(not any_spiky, _joined(spike_txt) if any_spiky else
                                  f"no command step > {th.spike_k}·σ and > {th.spike_min_rad} rad", spike_frames,
                                  _spans(spike_spans, ep))
    metrics["command_chatter_samples"] = n_chat
    checks["command_chatter"] = _ok(not any_chat, _joined(chat_txt) if any_chat else
                                    f"no {int(th.chatter_reversals)} consecutive reversals of "
                                    f"steps ≥ {th.chatter_step_rad} rad, no {int(th.toggle_count)} swings of "
                                    f"≥ {th.toggle_swing_fraction:.0%} of a joint's range within "
                                    f"{th.toggle_window_s} s", chat_frames, _spans(chat_spans, ep))
    # held command while the arm moves (frozen teleop stream)
    idle = min(idles) if idles else 0.0
    metrics["command_idle_fraction"] = idle
    metrics["command_stalls"] = [{k: v for k, v in st.items() if k not in ("start_ns", "end_ns")} for st in all_stalls]
    checks["command_stall"] = _ok(not all_stalls, (_joined(stall_txt) if all_stalls else
                                                   f"no command held ≥ {th.frozen_s} s while its arm moved > "
                                                   f"{th.stall_motion_rad} rad") + f"; command idle {idle:.0%} of the episode",
                                  stall_frames, _spans([(st["start_ns"], st["end_ns"], st["joint"], st["motion_rad"])
                                                        for st in all_stalls], ep))
    # frozen joints / frozen state on the raw joint stream (bit-identical values)
    rate = profile.joint_state.rate_hz
    min_len = max(2, int(np.ceil(th.frozen_s * rate)))
    same = np.vstack([np.zeros((1, pos.shape[1]), bool), np.diff(pos, axis=0) == 0]) if len(pos) else np.zeros((0, pos.shape[1]), bool)
    frozen_joints, frozen_frames = [], []
    frozen_spans: list[RawSpan] = []
    for j, name in enumerate(js.names):
        runs = [(a, b) for a, b in _runs(same[:, j]) if b - a + 1 >= min_len]
        if runs:
            frozen_joints.append(name)
            frozen_frames += list(_frame_of(js.stamps_ns[runs[0][0] - 1:runs[0][1]], ep))
        # samples a-1 .. b-1 hold one value (sample a-1 is the first of them)
        frozen_spans += [(int(js.stamps_ns[a - 1]), int(js.stamps_ns[b - 1]), name, 0.0) for a, b in runs]
    state_frozen = any(b - a + 1 >= min_len for a, b in _runs(same.all(axis=1))) if len(pos) else False
    metrics["frozen_joints"] = frozen_joints
    checks["frozen_joints"] = _ok(not frozen_joints and not state_frozen,
                                  ("whole state frozen; " if state_frozen else "") +
                                  (f"frozen for ≥ {th.frozen_s} s: {frozen_joints}" if frozen_joints else
                                   f"no joint bit-identical for ≥ {th.frozen_s} s"), frozen_frames,
                                  _spans(frozen_spans, ep))
    # smoothness of the commanded path (the roughest action stream)
    worst_j = int(np.argmax([j for j, _ in jerks])) if jerks else 0
    rms_jerk, metrics["ldlj"] = jerks[worst_j] if jerks else (0.0, float("nan"))
    metrics["rms_jerk"] = rms_jerk
    checks["smoothness"] = _ok(rms_jerk <= th.max_rms_jerk,
                               f"RMS jerk {rms_jerk:.1f} rad/s³ (max {th.max_rms_jerk}), LDLJ {metrics['ldlj']:.2f}"
                               + (f" (worst stream; per stream: {', '.join(smooth_txt)})" if several else ""))
    # action/state divergence on the synchronised episode
    gripper_joints = {j for n in grippers for j in profile.commands[n].joints}
    joints = [n for n in (action_joints or ep.action_names) if n not in gripper_joints]
    si = [ep.state_names.index(n) for n in joints if n in ep.state_names]
    ai = [ep.action_names.index(n) for n in joints if n in ep.state_names]
    err = np.abs(ep.action[:, ai] - ep.state[:, si]) if si else np.zeros((ep.num_frames, 0))
    med = float(np.nanmedian(err)) if err.size else 0.0
    per_joint = np.nanpercentile(err, 95, axis=0) if err.size else np.zeros(0)
    tracked = [ep.action_names[i] for i in ai]
    metrics["tracking_error_median_rad"] = med
    metrics["tracking_error_p95_rad"] = float(per_joint.max()) if per_joint.size else 0.0
    metrics["tracking_error_p95_by_joint_rad"] = {n: float(v) for n, v in zip(tracked, per_joint)}
    bad_joints = [n for n, v in zip(tracked, per_joint) if v > th.max_tracking_error_rad]
    worst_frames = list(np.where(err.max(axis=1) > th.max_tracking_error_rad)[0]) if err.size else []
    affected = set(bad_rows) | set(_frame_of(js.stamps_ns[viol.any(axis=1)], ep).tolist())
    affected |= {int(f) for f in spike_frames}
    affected |= set(_frame_of(js.stamps_ns[st_rows], ep).tolist()) if st_rows.size else set()
    affected |= {int(f) for f in chat_frames}
    affected |= set(_frame_of(js.stamps_ns[fast_rows], ep).tolist()) if fast_rows.size else set()
    affected |= set(int(f) for f in frozen_frames) | set(stall_frames)
    metrics["signal_bad_fraction"] = len(affected) / max(ep.num_frames, 1)
    worst = int(np.argmax(per_joint)) if per_joint.size else -1
    checks["action_state_divergence"] = _ok(not bad_joints, (
        f"p95 |target − position| above {th.max_tracking_error_rad} rad on {bad_joints}; " if bad_joints else "")
        + (f"worst joint {tracked[worst]} p95 {per_joint[worst]:.4f} rad, " if worst >= 0 else "")
        + f"median over all {med:.4f} rad (max p95 per joint {th.max_tracking_error_rad})", worst_frames)
    return checks, metrics
