"""The ``hvla_g1_reach`` inspect-robots embodiment: the simulated Unitree G1 reach-and-touch task
(:class:`~hvla_platform.lib.sim.env.ReachEnv`) behind the robot client's action guard.

- Reset: the simulator samples the task from the scene's ``init_seed`` (the seed of
  :mod:`.task`'s scenes; inspect-robots' derived trial seed only when the scene has none), so a
  scene is the same object, colour, shape and hand on every run. One environment serves every
  trial: ``ReachEnv.reset`` is a full MuJoCo reset (``mj_resetData``), and trajectories are
  bitwise those of a fresh environment (hvla_platform_tests/lib/evaluation/test_inspect_robots_match.py).
- Observation: the camera images as rendered (``head``, ``wrist_right``: (96, 128, 3) uint8), one
  state key per G1 joint (``G1_JOINTS`` names, (1,) float32 radians), the instruction.
- Step: the action is 14 absolute arm joint targets, radians, ``G1_ARM_JOINTS`` order. Before the
  simulator sees it, :class:`~hvla_platform.lib.serving.safety.ActionGuard` clips it to the arm
  joint limits and to ``max_step_rad`` from the previous command (the measured arm position at the
  start of a trial) — the guard of ``hvla deploy``'s robot client, which no harness setting turns
  off. The trial terminates with ``"success"`` once the active hand touched the object
  (``ReachEnv.success``); ``StepResult.info`` carries ``success``, ``clipped``, ``sim_time_s`` and
  ``env_step_ms``.
- Robot safety log (optional :class:`~hvla_platform.lib.serving.safety.SafetyLog`): the robot
  client's ``mode running`` / ``limit`` / ``stop`` lines per trial.

Unlike ``hvla deploy``'s loop, a trial whose task is already solved at reset still executes one
step (inspect-robots' rollout always steps at least once); the reach task never starts solved.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
from inspect_robots import (
    Action, ActionSemantics, Box, CameraSpec, EmbodimentBase, EmbodimentInfo, Observation, ObservationSpace,
    Scene, StateField, StateSpec, StepResult, TaskEnvelope)
from inspect_robots.embodiment import PRIVILEGED_SUCCESS, RESETTABLE, SEEDABLE

from hvla_platform.lib.evaluation.inspect_robots.errors import PluginConfigError
from hvla_platform.lib.evaluation.inspect_robots.names import EMBODIMENT, TARGET_KIND, TASK
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.serving.safety import ActionGuard, SafetyLog

DOCS = ("Simulated Unitree G1 (MuJoCo) reaching to touch a coloured object on a table with the hand the "
        "instruction names. Actions: 14 absolute arm joint position targets in radians, G1_ARM_JOINTS "
        "order (left arm then right arm: shoulder pitch/roll/yaw, elbow, wrist roll/pitch/yaw), clipped to "
        "the joint limits and to a per-step change limit. State: one key per G1 joint, radians.")


class G1ReachEmbodiment(EmbodimentBase):
    """The simulated G1 reach task as an inspect-robots embodiment.

    Args:
        env_factory: builds the environment (ReachEnv's interface: ``reset(seed)``, ``step((14,)
            radians)``, ``success``, ``task``, ``close()``, observations with a (29,) ``state`` in
            ``G1_JOINTS`` order and ``images``); default ``ReachEnv(control_hz=control_hz)``. It is
            built once, here.
        arm_limits: (lower (14,), upper (14,)) arm joint limits, radians, ``G1_ARM_JOINTS`` order;
            default the simulated G1's (:func:`~hvla_platform.lib.sim.env.arm_joint_limits`).
        max_step_rad: largest change of a joint target per control step, radians.
        control_hz: control rate, Hz (the environment's ``control_hz`` when it has one).
        safety_log: the robot safety log (None: none); closed by :meth:`close` only when
            ``own_safety_log``.
        own_safety_log: close ``safety_log`` with the embodiment.
        probe_seed: seed of the reset that reads the cameras' image shapes at construction.

    Raises:
        ValueError: bad limits or ``max_step_rad`` (:class:`ActionGuard`), or an environment whose
            state is not the 29 G1 joints.
    """

    def __init__(self, env_factory: Callable[[], Any] | None = None, *,
                 arm_limits: tuple[Sequence[float], Sequence[float]] | None = None,
                 max_step_rad: float = 0.25, control_hz: float = 20.0, safety_log: SafetyLog | None = None,
                 own_safety_log: bool = False, probe_seed: int = 0):
        if arm_limits is None or env_factory is None:
            # deferred: the simulator imports mujoco and loads the G1 model; the Dagster code server
            # imports this module (through the eval report) only to list assets
            from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits  # noqa: PLC0415

            arm_limits = arm_limits if arm_limits is not None else arm_joint_limits()
            env_factory = env_factory or (lambda: ReachEnv(control_hz=control_hz))
        lower = np.asarray(arm_limits[0], dtype=np.float64)
        upper = np.asarray(arm_limits[1], dtype=np.float64)
        self._guard = ActionGuard(lower, upper, max_step_rad=max_step_rad)
        self._slog = safety_log
        self._own_slog = own_safety_log
        self._env = env_factory()
        try:
            probe = self._env.reset(int(probe_seed))
            shape = np.asarray(probe["state"]).shape
            if shape != (len(G1_JOINTS),):
                raise ValueError(f"environment state has shape {shape}, expected the {len(G1_JOINTS)} G1 "
                                 "joints")
        except BaseException:
            self._env.close()
            raise
        self._arm_idx = np.asarray([G1_JOINTS.index(n) for n in G1_ARM_JOINTS], dtype=np.int64)
        cameras = tuple(CameraSpec(cam, *np.asarray(img).shape)
                        for cam, img in sorted(probe["images"].items()))
        self.info = EmbodimentInfo(
            name=EMBODIMENT,
            action_space=Box((len(G1_ARM_JOINTS),), low=lower, high=upper,
                             semantics=ActionSemantics("joint_pos", dim_labels=tuple(G1_ARM_JOINTS),
                                                       max_step=(float(max_step_rad),) * len(G1_ARM_JOINTS))),
            observation_space=ObservationSpace(
                cameras=cameras,
                state=StateSpec(tuple(StateField(n, (1,), "rad", "float32") for n in G1_JOINTS))),
            control_hz=float(getattr(self._env, "control_hz", control_hz)),
            is_simulated=True,
            capabilities=frozenset({SEEDABLE, RESETTABLE, PRIVILEGED_SUCCESS}),
            supported_target_kinds=frozenset({TARGET_KIND}),
            docs=DOCS,
            environment_id=f"hvla {type(self._env).__name__}")
        self._max_steps: int | None = None
        self._trial = -1
        self._open = False
        self._steps = 0
        self._clipped = 0
        self._sim_time = float("nan")
        self._previous: np.ndarray | None = None

    # ---- inspect-robots hooks ---------------------------------------------------------------
    def bind_task(self, envelope: TaskEnvelope) -> None:
        """Learn the step budget (to write a trial's ``timeout`` stop line when it is reached)."""
        self._max_steps = int(envelope.max_steps)

    def reset(self, scene: Scene, *, seed: int | None = None) -> Observation:
        """Reset the simulator with the scene's ``init_seed`` (else ``seed``); return the first observation.

        Raises:
            ValueError: neither seed is given, or the scene's instruction is not the task the
                simulator samples for that seed (the G1 reach task is chosen by the seed: use the
                ``hvla_reach_touch`` task, whose scenes carry the seed of each instruction).
        """
        self._close_trial("interrupted")
        env_seed = scene.init_seed if scene.init_seed is not None else seed
        if env_seed is None:
            raise ValueError(f"scene {scene.id!r} has no seed; the G1 reach task is sampled from one")
        env_obs = self._env.reset(int(env_seed))
        task = str(env_obs.get("task") or self._env.task)
        if scene.instruction and scene.instruction != task:
            raise ValueError(f"scene {scene.id!r} asks {scene.instruction!r} but seed {env_seed} gives the "
                             f"task {task!r}; the simulated G1's task is chosen by the seed: use the {TASK} "
                             "task")
        self._trial += 1
        self._open, self._steps, self._clipped = True, 0, 0
        self._sim_time = float(env_obs.get("time_s", float("nan")))
        self._previous = np.asarray(env_obs["state"], dtype=np.float32)[self._arm_idx]
        if self._slog:
            self._slog.mode("running", trial=self._trial, seed=int(env_seed), task=task)
        return self._observation(env_obs, task)

    def step(self, action: Action) -> StepResult:
        """Guard, then execute one control period of ``action`` (14 arm targets, radians).

        Raises:
            RuntimeError: no trial is running (call :meth:`reset`).
            ValueError: the action has another shape or non-finite values (a fault: inspect-robots
                halts the evaluation).
        """
        if not self._open or self._previous is None:
            raise RuntimeError("reset(scene) must start a trial before step()")
        command, hit = self._guard.filter(action.data, self._previous)
        if hit:
            self._clipped += 1
            if self._slog:
                self._slog.write("limit", trial=self._trial, step=self._steps,
                                 joints=[G1_ARM_JOINTS[k] for k in hit["joints"]],
                                 max_excess_rad=round(hit["max_excess_rad"], 5))
        t0 = time.perf_counter()
        env_obs = self._env.step(command)
        env_ms = (time.perf_counter() - t0) * 1000.0
        self._previous = command
        self._steps += 1
        self._sim_time = float(env_obs.get("time_s", float("nan")))
        success = bool(self._env.success)
        task = str(env_obs.get("task") or self._env.task)
        info = {"success": success, "clipped": hit is not None, "sim_time_s": self._sim_time,
                "env_step_ms": env_ms}
        if success:
            self._close_trial("success")
        elif self._max_steps is not None and self._steps >= self._max_steps:
            self._close_trial("timeout")
        return StepResult(observation=self._observation(env_obs, task), terminated=success,
                          termination_reason="success" if success else None, info=info)

    def close(self) -> None:
        """Close the environment (and the safety log when owned); an unfinished trial's stop line
        says ``interrupted``."""
        self._close_trial("interrupted")
        self._env.close()
        if self._slog and self._own_slog:
            self._slog.close()

    # ---- helpers ----------------------------------------------------------------------------
    def _observation(self, env_obs: dict, task: str) -> Observation:
        state = np.asarray(env_obs["state"], dtype=np.float32)
        return Observation(images=dict(env_obs.get("images") or {}),
                           state={n: state[i:i + 1] for i, n in enumerate(G1_JOINTS)}, instruction=task,
                           state_time=float(env_obs.get("time_s", 0.0)))

    def _close_trial(self, reason: str) -> None:
        if not self._open:
            return
        self._open = False
        if self._slog:
            self._slog.write("stop", trial=self._trial, reason=reason, steps=self._steps,
                             sim_time_s=round(self._sim_time, 4), clipped_steps=self._clipped)


def g1_reach_embodiment(control_hz: float = 20.0, max_step_rad: float = 0.25,
                        safety_log: str | None = None) -> G1ReachEmbodiment:
    """Registry factory of ``hvla_g1_reach`` (``inspect-robots run --embodiment hvla_g1_reach -E
    max_step_rad=0.25 -E safety_log=robot_safety.jsonl``): a fresh ``ReachEnv`` with the simulated
    G1's arm limits; ``safety_log`` is a JSONL path (appended to). See :class:`G1ReachEmbodiment`.

    Raises:
        PluginConfigError: ``max_step_rad`` ≤ 0 or ``control_hz`` ≤ 0.
    """
    if not max_step_rad > 0 or not control_hz > 0:
        raise PluginConfigError(f"{EMBODIMENT}: max_step_rad and control_hz must be > 0, got {max_step_rad}, "
                                f"{control_hz}")
    slog = SafetyLog(safety_log) if safety_log else None
    return G1ReachEmbodiment(control_hz=control_hz, max_step_rad=max_step_rad, safety_log=slog,
                             own_safety_log=slog is not None)
