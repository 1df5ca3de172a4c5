"""Evaluation of trained checkpoints: offline action error on held-out episodes vs a hold-position
baseline, a closed-loop runner for simulated environments, and the HTML/JSON report.

No Dagster imports here (DESIGN.md: lib/ is plain Python). The simulated environment is passed in
as a factory, so this package does not import ``hvla_platform.lib.sim``.
"""

from hvla_platform.lib.serving.control_loop import build_observation, run_closed_loop
from hvla_platform.lib.evaluation.offline import evaluate_offline, evaluate_policy_offline
from hvla_platform.lib.evaluation.report import (
    eval_summary_metrics,
    log_eval_to_mlflow,
    write_eval_report,
)

__all__ = [
    "build_observation",
    "eval_summary_metrics",
    "evaluate_offline",
    "evaluate_policy_offline",
    "log_eval_to_mlflow",
    "run_closed_loop",
    "write_eval_report",
]
