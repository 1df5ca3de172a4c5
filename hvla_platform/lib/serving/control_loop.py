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

Bounded waits. With an ``estop`` or a ``query_timeout_s``, each policy query runs in a worker
thread while the loop waits in slices of ``poll_s`` (5 ms) for the reply, the emergency stop or
the query deadline, whichever comes first — so a server that hangs can neither delay the stop
(bounded by ``poll_s`` plus the stop source's own detection, 10 ms for a stop file) nor hold the
robot blindly: past the deadline the trial ends as a fault ``policy server did not answer within
S s``. The robot's safe stop is to send no further command: its joint controller holds the last
commanded target (the hold while waiting is the same state). A query abandoned this way keeps its
worker thread until the client's own receive timeout or ``close()`` ends it; its reply, if any, is
discarded.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.serving.client import QueryTimeout, ServerError
from hvla_platform.lib.serving.safety import HOLD, ClippedStreak, GuardFault, record_estop
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


class StoppedWhileWaiting(Exception):
    """The emergency stop was set while :func:`bounded_query` waited (the wait was abandoned)."""


def bounded_query(policy_infer: Callable[[dict], Mapping[str, Any]], obs: dict, *, timeout_s: float | None,
                  estop: Any | None, poll_s: float = 0.005) -> Mapping[str, Any]:
    """``policy_infer(obs)``, waited for at most ``timeout_s`` seconds, abandoned as soon as ``estop`` is set.

    The call runs in a daemon worker thread; this thread waits for it in slices of ``poll_s`` s,
    checking ``estop.is_set()`` between slices (Python runs signal handlers between them). Any
    blocking call can be waited for this way (``hvla deploy`` also waits for the connection so).

    Raises:
        QueryTimeout: no answer within ``timeout_s`` ("policy server did not answer within S s").
        StoppedWhileWaiting: the emergency stop was set first.
        Exception: whatever ``policy_infer`` raised.
    """
    if timeout_s is None and estop is None:
        return policy_infer(obs)
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["out"] = policy_infer(obs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["exc"] = exc
        finally:
            done.set()

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    threading.Thread(target=run, name="policy-query", daemon=True).start()
    while not done.wait(poll_s):
        if estop is not None and estop.is_set():
            raise StoppedWhileWaiting()
        if deadline is not None and time.monotonic() >= deadline:
            raise QueryTimeout(f"policy server did not answer within {timeout_s:g} s")
    if "exc" in box:
        raise box["exc"]
    return box["out"]


def fault_cause(exc: BaseException) -> str:
    """One line saying why a fault stopped the robot: the message of our own errors (server error
    frames, closed connections, deadlines, guard escalation), else ``<ExceptionType>: <message>``."""
    text = " ".join(str(exc).split())
    if isinstance(exc, (ServerError, QueryTimeout, GuardFault)) and text:
        return text
    return f"{type(exc).__name__}: {text}"


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
    query_timeout_s: float | None = None,
    max_clipped_steps: int | None = None,
    poll_s: float = 0.005,
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
        estop: object with ``is_set() -> bool``, ``reason``, ``source`` and ``latency_s()``
            (:class:`~hvla_platform.lib.serving.safety.EmergencyStop`); checked before every trial,
            before every command and every ``poll_s`` while waiting for the policy; when set, the
            trial stops (``stop_reason="estop"``), no further trial starts, and an ``estop`` line
            (reason, source, ``latency_s`` from the source to the safe stop, ``during``) is logged.
        guard: object with ``filter(target, previous) -> (safe target, info | None)``
            (:class:`~hvla_platform.lib.serving.safety.ActionGuard`) in the env's action order.
        safety_log: object with ``write(event, **fields)`` and ``mode(mode, **fields)``
            (:class:`~hvla_platform.lib.serving.safety.SafetyLog`).
        stop_on_fault: a failed policy query or a command the guard rejects ends the trial with
            ``stop_reason="fault"`` (and the run) instead of raising — the robot stops and holds.
        seeds: explicit reset seed of each trial (then ``len(seeds)`` must equal ``trials`` and
            ``seed`` is only recorded); default ``seed + i``.
        query_timeout_s: deadline of one policy query, seconds; past it the robot (which held its
            last command while waiting) stops as a fault. None: wait as long as ``policy_infer`` does.
        max_clipped_steps: this many consecutive commands clipped by ``guard`` end the trial as a
            fault naming the joints (:class:`~hvla_platform.lib.serving.safety.ClippedStreak`); None: never.
        poll_s: slice of the wait for a reply between checks of the stop and the deadline, seconds.

    Returns:
        ``{"trials", "trials_run", "successes", "success_rate", "mean_steps_success", "stopped_by",
        "stop_cause" (the fault's cause or the stop's reason, None otherwise), "estop_latency_s"
        (source → safe stop, None without an emergency stop),
        "per_trial": [{"trial", "seed", "success", "stop_reason" (success, timeout, estop, fault),
        "steps", "sim_time_s", "wall_s", "queries", "infer_ms_mean", "clipped_steps", "task",
        "cause" (fault cause / stop reason or None)}],
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
    stopped_by = stop_cause = estop_latency = None

    t_all = time.perf_counter()
    for i in range(trials):
        if estop is not None and estop.is_set():
            stopped_by, stop_cause = "estop", estop.reason
            estop_latency = record_estop(slog, estop, "before_start" if i == 0 else "between_trials",
                                         safe_stop="no command sent" if i == 0 else HOLD)
            say(f"emergency stop before trial {i + 1}/{trials}: {estop.reason}; no command sent")
            break
        env = env_factory()
        t_trial = time.perf_counter()
        trial_infer: list[float] = []
        clipped = 0
        streak = ClippedStreak(max_clipped_steps)
        cause = None
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
                    estop_latency = record_estop(slog, estop, "between_commands", trial=i, step=steps)
                    break
                try:
                    if chunk is None or j >= replan_every:
                        obs = build_observation(env_obs, state_idx, cameras, task)
                        chunk, ms = query_chunk(
                            lambda o: bounded_query(policy_infer, o, timeout_s=query_timeout_s, estop=estop,
                                                    poll_s=poll_s), obs, a, dtype=np.float32)
                        trial_infer.append(ms)
                        if chunk.shape[0] < replan_every:
                            raise ValueError(f"policy chunk has {chunk.shape[0]} actions, fewer than "
                                             f"replan_every={replan_every}")
                        j = 0
                    command = chunk[j][to_env]
                    if guard is not None:
                        command, hit = guard.filter(command, previous)
                        hit_names = [env_action_names[k] for k in hit["joints"]] if hit else None
                        if hit:
                            clipped += 1
                            if slog:
                                slog.write("limit", trial=i, step=steps, joints=hit_names,
                                           max_excess_rad=round(hit["max_excess_rad"], 5))
                        streak.update(hit_names)
                except StoppedWhileWaiting:
                    reason = "estop"
                    estop_latency = record_estop(slog, estop, "waiting_for_policy", trial=i, step=steps)
                    break
                except Exception as exc:  # noqa: BLE001 - re-raised unless the robot must stop and hold
                    if not stop_on_fault:
                        raise
                    reason, cause = "fault", fault_cause(exc)
                    if slog:
                        slog.mode("fault", trial=i, step=steps, error=f"{type(exc).__name__}: {exc}",
                                  cause=cause)
                    break
                if estop is not None and estop.is_set():  # pressed while the chunk was being fetched
                    reason = "estop"
                    estop_latency = record_estop(slog, estop, "between_commands", trial=i, step=steps)
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
        if reason == "estop":
            cause = getattr(estop, "reason", "")
            if slog:
                slog.mode("estop", trial=i, step=steps, reason=cause)
        if slog:
            slog.write("stop", trial=i, reason=reason, steps=steps, sim_time_s=round(sim_time, 4),
                       clipped_steps=clipped)
        all_infer.extend(trial_infer)
        per_trial.append({
            "trial": i, "seed": trial_seeds[i], "success": success, "stop_reason": reason, "steps": steps,
            "sim_time_s": sim_time, "wall_s": time.perf_counter() - t_trial, "queries": len(trial_infer),
            "infer_ms_mean": float(np.mean(trial_infer)) if trial_infer else None, "clipped_steps": clipped,
            "task": task, "cause": cause,
        })
        say(f"trial {i + 1}/{trials}: {reason} after {steps} steps" + (f": {cause}" if cause else ""))
        if reason in ("estop", "fault"):
            stopped_by, stop_cause = reason, cause
            break

    successes = sum(1 for t in per_trial if t["success"])
    ok_steps = [t["steps"] for t in per_trial if t["success"]]
    ms = np.asarray(all_infer) if all_infer else np.asarray([np.nan])
    return {
        "trials": trials,
        "trials_run": len(per_trial),
        "stopped_by": stopped_by,
        "stop_cause": stop_cause,
        "estop_latency_s": estop_latency,
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
                   "query_timeout_s": query_timeout_s, "max_clipped_steps": max_clipped_steps,
                   "cameras": list(cameras), "state_names": list(state_names),
                   "action_names": list(action_names)},
    }
