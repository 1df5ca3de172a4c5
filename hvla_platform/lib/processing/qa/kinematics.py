"""Joint speed and open/close toggling, for the episode QA checks ``joint_velocity`` and
``command_chatter`` (pure functions on arrays; :mod:`hvla_platform.lib.processing.qa.metrics` wires
them into the checks).

**Measured joint speed.** The speed of joint *j* at sample *i* is the backward difference of its
measured positions over their own header stamps, ``|q[i, j] − q[i−1, j]| / Δt_i`` (rad/s), with
``Δt_i`` floored at half the stream's median interval (two stamps closer than that are stamp jitter,
not a faster sample: without the floor a 1 ms jitter would multiply the speed by 10). Intervals that
do not go forward (a clock jump, reported by ``clock_jumps``) give no speed. Where the messages carry
a velocity field (``sensor_msgs/JointState.velocity``), ``|velocity[i, j]|`` is a second measurement
of the same speed and is judged the same way. A sample faster than the joint's velocity limit is a
false measurement or a robot fault: no joint moves faster than its actuator allows.

A *velocity spike* (one sample whose speed jumps and falls back) is not a separate test: on the
differentiated positions it is either a position outlier that returns — the Hampel identifier of
``state_spikes`` flags exactly that sample — or a step that stays, which is either faster than the
joint can move (this module flags it) or indistinguishable from a fast real movement sampled at the
stream's rate.

**Toggling.** A binary open/close command (a gripper button) that bounces between its states with
held messages in between is not chatter in the per-message sense (``chatter_mask`` needs every
consecutive step to reverse). :func:`toggle_mask` counts *swings*: the command moving at least a
fraction of the joint's range (from its model) away from its last extreme in the other direction
(a zig-zag with that hysteresis, so noise and small corrections never count). A grasp is one swing,
a grasp and release two; ``count`` swings within ``window_s`` is toggling.
"""

from __future__ import annotations

import math

import numpy as np


def measured_speed(stamps_ns: np.ndarray, position: np.ndarray) -> np.ndarray:
    """(N, J) float64 speed of each joint at each sample, rad/s: ``|Δq| / Δt`` over the interval
    ending at the sample (module docstring: ``Δt`` floored at half the median interval); ``nan`` for
    the first sample, after an interval that does not go forward, and where a position is not finite.

    Args:
        stamps_ns: (N,) int64 sample times, ns.
        position: (N, J) float64 positions, rad (m for prismatic joints).

    Raises:
        ValueError: ``stamps_ns`` and ``position`` have different lengths.
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    q = np.asarray(position, dtype=np.float64)
    if q.ndim != 2 or t.shape != (q.shape[0],):
        raise ValueError(f"stamps {t.shape} do not match positions {q.shape}: one stamp per row expected")
    out = np.full(q.shape, np.nan)
    if q.shape[0] < 2:
        return out
    dt = np.diff(t) / 1e9
    forward = dt > 0
    if not forward.any():
        return out
    dt_eff = np.maximum(dt, 0.5 * float(np.median(dt[forward])))
    with np.errstate(invalid="ignore"):
        speed = np.abs(np.diff(q, axis=0)) / dt_eff[:, None]
    speed[~forward] = np.nan
    out[1:] = speed
    return out


def overspeed_mask(speed: np.ndarray, velocity: np.ndarray | None, limits: np.ndarray) -> np.ndarray:
    """(N, J) bool: samples whose differentiated ``speed`` (:func:`measured_speed`) or measured
    ``|velocity|`` (the stream's velocity field, (N, J) rad/s; None when it carries none) exceeds
    the joint's velocity limit ``limits`` ((J,) rad/s; ``inf`` for no limit). Non-finite values
    never exceed (``nan_inf`` reports them)."""
    lim = np.asarray(limits, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.nan_to_num(speed, nan=0.0, posinf=0.0) > lim
        if velocity is not None and np.shape(velocity) == np.shape(speed):
            out |= np.abs(np.nan_to_num(velocity, nan=0.0, posinf=0.0, neginf=0.0)) > lim
    return out


def swing_indices(x: np.ndarray, swing: float) -> np.ndarray:
    """Sample indices at which the (N,) command ``x`` completes a swing: it has moved at least
    ``swing`` (> 0) from its last extreme in the opposite direction (the first swing: from the
    running minimum or maximum since the start). Non-finite samples are skipped. (K,) int64.

    Raises:
        ValueError: ``swing`` is not > 0.
    """
    x = np.asarray(x, dtype=np.float64)
    if not swing > 0:
        raise ValueError(f"swing must be > 0, got {swing}")
    events: list[int] = []
    direction = 0
    lo = hi = math.nan
    for i, v in enumerate(x.tolist()):  # Python floats: ~10× faster than numpy scalars here
        if not math.isfinite(v):
            continue
        if math.isnan(lo):
            lo = hi = v
            continue
        if direction >= 0:
            hi = max(hi, v)
        if direction <= 0:
            lo = min(lo, v)
        if direction <= 0 and v - lo >= swing:  # rising swing completed
            events.append(i)
            direction, hi = 1, v
        elif direction >= 0 and hi - v >= swing:  # falling swing completed
            events.append(i)
            direction, lo = -1, v
    return np.asarray(events, dtype=np.int64)


def toggle_mask(stamps_ns: np.ndarray, cmd: np.ndarray, ranges: np.ndarray, swing_fraction: float,
                count: int, window_s: float) -> np.ndarray:
    """(N, J) bool: command samples inside toggling (module docstring) — ``count`` or more swings of
    at least ``swing_fraction`` × the joint's range completed within ``window_s`` seconds; the
    samples from the first to the last swing of such a burst are marked.

    Args:
        stamps_ns: (N,) int64 command times, ns.
        cmd: (N, J) float64 commanded positions, rad (m for prismatic joints).
        ranges: (J,) float64 width of each joint's range from its model (upper − lower); joints
            with a non-finite or non-positive range are not judged.
        swing_fraction: fraction of the range a swing must travel (0 < f ≤ 1).
        count: swings that make a burst (≥ 2).
        window_s: the burst's largest span, seconds.
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    cmd = np.asarray(cmd, dtype=np.float64)
    out = np.zeros(cmd.shape, bool)
    for j in range(cmd.shape[1]):
        width = float(ranges[j])
        if not (np.isfinite(width) and width > 0):
            continue
        ev = swing_indices(cmd[:, j], swing_fraction * width)
        for k in range(len(ev) - count + 1):
            a, b = ev[k], ev[k + count - 1]
            if (t[b] - t[a]) / 1e9 <= window_s:
                out[a:b + 1, j] = True
    return out
