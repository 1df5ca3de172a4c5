"""From an inspect-robots run to the eval report's trial records.

Success, steps and why a trial ended are read from the **EvalLog** (the scores of ``hvla_success`` /
``hvla_steps`` and the termination reasons), so the report's numbers are the log's.
:class:`TrialTimes`, a log sink, adds what the EvalLog does not keep: simulated and wall time,
clipped commands and the simulator's step time.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from inspect_robots import EvalLog
from inspect_robots.logging import NullSink

from hvla_platform.lib.evaluation.inspect_robots.names import STEPS, SUCCESS

#: inspect-robots' termination reason → the robot client's ``stop_reason``.
STOP_REASON = {"success": "success", "max_steps": "timeout"}


class TrialTimes(NullSink):
    """Log sink keeping, per trial (``"<scene id>-e<epoch>"``): ``sim_time_s`` (simulated seconds at
    the end), ``wall_s``, ``clipped_steps`` (commands the robot's guard clipped), ``queries`` (policy
    queries), ``infer_ms`` (their round trips, ms) and ``env_step_ms`` (simulator step times, ms),
    from the embodiment's ``StepResult.info`` and the rollout's records.

    Attributes:
        trials: the per-trial dicts, by trial id.
    """

    def __init__(self) -> None:
        self.trials: dict[str, dict[str, Any]] = {}
        self._t0 = 0.0

    def on_trial_start(self, scene_id: str, epoch: int) -> None:
        """Start the trial's wall clock."""
        self._t0 = time.perf_counter()

    def on_trial_end(self, record: Any) -> None:
        """Summarise the finished (or failed) trial."""
        infos = [s.result.info for s in record.steps]
        self.trials[f"{record.scene_id}-e{record.epoch}"] = {
            "wall_s": time.perf_counter() - self._t0,
            "sim_time_s": float(infos[-1].get("sim_time_s", float("nan"))) if infos else float("nan"),
            "clipped_steps": sum(1 for i in infos if i.get("clipped")),
            "queries": len(record.inference_latencies),
            "infer_ms": [lat * 1000.0 for lat in record.inference_latencies],
            "env_step_ms": [float(i["env_step_ms"]) for i in infos if "env_step_ms" in i],
        }


def per_trial_records(log: EvalLog, times: TrialTimes) -> list[dict[str, Any]]:
    """The report's trial records, in the log's scene order (one epoch per scene).

    Returns:
        ``[{"trial", "seed", "task", "success", "stop_reason" (success | timeout | fault),
        "steps", "sim_time_s", "wall_s", "queries", "infer_ms_mean", "clipped_steps", "scene_id"}]``;
        ``seed`` / ``task`` come from the scene's metadata, ``success`` / ``steps`` from the
        ``hvla_success`` / ``hvla_steps`` scores, ``stop_reason`` from the termination reason
        (an errored, unscored trial is a ``fault`` with ``success`` False).

    Raises:
        ValueError: a scene ran more than one epoch, or lacks its scores while not errored.
    """
    out: list[dict[str, Any]] = []
    for scene in log.samples:
        if len(scene.epochs) != 1:
            raise ValueError(f"scene {scene.scene_id!r} ran {len(scene.epochs)} epochs; the report takes one "
                             "per seed")
        scores, reason = scene.epochs[0], scene.termination_reasons[0] if scene.termination_reasons else None
        errored = not scores
        if not errored and not {SUCCESS, STEPS} <= set(scores):
            raise ValueError(f"scene {scene.scene_id!r} has scores {sorted(scores)}, not {SUCCESS} and "
                             f"{STEPS}")
        extra = times.trials.get(f"{scene.scene_id}-e0", {})
        infer = extra.get("infer_ms") or []
        out.append({
            "trial": len(out), "seed": int(scene.scene_metadata["seed"]),
            "task": str(scene.scene_metadata["task"]),
            "success": bool(scores.get(SUCCESS, 0.0) >= 0.5),
            "stop_reason": "fault" if errored else STOP_REASON.get(str(reason), str(reason)),
            "steps": int(scores[STEPS]) if not errored else None,
            "sim_time_s": extra.get("sim_time_s", float("nan")), "wall_s": extra.get("wall_s"),
            "queries": extra.get("queries", 0), "infer_ms_mean": float(np.mean(infer)) if infer else None,
            "clipped_steps": extra.get("clipped_steps", 0), "scene_id": scene.scene_id,
        })
    return out


def timing_summary(times: TrialTimes, wall_s: float) -> dict[str, Any]:
    """``{"infer_ms_mean", "infer_ms_p50", "infer_ms_p95", "infer_ms_max", "env_step_ms_mean",
    "wall_s"}`` over every trial (None where nothing was measured), as the robot client reports them."""
    infer = np.asarray([m for t in times.trials.values() for m in t["infer_ms"]], dtype=np.float64)
    steps = [m for t in times.trials.values() for m in t["env_step_ms"]]
    some = infer.size > 0
    return {"infer_ms_mean": float(infer.mean()) if some else None,
            "infer_ms_p50": float(np.percentile(infer, 50)) if some else None,
            "infer_ms_p95": float(np.percentile(infer, 95)) if some else None,
            "infer_ms_max": float(infer.max()) if some else None,
            "env_step_ms_mean": float(np.mean(steps)) if steps else None, "wall_s": wall_s}
