"""The evaluation's closed loop: plan in- and out-of-distribution seeds, run them through the
deployment path (policy server + robot client on loopback), classify and summarise each group."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from hvla_platform.lib.evaluation.distribution import plan_seeds, split_by_distribution
from hvla_platform.lib.serving.loopback import closed_loop_via_server
from hvla_platform.lib.serving.robot import RobotConfig
from hvla_platform.lib.serving.server import ServablePolicy


def env_task_of_seed(env_factory: Callable[[], Any]) -> tuple[Callable[[int], str], Callable[[], None]]:
    """``(task_of_seed, close)``: one environment from ``env_factory`` whose ``reset(seed)`` tells the
    task instruction a trial with that seed gets (``obs["task"]``, else ``env.task``), and its closer."""
    env = env_factory()

    def task_of_seed(seed: int) -> str:
        obs = env.reset(seed)
        return str((obs or {}).get("task") or env.task)

    return task_of_seed, env.close


def evaluate_closed_loop(policy: ServablePolicy, *, checkpoint_key: str | None, env_factory: Callable[[], Any],
                         arm_limits: tuple[Sequence[float], Sequence[float]], cfg: RobotConfig, trials: int,
                         training_tasks: Sequence[str], release_tasks: Sequence[str], release: str, log_dir: Path,
                         log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``trials`` closed-loop trials, half (rounded up) on tasks the checkpoint was trained on and
    half on tasks it was not (:func:`~hvla_platform.lib.evaluation.distribution.plan_seeds`, scanning
    seeds from ``cfg.seed``), through :func:`~hvla_platform.lib.serving.loopback.closed_loop_via_server`.

    Args:
        policy: the loaded checkpoint.
        checkpoint_key: its lake key (server metadata).
        env_factory: builds the simulator (one per trial, plus one to read the task of each seed).
        arm_limits: (lower, upper) arm joint limits, radians, for the robot's action guard.
        cfg: robot settings (``seed`` = first seed scanned; ``episodes``/``seeds`` are set here).
        trials: total trials (≥ 1).
        training_tasks / release_tasks / release: see
            :func:`~hvla_platform.lib.evaluation.distribution.split_by_distribution`.
        log_dir: where the server's inference log and the robot safety log are written.
        log: progress callback.

    Returns:
        :func:`~hvla_platform.lib.evaluation.distribution.split_by_distribution`'s result plus
        ``"seed_plan": {"first_seed", "probed", "planned": {group: n}}``.

    Raises:
        ValueError: ``trials`` < 1. Errors of :func:`closed_loop_via_server`.
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
        f"{plan['probed']} seeds scanned from {cfg.seed}) through the policy server and robot client")
    result = closed_loop_via_server(policy, checkpoint_key=checkpoint_key, env_factory=env_factory,
                                    arm_limits=arm_limits, cfg=replace(cfg, episodes=len(plan["seeds"]),
                                                                       seeds=tuple(plan["seeds"])),
                                    log_dir=log_dir, log=log)
    out = split_by_distribution(result, training_tasks=training_tasks, release_tasks=release_tasks, release=release,
                                shortfall=plan["shortfall"])
    out["seed_plan"] = {"first_seed": cfg.seed, "probed": plan["probed"], "planned": plan["planned"]}
    return out
