"""Evaluation of trained checkpoints: offline action error on held-out episodes vs a hold-position
baseline, closed-loop trials in and out of the training distribution (each group's success with a
95 % Wilson interval, :mod:`.distribution`, :mod:`.wilson`), and the HTML/JSON report.

No Dagster imports here (DESIGN.md: lib/ is plain Python). The eval report passes the simulator
in as a factory; only the inspect-robots plugins (:mod:`.inspect_robots`) build a ``ReachEnv``
themselves, for command-line runs, and they import ``hvla_platform.lib.sim`` lazily.
"""

from hvla_platform.lib.serving.control_loop import build_observation, run_closed_loop
from hvla_platform.lib.evaluation.closed_loop import evaluate_closed_loop
from hvla_platform.lib.evaluation.distribution import per_task_summary, plan_seeds, split_by_distribution
from hvla_platform.lib.evaluation.offline import evaluate_offline, evaluate_policy_offline
from hvla_platform.lib.evaluation.report import (
    eval_summary_metrics,
    log_eval_to_mlflow,
    write_eval_report,
)
from hvla_platform.lib.evaluation.wilson import wilson_interval

__all__ = [
    "build_observation",
    "eval_summary_metrics",
    "evaluate_closed_loop",
    "evaluate_offline",
    "evaluate_policy_offline",
    "log_eval_to_mlflow",
    "per_task_summary",
    "plan_seeds",
    "run_closed_loop",
    "split_by_distribution",
    "wilson_interval",
    "write_eval_report",
]
