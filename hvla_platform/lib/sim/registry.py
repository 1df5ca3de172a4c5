"""The scene-builder registry: builder ids, their options, and the errors of a profile that cannot
be simulated. Builders (:mod:`.model`, :mod:`.h1`, :mod:`.ur5e`) register themselves here with
:func:`register_builder`; :mod:`.builders` imports them all and builds a profile's scene.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable, Literal

from pydantic import Field

from hvla_platform.lib.core.contracts import StrictModel
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.formats.recording.profile import RobotProfile
from hvla_platform.lib.sim.scene import SimScene


class SceneBuildError(ValueError):
    """A profile cannot be simulated: no ``simulation`` section, an unknown builder, bad options, or
    joints/cameras/extras the builder cannot provide (one line naming the profile)."""


class BuilderOptions(StrictModel):
    """``simulation.options`` (all optional; each builder documents its defaults)."""

    task: Literal["reach_touch", "reach_grasp"] | None = Field(
        default=None, description="task family the scripted expert performs (reach_grasp also closes the hand/gripper)")
    scene_file: str | None = Field(
        default=None, description="Menagerie scene file next to the description file (floor, sky, lights), "
                                  "e.g. scene_with_hands.xml")
    cameras: dict[str, str] = Field(
        default_factory=dict, description="profile camera name -> the builder's camera mount (a depth camera "
                                          "may share a mount with a colour one)")
    imu_site: str | None = Field(default=None, description="MJCF site of the IMU extras")
    wrench_site: str | None = Field(default=None, description="site of the force/torque extras")


Builder = Callable[[RobotProfile, BuilderOptions], SimScene]

#: Builder id -> function(profile, options) -> SimScene.
BUILDERS: dict[str, Builder] = {}


def register_builder(builder_id: str) -> Callable[[Builder], Builder]:
    """Decorator registering a scene builder ``(profile, options) -> SimScene`` under ``builder_id``."""
    def deco(fn: Builder) -> Builder:
        BUILDERS[builder_id] = fn
        return fn
    return deco


def copy_scene(scene: SimScene) -> SimScene:
    """``scene`` with its own copy of the compiled model (~0.1 s; the index maps are shared, read-only)."""
    return dataclasses.replace(scene, model=copy.copy(scene.model))


def mount_map(profile: RobotProfile, options: BuilderOptions, mounts: dict[str, str], builder: str) -> dict[str, str]:
    """Profile camera name -> MuJoCo camera name, from ``options.cameras`` (camera -> mount; a camera
    not listed uses the mount of its own name).

    Raises:
        SceneBuildError: a camera maps to a mount the builder does not have, or ``options.cameras``
            names a camera the profile does not have.
    """
    out = {}
    for cam in profile.cameras:
        mount = options.cameras.get(cam, cam)
        if mount not in mounts:
            raise SceneBuildError(f"profile {profile.profile}: camera {cam!r} needs a mount of the {builder} builder, "
                                  f"not {mount!r}{did_you_mean(mount, mounts)}; set simulation.options.cameras")
        out[cam] = mounts[mount]
    unknown = sorted(set(options.cameras) - set(profile.cameras))
    if unknown:
        raise SceneBuildError(f"profile {profile.profile}: simulation.options.cameras names cameras the profile does not "
                              f"have: {unknown}")
    return out
