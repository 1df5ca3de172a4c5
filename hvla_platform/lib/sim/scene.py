"""What every simulated robot scene shares: the table, the object, camera mounts, sensors, and the
compiled :class:`SimScene` the simulator, the expert and the recorder work on.

Each robot family has a small *builder* (:mod:`.builders`: ``g1_reach``, ``h1_reach``,
``ur5e_grasp``) that loads the robot's MJCF from its installed package, edits it in memory with
:class:`mujoco.MjSpec` (fixes the base, turns the actuators into joint position servos where they
are not already), and calls the helpers here to add the table-top scene:

* :func:`add_table` / :func:`add_object`: a table and a small object (a cube and a sphere geom on a
  mocap body; one is made active per episode, so the object moves between episodes without
  recompiling);
* :func:`add_look_camera`: a camera on a body, looking along a direction given in that body's frame;
* :func:`add_imu_sensors` / :func:`add_wrench_sensors`: MuJoCo sensors behind ``sensor_msgs/Imu``
  and ``geometry_msgs/WrenchStamped`` extras;
* :func:`add_environment`: floor, sky and lights for models shipped without a ``scene.xml``.

Units: metres, radians, seconds; world frame z up, the robot faces +x.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

#: Colours the object can take (RGBA).
OBJECT_COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.10, 0.10, 1.0),
    "green": (0.10, 0.70, 0.15, 1.0),
    "blue": (0.10, 0.25, 0.85, 1.0),
}
OBJECT_SHAPES = ("cube", "sphere")
#: Object sizes: cube half-edge and sphere radius, metres.
CUBE_HALF = 0.025
SPHERE_RADIUS = 0.028


@dataclass(frozen=True)
class TableLayout:
    """A table (metres, world frame): top centre ``center_xy``, half extents ``half_xy``, top
    surface height ``top_z`` and slab ``thickness``."""

    center_xy: tuple[float, float] = (0.52, 0.0)
    half_xy: tuple[float, float] = (0.26, 0.50)
    top_z: float = 0.70
    thickness: float = 0.03


@dataclass(frozen=True)
class ObjectRegion:
    """Where the object's centre is sampled on the table (metres).

    ``x_range`` is forward; ``y_range`` is the lateral *distance* from the midline when the task
    picks the arm by side (two arms: y > 0 for ``left``), else the signed lateral range.
    """

    x_range: tuple[float, float] = (0.28, 0.34)
    y_range: tuple[float, float] = (0.10, 0.24)


@dataclass(frozen=True)
class Timeline:
    """The scripted expert's phases, seconds: hold, lift (to a via-point above the table edge, when
    the scene has one; 0 = none), approach (to the pre-contact pose), descend (to contact), close
    (the hand or gripper, grasp tasks only); then hold to the end."""

    hold: float = 0.4
    approach: float = 1.8
    descend: float = 1.0
    close: float = 0.8
    lift: float = 0.0


@dataclass
class ArmChain:
    """One arm of a scene and its end effector.

    Attributes:
        joints: the arm's joint names (order of the IK and of ``idx``).
        idx: (n_arm,) int, positions of ``joints`` within :attr:`SimScene.joint_names`.
        tip_site: site id of the point the expert brings to the object (fingertip, pinch point).
        grip_idx: (n_grip,) int, positions of the hand/gripper joints within the state joints
            (empty for a rigid hand).
        grip_relaxed, grip_open, grip_closed: (n_grip,) float64 joint targets in radians: at rest,
            pre-shaped open for the approach, and closed on the object.
        tip_axis: desired world direction of the tip site's z axis during the grasp (a gripper
            pointing down is ``(0, 0, -1)``), or None to solve for position only.
    """

    joints: list[str]
    idx: np.ndarray
    tip_site: int
    grip_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    grip_relaxed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grip_open: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grip_closed: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tip_axis: tuple[float, float, float] | None = None


@dataclass
class ImuSensor:
    """Sensor addresses (into ``data.sensordata``) of one IMU site: orientation quaternion (w, x,
    y, z, 4 values), gyro (3, rad/s), accelerometer (3, m/s²)."""

    site: str
    quat_adr: int
    gyro_adr: int
    acc_adr: int


@dataclass
class WrenchSensor:
    """Sensor addresses of one force/torque site: force (3, N) and torque (3, N·m), site frame."""

    site: str
    force_adr: int
    torque_adr: int


@dataclass
class SimScene:
    """A compiled scene and the index maps the simulator, the expert and the recorder need.

    Joint vectors are in :attr:`joint_names` order (the profile's ``joint_state`` joints).

    Attributes:
        model: the compiled :class:`mujoco.MjModel` (timestep 0.002 s).
        builder: id of the builder that made it (``g1_reach``, ``h1_reach``, ``ur5e_grasp``).
        joint_names: (n,) the state joints.
        qpos_idx, dof_idx: (n,) int, ``qpos`` / ``qvel`` address of each joint.
        act_idx: (n,) int, the actuator commanding each joint (-1: none).
        ctrl_scale, ctrl_offset: (n,) float64, ``ctrl = scale × target + offset`` (1, 0 for a
            position servo on the joint; e.g. 318.75, 0 for the 2F-85's 0–255 command of its
            0–0.8 rad driver joint).
        nominal_q: (n,) float64 rest pose, radians.
        joint_range: (n, 2) float64 joint limits, radians (from the MJCF).
        arms: arm name (``left``/``right``, or ``arm`` for a single arm) → :class:`ArmChain`.
        cameras: camera name (the profile's) → MuJoCo camera name.
        object_geom: ``cube``/``sphere`` → geom id; ``object_mocap``: the object's mocap index.
        table, region, timeline: the table, where the object is sampled, the expert's phases.
        task: the default task family (``reach_touch`` or ``reach_grasp``).
        stance_height: pelvis height above the floor, metres (humanoids), else None.
        imus, wrenches: extra sensors by site name.
        pre_contact_height: how far above the object's top the approach ends, metres.
        lift_tip: (x, lateral distance from the midline, z) of the tip at the lift via-point, metres
            (the lateral sign follows the arm), or None for a direct approach; hands whose fingers
            hang below the table top need it to clear the table's edge.
        contact_offset: (3,) offset of the contact target from the object's top centre, metres.
        success_distance: tip-to-object-surface distance counted as contact, metres.
    """

    model: mujoco.MjModel
    builder: str
    joint_names: list[str]
    qpos_idx: np.ndarray
    dof_idx: np.ndarray
    act_idx: np.ndarray
    ctrl_scale: np.ndarray
    ctrl_offset: np.ndarray
    nominal_q: np.ndarray
    joint_range: np.ndarray
    arms: dict[str, ArmChain]
    cameras: dict[str, str]
    object_geom: dict[str, int]
    object_mocap: int
    table: TableLayout
    region: ObjectRegion
    timeline: Timeline
    task: str = "reach_touch"
    stance_height: float | None = None
    imus: dict[str, ImuSensor] = field(default_factory=dict)
    wrenches: dict[str, WrenchSensor] = field(default_factory=dict)
    pre_contact_height: float = 0.14
    lift_tip: tuple[float, float, float] | None = None
    contact_offset: tuple[float, float, float] = (0.0, 0.0, 0.005)
    success_distance: float = 0.04

    # ---- views kept from the G1-only scene (G1Scene) -------------------------------------------
    @property
    def arm_idx(self) -> np.ndarray:
        """(n_arm_total,) int positions of all arms' joints within :attr:`joint_names`, arms in
        :attr:`arms` order (for the G1: the 14 ``G1_ARM_JOINTS``)."""
        return np.concatenate([a.idx for a in self.arms.values()]).astype(int)

    @property
    def hand_site(self) -> dict[str, int]:
        """Arm name → tip site id."""
        return {k: a.tip_site for k, a in self.arms.items()}

    def arm_joint_idx(self, side: str) -> np.ndarray:
        """(n_arm,) positions within :attr:`joint_names` of arm ``side``'s joints.

        Raises:
            KeyError: no such arm.
        """
        return self.arms[side].idx

    def joint_index(self, names: list[str]) -> np.ndarray:
        """(len(names),) int positions of ``names`` within :attr:`joint_names`.

        Raises:
            KeyError: a name that is not a state joint (the message names it and the scene).
        """
        pos = {n: i for i, n in enumerate(self.joint_names)}
        missing = [n for n in names if n not in pos]
        if missing:
            raise KeyError(f"joints {missing} are not state joints of the {self.builder} scene")
        return np.array([pos[n] for n in names], dtype=int)


# ---- geometry helpers ---------------------------------------------------------------------------
def quat_from_xyaxes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(4,) unit quaternion (w, x, y, z) of the frame whose x and y axes are ``x`` and ``y``."""
    z = np.cross(x, y)
    mat = np.stack([x, y, z], axis=1).reshape(-1)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat)
    return quat


def look_axes(forward: np.ndarray, up_hint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera x/y axes so that a MuJoCo camera (which looks along its -z) looks along ``forward``
    with image "up" towards ``up_hint`` (both (3,), any length, not parallel)."""
    f = np.asarray(forward, float) / np.linalg.norm(forward)
    z = -f
    x = np.cross(np.asarray(up_hint, float), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return x, y


def add_look_camera(body: mujoco.MjsBody, name: str, pos: tuple[float, float, float],
                    forward: tuple[float, float, float], up_hint: tuple[float, float, float],
                    fovy: float) -> None:
    """Mount camera ``name`` on ``body`` at ``pos`` (m, body frame), looking along ``forward``
    (body frame) with image up towards ``up_hint``; ``fovy`` is the vertical field of view, degrees."""
    quat = quat_from_xyaxes(*look_axes(np.array(forward), np.array(up_hint)))
    body.add_camera(name=name, pos=list(pos), quat=list(quat), fovy=fovy)


# ---- scene pieces -------------------------------------------------------------------------------
def add_table(spec: mujoco.MjSpec, table: TableLayout) -> None:
    """Add a wooden table (top slab and four legs) standing on the floor."""
    spec.add_material(name="table_wood", rgba=[0.55, 0.40, 0.26, 1.0])
    spec.add_material(name="table_leg", rgba=[0.25, 0.25, 0.28, 1.0])
    body = spec.worldbody.add_body(name="table", pos=[*table.center_xy, 0.0])
    body.add_geom(name="table_top", type=mujoco.mjtGeom.mjGEOM_BOX,
                  size=[*table.half_xy, table.thickness / 2],
                  pos=[0, 0, table.top_z - table.thickness / 2], material="table_wood")
    leg_h = table.top_z - table.thickness
    for i, (sx, sy) in enumerate(((1, 1), (1, -1), (-1, 1), (-1, -1))):
        body.add_geom(name=f"table_leg_{i}", type=mujoco.mjtGeom.mjGEOM_BOX,
                      size=[0.02, 0.02, leg_h / 2],
                      pos=[sx * (table.half_xy[0] - 0.04), sy * (table.half_xy[1] - 0.04), leg_h / 2],
                      material="table_leg")


def add_object(spec: mujoco.MjSpec, table: TableLayout) -> None:
    """Add the task object: a mocap body ``object`` with a cube (half-edge :data:`CUBE_HALF`) and a
    sphere (radius :data:`SPHERE_RADIUS`) geom, both resting on the table top; the simulator makes
    one of them visible and collidable per episode."""
    obj = spec.worldbody.add_body(name="object", mocap=True,
                                  pos=[table.center_xy[0], 0.0, table.top_z + CUBE_HALF])
    obj.add_geom(name="object_cube", type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3,
                 rgba=list(OBJECT_COLOURS["red"]), friction=[1.0, 0.005, 0.0001])
    obj.add_geom(name="object_sphere", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[SPHERE_RADIUS, 0, 0],
                 pos=[0, 0, SPHERE_RADIUS - CUBE_HALF], rgba=list(OBJECT_COLOURS["red"]),
                 friction=[1.0, 0.005, 0.0001])


def add_environment(spec: mujoco.MjSpec) -> None:
    """Floor, sky, head light and a directional light, as the MuJoCo Menagerie ``scene.xml`` files
    add them (for models shipped without one)."""
    spec.visual.headlight.diffuse = [0.6, 0.6, 0.6]
    spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    spec.add_texture(name="skybox", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT, rgb1=[0.3, 0.5, 0.7], rgb2=[0, 0, 0],
                     width=512, height=3072)
    spec.add_texture(name="groundplane", type=mujoco.mjtTexture.mjTEXTURE_2D,
                     builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER, mark=mujoco.mjtMark.mjMARK_EDGE,
                     rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3], markrgb=[0.8, 0.8, 0.8], width=300, height=300)
    mat = spec.add_material(name="groundplane", texuniform=True, texrepeat=[5, 5], reflectance=0.2)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "groundplane"
    spec.worldbody.add_light(pos=[0, 0, 3.5], dir=[0, 0, -1], type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05],
                            material="groundplane")


def add_imu_sensors(spec: mujoco.MjSpec, site: str) -> None:
    """Add ``<site>_quat`` (framequat), ``<site>_gyro`` and ``<site>_acc`` sensors at ``site``."""
    obj = mujoco.mjtObj.mjOBJ_SITE
    spec.add_sensor(name=f"{site}_quat", type=mujoco.mjtSensor.mjSENS_FRAMEQUAT, objtype=obj, objname=site)
    spec.add_sensor(name=f"{site}_gyro", type=mujoco.mjtSensor.mjSENS_GYRO, objtype=obj, objname=site)
    spec.add_sensor(name=f"{site}_acc", type=mujoco.mjtSensor.mjSENS_ACCELEROMETER, objtype=obj, objname=site)


def imu_sensor(model: mujoco.MjModel, site: str) -> ImuSensor:
    """The :class:`ImuSensor` of ``site`` in a model built with :func:`add_imu_sensors`."""
    return ImuSensor(site, int(model.sensor(f"{site}_quat").adr[0]), int(model.sensor(f"{site}_gyro").adr[0]),
                     int(model.sensor(f"{site}_acc").adr[0]))


def add_wrench_sensors(spec: mujoco.MjSpec, site: str) -> None:
    """Add ``<site>_force`` and ``<site>_torque`` sensors at ``site`` (the force/torque the child
    bodies exert on the parent, in the site frame)."""
    obj = mujoco.mjtObj.mjOBJ_SITE
    spec.add_sensor(name=f"{site}_force", type=mujoco.mjtSensor.mjSENS_FORCE, objtype=obj, objname=site)
    spec.add_sensor(name=f"{site}_torque", type=mujoco.mjtSensor.mjSENS_TORQUE, objtype=obj, objname=site)


def wrench_sensor(model: mujoco.MjModel, site: str) -> WrenchSensor:
    """The :class:`WrenchSensor` of ``site`` in a model built with :func:`add_wrench_sensors`."""
    return WrenchSensor(site, int(model.sensor(f"{site}_force").adr[0]), int(model.sensor(f"{site}_torque").adr[0]))


def fix_base(spec: mujoco.MjSpec, body: str) -> None:
    """Weld ``body`` (a floating base) to the world: delete its free joint and the keyframes
    (whose ``qpos`` still holds the 7 floating-base values)."""
    base = spec.body(body)
    for joint in list(base.joints):
        if joint.type == mujoco.mjtJoint.mjJNT_FREE:
            spec.delete(joint)
    for key in list(spec.keys):
        spec.delete(key)


def floor_clearance(spec: mujoco.MjSpec, pose: dict[str, float], foot_bodies: list[str]) -> float:
    """Lowest point of the collision geoms of ``foot_bodies`` above z = 0 with the joints at ``pose``
    (radians by joint name, others 0), metres (negative: below the floor). Spheres, capsules and
    boxes are measured exactly; other geoms by their bounding sphere."""
    model = spec.compile()
    data = mujoco.MjData(model)
    for name, value in pose.items():
        data.qpos[model.joint(name).qposadr[0]] = value
    mujoco.mj_kinematics(model, data)
    lows = []
    for g in range(model.ngeom):
        if model.body(model.geom_bodyid[g]).name not in foot_bodies or model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0:
            continue
        t, size, pos, mat = model.geom_type[g], model.geom_size[g], data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3)
        if t == mujoco.mjtGeom.mjGEOM_SPHERE:
            lows.append(pos[2] - size[0])
        elif t == mujoco.mjtGeom.mjGEOM_CAPSULE:
            lows.append(pos[2] - abs(mat[2, 2]) * size[1] - size[0])
        elif t == mujoco.mjtGeom.mjGEOM_BOX:
            lows.append(pos[2] - float(np.abs(mat[2, :]) @ size))
        else:
            lows.append(pos[2] - model.geom_rbound[g])
    if not lows:
        raise ValueError(f"no collision geoms on {foot_bodies}")
    return float(min(lows))


def position_servos(spec: mujoco.MjSpec, kp: dict[str, float], *, dampratio: float = 1.0) -> None:
    """Turn each joint actuator into a position servo (``ctrl`` = joint target in radians, clamped
    to the joint range): gain ``kp[joint]`` N·m/rad (joints not in ``kp`` are left as they are),
    critically damped by default, its former control range (a motor's torque limits, N·m) kept as
    the force limit."""
    for act in spec.actuators:
        joint = act.target
        if joint not in kp:
            continue
        j = spec.joint(joint)
        torque = list(act.ctrlrange)
        act.set_to_position(kp=float(kp[joint]), dampratio=dampratio)
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrlrange = list(j.range)
        if torque[1] > torque[0]:
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = torque


def configure_offscreen(spec: mujoco.MjSpec, height: int = 480, width: int = 640) -> None:
    """Offscreen buffer of at least ``height`` × ``width`` pixels and no multisampling (≈ 4× faster
    OSMesa rendering)."""
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = max(int(spec.visual.global_.offwidth), width)
    spec.visual.global_.offheight = max(int(spec.visual.global_.offheight), height)


def joint_maps(model: mujoco.MjModel, names: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(qpos_idx, dof_idx, act_idx, joint_range)`` of ``names``: (n,) int, (n,) int, (n,) int
    (the actuator with a joint transmission on that joint, -1 if none), (n, 2) float64 radians.

    Raises:
        KeyError: a joint is not in the model (names the joint).
    """
    try:
        ids = [model.joint(n).id for n in names]
    except KeyError as exc:
        raise KeyError(f"joint not in the model: {exc}") from exc
    act_for_joint = {int(model.actuator_trnid[a, 0]): a for a in range(model.nu)
                     if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT}
    return (np.array([model.jnt_qposadr[i] for i in ids], dtype=int),
            np.array([model.jnt_dofadr[i] for i in ids], dtype=int),
            np.array([act_for_joint.get(i, -1) for i in ids], dtype=int),
            np.array([model.jnt_range[i] for i in ids], dtype=np.float64))


def object_ids(model: mujoco.MjModel) -> tuple[dict[str, int], int]:
    """``({"cube": geom id, "sphere": geom id}, mocap index of the object body)``."""
    return ({"cube": model.geom("object_cube").id, "sphere": model.geom("object_sphere").id},
            int(model.body_mocapid[model.body("object").id]))


def grip_poses(joint_range: np.ndarray, relaxed: float, closed: float, opened: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand/gripper joint targets from the joints' limits (n, 2) radians: each joint closes towards
    the limit farther from 0 (a symmetric range does not close); ``relaxed``, ``closed`` and
    ``opened`` are fractions of the way there. Returns (relaxed, open, closed), each (n,) radians."""
    lo, hi = joint_range[:, 0], joint_range[:, 1]
    far = np.where(np.abs(hi) > np.abs(lo) + 1e-6, hi, np.where(np.abs(lo) > np.abs(hi) + 1e-6, lo, 0.0))
    base = np.clip(0.0, lo, hi)
    return base + relaxed * (far - base), base + opened * (far - base), base + closed * (far - base)
