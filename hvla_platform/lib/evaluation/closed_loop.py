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
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from hvla_platform.lib.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.evaluation.inference import query_chunk
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

    Returns:
        ``{"trials", "successes", "success_rate", "mean_steps_success", "per_trial": [{"trial",
        "seed", "success", "steps", "sim_time_s", "wall_s", "queries", "infer_ms_mean", "task"}],
        "timing": {"infer_ms_mean", "infer_ms_p50", "infer_ms_p95", "infer_ms_max", "wall_s",
        "env_step_ms_mean"}, "config": {...}}``.

    Raises:
        ValueError: bad arguments, names that do not map, or a policy chunk with the wrong shape,
            fewer than ``replan_every`` actions, or non-finite values.
    """
    if trials < 1 or max_steps < 1 or replan_every < 1:
        raise ValueError(f"trials, max_steps and replan_every must be >= 1, got {trials}, {max_steps}, {replan_every}")
    if sorted(action_names) != sorted(env_action_names) or len(set(action_names)) != len(action_names):
        raise ValueError(f"policy action joints {list(action_names)} must be a permutation of the "
                         f"environment's {list(env_action_names)}")
    state_idx = _index(env_state_names, state_names, "state_names")
    to_env = np.asarray([list(action_names).index(n) for n in env_action_names], dtype=np.int64)
    a = len(action_names)
    say = log or (lambda _m: None)

    per_trial: list[dict[str, Any]] = []
    all_infer: list[float] = []
    all_step: list[float] = []
    t_all = time.perf_counter()
    for i in range(trials):
        env = env_factory()
        t_trial = time.perf_counter()
        trial_infer: list[float] = []
        try:
            env_obs = env.reset(seed + i)
            task = str(env_obs.get("task") or env.task)
            steps = 0
            chunk: np.ndarray | None = None
            j = 0
            success = bool(env.success)
            while not success and steps < max_steps:
                if chunk is None or j >= replan_every:
                    obs = build_observation(env_obs, state_idx, cameras, task)
                    chunk, ms = query_chunk(policy_infer, obs, a, dtype=np.float32)
                    trial_infer.append(ms)
                    if chunk.shape[0] < replan_every:
                        raise ValueError(f"policy chunk has {chunk.shape[0]} actions, fewer than "
                                         f"replan_every={replan_every}")
                    j = 0
                t0 = time.perf_counter()
                env_obs = env.step(chunk[j][to_env])
                all_step.append((time.perf_counter() - t0) * 1000.0)
                j += 1
                steps += 1
                success = bool(env.success)
            sim_time = float(env_obs.get("time_s", float("nan")))
        finally:
            env.close()
        all_infer.extend(trial_infer)
        per_trial.append({
            "trial": i, "seed": seed + i, "success": success, "steps": steps, "sim_time_s": sim_time,
            "wall_s": time.perf_counter() - t_trial, "queries": len(trial_infer),
            "infer_ms_mean": float(np.mean(trial_infer)) if trial_infer else None, "task": task,
        })
        say(f"trial {i + 1}/{trials}: {'success' if success else 'failure'} after {steps} steps")

    successes = sum(1 for t in per_trial if t["success"])
    ok_steps = [t["steps"] for t in per_trial if t["success"]]
    ms = np.asarray(all_infer) if all_infer else np.asarray([np.nan])
    return {
        "trials": trials,
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
