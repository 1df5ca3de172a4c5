"""Physics, joint control, sensing and rendering of a simulated robot scene (MuJoCo).

Every builder's actuators are joint position servos (the Menagerie G1's and UR5e's already are;
the H1's torque motors are converted by its builder): ``ctrl`` is a joint target in radians (for the
2F-85 gripper its 0–255 command, mapped from the driver joint's target by the scene's
``ctrl_scale``), so they are the joint PD controllers. Joints no command stream drives (a
humanoid's legs and waist) are held at the scene's nominal pose.
"""

from __future__ import annotations

import mujoco
import numpy as np
from mujoco.rendering.classic import gl_context

from hvla_platform.lib.formats.recording.contract import CAMERA_HEIGHT, CAMERA_WIDTH
from hvla_platform.lib.sim.model import build_scene
from hvla_platform.lib.sim.scene import CUBE_HALF, OBJECT_COLOURS, SimScene

#: Depth readings beyond this fraction of the far clipping plane are "no return" (the sky).
_FAR_FRACTION = 0.98


class _Offscreen:
    """One OpenGL context and MuJoCo render context for a model, rendering any camera at any size
    up to the model's offscreen buffer, colour and depth from the same pass. (One context per
    simulator: every :class:`mujoco.Renderer` holds its own context and its own copy of the
    meshes, ~200 MB for the H1.)"""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.max_w, self.max_h = int(model.vis.global_.offwidth), int(model.vis.global_.offheight)
        self._gl = gl_context.GLContext(self.max_w, self.max_h)
        self._gl.make_current()
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._con)
        self._con.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scn = mujoco.MjvScene(model, maxgeom=10000)
        self._opt = mujoco.MjvOption()
        self._pert = mujoco.MjvPerturb()
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
        extent = model.stat.extent
        self._near = np.float32(model.vis.map.znear * extent)
        self._far = np.float32(model.vis.map.zfar * extent)

    def render(self, data: mujoco.MjData, camera_id: int, height: int, width: int, *, rgb: bool = True,
               depth: bool = False) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Render camera ``camera_id`` at ``height`` × ``width``: ((H, W, 3) uint8 RGB or None,
        (H, W) float32 depth in metres along the optical axis, 0 = beyond the far plane, or None).

        Raises:
            ValueError: larger than the model's offscreen buffer.
        """
        if height > self.max_h or width > self.max_w:
            raise ValueError(f"image {height}x{width} is larger than the model's offscreen buffer {self.max_h}x{self.max_w}")
        self._gl.make_current()
        self._cam.fixedcamid = camera_id
        mujoco.mjv_updateScene(self.model, data, self._opt, self._pert, self._cam, mujoco.mjtCatBit.mjCAT_ALL.value,
                               self._scn)
        self._scn.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        rect = mujoco.MjrRect(0, 0, width, height)
        mujoco.mjr_render(rect, self._scn, self._con)
        img = np.empty((height, width, 3), np.uint8) if rgb else None
        z = np.empty((height, width), np.float32) if depth else None
        mujoco.mjr_readPixels(img, z, rect, self._con)
        if img is not None:
            img = np.flipud(img).copy()
        if z is not None:  # depth buffer (0 near .. 1 far) -> distance along the optical axis, metres
            far, near = self._far, self._near
            c = np.float32(-0.5) * (-(far + near) / (far - near)) - np.float32(0.5)
            d = np.float32(-0.5) * (-(np.float32(2) * far * near) / (far - near))
            z = np.flipud((d / (z.astype(np.float64) + c)).astype(np.float32)).copy()
            z[z >= _FAR_FRACTION * far] = 0.0
        return img, z

    def close(self) -> None:
        """Free the render and GL contexts."""
        if self._gl is not None:
            self._gl.make_current()
            self._con.free()
            self._gl.free()
            self._gl = None


class RobotSim:
    """One simulated robot with a table and an object.

    Args:
        scene: a compiled :class:`~hvla_platform.lib.sim.scene.SimScene` (from a builder).
        render: allow offscreen rendering (OSMesa without a GPU); renderers are created on first
            use, one per image size.
        height, width: default camera image size, pixels.
    """

    def __init__(self, scene: SimScene, *, render: bool = True, height: int = CAMERA_HEIGHT,
                 width: int = CAMERA_WIDTH):
        self.scene = scene
        self.model = scene.model
        self.data = mujoco.MjData(self.model)
        self.render_enabled = render
        self.height, self.width = int(height), int(width)
        self._view: _Offscreen | None = None
        self.object_pos = np.zeros(3)
        self.object_shape = "cube"
        self._act = scene.act_idx >= 0
        self._ctrl_lo = self.model.actuator_ctrlrange[:, 0].copy()
        self._ctrl_hi = self.model.actuator_ctrlrange[:, 1].copy()
        limited = self.model.actuator_ctrllimited.astype(bool)
        self._ctrl_lo[~limited], self._ctrl_hi[~limited] = -np.inf, np.inf
        if render:  # fail early (and like before) when no GL backend is available
            self._offscreen()

    # ---- scene ---------------------------------------------------------------------------------
    def reset(self, object_xy: tuple[float, float], colour: str, shape: str) -> None:
        """Put the robot in its nominal pose at rest and the object at ``object_xy`` (m) on the table."""
        mujoco.mj_resetData(self.model, self.data)
        sc = self.scene
        self.data.qpos[sc.qpos_idx] = sc.nominal_q
        self.set_joint_targets(sc.nominal_q)
        self.object_shape = shape
        self.object_pos = np.array([object_xy[0], object_xy[1], sc.table.top_z + CUBE_HALF])
        self.data.mocap_pos[sc.object_mocap] = self.object_pos
        rgba = np.array(OBJECT_COLOURS[colour], dtype=np.float32)
        for name, gid in sc.object_geom.items():
            self.model.geom_rgba[gid] = rgba if name == shape else np.array([0, 0, 0, 0], np.float32)
            self.model.geom_contype[gid] = 1 if name == shape else 0
            self.model.geom_conaffinity[gid] = 1 if name == shape else 0
        mujoco.mj_forward(self.model, self.data)

    # ---- control -------------------------------------------------------------------------------
    def set_joint_targets(self, targets: np.ndarray, idx: np.ndarray | None = None) -> None:
        """Command joint targets, radians: ``targets`` (n,) for all state joints, or for the joints
        at positions ``idx`` of the scene's ``joint_names``; joints without an actuator are
        ignored; targets are clipped to the actuators' control ranges (the joint limits)."""
        sc = self.scene
        idx = np.arange(len(sc.joint_names)) if idx is None else np.asarray(idx, dtype=int)
        t = np.asarray(targets, np.float64)
        keep = self._act[idx]
        acts = sc.act_idx[idx][keep]
        ctrl = sc.ctrl_scale[idx][keep] * t[keep] + sc.ctrl_offset[idx][keep]
        self.data.ctrl[acts] = np.clip(ctrl, self._ctrl_lo[acts], self._ctrl_hi[acts])

    def set_arm_targets(self, targets: np.ndarray) -> None:
        """Command the arm joints (the scene's ``arm_idx``; for the G1 the 14 ``G1_ARM_JOINTS``),
        radians, clipped to joint limits."""
        sc = self.scene
        arm = sc.arm_idx
        t = np.clip(np.asarray(targets, np.float64), sc.joint_range[arm, 0], sc.joint_range[arm, 1])
        self.set_joint_targets(t, arm)

    def step(self, n: int = 1) -> None:
        """Advance ``n`` physics steps of ``model.opt.timestep`` (2 ms)."""
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)

    @property
    def time(self) -> float:
        """Simulation time, seconds."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        """Physics step, seconds."""
        return float(self.model.opt.timestep)

    # ---- sensing -------------------------------------------------------------------------------
    def joint_positions(self) -> np.ndarray:
        """(n,) float64 joint positions, radians, the scene's ``joint_names`` order."""
        return self.data.qpos[self.scene.qpos_idx].copy()

    def joint_velocities(self) -> np.ndarray:
        """(n,) float64 joint velocities, rad/s."""
        return self.data.qvel[self.scene.dof_idx].copy()

    def joint_efforts(self) -> np.ndarray:
        """(n,) float64 actuator torque on each joint, N·m (``qfrc_actuator``)."""
        return self.data.qfrc_actuator[self.scene.dof_idx].copy()

    def hand_position(self, side: str) -> np.ndarray:
        """(3,) world position of arm ``side``'s tip site, metres."""
        return self.data.site_xpos[self.scene.hand_site[side]].copy()

    def hand_object_distance(self, side: str) -> float:
        """Distance from the tip site to the object's surface (approximated as its bounding
        sphere of radius ``CUBE_HALF``), metres; ≤ 0 means touching."""
        return float(np.linalg.norm(self.hand_position(side) - self.object_pos) - CUBE_HALF)

    def object_contacts(self, side: str) -> int:
        """Number of bodies of arm ``side``'s hand/gripper (the tip site's body and its subtree)
        touching the active object geom."""
        m, d = self.model, self.data
        root = int(m.site_bodyid[self.scene.hand_site[side]])
        geom = self.scene.object_geom[self.object_shape]
        bodies = set()
        for c in d.contact[: d.ncon]:
            other = c.geom2 if c.geom1 == geom else c.geom1 if c.geom2 == geom else -1
            if other < 0:
                continue
            b = int(m.geom_bodyid[other])
            while b > 0 and b != root:
                b = int(m.body_parentid[b])
            if b == root:
                bodies.add(int(m.geom_bodyid[other]))
        return len(bodies)

    def imu(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """IMU extra ``name``: orientation (4,) quaternion (x, y, z, w) of the IMU site in the world,
        angular velocity (3,) rad/s and linear acceleration (3,) m/s² (gravity included), site frame.

        Raises:
            KeyError: the scene has no IMU of that name.
        """
        s = self.scene.imus[name]
        sd = self.data.sensordata
        w, x, y, z = sd[s.quat_adr:s.quat_adr + 4]
        return np.array([x, y, z, w]), sd[s.gyro_adr:s.gyro_adr + 3].copy(), sd[s.acc_adr:s.acc_adr + 3].copy()

    def wrench(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Force/torque extra ``name``: force (3,) N and torque (3,) N·m in the sensor site's frame.

        Raises:
            KeyError: the scene has no force/torque sensor of that name.
        """
        s = self.scene.wrenches[name]
        sd = self.data.sensordata
        return sd[s.force_adr:s.force_adr + 3].copy(), sd[s.torque_adr:s.torque_adr + 3].copy()

    # ---- rendering -----------------------------------------------------------------------------
    def _offscreen(self) -> _Offscreen:
        if not self.render_enabled:
            raise RuntimeError(f"this {type(self).__name__} was created with render=False")
        if self._view is None:
            self._view = _Offscreen(self.model)
        return self._view

    def _camera_id(self, camera: str) -> int:
        try:
            return int(self.model.camera(self.scene.cameras[camera]).id)
        except KeyError:
            raise KeyError(f"no camera {camera!r} in the {self.scene.builder} scene; known: {sorted(self.scene.cameras)}") from None

    def render(self, camera: str, height: int | None = None, width: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of ``camera`` (a name of the scene's ``cameras``), at
        ``height`` × ``width`` (default: the simulator's size); shadows and reflections off
        (≈ 10x faster with OSMesa).

        Raises:
            RuntimeError: the simulator was built with ``render=False``.
            KeyError: unknown camera. ValueError: larger than the model's offscreen buffer.
        """
        img, _ = self._offscreen().render(self.data, self._camera_id(camera), height or self.height,
                                          width or self.width)
        return img

    def render_depth(self, camera: str, height: int | None = None, width: int | None = None) -> np.ndarray:
        """(H, W) float32 depth of ``camera`` along its optical axis, metres, from the depth buffer;
        0 where nothing is within the far clipping plane (the sky).

        Raises:
            as :meth:`render`.
        """
        _, z = self._offscreen().render(self.data, self._camera_id(camera), height or self.height,
                                        width or self.width, rgb=False, depth=True)
        return z

    def render_rgbd(self, camera: str, height: int | None = None, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 and depth (H, W) float32 metres of ``camera`` from one render pass.

        Raises:
            as :meth:`render`.
        """
        return self._offscreen().render(self.data, self._camera_id(camera), height or self.height,
                                        width or self.width, depth=True)

    def close(self) -> None:
        """Release the GL context."""
        if self._view is not None:
            self._view.close()
            self._view = None


class G1Sim(RobotSim):
    """The default simulated G1 (:func:`~hvla_platform.lib.sim.model.build_scene`): 29 joints,
    rubber hands, cameras ``head`` and ``wrist_right``.

    Args:
        scene: a compiled G1 scene (built if omitted; ~0.1 s).
        render: create an offscreen renderer (OSMesa without a GPU).
        height, width: camera image size, pixels.
    """

    def __init__(self, scene: SimScene | None = None, *, render: bool = True,
                 height: int = CAMERA_HEIGHT, width: int = CAMERA_WIDTH):
        super().__init__(scene or build_scene(), render=render, height=height, width=width)
