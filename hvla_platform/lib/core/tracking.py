"""MLflow tracking helpers (explicit ``MlflowClient``, no global fluent state).

Everything goes through one :class:`mlflow.MlflowClient` bound to the given tracking URI, so
importing code (e.g. a Dagster process that also tracks other things) keeps its own
``mlflow.set_tracking_uri``. Prefer a ``sqlite:////abs/path/mlflow.db`` URI: MLflow 3's plain file
store refuses writes unless ``MLFLOW_ALLOW_FILE_STORE=true``.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

_MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call


def _client(tracking_uri: str):
    from mlflow import MlflowClient  # noqa: PLC0415 - mlflow takes ~2 s to import

    return MlflowClient(tracking_uri=tracking_uri)


def get_or_create_experiment(tracking_uri: str, name: str, artifact_dir: str | Path | None = None) -> str:
    """Id of experiment ``name``, creating it (with artifacts under ``artifact_dir``) if absent.

    ``artifact_dir`` is a local path or a URI (``file:///…``, ``s3://…``, used as given).
    An existing experiment keeps its own artifact location.
    """
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    if artifact_dir is None:
        location = None
    elif "://" in str(artifact_dir):
        location = str(artifact_dir)
    else:
        location = Path(artifact_dir).absolute().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Nested mapping → ``{"a.b": "value"}`` strings, truncated to MLflow's 6000-char limit."""
    flat: dict[str, Any] = {}
    _flatten("", params, flat)
    return {k: (v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v))[:6000]
            for k, v in flat.items()}


class TrackedRun:
    """One MLflow run driven through an explicit client.

    Use :meth:`start`, the ``log_*`` methods, then :meth:`finish` (``status="FAILED"`` on error).
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 artifact_dir: str | Path | None = None, tags: Mapping[str, str] | None = None):
        self.tracking_uri = tracking_uri
        self.client = _client(tracking_uri)
        self.experiment_id = get_or_create_experiment(tracking_uri, experiment, artifact_dir)
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id: str = run.info.run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (flattened) params in one batch."""
        from mlflow.entities import Param  # noqa: PLC0415

        items = [Param(k, v) for k, v in flatten_params(params).items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def log_metric_series(self, key: str, values: Sequence[float], *, first_step: int = 1) -> None:
        """Log ``values[i]`` as metric ``key`` at step ``first_step + i``."""
        from mlflow.entities import Metric  # noqa: PLC0415

        now = int(time.time() * 1000)
        ms = [Metric(key, float(v), now, first_step + i) for i, v in enumerate(values)]
        for i in range(0, len(ms), _MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=ms[i:i + _MAX_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log scalar metrics (non-finite values are skipped: MLflow stores them, JSON can't)."""
        from mlflow.entities import Metric  # noqa: PLC0415

        now = int(time.time() * 1000)
        ms = [Metric(k, float(v), now, step) for k, v in metrics.items()
              if v is not None and float(v) == float(v) and abs(float(v)) != float("inf")]
        for i in range(0, len(ms), _MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=ms[i:i + _MAX_BATCH])

    def log_dataset(self, df, *, name: str, source: str, context: str = "training") -> None:
        """Log a pandas DataFrame describing the data as an MLflow dataset input.

        ``source`` (e.g. the release name or the cache's lake URI) is recorded as the dataset's
        source; the digest is MLflow's hash of the DataFrame.
        """
        import mlflow.data  # noqa: PLC0415
        from mlflow.data.dataset_source_registry import resolve_dataset_source  # noqa: PLC0415
        from mlflow.entities import DatasetInput, InputTag  # noqa: PLC0415

        with warnings.catch_warnings():
            # mlflow registers its local artifact source twice and warns about the ambiguity
            warnings.simplefilter("ignore", UserWarning)
            src = resolve_dataset_source(source)
            # ...and hints about integer columns when inferring the DataFrame's schema
            ds = mlflow.data.from_pandas(df, source=src, name=name)
            entity = ds._to_mlflow_entity()
        self.client.log_inputs(
            self.run_id, datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])]
        )

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Copy a directory into the run's artifact store."""
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set run tags."""
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, str(v))

    def finish(self, status: str = "FINISHED") -> None:
        """Terminate the run with ``status`` (``FINISHED`` / ``FAILED`` / ``KILLED``)."""
        self.client.set_terminated(self.run_id, status=status)
