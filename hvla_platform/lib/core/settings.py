"""Where the embedded default keeps its state, from environment variables.

``HVLA_HOME`` (default ``./.hvla``, resolved against the working directory) holds the local lake
(``lake/``), the Dagster instance (``dagster/``) and the MLflow store (``mlflow.db``,
``mlruns/``). Each can be overridden: ``HVLA_LAKE_ROOT``, ``DAGSTER_HOME``,
``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import os
from pathlib import Path

# The source checkout this package runs from (the demo's recordings, release specs and git
# commit are found relative to it).
REPO_ROOT = Path(__file__).resolve().parents[3]


def hvla_home() -> Path:
    """Absolute path of ``HVLA_HOME`` (default ``./.hvla``)."""
    return Path(os.environ.get("HVLA_HOME", ".hvla")).resolve()


def lake_root() -> Path:
    """Local lake directory (``HVLA_LAKE_ROOT`` or ``$HVLA_HOME/lake``)."""
    return Path(os.environ.get("HVLA_LAKE_ROOT", hvla_home() / "lake")).resolve()


def mlflow_tracking_uri() -> str:
    """MLflow tracking URI (``MLFLOW_TRACKING_URI`` or ``sqlite:///$HVLA_HOME/mlflow.db``)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{hvla_home() / 'mlflow.db'}"


def mlflow_artifact_root() -> str:
    """Where MLflow stores run artifacts for experiments this platform creates."""
    return os.environ.get("HVLA_MLFLOW_ARTIFACT_ROOT") or (hvla_home() / "mlruns").as_uri()
