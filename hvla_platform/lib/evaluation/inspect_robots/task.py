"""The ``hvla_reach_touch`` inspect-robots task: one scene per simulator seed, its instruction the task
the simulated G1 samples for that seed, classified in or out of the checkpoint's training
distribution, scored by :mod:`.scorers`.

The eval report builds it from its seed plan (:func:`reach_touch_task`, the seeds of
:func:`hvla_platform.lib.evaluation.distribution.plan_seeds`); on the command line
(``inspect-robots run --task hvla_reach_touch -T …``) :func:`reach_touch_from_args` plans the same
seeds from the checkpoint's training tasks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping, Sequence

from inspect_robots import Scene, Target, Task

from hvla_platform.lib.evaluation.distribution import GROUPS, group_of, plan_seeds
from hvla_platform.lib.evaluation.inspect_robots.errors import PluginConfigError
from hvla_platform.lib.evaluation.inspect_robots.names import TARGET_KIND, TASK
from hvla_platform.lib.evaluation.inspect_robots.scorers import (
    in_distribution_scorer, steps_scorer, success_scorer)
from hvla_platform.lib.training.checkpoint import read_config


def scene_id(seed: int) -> str:
    """``"seed-<seed>"``: a scene's id."""
    return f"seed-{int(seed)}"


def reach_touch_task(seeds: Sequence[int], tasks: Mapping[int, str], *, max_steps: int,
                     groups: Mapping[int, str] | None = None, training_tasks: Sequence[str] | None = None,
                     metadata: Mapping[str, object] | None = None) -> Task:
    """The task over ``seeds`` (in that order).

    Args:
        seeds: simulator seeds, one scene each (``init_seed``).
        tasks: the instruction the simulator samples for each seed.
        max_steps: control steps per trial.
        groups: each seed's distribution group (``in_distribution`` / ``out_of_distribution``);
            None: not classified (no ``hvla_in_distribution`` scorer).
        training_tasks: the checkpoint's training tasks (recorded in the task's metadata).
        metadata: more task metadata (JSON-serialisable).

    Returns:
        A Task named ``hvla_reach_touch``; scene ``seed-<seed>`` has ``init_seed=seed``, the
        instruction, target ``reach_touch`` with spec ``{"seed", "task", "distribution"}`` and the
        same three keys as metadata; scorers ``hvla_success``, ``hvla_steps`` (+ ``hvla_in_distribution``).

    Raises:
        ValueError: no seeds, a seed without a task or group, an unknown group.
    """
    if not seeds:
        raise ValueError("the task needs at least one seed")
    scenes = []
    for seed in seeds:
        seed = int(seed)
        if seed not in tasks:
            raise ValueError(f"no instruction given for seed {seed}")
        group = None
        if groups is not None:
            group = groups.get(seed)
            if group not in GROUPS:
                raise ValueError(f"seed {seed}: distribution group {group!r} is not one of {list(GROUPS)}")
        spec = {"seed": seed, "task": str(tasks[seed]), "distribution": group}
        scenes.append(Scene(id=scene_id(seed), instruction=str(tasks[seed]), target=Target(TARGET_KIND, spec),
                            init_seed=seed, metadata=dict(spec)))
    scorers = [success_scorer(), steps_scorer()] + ([in_distribution_scorer()] if groups is not None else [])
    trained = sorted(training_tasks) if training_tasks is not None else None
    meta = {"training_tasks": trained, **(metadata or {})}
    return Task(name=TASK, scenes=scenes, scorer=scorers, max_steps=int(max_steps), metadata=meta)


def _split(value: str | Sequence, sep: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(sep) if v.strip()]
    return [str(v) for v in value]


def _sim_task_of_seed(control_hz: float) -> tuple[Callable[[int], str], Callable[[], None]]:
    # deferred: the simulator imports mujoco; the Dagster code server imports this module to list assets
    from hvla_platform.lib.sim.env import ReachEnv  # noqa: PLC0415

    env = ReachEnv(control_hz=control_hz, render=False)
    return (lambda seed: str(env.reset(seed)["task"])), env.close


def reach_touch_from_args(first_seed: int = 1000, trials: int = 8, seeds: str | Sequence[int] | None = None,
                          training_tasks: str | Sequence[str] | None = None, checkpoint: str | None = None,
                          max_steps: int = 140, control_hz: float = 20.0) -> Task:
    """Registry factory of ``hvla_reach_touch`` (``inspect-robots run --task hvla_reach_touch -T …``).

    Args:
        first_seed: first seed scanned (the eval report's ``seed``, 1000).
        trials: trials in all; with training tasks, half (rounded up) in distribution and the rest
            out of it, as the eval report plans them
            (:func:`~hvla_platform.lib.evaluation.distribution.plan_seeds`).
        seeds: explicit seeds (``"1000,1003"`` or a list) instead of a plan.
        training_tasks: the checkpoint's training tasks (``"task a;task b"`` or a list).
        checkpoint: a checkpoint directory whose ``config.json`` lists its training tasks (instead
            of ``training_tasks``).
        max_steps: control steps per trial.
        control_hz: the simulator's control rate, Hz (only used to build the probe environment).

    Without training tasks the trials are not classified (seeds ``first_seed`` on, or ``seeds``).

    Raises:
        PluginConfigError: both ``training_tasks`` and ``checkpoint``, ``trials`` < 1, seeds that
            are not integers, ``checkpoint`` not a checkpoint directory.
    """
    if training_tasks is not None and checkpoint is not None:
        raise PluginConfigError(f"{TASK}: pass training_tasks or checkpoint, not both")
    if int(trials) < 1:
        raise PluginConfigError(f"{TASK}: trials must be >= 1, got {trials}")
    known = None
    if training_tasks is not None:
        known = _split(training_tasks, ";")
    elif checkpoint is not None:
        try:
            known = [str(t) for t in read_config(Path(checkpoint).expanduser()).get("tasks") or []]
        except (OSError, ValueError) as exc:  # CheckpointError is a ValueError
            raise PluginConfigError(f"{TASK}: checkpoint={checkpoint!r}: {exc}") from exc
    try:
        explicit = ([int(s) for s in _split(str(seeds) if isinstance(seeds, int) else seeds, ",")]
                    if seeds is not None else None)
    except ValueError as exc:
        raise PluginConfigError(f"{TASK}: seeds must be integers separated by commas, got {seeds!r}") from exc
    task_of_seed, close = _sim_task_of_seed(control_hz)
    try:
        if known is not None and explicit is None:
            plan = plan_seeds(task_of_seed, known, trials=int(trials), start=int(first_seed))
            chosen, tasks, groups = plan["seeds"], plan["task"], plan["group"]
            extra = {"seed_plan": {"first_seed": int(first_seed), "probed": plan["probed"],
                                   "planned": plan["planned"], "shortfall": plan["shortfall"]}}
        else:
            chosen = explicit if explicit is not None else [int(first_seed) + i for i in range(int(trials))]
            tasks = {s: task_of_seed(s) for s in chosen}
            groups = {s: group_of(tasks[s], known) for s in chosen} if known is not None else None
            extra = {}
    finally:
        close()
    return reach_touch_task(chosen, tasks, max_steps=max_steps, groups=groups, training_tasks=known,
                            metadata=extra)
