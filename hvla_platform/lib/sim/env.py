"""Closed-loop environment: the recorder's G1, task and cameras, driven by a policy's arm targets."""

from __future__ import annotations

import numpy as np

from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS
from hvla_platform.lib.sim.core import G1Sim
from hvla_platform.lib.sim.model import build_scene
from hvla_platform.lib.sim.task import SUCCESS_DISTANCE, ExpertPlan, TaskSpec, plan_expert, sample_task


def arm_joint_limits() -> tuple[np.ndarray, np.ndarray]:
    """(lower (14,), upper (14,)) float64 arm joint limits of the simulated G1, radians,
    ``G1_ARM_JOINTS`` order (from the Menagerie MJCF)."""
    sc = build_scene()
    return sc.joint_range[sc.arm_idx, 0].copy(), sc.joint_range[sc.arm_idx, 1].copy()


class ReachEnv:
    """The reach-and-touch task as an environment stepped at ``control_hz``.

    Observation dict: ``state`` (29,) float32 joint positions (radians, ``G1_JOINTS`` order),
    ``velocity`` (29,) float32 rad/s, ``images`` {camera: (96, 128, 3) uint8} for ``head`` and
    ``wrist_right`` (empty when ``render=False``), ``task`` str, ``time_s`` float.

    Args:
        control_hz: policy rate, Hz; each :meth:`step` advances ``1 / control_hz`` seconds, during
            which the arm command is ramped linearly from the previous target to the new one (as a
            joint-level controller interpolates low-rate policy commands).
        render: render camera images in observations.
        task: task family (``reach_touch``).
    """

    def __init__(self, *, control_hz: float = 20.0, render: bool = True, task: str = "reach_touch"):
        self.sim = G1Sim(render=render)
        self.control_hz = float(control_hz)
        self.render_images = render
        self.task_name = task
        self._substeps = max(1, int(round(1.0 / (control_hz * self.sim.timestep))))
        self._spec: TaskSpec | None = None
        self._plan: ExpertPlan | None = None
        self._success = False
        self.min_distance_m = float("inf")
        self._last_targets: np.ndarray | None = None

    def reset(self, seed: int) -> dict:
        """Sample a task with ``numpy.random.default_rng(seed)`` and return the first observation."""
        self._spec = sample_task(np.random.default_rng(seed), self.task_name)
        self._plan = plan_expert(self.sim.scene, self._spec)
        self.sim.reset(self._spec.object_xy, self._spec.colour, self._spec.shape)
        self._success = False
        self.min_distance_m = float("inf")
        self._last_targets = None
        self._update_success()
        return self._observation()

    def step(self, arm_targets: np.ndarray) -> dict:
        """Command ``arm_targets`` (14,) radians (``G1_ARM_JOINTS`` order) for one control period.

        Raises:
            RuntimeError: :meth:`reset` was not called. ValueError: wrong shape or non-finite.
        """
        if self._spec is None:
            raise RuntimeError("call reset(seed) before step()")
        a = np.asarray(arm_targets, dtype=np.float64)
        if a.shape != (14,) or not np.all(np.isfinite(a)):
            raise ValueError(f"arm_targets must be 14 finite values, got shape {a.shape}")
        # Like a robot's joint-level controller, ramp the position command linearly from the
        # previous target to the new one over the control period instead of jumping to it.
        prev = self._last_targets if self._last_targets is not None else a
        for k in range(1, self._substeps + 1):
            self.sim.set_arm_targets(prev + (a - prev) * (k / self._substeps))
            self.sim.step()
            self._update_success()
        self._last_targets = a
        return self._observation()

    def expert_action(self) -> np.ndarray:
        """(14,) float32 arm targets the scripted expert would command now."""
        if self._plan is None:
            raise RuntimeError("call reset(seed) first")
        return self._plan.targets(self.sim.time).astype(np.float32)

    def _update_success(self) -> None:
        d = self.sim.hand_object_distance(self._spec.side)
        self.min_distance_m = min(self.min_distance_m, d)
        self._success = self._success or d < SUCCESS_DISTANCE

    def _observation(self) -> dict:
        images = {cam: self.sim.render(cam) for cam in CAMERA_TOPICS} if self.render_images else {}
        return {
            "state": self.sim.joint_positions().astype(np.float32),
            "velocity": self.sim.joint_velocities().astype(np.float32),
            "images": images,
            "task": self._spec.instruction,
            "time_s": self.sim.time,
        }

    @property
    def success(self) -> bool:
        """True once the active hand's fingertip came within ``SUCCESS_DISTANCE`` of the object."""
        return self._success

    @property
    def task(self) -> str:
        """The current instruction."""
        return self._spec.instruction if self._spec else ""

    @property
    def spec(self) -> TaskSpec | None:
        """The sampled task of the current episode."""
        return self._spec

    def close(self) -> None:
        """Release the renderer."""
        self.sim.close()
