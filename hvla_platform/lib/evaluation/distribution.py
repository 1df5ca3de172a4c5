"""In- and out-of-distribution closed-loop trials: which seeds to run, and the success of each group.

A trial is **in distribution** when its task instruction is one of the checkpoint's training
tasks (the tasks of the train-split episodes of the release it was trained on, as recorded in the
checkpoint's ``config.json``), compared with
:func:`~hvla_platform.lib.serving.prompts.is_training_task`; otherwise it is **out of
distribution**. The simulator's instruction names the object (colour, shape) and the hand
("touch the blue cube with the left hand"), so the same instruction means the same object; the
object's position is drawn from the same range for recordings and trials.

The two groups are never pooled into one success rate: each gets ``n``, ``k``, ``k / n`` and a 95 %
Wilson score interval (:mod:`.wilson`). Seeds are chosen so both groups are measured
(:func:`plan_seeds`): half of the trials (rounded up) in distribution, the rest out of it, each group
taking the first seeds from the base seed on whose task falls in it.

**Per task.** Each distinct task instruction the trials ran is also summarised on its own
(:func:`per_task_summary`): ``k/n``, rate and 95 % Wilson interval, marked in or out of the training
task set. A policy that reads its prompt can succeed on one instruction and fail on another of the
same group; the per-task rows show which (with a handful of trials per task their intervals are
wide: they say *where* the successes are, not that two tasks differ).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from hvla_platform.lib.evaluation.wilson import Z_95, wilson_interval
from hvla_platform.lib.serving.prompts import is_training_task

IN = "in_distribution"
OUT = "out_of_distribution"
GROUPS = (IN, OUT)
#: how the interval of a group's success rate is computed (written next to it).
INTERVAL = "95% Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001)"
#: seeds probed per planned trial before a group is declared unreachable.
PROBES_PER_TRIAL = 50


def group_of(task: str, training_tasks: Iterable[str]) -> str:
    """:data:`IN` when ``task`` is a training task, else :data:`OUT`."""
    return IN if is_training_task(task, training_tasks) else OUT


def plan_seeds(task_of_seed: Callable[[int], str], training_tasks: Sequence[str], *, trials: int, start: int,
               max_probes: int | None = None) -> dict[str, Any]:
    """Choose ``trials`` seeds: ``ceil(trials / 2)`` whose task is a training task, ``trials // 2`` whose
    task is not, scanning seeds ``start, start + 1, …``.

    When one group cannot be filled within ``max_probes`` seeds (e.g. the training tasks cover every
    task the simulator samples), the other group takes the remaining trials from the seeds already
    scanned, and ``shortfall`` says why.

    Args:
        task_of_seed: the task instruction the environment samples for a seed (e.g. the ``task`` of
            ``env.reset(seed)``).
        training_tasks: the checkpoint's training tasks.
        trials: total trials (≥ 0).
        start: first seed scanned.
        max_probes: seeds scanned at most (default ``PROBES_PER_TRIAL * trials``).

    Returns:
        ``{"seeds": sorted seeds to run, "group": {seed: IN|OUT}, "task": {seed: task},
        "planned": {IN: n, OUT: n}, "probed": seeds scanned, "shortfall": {group: reason}}``.

    Raises:
        ValueError: ``trials`` < 0.
    """
    if trials < 0:
        raise ValueError(f"trials must be >= 0, got {trials}")
    want = {IN: (trials + 1) // 2, OUT: trials // 2}
    limit = PROBES_PER_TRIAL * trials if max_probes is None else int(max_probes)
    found: dict[str, list[int]] = {IN: [], OUT: []}
    tasks: dict[int, str] = {}
    seed = start
    while seed - start < limit and any(len(found[g]) < want[g] for g in GROUPS):
        task = str(task_of_seed(seed))
        tasks[seed] = task
        found[group_of(task, training_tasks)].append(seed)
        seed += 1
    shortfall: dict[str, str] = {}
    take = dict(want)
    for g, other in ((IN, OUT), (OUT, IN)):
        missing = want[g] - len(found[g])
        if missing > 0:
            shortfall[g] = (f"only {len(found[g])} of the {seed - start} seeds scanned from {start} gave "
                            f"{'a training task' if g == IN else 'a task outside the training tasks'}")
            take[g] = len(found[g])
            take[other] = min(len(found[other]), take[other] + missing)
    chosen = {g: found[g][:take[g]] for g in GROUPS}
    seeds = sorted(chosen[IN] + chosen[OUT])
    return {"seeds": seeds, "group": {s: g for g in GROUPS for s in chosen[g]}, "task": {s: tasks[s] for s in seeds},
            "planned": {g: len(chosen[g]) for g in GROUPS}, "probed": seed - start, "shortfall": shortfall}


def group_summary(trials: Sequence[Mapping[str, Any]], *, note: str | None = None) -> dict[str, Any]:
    """Success of one group of trials.

    Returns:
        ``{"trials": n, "successes": k, "success_rate": k / n, "ci95": [lower, upper],
        "interval": INTERVAL, "seeds": [...], "tasks": sorted distinct tasks, "note": str | None}``;
        with no trials ``success_rate`` and ``ci95`` are None and ``note`` says the group was not
        measured.
    """
    n = len(trials)
    k = sum(1 for t in trials if t["success"])
    out: dict[str, Any] = {"trials": n, "successes": k, "success_rate": k / n if n else None,
                           "ci95": list(wilson_interval(k, n, Z_95)) if n else None, "interval": INTERVAL,
                           "seeds": [t["seed"] for t in trials], "tasks": sorted({str(t["task"]) for t in trials}),
                           "note": note}
    if not n and note is None:
        out["note"] = "no trials: not measured"
    return out


def per_task_summary(per_trial: Sequence[Mapping[str, Any]], training_tasks: Iterable[str]) -> list[dict[str, Any]]:
    """Success per task instruction of a list of trials.

    Args:
        per_trial: trial records with ``task`` (str), ``seed`` and ``success`` (bool).
        training_tasks: the checkpoint's training tasks (decides ``distribution``, :func:`group_of`).

    Returns:
        one entry per distinct task (exact string), in-distribution tasks first, then by task:
        ``{"task", "distribution": IN|OUT, "in_training_tasks": bool, "trials": n, "successes": k,
        "success_rate": k / n, "ci95": [lower, upper], "interval": INTERVAL, "seeds": [...]}``.
    """
    training_tasks = list(training_tasks)
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for t in per_trial:
        by_task.setdefault(str(t["task"]), []).append(t)
    out = []
    for task, trials in by_task.items():
        g = group_of(task, training_tasks)
        n, k = len(trials), sum(1 for t in trials if t["success"])
        out.append({"task": task, "distribution": g, "in_training_tasks": g == IN, "trials": n, "successes": k,
                    "success_rate": k / n, "ci95": list(wilson_interval(k, n, Z_95)), "interval": INTERVAL,
                    "seeds": [t["seed"] for t in trials]})
    return sorted(out, key=lambda e: (GROUPS.index(e["distribution"]), e["task"]))


def split_by_distribution(closed_loop: Mapping[str, Any], *, training_tasks: Sequence[str],
                          release_tasks: Sequence[str], release: str,
                          shortfall: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The evaluation's closed-loop result: the runner's result with each trial classified and one
    summary per group instead of a pooled success count.

    Args:
        closed_loop: :func:`~hvla_platform.lib.serving.control_loop.run_closed_loop`'s result (its
            ``per_trial`` entries have ``task``, ``seed``, ``success``).
        training_tasks: the checkpoint's training tasks (train split of ``release``).
        release_tasks: the tasks of every episode of ``release`` (train and held out).
        release: the release the checkpoint was trained on.
        shortfall: :func:`plan_seeds`'s ``shortfall`` (why a group has fewer trials than planned).

    Returns:
        ``closed_loop`` without ``successes`` / ``success_rate`` / ``mean_steps_success``, each
        ``per_trial`` entry with ``"distribution": IN|OUT``, plus ``IN`` and ``OUT``
        (:func:`group_summary`), ``"per_task"`` (:func:`per_task_summary`) and ``"distribution_basis": {"release", "training_tasks",
        "release_tasks", "rule"}``.
    """
    shortfall = dict(shortfall or {})
    per_trial = [{**t, "distribution": group_of(str(t["task"]), training_tasks)} for t in closed_loop["per_trial"]]
    out = {k: v for k, v in closed_loop.items() if k not in ("successes", "success_rate", "mean_steps_success")}
    out["per_trial"] = per_trial
    for g in GROUPS:
        members = [t for t in per_trial if t["distribution"] == g]
        note = shortfall.get(g)
        if not members:
            note = f"no trials: not measured ({note})" if note else "no trials: not measured"
        out[g] = group_summary(members, note=note)
    out["per_task"] = per_task_summary(per_trial, training_tasks)
    out["distribution_basis"] = {
        "release": release, "training_tasks": sorted(training_tasks), "release_tasks": sorted(release_tasks),
        "rule": "in distribution = the trial's task instruction is one of the checkpoint's training tasks "
                "(the train-split episodes of the release; case and whitespace ignored); otherwise out of distribution",
    }
    return out


def group_headlines(closed_loop: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{IN: {"trials", "successes", "success_rate", "ci95"}, OUT: {...}}`` of a
    :func:`split_by_distribution` result (what the eval report's manifest records)."""
    return {g: {k: closed_loop[g][k] for k in ("trials", "successes", "success_rate", "ci95")} for g in GROUPS}
