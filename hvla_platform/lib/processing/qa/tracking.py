"""Log a partition's QA results to MLflow (experiment ``hvla-qa``, one run per version of the
partition's HDF5 artifact, identified by its manifest's fingerprint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from hvla_platform.lib.core.tracking import TrackedRun, find_finished_run

#: Tag of a QA run naming the fingerprint of the HDF5 artifact it describes.
FINGERPRINT_TAG = "hvla.artifact_fingerprint"


def log_partition_qa(tracking_uri: str, *, partition: str, conversions: Sequence[dict[str, Any]],
                     thresholds: dict[str, Any], report_dir: Path | None = None,
                     artifact_dir: str | None = None, experiment: str = "hvla-qa",
                     fingerprint: str | None = None) -> str:
    """Log per-partition QA metrics (mean/min quality score, failing-check counts, per-episode
    scores as a series) and the QA report; return the MLflow run id.

    With ``fingerprint`` (the HDF5 artifact's manifest fingerprint) it is idempotent: when a
    finished run for that fingerprint exists its id is returned and nothing is logged, so a partition
    whose logging was cut short (a crash after publishing) is logged by the next materialization,
    even one that finds the artifact ``cached``, and never twice."""
    tags = {"hvla.partition": partition, "hvla.stage": "qa"}
    if fingerprint is not None:
        tags[FINGERPRINT_TAG] = fingerprint
        done = find_finished_run(tracking_uri, experiment, tags)
        if done is not None:
            return done
    run = TrackedRun(tracking_uri, experiment, run_name=f"qa {partition}", artifact_dir=artifact_dir, tags=tags)
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
