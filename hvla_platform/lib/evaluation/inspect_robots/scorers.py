"""Scorers of the ``hvla_reach_touch`` task. They read the recorded trajectory only (as inspect-robots
requires), so a saved trial scores the same again.

- ``hvla_success``: 1 when the simulator reported success (the active hand's fingertip came within
  ``SUCCESS_DISTANCE`` of the object: ``ReachEnv.success``, carried as ``info["success"]`` of the
  embodiment's last step) — the success of the eval report and ``hvla deploy``.
- ``hvla_steps``: control steps executed (the trial stops at success or at the step budget).
- ``hvla_in_distribution``: 1 when the scene's instruction is one of the checkpoint's training tasks
  (:mod:`hvla_platform.lib.evaluation.distribution`), 0 when not; its mean is the share of
  in-distribution trials, not a success rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inspect_robots import Score, Scorer, Target

from hvla_platform.lib.evaluation.distribution import GROUPS, IN
from hvla_platform.lib.evaluation.inspect_robots.names import IN_DISTRIBUTION, STEPS, SUCCESS


@dataclass(frozen=True)
class _Success:
    name: str = SUCCESS

    def __call__(self, record: Any, target: Target | None) -> Score:
        if not record.steps:
            return Score(value=False, explanation="no step was executed")
        info = record.steps[-1].result.info
        if "success" not in info:
            raise ValueError(f"{SUCCESS} reads info['success'] of the embodiment's steps (the hvla_g1_reach "
                             f"embodiment sets it); this trajectory's last step has {sorted(info)}")
        ok = bool(info["success"])
        return Score(value=ok, explanation="the hand touched the object" if ok else
                     f"not touched within {len(record.steps)} steps")


@dataclass(frozen=True)
class _Steps:
    name: str = STEPS

    def __call__(self, record: Any, target: Target | None) -> Score:
        return Score(value=len(record.steps), explanation="control steps executed")


@dataclass(frozen=True)
class _InDistribution:
    name: str = IN_DISTRIBUTION

    def __call__(self, record: Any, target: Target | None) -> Score:
        group = (target.spec.get("distribution") if target is not None else None)
        if group not in GROUPS:
            raise ValueError(f"{IN_DISTRIBUTION} needs the scene target's spec['distribution'] in "
                             f"{list(GROUPS)} (the hvla_reach_touch task's scenes with training tasks), "
                             f"got {group!r}")
        return Score(value=group == IN, explanation=str(group))


def success_scorer() -> Scorer:
    """``hvla_success``: 1.0 iff the simulator reported success (see the module docstring)."""
    return _Success()


def steps_scorer() -> Scorer:
    """``hvla_steps``: control steps executed."""
    return _Steps()


def in_distribution_scorer() -> Scorer:
    """``hvla_in_distribution``: 1.0 iff the scene's task is a training task of the checkpoint."""
    return _InDistribution()
