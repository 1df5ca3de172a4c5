"""The scripted table-top tasks: scene sampling, instruction, and the expert's plan.

Task families: ``reach_touch`` (touch the object with the hand on its side) and ``reach_grasp``
(reach it and close the hand or gripper on it). The expert is what a teleoperator's joint targets
would look like: a hold, a minimum-jerk move of the active arm to a pre-contact pose above the
object, a minimum-jerk descent to contact, then a hold; for ``reach_grasp`` the hand also
pre-shapes open during the approach and closes on the object after the descent. Arm poses come from
damped-least-squares inverse kinematics of the tip site — position only for the humanoids,
position plus the tool axis for a gripper that must point down (Nakamura & Hanafusa 1986; Buss,
"Introduction to Inverse Kinematics with Jacobian Transpose, Pseudoinverse and Damped Least
Squares methods", 2004). Minimum-jerk interpolation: Flash & Hogan 1985, s(τ) = 10τ³ − 15τ⁴ + 6τ⁵.

Everything works on a :class:`~hvla_platform.lib.sim.scene.SimScene` (any builder); joint vectors
are in the scene's ``joint_names`` order.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from hvla_platform.lib.sim.scene import CUBE_HALF, OBJECT_COLOURS, OBJECT_SHAPES, ObjectRegion, SimScene, Timeline

TASKS = ("reach_touch", "reach_grasp")

#: Sampling region of the object centre on the table (x forward, |y| lateral), metres.
OBJECT_X_RANGE = (0.28, 0.34)
OBJECT_Y_RANGE = (0.10, 0.24)

#: Expert timeline of the G1, seconds: hold, move to pre-touch, descend to touch; then hold to the end
#: (each scene carries its own :class:`~hvla_platform.lib.sim.scene.Timeline`).
T_HOLD, T_APPROACH, T_DESCEND = 0.4, 1.8, 1.0
PRE_TOUCH_HEIGHT = 0.14
#: Success threshold: fingertip within this distance of the object's surface, metres.
SUCCESS_DISTANCE = 0.04


@dataclass(frozen=True)
class TaskSpec:
    """One sampled task instance.

    Attributes:
        colour, shape: the object's (``red``/``green``/``blue``, ``cube``/``sphere``).
        side: the arm to use: for two arms ``left`` if the object is left of the midline (y > 0)
            else ``right``; for a single arm its name (``arm``).
        object_xy: object centre on the table, metres (robot at the origin facing +x).
        instruction: the natural-language task instruction.
        task: the task family (``reach_touch`` / ``reach_grasp``).
    """

    colour: str
    shape: str
    side: str
    object_xy: tuple[float, float]
    instruction: str
    task: str = "reach_touch"


def sample_task(rng: np.random.Generator, task: str = "reach_touch", *, region: ObjectRegion | None = None,
                arms: tuple[str, ...] = ("left", "right")) -> TaskSpec:
    """Sample colour, shape, arm and object position (metres).

    Args:
        rng: the episode's generator (draws: colour, shape, side, y, x — in that order).
        task: ``reach_touch`` or ``reach_grasp``.
        region: where the object is sampled (default: the G1's, :data:`OBJECT_X_RANGE` ×
            ±:data:`OBJECT_Y_RANGE`).
        arms: the scene's arm names; with two the side follows the object (y > 0: ``left``), with
            one the lateral position is sampled over the signed ``region.y_range``.

    Raises:
        ValueError: unknown ``task``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {list(TASKS)}")
    region = region or ObjectRegion(OBJECT_X_RANGE, OBJECT_Y_RANGE)
    colour = str(rng.choice(list(OBJECT_COLOURS)))
    shape = str(rng.choice(list(OBJECT_SHAPES)))
    verb = "touch" if task == "reach_touch" else "grasp"
    if len(arms) == 1:
        y = rng.uniform(*region.y_range)
        x = rng.uniform(*region.x_range)
        return TaskSpec(colour, shape, arms[0], (float(x), float(y)), f"{verb} the {colour} {shape}", task)
    side = "left" if rng.random() < 0.5 else "right"
    y = rng.uniform(*region.y_range) * (1.0 if side == "left" else -1.0)
    x = rng.uniform(*region.x_range)
    return TaskSpec(colour, shape, side, (float(x), float(y)),
                    f"{verb} the {colour} {shape} with the {side} hand", task)


def sample_scene_task(rng: np.random.Generator, scene: SimScene, task: str | None = None) -> TaskSpec:
    """:func:`sample_task` over ``scene``'s object region and arms (``task`` defaults to the scene's)."""
    return sample_task(rng, task or scene.task, region=scene.region, arms=tuple(scene.arms))


def min_jerk(tau: np.ndarray | float) -> np.ndarray | float:
    """Minimum-jerk profile s(τ) for τ clipped to [0, 1] (Flash & Hogan 1985)."""
    t = np.clip(tau, 0.0, 1.0)
    return 10 * t**3 - 15 * t**4 + 6 * t**5


def solve_ik(scene: SimScene, side: str, target: np.ndarray, q_init: np.ndarray, *, iters: int = 200,
             damping: float = 0.05, tol: float = 2e-3, axis: np.ndarray | None = None,
             axis_weight: float = 0.3) -> tuple[np.ndarray, float]:
    """Damped-least-squares IK of arm ``side``'s tip site to ``target`` (3,) metres.

    Only that arm's joints move; joint limits are enforced by clipping every iteration.

    Args:
        axis: (3,) world direction the tip site's z axis should point along (e.g. a gripper's
            approach axis pointing down), or None for position only. The rotation about that axis
            is left free.
        axis_weight: metres per radian of axis error in the stacked error.

    Returns:
        ``(q (n,) radians in the scene's joint order, final position error in metres)``.
    """
    m = scene.model
    d = mujoco.MjData(m)
    q = q_init.astype(np.float64).copy()
    arm = scene.arm_joint_idx(side)
    dofs = scene.dof_idx[arm]
    lo, hi = scene.joint_range[arm, 0], scene.joint_range[arm, 1]
    site = scene.hand_site[side]
    jac = np.zeros((3, m.nv))
    jacr = np.zeros((3, m.nv)) if axis is not None else None
    want = None if axis is None else np.asarray(axis, float) / np.linalg.norm(axis)
    err = np.inf
    for _ in range(iters):
        d.qpos[scene.qpos_idx] = q
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        pos = d.site_xpos[site]
        e = target - pos
        err = float(np.linalg.norm(e))
        mujoco.mj_jacSite(m, d, jac, jacr, site)
        j = jac[:, dofs]
        if want is not None:
            z = d.site_xmat[site].reshape(3, 3)[:, 2]
            e_rot = np.cross(z, want)  # ≈ angle × axis of the rotation taking z onto want
            if err < tol and np.linalg.norm(e_rot) < 0.02:
                break
            p = np.eye(3) - np.outer(z, z)  # the rotation about z itself is free
            j = np.vstack([j, axis_weight * (p @ jacr[:, dofs])])
            e = np.concatenate([e, axis_weight * e_rot])
        elif err < tol:
            break
        dq = j.T @ np.linalg.solve(j @ j.T + damping**2 * np.eye(len(e)), e)
        q[arm] = np.clip(q[arm] + np.clip(dq, -0.2, 0.2), lo, hi)
    return q, err


@dataclass
class ExpertPlan:
    """Joint targets of the scripted expert as a function of time.

    Attributes:
        q_waypoints: (K, n) float64 joint targets (radians, the scene's joint order): nominal,
            [lift via-point,] pre-contact, contact (K = 3, or 4 with a lift).
        ik_error_m: tip position error of the pre-contact and contact IK solutions, metres.
        arm_idx: (n_arm,) int, the joints :meth:`targets` returns (the scene's ``arm_idx``; for the
            G1 the 14 ``G1_ARM_JOINTS``).
        grip_idx: (n_grip,) int, the active hand's / gripper's joints.
        grip_relaxed, grip_open, grip_closed: (n_grip,) float64 radians.
        timeline: the phases, seconds.
        closes: True for ``reach_grasp`` (the grip closes after the descent).
    """

    q_waypoints: np.ndarray
    ik_error_m: tuple[float, float]
    arm_idx: np.ndarray
    grip_idx: np.ndarray
    grip_relaxed: np.ndarray
    grip_open: np.ndarray
    grip_closed: np.ndarray
    timeline: Timeline
    closes: bool

    @property
    def waypoints(self) -> np.ndarray:
        """(3, n_arm) float64 arm targets (radians, ``arm_idx`` order): nominal, pre-contact, contact."""
        return self.q_waypoints[[0, -2, -1]][:, self.arm_idx]

    def _segments(self) -> list[float]:
        tl = self.timeline
        return ([tl.lift] if len(self.q_waypoints) == 4 else []) + [tl.approach, tl.descend]

    def joint_targets(self, t: float) -> np.ndarray:
        """(n,) float64 targets of every joint at ``t`` seconds since the episode start, radians:
        minimum-jerk moves between consecutive waypoints after the initial hold."""
        tl = self.timeline
        seg = self._segments()
        w = self.q_waypoints
        start = tl.hold
        if t < start:
            q = w[0].copy()
        else:
            q = w[-1].copy()
            for k, length in enumerate(seg):
                if t < start + length or k == len(seg) - 1:
                    q = w[k] + (w[k + 1] - w[k]) * min_jerk((t - start) / length)
                    break
                start += length
        if self.closes and len(self.grip_idx):
            reach = sum(seg[:-1])  # lift + approach
            g = self.grip_relaxed + (self.grip_open - self.grip_relaxed) * min_jerk((t - tl.hold) / reach)
            t_close = tl.hold + sum(seg)
            if t >= t_close:
                g = self.grip_open + (self.grip_closed - self.grip_open) * min_jerk((t - t_close) / tl.close)
            q[self.grip_idx] = g
        return q

    def targets(self, t: float) -> np.ndarray:
        """(n_arm,) float64 arm targets at time ``t`` seconds (``arm_idx`` order), radians."""
        return self.joint_targets(t)[self.arm_idx]

    @property
    def duration_s(self) -> float:
        """Time at which the contact pose is reached (and, for a grasp, the grip closed), seconds."""
        return self.timeline.hold + sum(self._segments()) + (self.timeline.close if self.closes else 0.0)


def plan_expert(scene: SimScene, task: TaskSpec) -> ExpertPlan:
    """Solve the pre-contact and contact poses (and the lift via-point, when the scene has one) for
    ``task`` and return the plan.

    Contact is the top of the object (plus ``scene.contact_offset``) for ``reach_touch`` and for
    humanoid hands; a gripper with a tool axis grasps around the object's centre.
    """
    arm = scene.arms[task.side]
    obj = np.array([task.object_xy[0], task.object_xy[1], scene.table.top_z + CUBE_HALF])
    grasp_centre = arm.tip_axis is not None and task.task == "reach_grasp"
    contact = obj + (np.zeros(3) if grasp_centre else np.array([0.0, 0.0, CUBE_HALF])) + np.array(scene.contact_offset)
    back = 0.0 if arm.tip_axis is not None else -0.03
    pre = contact + np.array([back, 0.0, scene.pre_contact_height])
    poses = [scene.nominal_q]
    q_start = scene.nominal_q
    if scene.lift_tip is not None:
        x, lateral, z = scene.lift_tip
        sign = 1.0 if task.side == "left" else -1.0 if task.side == "right" else 0.0
        q_start, _ = solve_ik(scene, task.side, np.array([x, sign * lateral, z]), scene.nominal_q, axis=arm.tip_axis)
        poses.append(q_start)
    q_pre, e_pre = solve_ik(scene, task.side, pre, q_start, axis=arm.tip_axis)
    q_touch, e_touch = solve_ik(scene, task.side, contact, q_pre, axis=arm.tip_axis)
    w = np.stack(poses + [q_pre, q_touch])
    w[1:, arm.grip_idx] = scene.nominal_q[arm.grip_idx]
    return ExpertPlan(q_waypoints=w, ik_error_m=(e_pre, e_touch), arm_idx=scene.arm_idx, grip_idx=arm.grip_idx,
                      grip_relaxed=arm.grip_relaxed, grip_open=arm.grip_open, grip_closed=arm.grip_closed,
                      timeline=scene.timeline, closes=task.task == "reach_grasp")
