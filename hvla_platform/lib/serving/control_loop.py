"""Closed-loop evaluation: run a policy in a simulated environment and count successes.

The environment interface (implemented by ``hvla_platform.lib.sim.env.ReachEnv``; any object with
these members works)::

    env.reset(seed: int) -> obs
    env.step(arm_targets: (14,) float32 radians, G1_ARM_JOINTS order) -> obs
    env.success -> bool          # task solved in the current state
    env.task -> str
    env.close()
    obs = {"state": (29,) float32 (all G1 joints, contract.G1_JOINTS order), "velocity": (29,),
           "images": {"head": (96, 128, 3) uint8, "wrist_right": ...}, "task": str, "time_s": float}

Loop per trial (openpi-style action chunking with open-loop execution): reset with ``seed + i``;
build the observation (``observation/state`` = the checkpoint's state joints picked by name from the
29-joint state, ``observation/images/<cam>``, ``prompt``); query the policy for a chunk; execute its
first ``replan_every`` actions; re-query; stop when ``env.success`` or after ``max_steps`` env steps.

The same loop is the robot side of a deployment (``hvla deploy``) and of the evaluation
(``eval_report``), so what is evaluated is what is deployed: ``policy_infer`` is then a policy-server
client, ``estop`` an emergency stop that ends the trial (and the run) before the next command,
``guard`` clips every command to joint and per-step limits before the joint controller sees it, and
``safety_log`` records mode changes, clipped commands and why each trial stopped.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.training.inference import query_chunk
from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY


class Env(Protocol):
    """What :func:`run_closed_loop` needs from an environment (see the module docstring)."""

    success: bool
    task: str

    def reset(self, seed: int) -> Mapping[str, Any]: ...

    def step(self, arm_targets: np.ndarray) -> Mapping[str, Any]: ...

    def close(self) -> None: ...


def _index(names: Sequence[str], subset: Sequence[str], what: str) -> np.ndarray:
    missing = [n for n in subset if n not in names]
    if missing:
        raise ValueError(f"{what}: joint(s) {missing} are not among the environment's joints")
    return np.asarray([list(names).index(n) for n in subset], dtype=np.int64)


def build_observation(env_obs: Mapping[str, Any], state_idx: np.ndarray, cameras: Sequence[str],
                      prompt: str) -> dict[str, Any]:
    """openpi-style policy observation from an environment observation.

    Raises:
        ValueError: the env observation lacks ``state`` / a camera image.
    """
    if "state" not in env_obs or "images" not in env_obs:
        raise ValueError(f"environment observation must have 'state' and 'images', got {sorted(env_obs)}")
    state = np.asarray(env_obs["state"], dtype=np.float32)
    obs: dict[str, Any] = {STATE_KEY: state[state_idx], "prompt": prompt}
    for cam in cameras:
        if cam not in env_obs["images"]:
            raise ValueError(f"environment observation has no '{cam}' image (has {sorted(env_obs['images'])})")
        obs[IMAGE_PREFIX + cam] = np.asarray(env_obs["images"][cam])
    return obs


def run_closed_loop(
    policy_infer: Callable[[dict], Mapping[str, Any]],
    env_factory: Callable[[], Env],
    *,
    trials: int,
    seed: int,
    max_steps: int,
    replan_every: int,
    state_names: Sequence[str],
    action_names: Sequence[str] = tuple(G1_ARM_JOINTS),
    cameras: Sequence[str] = ("head", "wrist_right"),
    env_state_names: Sequence[str] = tuple(G1_JOINTS),
    env_action_names: Sequence[str] = tuple(G1_ARM_JOINTS),
    log: Callable[[str], None] | None = None,
    estop: Any | None = None,
    guard: Any | None = None,
    safety_log: Any | None = None,
    stop_on_fault: bool = False,
    seeds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run ``trials`` episodes of ``policy_infer`` in fresh environments from ``env_factory``.

    Args:
        policy_infer: ``obs -> {"actions": (H, A)}``, A = ``len(action_names)``, radians.
        env_factory: builds one environment; one is created per trial and closed afterwards.
        trials: number of trials (≥ 1); trial ``i`` resets with ``seed + i``.
        seed: base seed.
        max_steps: env steps per trial before giving up.
        replan_every: actions executed from each chunk before re-querying (1 ≤ replan_every ≤ H).
        state_names: the checkpoint's state joints (picked by name from ``env_state_names``).
        action_names: the checkpoint's action joints; must be the same set as ``env_action_names``
            (chunks are reordered into the env's order).
        cameras: camera images passed to the policy.
        env_state_names: joint order of ``obs["state"]`` (G1_JOINTS).
        env_action_names: joint order ``env.step`` expects (G1_ARM_JOINTS).
        log: optional progress callback.
        estop: object with ``is_set() -> bool`` (:class:`~hvla_platform.lib.serving.safety.EmergencyStop`);
            checked before every command; when set, the trial stops (``stop_reason="estop"``) and
            no further trial starts.
        guard: object with ``filter(target, previous) -> (safe target, info | None)``
            (:class:`~hvla_platform.lib.serving.safety.ActionGuard`) in the env's action order.
        safety_log: object with ``write(event, **fields)`` and ``mode(mode, **fields)``
            (:class:`~hvla_platform.lib.serving.safety.SafetyLog`).
        stop_on_fault: a failed policy query or a command the guard rejects ends the trial with
            ``stop_reason="fault"`` (and the run) instead of raising — the robot stops and holds.
        seeds: explicit reset seed of each trial (then ``len(seeds)`` must equal ``trials`` and
            ``seed`` is only recorded); default ``seed + i``.

    Returns:
        ``{"trials", "trials_run", "successes", "success_rate", "mean_steps_success", "stopped_by",
        "per_trial": [{"trial", "seed", "success", "stop_reason" (success, timeout, estop, fault),
        "steps", "sim_time_s", "wall_s", "queries", "infer_ms_mean", "clipped_steps", "task"}],
        "timing": {"infer_ms_mean", "infer_ms_p50", "infer_ms_p95", "infer_ms_max", "wall_s",
        "env_step_ms_mean"}, "config": {...}}``.

    Raises:
        ValueError: bad arguments, names that do not map, or a policy chunk with the wrong shape,
            fewer than ``replan_every`` actions, or non-finite values.
    """
    if trials < 1 or max_steps < 1 or replan_every < 1:
        raise ValueError(f"trials, max_steps and replan_every must be >= 1, got {trials}, {max_steps}, {replan_every}")
    trial_seeds = [int(s) for s in seeds] if seeds is not None else [seed + i for i in range(trials)]
    if len(trial_seeds) != trials:
        raise ValueError(f"{len(trial_seeds)} seeds for {trials} trials")
    if sorted(action_names) != sorted(env_action_names) or len(set(action_names)) != len(action_names):
        raise ValueError(f"policy action joints {list(action_names)} must be a permutation of the "
                         f"environment's {list(env_action_names)}")
    state_idx = _index(env_state_names, state_names, "state_names")
    to_env = np.asarray([list(action_names).index(n) for n in env_action_names], dtype=np.int64)
    a = len(action_names)
    say = log or (lambda _m: None)

    env_arm_idx = _index(env_state_names, env_action_names, "env_action_names")
    slog = safety_log
    per_trial: list[dict[str, Any]] = []
    all_infer: list[float] = []
    all_step: list[float] = []
    stopped_by = None
    t_all = time.perf_counter()
    for i in range(trials):
        if estop is not None and estop.is_set():
            stopped_by = "estop"
            break
        env = env_factory()
        t_trial = time.perf_counter()
        trial_infer: list[float] = []
        clipped = 0
        try:
            env_obs = env.reset(trial_seeds[i])
            task = str(env_obs.get("task") or env.task)
            steps = 0
            chunk: np.ndarray | None = None
            j = 0
            success = bool(env.success)
            reason = "success" if success else "timeout"
            previous = np.asarray(env_obs["state"], dtype=np.float32)[env_arm_idx]
            if slog:
                slog.mode("running", trial=i, seed=trial_seeds[i], task=task)
            while not success and steps < max_steps:
                if estop is not None and estop.is_set():
                    reason = "estop"
                    break
                try:
                    if chunk is None or j >= replan_every:
                        obs = build_observation(env_obs, state_idx, cameras, task)
                        chunk, ms = query_chunk(policy_infer, obs, a, dtype=np.float32)
                        trial_infer.append(ms)
                        if chunk.shape[0] < replan_every:
                            raise ValueError(f"policy chunk has {chunk.shape[0]} actions, fewer than "
                                             f"replan_every={replan_every}")
                        j = 0
                    command = chunk[j][to_env]
                    if guard is not None:
                        command, hit = guard.filter(command, previous)
                        if hit:
                            clipped += 1
                            if slog:
                                slog.write("limit", trial=i, step=steps,
                                           joints=[env_action_names[k] for k in hit["joints"]],
                                           max_excess_rad=round(hit["max_excess_rad"], 5))
                except Exception as exc:  # noqa: BLE001 - re-raised unless the robot must stop and hold
                    if not stop_on_fault:
                        raise
                    reason = "fault"
                    if slog:
                        slog.mode("fault", trial=i, step=steps, error=f"{type(exc).__name__}: {exc}")
                    break
                if estop is not None and estop.is_set():  # pressed while the chunk was being fetched
                    reason = "estop"
                    break
                t0 = time.perf_counter()
                env_obs = env.step(command)
                all_step.append((time.perf_counter() - t0) * 1000.0)
                previous = command
                j += 1
                steps += 1
                success = bool(env.success)
                if success:
                    reason = "success"
            sim_time = float(env_obs.get("time_s", float("nan")))
        finally:
            env.close()
        if reason == "estop" and slog:
            slog.mode("estop", trial=i, step=steps, reason=getattr(estop, "reason", ""))
        if slog:
            slog.write("stop", trial=i, reason=reason, steps=steps, sim_time_s=round(sim_time, 4),
                       clipped_steps=clipped)
        all_infer.extend(trial_infer)
        per_trial.append({
            "trial": i, "seed": trial_seeds[i], "success": success, "stop_reason": reason, "steps": steps,
            "sim_time_s": sim_time, "wall_s": time.perf_counter() - t_trial, "queries": len(trial_infer),
            "infer_ms_mean": float(np.mean(trial_infer)) if trial_infer else None, "clipped_steps": clipped,
            "task": task,
        })
        say(f"trial {i + 1}/{trials}: {reason} after {steps} steps")
        if reason in ("estop", "fault"):
            stopped_by = reason
            break

    successes = sum(1 for t in per_trial if t["success"])
    ok_steps = [t["steps"] for t in per_trial if t["success"]]
    ms = np.asarray(all_infer) if all_infer else np.asarray([np.nan])
    return {
        "trials": trials,
        "trials_run": len(per_trial),
        "stopped_by": stopped_by,
        "successes": successes,
        "success_rate": successes / trials,
        "mean_steps_success": float(np.mean(ok_steps)) if ok_steps else None,
        "per_trial": per_trial,
        "timing": {
            "infer_ms_mean": float(np.nanmean(ms)) if all_infer else None,
            "infer_ms_p50": float(np.nanpercentile(ms, 50)) if all_infer else None,
            "infer_ms_p95": float(np.nanpercentile(ms, 95)) if all_infer else None,
            "infer_ms_max": float(np.nanmax(ms)) if all_infer else None,
            "env_step_ms_mean": float(np.mean(all_step)) if all_step else None,
            "wall_s": time.perf_counter() - t_all,
        },
        "config": {"seed": seed, "max_steps": max_steps, "replan_every": replan_every,
                   "cameras": list(cameras), "state_names": list(state_names),
                   "action_names": list(action_names)},
    }
