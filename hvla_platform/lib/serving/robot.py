"""The robot side of a deployment: a policy-server client driving a robot, with safety.

Used by ``hvla deploy`` (the simulated G1 as the robot) and by the ``eval_report`` asset's
closed-loop trials, which connect to a policy server exactly as a robot does — so what is
evaluated is what is deployed. Loop (openpi-style action chunking, seed 003's "executes the first N
actions of each chunk open-loop, re-queries"): see
:func:`hvla_platform.lib.serving.control_loop.run_closed_loop`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from hvla_platform.lib.serving.control_loop import run_closed_loop
from hvla_platform.lib.serving.safety import ActionGuard, EmergencyStop, SafetyLog


@dataclass(frozen=True)
class RobotConfig:
    """Robot-side control settings.

    Attributes:
        episodes: trials to run (each resets the robot's task with ``seed + i``).
        seed: base seed of the tasks.
        max_steps: control steps per trial before stopping with ``timeout``.
        replan_every: actions executed open-loop from each chunk before re-querying (N).
        max_step_rad: largest change of a joint target per control step, radians.
        seeds: explicit seed of each trial (``len(seeds) == episodes``), e.g. the evaluation's
            in-/out-of-distribution plan; None: ``seed + i``.
        query_timeout_s: deadline of one policy query, seconds (``hvla deploy``: :func:`query_deadline_s`);
            past it the robot, holding its last command, stops as a fault. None: no deadline.
        max_clipped_steps: consecutive clipped commands that stop the robot as a fault
            (``hvla deploy``: :data:`DEFAULT_MAX_CLIPPED_STEPS`); None: the guard never escalates.
    """

    episodes: int = 1
    seed: int = 2000
    max_steps: int = 140
    replan_every: int = 5
    max_step_rad: float = 0.25
    seeds: tuple[int, ...] | None = None
    query_timeout_s: float | None = None
    max_clipped_steps: int | None = None


QUERY_DEADLINE_FLOOR_S = 0.5
"""Shortest default query deadline, seconds: a short chunk at a high rate (e.g. 1 action at
50 Hz = 20 ms) would otherwise fault on one scheduling hiccup of a loaded host (the loopback round
trip's p99 under 8 × 50 Hz clients is ~5 ms; docs/serving.md)."""

DEFAULT_MAX_CLIPPED_STEPS = 10
"""Consecutive clipped commands before the guard stops the robot: 0.5 s at 20 Hz. A target that
jumps is clipped for a few steps while the speed limit (0.25 rad/step) ramps the arm there, 2.5 rad
in 10 steps; the scripted expert never exceeds 0.044 rad/step. Ten clipped commands in a row mean
the policy keeps asking for what the robot may not do (beyond a joint limit, or ever faster)."""


def query_deadline_s(action_horizon: int, control_hz: float,
                     floor_s: float = QUERY_DEADLINE_FLOOR_S) -> float:
    """Default deadline of one policy query: ``max(floor_s, action_horizon / control_hz)`` seconds.

    A chunk holds ``action_horizon`` actions of one control period (``1 / control_hz``) each; a
    reply later than the whole chunk's duration means the server cannot keep up with the robot
    even if every action of the previous chunk were executed.

    Raises:
        ValueError: ``action_horizon`` < 1 or ``control_hz`` <= 0.
    """
    if action_horizon < 1 or not control_hz > 0:
        raise ValueError(f"action_horizon must be >= 1 and control_hz > 0, got {action_horizon}, "
                         f"{control_hz}")
    return max(float(floor_s), action_horizon / control_hz)


def run_robot(policy_infer: Callable[[dict], Mapping[str, Any]], server_metadata: Mapping[str, Any],
              env_factory: Callable[[], Any], arm_limits: tuple[Sequence[float], Sequence[float]], cfg: RobotConfig,
              *, estop: EmergencyStop | None = None, safety_log: SafetyLog | None = None,
              stop_on_fault: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``cfg.episodes`` trials of the robot against a policy.

    Args:
        policy_infer: ``obs -> {"actions": (H, A)}`` — a :class:`~hvla_platform.lib.serving.client.PolicyClient`'s
            ``infer`` (or openpi-client's ``WebsocketClientPolicy.infer``).
        server_metadata: the dict the server sent after the handshake (``state_names``,
            ``action_names``, ``cameras``, ``action_horizon``).
        env_factory: builds the robot (``ReachEnv``) for one trial.
        arm_limits: (lower, upper) joint limits of the commanded joints, radians, env action order.
        cfg: control settings.
        estop: emergency stop checked before every command and while waiting for the policy; its
            stop file is watched by a thread during the run (:meth:`EmergencyStop.start_watching`).
        safety_log: the robot safety log.
        stop_on_fault: a server error or invalid command stops the robot (``fault``) instead of raising.

    Returns:
        :func:`run_closed_loop`'s result.

    Raises:
        ValueError: the server's metadata lacks what the robot needs, or ``replan_every`` exceeds
            the server's action horizon.
    """
    try:
        horizon = int(server_metadata["action_horizon"])
        names = {k: list(server_metadata[k]) for k in ("state_names", "action_names", "cameras")}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"server metadata lacks {exc}; is this an hvla policy server?") from exc
    if not 1 <= cfg.replan_every <= horizon:
        raise ValueError(f"replan_every={cfg.replan_every} must be between 1 and the server's action horizon {horizon}")
    guard = ActionGuard(arm_limits[0], arm_limits[1], max_step_rad=cfg.max_step_rad)
    if safety_log:
        safety_log.mode("ready", checkpoint=server_metadata.get("checkpoint"), action_horizon=horizon,
                        replan_every=cfg.replan_every, max_step_rad=cfg.max_step_rad, episodes=cfg.episodes,
                        query_timeout_s=cfg.query_timeout_s, max_clipped_steps=cfg.max_clipped_steps)
    if estop is not None:
        estop.start_watching()
    try:
        result = run_closed_loop(
            policy_infer, env_factory, trials=cfg.episodes, seed=cfg.seed, max_steps=cfg.max_steps,
            replan_every=cfg.replan_every, state_names=names["state_names"],
            action_names=names["action_names"], cameras=names["cameras"], log=log, estop=estop, guard=guard,
            safety_log=safety_log,
            stop_on_fault=stop_on_fault, seeds=cfg.seeds, query_timeout_s=cfg.query_timeout_s,
            max_clipped_steps=cfg.max_clipped_steps)
    finally:
        if estop is not None:
            estop.stop_watching()
    result["config"]["max_step_rad"] = cfg.max_step_rad
    if safety_log:
        safety_log.mode("stopped", reason=result["stopped_by"] or "done", successes=result["successes"],
                        trials_run=result["trials_run"])
    return result
