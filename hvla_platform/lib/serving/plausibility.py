"""Plausibility bounds of a served checkpoint: observations and action chunks outside them are refused.

openpi's protocol lets any client send any state; a policy answers a state of 100 rad (or 1e30)
with actions of 100 rad (or 1e30), and only ``hvla deploy``'s action guard stands between such a
chunk and a robot. ``hvla serve`` therefore wraps the policy in :class:`PlausiblePolicy`, which
checks each observation's state before inference and each action chunk after it.

Bounds, per state dim and per action dim ``i`` (docs/serving.md, "Plausibility bounds")::

    lo_i, hi_i = the checkpoint's norm stats of that key: min/max where stored (LeRobot's saved
                 stats), else q01/q99 (openpi's norm stats)
    w_i        = hi_i - lo_i
    lower_i    = min(lo_i - k * w_i, L_i) - f
    upper_i    = max(hi_i + k * w_i, U_i) + f

``k`` is the margin (``hvla serve --plausibility-margin``, default :data:`DEFAULT_MARGIN`), ``f``
the absolute floor :data:`ABSOLUTE_FLOOR` (rad; m for a prismatic joint: it keeps a dim that never
moved in training from a zero-width range, and is the tolerance past a joint limit), and
``[L_i, U_i]`` the joint's limits in the robot model (the robot profile's description file,
:func:`hvla_platform.lib.processing.qa.robot_limits.joint_limits`). The two ranges are joined, not
intersected: a state the robot can physically be in is never refused for being outside the
training data (that is out of distribution, not implausible), and training data beyond a model's
limit is never refused either. A joint the model leaves unlimited, and every dim of a checkpoint
that names no joints, is bounded by its norm stats alone.

The robot model is the profile given to :func:`bounds_from_checkpoint` (``--robot-profile``), else
the checkpoint's ``config.json`` ``robot_profile``, else the profile whose joints include every
state and action joint the checkpoint names (:func:`covering_profile`: an H1 or UR5e checkpoint is
judged against its own model), else (a checkpoint naming no joints)
:data:`~hvla_platform.lib.formats.recording.profile.DEFAULT_PROFILE`; which one was used is in
:meth:`PlausibilityBounds.describe` (the server's console and its inference log).

What a client sees: an out-of-bounds state is an error frame ``… observation rejected:
RequestError: 'observation/state'[5] (right_shoulder_pitch_joint) = 100 is outside its plausible
range [-3.3, 2.9] …`` (then close 1011); a chunk outside the action bounds is never sent: error
frame ``… inference failed: ImplausibleAction: policy produced an implausible action: actions[0,
3] (…) = 100.3 is outside …``, and the server logs it with its traceback. A non-finite state is
left to the policy's own check (``contains non-finite values``), non-finite actions to the server's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE, ProfileError, available_profiles, load_profile
from hvla_platform.lib.processing.qa.robot_limits import joint_limits
from hvla_platform.lib.serving.server import RequestError
from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data import STATE_KEY

#: default ``k``: each norm-stats range is widened by its own width on both sides (3 × the range).
DEFAULT_MARGIN = 1.0
#: ``f``, rad (m for a prismatic joint): added on both sides of every bound.
ABSOLUTE_FLOOR = 0.2
#: LeRobot's feature names of the norm stats keys (``norm_stats.json`` ``"lerobot"`` block).
_LEROBOT_FEATURE = {"state": "observation.state", "actions": "action"}


class ImplausibleAction(RuntimeError):
    """The policy produced an action chunk outside the checkpoint's action bounds (not sent)."""


@dataclass(frozen=True)
class KeyBounds:
    """The plausible range of each dim of one key.

    Attributes:
        key: what is bounded: ``"observation/state"`` or ``"actions"``.
        names: D joint names (``<key>[i]`` when the checkpoint names none).
        lower, upper: (D,) float64 bounds, rad (m for prismatic joints).
        limited: (D,) bool, whether the robot model's joint limits were joined in for that dim.
    """

    key: str
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    limited: np.ndarray

    @property
    def dim(self) -> int:
        """D, the number of dims."""
        return int(self.lower.shape[0])

    def outside(self, values: np.ndarray) -> np.ndarray:
        """Bool mask of the entries of ``values`` (..., D) below ``lower`` or above ``upper``
        (NaN is not flagged here: non-finite values are the policy's and the server's to refuse)."""
        return (values < self.lower) | (values > self.upper)

    def violation(self, values: np.ndarray, bad: np.ndarray, where: str) -> str:
        """One line naming the first flagged entry of ``values`` (its index, joint, value and bound)
        and how many others are flagged. ``where`` is how the key is written, e.g. ``'observation/state'``."""
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        j = idx[-1]
        more = int(bad.sum()) - 1
        return (f"{where}[{', '.join(map(str, idx))}] ({self.names[j]}) = {float(values[idx]):.6g} is outside its "
                f"plausible range [{self.lower[j]:.4g}, {self.upper[j]:.4g}]"
                + (f"; {more} more value{'s' if more != 1 else ''} out of range" if more else ""))


@dataclass(frozen=True)
class PlausibilityBounds:
    """The state and action bounds of one checkpoint and how they were made (module docstring).

    Attributes:
        state, actions: per-dim bounds of ``observation/state`` (D,) and of each action (A,).
        margin: ``k``; floor: ``f``; stats: which norm stats (``"min/max"`` or ``"q01/q99"``) per key.
        robot_profile: the robot model's profile key (``<name>@<version>``), None when the
            checkpoint names no joints; profile_source: ``"--robot-profile"``, ``"config.json"`` or
            ``"default"``.
    """

    state: KeyBounds
    actions: KeyBounds
    margin: float
    floor: float
    stats: dict[str, str]
    robot_profile: str | None
    profile_source: str

    def check_state(self, obs: Any) -> None:
        """Refuse an observation whose ``observation/state`` is outside the state bounds.

        A missing, non-numeric or wrongly shaped state is let through: the policy's own check
        names what is wrong with it.

        Raises:
            RequestError: a state value is outside its bound (the message names the dim, joint,
                value and bound; the server sends it as the error frame).
        """
        state = obs.get(STATE_KEY) if isinstance(obs, Mapping) else None
        if state is None:
            return
        if type(state) is not np.ndarray:
            try:
                state = np.asarray(state)
            except (TypeError, ValueError):
                return
        if state.shape != (self.state.dim,) or state.dtype.kind not in "fiu":
            return
        bad = self.state.outside(state)
        if bad.any():
            raise RequestError(f"{self.state.violation(state, bad, repr(STATE_KEY))} (bounds: {self.rule()})")

    def check_actions(self, out: Any) -> None:
        """Refuse a policy output whose ``actions`` (H, A) leave the action bounds.

        Raises:
            ImplausibleAction: an action value is outside its bound, or the chunk does not have the
                checkpoint's A action dims.
        """
        actions = out.get("actions") if isinstance(out, Mapping) else None
        if actions is None:
            return  # the server refuses a reply without actions
        try:
            a = actions if type(actions) is np.ndarray else np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            return  # the server refuses actions that are not numbers
        if a.ndim != 2 or a.shape[1] != self.actions.dim:
            raise ImplausibleAction(f"policy produced an implausible action: a chunk of shape {a.shape}, the "
                                    f"checkpoint has {self.actions.dim} action dims")
        bad = self.actions.outside(a)
        if bad.any():
            raise ImplausibleAction(f"policy produced an implausible action: "
                                    f"{self.actions.violation(a, bad, 'actions')} (bounds: {self.rule()})")

    def rule(self) -> str:
        """How the bounds were made, in one phrase (for error messages and the console)."""
        stats = "/".join(sorted(set(self.stats.values())))
        model = (f" ∪ joint limits of robot model {self.robot_profile}" if self.robot_profile is not None
                 else " (the checkpoint names no joints: no robot model)")
        return f"norm stats {stats} ± {self.margin:g} × range{model}, ± {self.floor:g}"

    def describe(self) -> dict[str, Any]:
        """JSON-able description for the inference log: margin, floor, stats used, robot model,
        and per key ``names``, ``lower``, ``upper`` (rounded to 1e-6) and ``limited``."""
        return {"margin": self.margin, "floor": self.floor, "stats": dict(self.stats),
                "robot_profile": self.robot_profile, "profile_source": self.profile_source,
                **{b.key: {"names": list(b.names), "lower": [round(float(v), 6) for v in b.lower],
                           "upper": [round(float(v), 6) for v in b.upper], "limited": [bool(v) for v in b.limited]}
                   for b in (self.state, self.actions)}}


def _stats_range(doc: Mapping[str, Any], key: str, path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """``(lo, hi, "min/max" | "q01/q99")`` of norm stats key ``"state"`` / ``"actions"``: LeRobot's
    saved min/max, else min/max of the openpi block, else its q01/q99.

    Raises:
        ValueError: the key has neither, the vectors differ in length, are not finite, or hi < lo.
    """
    block = (doc.get("norm_stats") or {}).get(key) or {}
    lerobot = (doc.get("lerobot") or {}).get(_LEROBOT_FEATURE[key]) or {}
    for src, lo_name, hi_name, kind in ((lerobot, "min", "max", "min/max"), (block, "min", "max", "min/max"),
                                        (block, "q01", "q99", "q01/q99")):
        if lo_name in src and hi_name in src:
            lo = np.asarray(src[lo_name], dtype=np.float64).reshape(-1)
            hi = np.asarray(src[hi_name], dtype=np.float64).reshape(-1)
            if lo.shape != hi.shape or lo.size == 0 or not (np.isfinite(lo).all() and np.isfinite(hi).all()) \
                    or (hi < lo).any():
                raise ValueError(f"{path}: norm stats '{key}' {kind} are not two finite vectors of one length "
                                 f"with {hi_name} >= {lo_name}")
            return lo, hi, kind
    raise ValueError(f"{path}: norm stats '{key}' have neither min/max nor q01/q99")


def key_bounds(key: str, lo: np.ndarray, hi: np.ndarray, limits: np.ndarray | None, names: Sequence[str] | None,
               *, margin: float, floor: float) -> KeyBounds:
    """Bounds of one key by the module docstring's formula.

    Args:
        key: ``"observation/state"`` or ``"actions"``.
        lo, hi: (D,) norm-stats range (min/max or q01/q99).
        limits: (D, 2) robot-model ``[lower, upper]`` (±inf where the model leaves a joint
            unlimited), or None (no robot model: norm stats alone).
        names: D joint names, or None.
        margin: k >= 0; floor: f >= 0.

    Raises:
        ValueError: lengths differ.
    """
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    if names is not None and len(names) != lo.shape[0]:
        raise ValueError(f"{len(names)} {key} names for {lo.shape[0]} norm-stats dims")
    width = hi - lo
    lower, upper = lo - margin * width, hi + margin * width
    limited = np.zeros(lo.shape, bool)
    if limits is not None:
        limits = np.asarray(limits, np.float64).reshape(-1, 2)
        limited = np.isfinite(limits[:, 0]) & np.isfinite(limits[:, 1])
        lower = np.where(limited, np.minimum(lower, limits[:, 0]), lower)
        upper = np.where(limited, np.maximum(upper, limits[:, 1]), upper)
    shown = tuple(names) if names is not None else tuple(f"{key}[{i}]" for i in range(lo.shape[0]))
    return KeyBounds(key=key, names=shown, lower=lower - floor, upper=upper + floor, limited=limited)


def covering_profile(joints: list[str]) -> str:
    """The robot profile (``name``) whose ``joint_state`` joints include every one of ``joints``, the
    checkpoint's state and action joint names; of several, the one with the fewest joints (the G1
    rather than the G1 with hands for a body-only checkpoint), then by name. Checkpoints do not record
    their robot profile, so this identifies the robot model from what they do record.

    Raises:
        ProfileError: no known profile has all of them (give ``--robot-profile``).
    """
    want = set(joints)
    fits = []
    for name in sorted(available_profiles()):
        prof = load_profile(name)
        if want <= set(prof.joint_state.joints):
            fits.append((len(prof.joint_state.joints), name))
    if not fits:
        raise ProfileError(f"no robot profile has all of the checkpoint's {len(want)} joints (e.g. "
                           f"{sorted(want)[:3]}); give --robot-profile NAME")
    return min(fits)[1]


def bounds_from_checkpoint(step_dir: str | Path, *, margin: float = DEFAULT_MARGIN, floor: float = ABSOLUTE_FLOOR,
                           robot_profile: str | None = None) -> PlausibilityBounds:
    """The plausibility bounds of a checkpoint (JAX or LeRobot backend: both store
    ``norm_stats.json`` and ``config.json`` ``state_names`` / ``action_names``).

    Args:
        step_dir: the checkpoint directory.
        margin: k, >= 0 (module docstring).
        floor: f, >= 0, rad (m for prismatic joints).
        robot_profile: the robot model's profile name (``name`` or ``name@version``); None: the
            checkpoint's ``config.json`` ``robot_profile``, else the profile whose joints cover the
            checkpoint's (:func:`covering_profile`), else (no names) the default profile.

    Raises:
        ValueError: margin/floor negative or not finite; norm stats without a range; names and
            norm stats of different lengths.
        ProfileError: the profile is unknown, or its description file lacks one of the
            checkpoint's joints (then the checkpoint was trained for another robot).
        CheckpointError: ``step_dir`` is not a complete checkpoint.
    """
    if not (np.isfinite(margin) and margin >= 0 and np.isfinite(floor) and floor >= 0):
        raise ValueError(f"the plausibility margin and floor must be finite and >= 0, got {margin} and {floor}")
    step_dir = ckpt.check_checkpoint_dir(step_dir)
    config = ckpt.read_config(step_dir)
    stats_path = step_dir / ckpt.NORM_STATS_FILE
    doc = json.loads(stats_path.read_text())
    names = {"state": config.get("state_names"), "actions": config.get("action_names")}
    if robot_profile:
        source = "--robot-profile"
    elif config.get("robot_profile"):
        robot_profile, source = str(config["robot_profile"]), "config.json"
    elif all(names.values()):
        robot_profile, source = covering_profile([*names["state"], *names["actions"]]), "joint names"
    else:
        robot_profile, source = DEFAULT_PROFILE, "default"
    profile = load_profile(robot_profile) if all(names.values()) else None
    out, kinds = {}, {}
    for key, wire_key in (("state", STATE_KEY), ("actions", "actions")):
        lo, hi, kinds[key] = _stats_range(doc, key, stats_path)
        limits = None
        if profile is not None:
            lim = joint_limits(profile, list(names[key]))
            limits = np.array([lim[n] for n in names[key]], dtype=np.float64)
        out[key] = key_bounds(wire_key, lo, hi, limits, names[key], margin=float(margin), floor=float(floor))
    return PlausibilityBounds(state=out["state"], actions=out["actions"], margin=float(margin), floor=float(floor),
                              stats=kinds, robot_profile=profile.key if profile is not None else None,
                              profile_source=source if profile is not None else "none")


class PlausiblePolicy:
    """A servable policy (``metadata`` + ``infer``) that refuses implausible states and actions.

    ``infer(obs)``: :meth:`PlausibilityBounds.check_state`, the wrapped policy's ``infer``, then
    :meth:`PlausibilityBounds.check_actions`; the wrapped policy's output is returned unchanged.

    Args:
        policy: the policy served (anything with ``metadata`` and ``infer``).
        bounds: its :class:`PlausibilityBounds`.

    Raises (from ``infer``):
        RequestError: the state is out of bounds (the policy is not called).
        ImplausibleAction: the chunk is out of bounds (it is not returned).
    """

    def __init__(self, policy: Any, bounds: PlausibilityBounds):
        self._policy = policy
        self.bounds = bounds

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The wrapped policy's metadata."""
        return self._policy.metadata

    def infer(self, obs: Mapping[str, Any]) -> Mapping[str, Any]:
        """One action chunk for a plausible observation (see the class docstring)."""
        self.bounds.check_state(obs)
        out = self._policy.infer(obs)
        self.bounds.check_actions(out)
        return out


__all__ = ["ABSOLUTE_FLOOR", "DEFAULT_MARGIN", "ImplausibleAction", "KeyBounds", "PlausibilityBounds",
           "PlausiblePolicy", "bounds_from_checkpoint", "covering_profile", "key_bounds"]
