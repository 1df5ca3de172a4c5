"""HTTP links to the lake web service and to the MLflow UI, as put in Dagster metadata.

A browser refuses ``file://`` links from a web page ("Not allowed to load local resource"), so
everything the Dagster UI links to is served over HTTP by the lake web service
(:mod:`hvla_platform.lib.web`). URL scheme (the service's routes follow it):

- ``{base}/lake/{key}``: one lake object, read-only (``key`` as stored, e.g.
  ``processed/episodes/2026-11-10/g1-a/v3/qa_report.html``);
- ``{base}/review/partitions/{day}/{robot}/episodes/{episode_id}?t={seconds}``: the episode
  review page, its timeline at ``t`` (seconds from the episode's first frame);
- ``{base}/review/releases/{release}``: a release's review queue (episodes, score, decision).

Base URLs come from the environment: ``HVLA_WEB_URL`` (default ``http://127.0.0.1:3001``, where
``hvla ui`` starts the service) and ``HVLA_MLFLOW_UI_URL`` (default: ``MLFLOW_TRACKING_URI`` when
it is an ``http(s)`` server, else ``http://127.0.0.1:5000``, where ``hvla ui`` starts ``mlflow
ui`` on the embedded default's store).
"""

from __future__ import annotations

import os
from urllib.parse import quote

#: Where ``hvla ui`` starts the lake web service on the embedded default.
DEFAULT_WEB_PORT = 3001
#: Where ``hvla ui`` starts the MLflow UI on the embedded default's store.
DEFAULT_MLFLOW_UI_PORT = 5000


def web_base_url() -> str:
    """Base URL of the lake web service (``HVLA_WEB_URL``, no trailing slash)."""
    return (os.environ.get("HVLA_WEB_URL") or f"http://127.0.0.1:{DEFAULT_WEB_PORT}").rstrip("/")


def mlflow_ui_base_url() -> str:
    """Base URL of the MLflow UI (``HVLA_MLFLOW_UI_URL``; else an ``http(s)`` ``MLFLOW_TRACKING_URI``;
    else ``http://127.0.0.1:5000``), no trailing slash."""
    explicit = os.environ.get("HVLA_MLFLOW_UI_URL")
    if explicit:
        return explicit.rstrip("/")
    tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
    if tracking.startswith(("http://", "https://")):
        return tracking.rstrip("/")
    return f"http://127.0.0.1:{DEFAULT_MLFLOW_UI_PORT}"


def lake_file_url(key: str) -> str:
    """URL of one lake object (``key``: the lake key, no leading slash)."""
    return f"{web_base_url()}/lake/{quote(key.lstrip('/'))}"


def episode_review_url(day: str, robot: str, episode_id: str, t_s: float | None = None) -> str:
    """URL of an episode's review page; ``t_s`` (seconds from the first frame) places the cursor."""
    url = f"{web_base_url()}/review/partitions/{quote(day)}/{quote(robot)}/episodes/{quote(episode_id)}"
    return url if t_s is None else f"{url}?t={t_s:.2f}"


def release_queue_url(release: str) -> str:
    """URL of a release's review queue (every episode with its score and decision)."""
    return f"{web_base_url()}/review/releases/{quote(release)}"


def mlflow_run_url(run_id: str, experiment_id: str | None = None) -> str:
    """URL of an MLflow run in the MLflow UI (``#/experiments/{experiment_id}/runs/{run_id}``; MLflow's
    UI resolves a run without its experiment at ``#/runs/{run_id}``)."""
    if experiment_id:
        return f"{mlflow_ui_base_url()}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}"
    return f"{mlflow_ui_base_url()}/#/runs/{quote(run_id)}"
