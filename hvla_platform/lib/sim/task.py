"""The scripted reach-and-touch task: scene sampling, instruction, and the expert's plan.

The expert is what a teleoperator's arm targets would look like for this task: a hold, a
minimum-jerk move of the active arm to a pre-touch pose above the object, a minimum-jerk descent
to touch its top, then a hold. Arm poses come from damped-least-squares inverse kinematics of the
fingertip site (Nakamura & Hanafusa 1986; Buss, "Introduction to Inverse Kinematics with Jacobian
Transpose, Pseudoinverse and Damped Least Squares methods", 2004). Minimum-jerk interpolation:
Flash & Hogan 1985, s(τ) = 10τ³ − 15τ⁴ + 6τ⁵.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.sim.model import CUBE_HALF, OBJECT_COLOURS, OBJECT_SHAPES, TABLE_TOP_Z, G1Scene

TASKS = ("reach_touch",)

#: Sampling region of the object centre on the table (x forward, |y| lateral), metres.
OBJECT_X_RANGE = (0.28, 0.34)
OBJECT_Y_RANGE = (0.10, 0.24)

#: Expert timeline, seconds: hold, move to pre-touch, descend to touch; then hold to the end.
T_HOLD, T_APPROACH, T_DESCEND = 0.4, 1.8, 1.0
PRE_TOUCH_HEIGHT = 0.14
#: Success threshold: fingertip within this distance of the object's surface, metres.
SUCCESS_DISTANCE = 0.04


@dataclass(frozen=True)
class TaskSpec:
    """One sampled task instance.

    Attributes:
        colour, shape: the object's (``red``/``green``/``blue``, ``cube``/``sphere``).
        side: the hand to use, ``left`` if the object is left of the midline (y > 0) else ``right``.
        object_xy: object centre on the table, metres (robot at the origin facing +x).
        instruction: the natural-language task instruction.
    """

    colour: str
    shape: str
    side: str
    object_xy: tuple[float, float]
    instruction: str


def sample_task(rng: np.random.Generator, task: str = "reach_touch") -> TaskSpec:
    """Sample colour, shape, side and position.

    Raises:
        ValueError: unknown ``task``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {list(TASKS)}")
    colour = str(rng.choice(list(OBJECT_COLOURS)))
    shape = str(rng.choice(list(OBJECT_SHAPES)))
    side = "left" if rng.random() < 0.5 else "right"
    y = rng.uniform(*OBJECT_Y_RANGE) * (1.0 if side == "left" else -1.0)
    x = rng.uniform(*OBJECT_X_RANGE)
    return TaskSpec(colour, shape, side, (float(x), float(y)),
                    f"touch the {colour} {shape} with the {side} hand")


def min_jerk(tau: np.ndarray | float) -> np.ndarray | float:
    """Minimum-jerk profile s(τ) for τ clipped to [0, 1] (Flash & Hogan 1985)."""
    t = np.clip(tau, 0.0, 1.0)
    return 10 * t**3 - 15 * t**4 + 6 * t**5


def solve_ik(scene: G1Scene, side: str, target: np.ndarray, q_init: np.ndarray, *, iters: int = 200,
             damping: float = 0.05, tol: float = 2e-3) -> tuple[np.ndarray, float]:
    """Damped-least-squares IK of the ``side`` fingertip to ``target`` (3,) metres.

    Only the 7 joints of that arm move; joint limits are enforced by clipping every iteration.

    Returns:
        ``(q (29,) radians in G1_JOINTS order, final position error in metres)``.
    """
    m = scene.model
    d = mujoco.MjData(m)
    q = q_init.astype(np.float64).copy()
    arm = scene.arm_joint_idx(side)
    dofs = scene.dof_idx[arm]
    lo, hi = scene.joint_range[arm, 0], scene.joint_range[arm, 1]
    jac = np.zeros((3, m.nv))
    err = np.inf
    for _ in range(iters):
        d.qpos[scene.qpos_idx] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        pos = d.site_xpos[scene.hand_site[side]]
        e = target - pos
        err = float(np.linalg.norm(e))
        if err < tol:
            break
        mujoco.mj_jacSite(m, d, jac, None, scene.hand_site[side])
        j = jac[:, dofs]
        dq = j.T @ np.linalg.solve(j @ j.T + damping**2 * np.eye(3), e)
        q[arm] = np.clip(q[arm] + np.clip(dq, -0.2, 0.2), lo, hi)
    return q, err


@dataclass
class ExpertPlan:
    """Arm joint targets of the scripted expert as a function of time.

    Attributes:
        waypoints: (3, 14) arm targets (radians, ``G1_ARM_JOINTS`` order): nominal, pre-touch, touch.
        ik_error_m: fingertip position error of the pre-touch and touch IK solutions, metres.
    """

    waypoints: np.ndarray
    ik_error_m: tuple[float, float]

    def targets(self, t: float) -> np.ndarray:
        """(14,) float64 arm targets at time ``t`` seconds since the episode start."""
        w0, w1, w2 = self.waypoints
        if t < T_HOLD:
            return w0.copy()
        if t < T_HOLD + T_APPROACH:
            return w0 + (w1 - w0) * min_jerk((t - T_HOLD) / T_APPROACH)
        return w1 + (w2 - w1) * min_jerk((t - T_HOLD - T_APPROACH) / T_DESCEND)

    @property
    def duration_s(self) -> float:
        """Time at which the touch pose is reached, seconds."""
        return T_HOLD + T_APPROACH + T_DESCEND


def plan_expert(scene: G1Scene, task: TaskSpec) -> ExpertPlan:
    """Solve the pre-touch and touch poses for ``task`` and return the plan."""
    arm_in_joints = [G1_JOINTS.index(n) for n in G1_ARM_JOINTS]
    obj = np.array([task.object_xy[0], task.object_xy[1], TABLE_TOP_Z + CUBE_HALF])
    top = obj + np.array([0.0, 0.0, CUBE_HALF + 0.005])
    q_pre, e_pre = solve_ik(scene, task.side, top + np.array([-0.03, 0.0, PRE_TOUCH_HEIGHT]), scene.nominal_q)
    q_touch, e_touch = solve_ik(scene, task.side, top, q_pre)
    w = np.stack([scene.nominal_q[arm_in_joints], q_pre[arm_in_joints], q_touch[arm_in_joints]])
    return ExpertPlan(waypoints=w, ik_error_m=(e_pre, e_touch))
