"""Physics, joint control, sensing and rendering of the simulated G1 (MuJoCo).

The Menagerie G1's actuators are position servos (``kp = 500``, with damping): their ``ctrl`` is
a joint position target in radians, so they are the joint PD controllers; legs and waist are held
at :data:`~hvla_platform.lib.sim.model.NOMINAL_POSE`, the arms track commanded targets.
"""

from __future__ import annotations

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.contract import CAMERA_HEIGHT, CAMERA_WIDTH
from hvla_platform.lib.sim.model import CAMERA_NAMES, OBJECT_COLOURS, TABLE_TOP_Z, CUBE_HALF, G1Scene, build_scene


class G1Sim:
    """One simulated G1 with a table and an object.

    Args:
        scene: a compiled :class:`G1Scene` (built if omitted; ~0.1 s).
        render: create an offscreen renderer (OSMesa without a GPU).
        height, width: camera image size, pixels.
    """

    def __init__(self, scene: G1Scene | None = None, *, render: bool = True,
                 height: int = CAMERA_HEIGHT, width: int = CAMERA_WIDTH):
        self.scene = scene or build_scene()
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self._renderer = mujoco.Renderer(self.model, height, width) if render else None
        self.object_pos = np.zeros(3)
        self.object_shape = "cube"

    # ---- scene ---------------------------------------------------------------------------------
    def reset(self, object_xy: tuple[float, float], colour: str, shape: str) -> None:
        """Put the robot in its nominal pose at rest and the object at ``object_xy`` (m) on the table."""
        mujoco.mj_resetData(self.model, self.data)
        sc = self.scene
        self.data.qpos[sc.qpos_idx] = sc.nominal_q
        self.data.ctrl[sc.act_idx] = sc.nominal_q
        self.object_shape = shape
        self.object_pos = np.array([object_xy[0], object_xy[1], TABLE_TOP_Z + CUBE_HALF])
        self.data.mocap_pos[0] = self.object_pos
        rgba = np.array(OBJECT_COLOURS[colour], dtype=np.float32)
        for name, gid in sc.object_geom.items():
            self.model.geom_rgba[gid] = rgba if name == shape else np.array([0, 0, 0, 0], np.float32)
            self.model.geom_contype[gid] = 1 if name == shape else 0
            self.model.geom_conaffinity[gid] = 1 if name == shape else 0
        mujoco.mj_forward(self.model, self.data)

    # ---- control -------------------------------------------------------------------------------
    def set_arm_targets(self, targets: np.ndarray) -> None:
        """Command the 14 arm joints (``G1_ARM_JOINTS`` order), radians, clipped to joint limits."""
        sc = self.scene
        t = np.clip(np.asarray(targets, np.float64), sc.joint_range[sc.arm_idx, 0], sc.joint_range[sc.arm_idx, 1])
        self.data.ctrl[sc.act_idx[sc.arm_idx]] = t

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
        """(29,) float64 joint positions, radians, ``G1_JOINTS`` order."""
        return self.data.qpos[self.scene.qpos_idx].copy()

    def joint_velocities(self) -> np.ndarray:
        """(29,) float64 joint velocities, rad/s."""
        return self.data.qvel[self.scene.dof_idx].copy()

    def hand_position(self, side: str) -> np.ndarray:
        """(3,) world position of the ``side`` fingertip site, metres."""
        return self.data.site_xpos[self.scene.hand_site[side]].copy()

    def hand_object_distance(self, side: str) -> float:
        """Distance from the fingertip site to the object's surface (approximated as its bounding
        sphere of radius ``CUBE_HALF``), metres; ≤ 0 means touching."""
        return float(np.linalg.norm(self.hand_position(side) - self.object_pos) - CUBE_HALF)

    def render(self, camera: str) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of ``camera`` (``head`` or ``wrist_right``); shadows and
        reflections off (≈ 10x faster with OSMesa).

        Raises:
            RuntimeError: the simulator was built with ``render=False``.
        """
        if self._renderer is None:
            raise RuntimeError("this G1Sim was created with render=False")
        self._renderer.update_scene(self.data, camera=CAMERA_NAMES[camera])
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self._renderer.render().copy()

    def close(self) -> None:
        """Release the renderer's GL context."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
