"""Joint limits read from the robot's own description file (the robot profile's MJCF or URDF), never
typed by hand.

An MJCF (``.xml``) is compiled with MuJoCo and each joint's ``range`` read (a joint MuJoCo does not
limit has no limits: ``(-inf, inf)``); a URDF (``.urdf``) is parsed for each ``<joint>``'s
``<limit lower upper>`` (``continuous`` joints, and joints whose ``<limit>`` gives no bounds, are
unlimited).

Velocity limits (rad/s, m/s for prismatic joints) come from the same files where they state one: a
URDF's ``<limit velocity>`` (required by the URDF specification on revolute and prismatic joints,
http://wiki.ros.org/urdf/XML/joint). An MJCF joint has no velocity limit attribute (MuJoCo XML
reference, ``joint``: ``range`` limits the position only), so an MJCF states none; the QA then uses
``QAThresholds.max_joint_speed_rad_s`` and says so.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from functools import lru_cache
from pathlib import Path

import numpy as np

from hvla_platform.lib.formats.recording.profile import ProfileError, RobotProfile, load_profile


@lru_cache(maxsize=32)
def _mjcf_limits(path: str, mtime_ns: int) -> dict[str, tuple[float, float]]:
    import mujoco  # noqa: PLC0415 - heavy; only when limits are needed

    try:
        model = mujoco.MjModel.from_xml_path(path)
    except ValueError as exc:
        raise ProfileError(f"robot description {path} does not compile with MuJoCo: {exc}") from exc
    out = {}
    for j in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        if not name:
            continue
        if bool(model.jnt_limited[j]):
            lo, hi = (float(v) for v in model.jnt_range[j])
        else:
            lo, hi = -math.inf, math.inf
        out[name] = (lo, hi)
    return out


@lru_cache(maxsize=32)
def _urdf_joints(path: str, mtime_ns: int) -> dict[str, tuple[str, dict[str, str]]]:
    """``{name: (type, <limit> attributes)}`` of a URDF's movable joints."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ProfileError(f"robot description {path} is not valid XML: {exc}") from exc
    out = {}
    for joint in root.iter("joint"):
        name, kind = joint.get("name"), joint.get("type", "")
        if not name or kind in ("fixed", "floating", "planar"):
            continue
        limit = joint.find("limit")
        out[name] = (kind, dict(limit.attrib) if limit is not None else {})
    return out


def _urdf_limits(path: str, mtime_ns: int) -> dict[str, tuple[float, float]]:
    out = {}
    for name, (kind, limit) in _urdf_joints(path, mtime_ns).items():
        if kind == "continuous" or limit.get("lower") is None or limit.get("upper") is None:
            out[name] = (-math.inf, math.inf)
        else:
            out[name] = (float(limit["lower"]), float(limit["upper"]))
    return out


def _urdf_velocity_limits(path: str, mtime_ns: int) -> dict[str, float]:
    out = {}
    for name, (_kind, limit) in _urdf_joints(path, mtime_ns).items():
        if limit.get("velocity") is None:
            continue
        try:
            v = float(limit["velocity"])
        except ValueError as exc:
            raise ProfileError(f"robot description {path}: joint {name} has velocity={limit['velocity']!r}, "
                               f"not a number") from exc
        if v > 0:  # 0 or less states nothing usable (some exporters write 0 for "unknown")
            out[name] = v
    return out


def read_joint_limits(path: str | Path) -> dict[str, tuple[float, float]]:
    """``{joint name: (lower, upper)}`` of every joint of a robot description file: an MJCF
    (compiled with MuJoCo) or, for a ``.urdf``, its ``<joint>`` elements (fixed, floating and
    planar joints left out). Radians (metres for prismatic joints); ``(-inf, inf)`` when unlimited.

    Raises:
        ProfileError: the file does not load (MuJoCo's or the XML parser's message).
        FileNotFoundError: no such file.
    """
    path = Path(path)
    loader = _urdf_limits if path.suffix.lower() == ".urdf" else _mjcf_limits
    return dict(loader(str(path), path.stat().st_mtime_ns))


def read_velocity_limits(path: str | Path) -> dict[str, float]:
    """``{joint name: velocity limit}`` of the joints a robot description file states one for:
    a ``.urdf``'s ``<limit velocity>`` (> 0; rad/s, m/s for prismatic joints). An MJCF states none
    (empty dict; the MJCF joint has no velocity limit attribute).

    Raises:
        ProfileError: the URDF is not valid XML, or a ``velocity`` is not a number.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    mtime = path.stat().st_mtime_ns
    return dict(_urdf_velocity_limits(str(path), mtime)) if path.suffix.lower() == ".urdf" else {}


def velocity_limits(profile: RobotProfile | str | None, names: list[str]) -> dict[str, tuple[float, str]]:
    """``{joint name: (velocity limit, file that states it)}`` for those of ``names`` whose limit the
    profile's description file or its attachments' state (the robot's own file first); joints left
    out state none (rad/s, m/s for prismatic joints).

    Raises:
        ProfileError: the profile is unknown, a description file is missing or does not load.
    """
    _, paths = _description_paths(profile)
    stated: dict[str, tuple[float, str]] = {}
    for path in paths:
        for name, v in read_velocity_limits(path).items():
            stated.setdefault(name, (v, Path(path).name))
    return {n: stated[n] for n in names if n in stated}


def _resolve(profile: RobotProfile | str | None) -> RobotProfile:
    return profile if isinstance(profile, RobotProfile) else load_profile(profile)


def _description_paths(profile: RobotProfile | str | None) -> tuple[RobotProfile, list[Path]]:
    """The profile and its description files (the robot's own first, then its attachments').

    Raises:
        ProfileError: the profile is unknown or a description file is missing.
    """
    prof = _resolve(profile)
    try:
        return prof, prof.robot.description_paths()
    except FileNotFoundError as exc:
        raise ProfileError(f"robot profile {prof.key}: {exc}") from exc


def joint_limits(profile: RobotProfile | str | None = None,
                 names: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """``{joint name: (lower, upper)}`` for the profile's state joints (or ``names``), radians
    (metres for prismatic joints); ``(-inf, inf)`` for a joint its model leaves unlimited. Read from
    the profile's description file and then its attachments' (``robot.attachments``: a gripper).

    Args:
        profile: the robot profile, or its name (None: the default profile).
        names: joints to return (default: ``profile.state_names``).

    Raises:
        ProfileError: the profile is unknown, its description file is missing, does not load, or
            lacks one of the joints (naming the profile, the file and the joints).
    """
    prof, paths = _description_paths(profile)
    limits: dict[str, tuple[float, float]] = {}
    for path in paths:  # the robot's own file first, then attached tools' (a gripper)
        for name, lim in read_joint_limits(path).items():
            limits.setdefault(name, lim)
    wanted = list(names) if names is not None else prof.state_names
    missing = [n for n in wanted if n not in limits]
    if missing:
        files = ", ".join(f"{p.name}" for p in paths)
        raise ProfileError(f"robot profile {prof.key}: joint(s) {missing[:5]}{'...' if len(missing) > 5 else ''} are "
                           f"not in its description file(s) {files} ({prof.robot.description_file.package})")
    return {n: limits[n] for n in wanted}


def limits_array(names: list[str], profile: RobotProfile | str | None = None) -> np.ndarray:
    """(D, 2) float64 ``[lower, upper]`` of ``names`` in order (radians; ±inf when unlimited), from
    ``profile``'s description file (None: the default profile).

    Raises:
        ProfileError: as :func:`joint_limits` (a joint not in the model among them).
    """
    lim = joint_limits(profile, names)
    return np.array([lim[n] for n in names], dtype=np.float64).reshape(len(names), 2)
