"""Log a partition's QA results to MLflow (experiment ``hvla-qa``, one run per materialization)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hvla_platform.lib.core.tracking import TrackedRun


def log_partition_qa(tracking_uri: str, *, partition: str, conversions: Sequence[dict[str, Any]],
                     thresholds: dict[str, Any], report_dir: Path | None = None,
                     artifact_dir: str | None = None, experiment: str = "hvla-qa") -> str:
    """Log per-partition QA metrics (mean/min quality score, failing-check counts, per-episode
    scores as a series) and the QA report; return the MLflow run id."""
    run = TrackedRun(tracking_uri, experiment, run_name=f"qa {partition}", artifact_dir=artifact_dir,
                     tags={"hvla.partition": partition, "hvla.stage": "qa"})
    try:
        run.log_params({f"threshold.{k}": v for k, v in thresholds.items()})
        scores = [c["quality_score"] for c in conversions if c.get("quality_score") is not None]
        failing: dict[str, int] = {}
        for c in conversions:
            for name, chk in c.get("qa_checks", {}).items():
                failing[name] = failing.get(name, 0) + (0 if chk["passed"] else 1)
        metrics = {"episodes": float(len(conversions)),
                   "episodes_converted": float(sum(c["status"] == "converted" for c in conversions)),
                   "quality_score_mean": float(np.mean(scores)) if scores else 0.0,
                   "quality_score_min": float(np.min(scores)) if scores else 0.0}
        metrics.update({f"failing.{k}": float(v) for k, v in failing.items()})
        run.log_metrics(metrics)
        if scores:
            run.log_metric_series("quality_score", scores, first_step=0)
        if report_dir is not None:
            run.log_artifacts(report_dir, artifact_path="qa")
        run.finish()
    except Exception:
        run.finish("FAILED")
        raise
    return run.run_id
