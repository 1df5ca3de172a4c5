"""The evaluation's closed loop: plan in- and out-of-distribution seeds, run them with the
inspect-robots harness (``inspect_robots.eval()``) against the checkpoint served on loopback,
classify and summarise each group, and keep the harness's EvalLog and its HTML view.

Pieces (:mod:`hvla_platform.lib.evaluation.inspect_robots`): the checkpoint is served by a
:class:`~hvla_platform.lib.serving.server.PolicyServer` on 127.0.0.1 (as ``hvla serve``: inference
log, prompt warnings); the ``hvla_openpi`` policy client talks to it over openpi's websocket
protocol; the ``hvla_g1_reach`` embodiment is the simulated G1 behind the robot client's action
guard; the ``hvla_reach_touch`` task holds one scene per planned seed. The chunking (first
``replan_every`` actions of each chunk, then a new query), the guard and the observations are
those of ``hvla deploy``'s robot client, so per trial success and steps are the ones
:func:`hvla_platform.lib.serving.loopback.closed_loop_via_server` gives
(hvla_platform_tests/lib/evaluation/test_inspect_robots_match.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import inspect_robots
from inspect_robots.logging import JsonLogSink

from hvla_platform.lib.evaluation.distribution import plan_seeds, split_by_distribution
from hvla_platform.lib.evaluation.inspect_robots.embodiment import G1ReachEmbodiment
from hvla_platform.lib.evaluation.inspect_robots.names import EMBODIMENT, POLICY, TASK
from hvla_platform.lib.evaluation.inspect_robots.policy import OpenpiServerPolicy
from hvla_platform.lib.evaluation.inspect_robots.task import reach_touch_task
from hvla_platform.lib.evaluation.inspect_robots.trials import TrialTimes, per_trial_records, timing_summary
from hvla_platform.lib.evaluation.inspect_robots.view import write_html_view
from hvla_platform.lib.serving.checkpoint import EVALUATION_USE, PROTOCOL, server_metadata
from hvla_platform.lib.serving.inference_log import InferenceLog
from hvla_platform.lib.serving.prompts import PromptCheckedPolicy
from hvla_platform.lib.serving.robot import RobotConfig
from hvla_platform.lib.serving.safety import SafetyLog
from hvla_platform.lib.serving.server import PolicyServer, ServablePolicy

#: where the EvalLog and its HTML view go, under ``log_dir``.
INSPECT_DIR = "inspect"


def env_task_of_seed(env_factory: Callable[[], Any]) -> tuple[Callable[[int], str], Callable[[], None]]:
    """``(task_of_seed, close)``: one environment from ``env_factory`` whose ``reset(seed)`` tells the
    task instruction a trial with that seed gets (``obs["task"]``, else ``env.task``), and its closer."""
    env = env_factory()

    def task_of_seed(seed: int) -> str:
        obs = env.reset(seed)
        return str((obs or {}).get("task") or env.task)

    return task_of_seed, env.close


def run_inspect_trials(policy: ServablePolicy, *, checkpoint_key: str | None, env_factory: Callable[[], Any],
                       arm_limits: tuple[Sequence[float], Sequence[float]], cfg: RobotConfig,
                       seeds: Sequence[int], tasks: dict[int, str], groups: dict[int, str] | None,
                       training_tasks: Sequence[str] | None, log_dir: Path,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Serve ``policy`` on 127.0.0.1 (a free port) for :data:`EVALUATION_USE` and run one trial per
    seed with ``inspect_robots.eval()``.

    Writes under ``log_dir``: the server's inference log (``serving/``), the robot safety log
    (``robot_safety.jsonl``: ``connecting`` / ``ready`` / per trial ``running``, ``limit``, ``stop`` /
    ``stopped``, as ``hvla deploy`` writes it) and ``inspect/``: the EvalLog
    (``hvla-reach-touch_<id>.json``), its HTML view (same name, ``.html``) and the executed actions
    of each trial (``actions/<run>/seed-<seed>-e0.jsonl``).

    Args:
        policy: the loaded checkpoint.
        checkpoint_key: its lake key (server metadata, the EvalLog's ``policy_checkpoint``).
        env_factory: builds the simulator (once; every trial resets it).
        arm_limits: (lower, upper) arm joint limits, radians, ``G1_ARM_JOINTS`` order.
        cfg: ``max_steps``, ``replan_every``, ``max_step_rad``; ``seed`` is recorded as the EvalLog's seed.
        seeds / tasks / groups: the trials (``groups`` None: unclassified).
        training_tasks: the checkpoint's training tasks (task metadata).
        log_dir: where the logs go (created).
        log: progress callback.

    Returns:
        :func:`~hvla_platform.lib.serving.control_loop.run_closed_loop`'s result structure
        (``trials``, ``trials_run``, ``stopped_by``, ``successes``, ``success_rate``,
        ``mean_steps_success``, ``per_trial`` (see
        :func:`~hvla_platform.lib.evaluation.inspect_robots.trials.per_trial_records`), ``timing``,
        ``config``) plus ``served_via`` ``{"protocol", "url", "requests", "harness"}`` and
        ``inspect`` ``{"eval_log", "html", "status", "task", "policy", "embodiment", "version"}``
        (paths relative to ``log_dir``'s parent, the report folder).

    Raises:
        RuntimeError: the run did not end with status ``success`` (a server error, a guard fault,
            a scorer failure: the EvalLog's error is in the message; the log is still written).
        ValueError: bad settings (``replan_every`` beyond the server's horizon…).
    """
    log_dir = Path(log_dir)
    inspect_dir = log_dir / INSPECT_DIR
    say = log or (lambda _m: None)
    task = reach_touch_task(seeds, tasks, max_steps=cfg.max_steps, groups=groups,
                            training_tasks=training_tasks)
    ilog = InferenceLog(log_dir / "serving", checkpoint=str(policy.metadata.get("checkpoint")))
    slog = SafetyLog(log_dir / "robot_safety.jsonl")
    meta = server_metadata(dict(policy.metadata), use=EVALUATION_USE, checkpoint_key=checkpoint_key)
    sink, times = JsonLogSink(str(inspect_dir)), TrialTimes()
    t0 = time.perf_counter()
    try:
        checked = PromptCheckedPolicy(policy, lambda w: ilog.write("prompt_warning", **w))
        with PolicyServer(checked, host="127.0.0.1", port=0, metadata=meta, inference_log=ilog) as server:
            url = f"ws://127.0.0.1:{server.port}"
            slog.mode("connecting", server=url)
            with OpenpiServerPolicy(url, replan_every=cfg.replan_every) as client:
                embodiment = G1ReachEmbodiment(env_factory, arm_limits=arm_limits,
                                               max_step_rad=cfg.max_step_rad, safety_log=slog)
                try:
                    slog.mode("ready", checkpoint=client.metadata.get("checkpoint"),
                              action_horizon=client.spec.action_horizon, replan_every=cfg.replan_every,
                              max_step_rad=cfg.max_step_rad, episodes=len(seeds))
                    say(f"inspect-robots eval(): task {TASK} ({len(seeds)} scene(s)), policy {POLICY} → "
                        f"{url}, embodiment {EMBODIMENT}")
                    eval_log = inspect_robots.eval(task, client, embodiment, log_dir=str(inspect_dir),
                                                   sinks=[sink, times], seed=cfg.seed, fail_on_error=True,
                                                   policy_checkpoint=checkpoint_key)[0]
                finally:
                    embodiment.close()
    finally:
        ilog.close()
        wall_s = time.perf_counter() - t0
    if sink.path is None:
        slog.close()
        raise RuntimeError("inspect-robots wrote no EvalLog")
    if eval_log.status != "success":
        slog.mode("fault", error=str(eval_log.error))
        slog.close()
        raise RuntimeError(f"inspect-robots run {sink.path.name} ended with status {eval_log.status!r}: "
                           f"{eval_log.error}")
    per_trial = per_trial_records(eval_log, times)
    successes = sum(1 for t in per_trial if t["success"])
    slog.mode("stopped", reason="done", successes=successes, trials_run=len(per_trial))
    slog.close()
    html = write_html_view(sink.path)
    for t in per_trial:
        say(f"trial {t['trial'] + 1}/{len(per_trial)} (seed {t['seed']}): {t['stop_reason']} after "
            f"{t['steps']} steps")
    ok_steps = [t["steps"] for t in per_trial if t["success"]]
    root = log_dir.parent
    return {
        "trials": len(seeds), "trials_run": len(per_trial), "stopped_by": None, "successes": successes,
        "success_rate": successes / len(seeds),
        "mean_steps_success": sum(ok_steps) / len(ok_steps) if ok_steps else None,
        "per_trial": per_trial, "timing": timing_summary(times, wall_s),
        "config": {"seed": cfg.seed, "max_steps": cfg.max_steps, "replan_every": cfg.replan_every,
                   "max_step_rad": cfg.max_step_rad, "cameras": sorted(client.spec.images),
                   "state_names": list(client.spec.state_names),
                   "action_names": list(client.spec.action_names)},
        "served_via": {"protocol": PROTOCOL, "url": url, "requests": sum(t["queries"] for t in per_trial),
                       "harness": f"inspect-robots {inspect_robots.__version__} eval()"},
        "inspect": {"eval_log": sink.path.relative_to(root).as_posix(),
                    "html": html.relative_to(root).as_posix(),
                    "status": eval_log.status, "task": eval_log.eval.task, "policy": eval_log.eval.policy,
                    "embodiment": eval_log.eval.embodiment, "version": eval_log.eval.inspect_robots_version},
    }


def evaluate_closed_loop(policy: ServablePolicy, *, checkpoint_key: str | None, env_factory: Callable[[], Any],
                         arm_limits: tuple[Sequence[float], Sequence[float]], cfg: RobotConfig, trials: int,
                         training_tasks: Sequence[str], release_tasks: Sequence[str], release: str, log_dir: Path,
                         log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``trials`` closed-loop trials, half (rounded up) on tasks the checkpoint was trained on and
    half on tasks it was not (:func:`~hvla_platform.lib.evaluation.distribution.plan_seeds`, scanning
    seeds from ``cfg.seed``), with inspect-robots (:func:`run_inspect_trials`).

    Args:
        policy: the loaded checkpoint.
        checkpoint_key: its lake key (server metadata).
        env_factory: builds the simulator (one to read the task of each seed, one for the trials).
        arm_limits: (lower, upper) arm joint limits, radians, for the robot's action guard.
        cfg: robot settings (``seed`` = first seed scanned; ``max_steps``, ``replan_every``,
            ``max_step_rad``; ``episodes`` / ``seeds`` are ignored: the plan decides).
        trials: total trials (≥ 1).
        training_tasks / release_tasks / release: see
            :func:`~hvla_platform.lib.evaluation.distribution.split_by_distribution`.
        log_dir: where the server's inference log, the robot safety log and the EvalLog
            (``inspect/``) are written.
        log: progress callback.

    Returns:
        :func:`~hvla_platform.lib.evaluation.distribution.split_by_distribution`'s result (with
        ``served_via`` and ``inspect``: the EvalLog and HTML paths, relative to ``log_dir``'s
        parent) plus ``"seed_plan": {"first_seed", "probed", "planned": {group: n}}``.

    Raises:
        ValueError: ``trials`` < 1. Errors of :func:`run_inspect_trials`.
    """
    if trials < 1:
        raise ValueError(f"closed-loop evaluation needs at least one trial, got {trials}")
    task_of_seed, close = env_task_of_seed(env_factory)
    try:
        plan = plan_seeds(task_of_seed, training_tasks, trials=trials, start=cfg.seed)
    finally:
        close()
    say = log or (lambda _m: None)
    say(f"closed loop: {plan['planned']['in_distribution']} in-distribution + "
        f"{plan['planned']['out_of_distribution']} out-of-distribution trial(s) (seeds {plan['seeds']}, "
        f"{plan['probed']} seeds scanned from {cfg.seed}) with inspect-robots against the policy server")
    result = run_inspect_trials(policy, checkpoint_key=checkpoint_key, env_factory=env_factory,
                                arm_limits=arm_limits, cfg=cfg, seeds=plan["seeds"], tasks=plan["task"],
                                groups=plan["group"], training_tasks=training_tasks, log_dir=log_dir, log=log)
    out = split_by_distribution(result, training_tasks=training_tasks, release_tasks=release_tasks, release=release,
                                shortfall=plan["shortfall"])
    out["seed_plan"] = {"first_seed": cfg.seed, "probed": plan["probed"], "planned": plan["planned"]}
    return out
