"""MLflow tracking helpers (explicit ``MlflowClient``, no global fluent state).

Everything goes through one :class:`mlflow.MlflowClient` bound to the given tracking URI, so
importing code (e.g. a Dagster process that also tracks other things) keeps its own
``mlflow.set_tracking_uri``. Prefer a ``sqlite:////abs/path/mlflow.db`` URI: MLflow 3's plain file
store refuses writes unless ``MLFLOW_ALLOW_FILE_STORE=true``.

**Artifact locations follow the store.** MLflow records an experiment's artifact location (and
each run's) as an absolute URI. An experiment whose artifacts live beside a SQLite store (the
embedded default: ``$HVLA_HOME/mlflow.db`` with ``$HVLA_HOME/mlruns``) is tagged with that
location relative to the database's folder (:data:`RELATIVE_LOCATION_TAG`, e.g. ``mlruns``), and
the first use of the store in a process (:func:`ensure_store`) re-points every tagged experiment,
and its runs, at that folder beside the database as it is now (:func:`relocate_store`). So a store
copied with ``HVLA_HOME`` writes its artifacts into the copy (and shows the copied ones), never into
the original home. Other locations (``HVLA_MLFLOW_ARTIFACT_ROOT``, S3, a tracking server) are
absolute by the operator's choice and left as they are.
"""

from __future__ import annotations

import sqlite3
import time
import warnings
from pathlib import Path
from urllib.parse import unquote, urlsplit
from typing import Any, Mapping, Sequence

from hvla_platform.lib.core.locking import file_lock, owner_alive, owner_token
from hvla_platform.lib.core.settings import mlflow_tracking_uri

_MAX_BATCH = 1000  # MLflow's log_batch limit on metrics per call
_READY: set[str] = set()  # tracking URIs whose store this process has initialised
#: Tag naming the process that created a run (``host:pid:start``), so a later one can tell it died.
OWNER_TAG = "hvla.owner"
#: Tag saying why a run was marked failed by someone else than its owner.
FAILURE_REASON_TAG = "hvla.failure_reason"
#: Experiment tag: its artifact location relative to the folder of the SQLite store's database
#: (``mlruns``); :func:`relocate_store` keeps the absolute location MLflow records equal to it.
RELATIVE_LOCATION_TAG = "hvla.artifact_location_relative"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///…`` tracking URI (``None`` for other stores)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def ensure_store(tracking_uri: str) -> None:
    """Create and migrate the tracking store once, before this process uses it, and re-point its
    artifact locations at the store's folder (:func:`relocate_store`).

    MLflow creates and migrates a SQLite store on first use; two processes doing that at once fail
    (``duplicate column name``, alembic "expected to match one row"). The first use therefore runs
    under a file lock beside the database (``<db>.lock``): whoever comes second finds it ready.
    """
    if tracking_uri in _READY:
        return
    from mlflow import MlflowClient  # noqa: PLC0415 - mlflow takes ~2 s to import

    db = sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(db.with_name(db.name + ".lock"), what=f"MLflow store {db}"):
            MlflowClient(tracking_uri=tracking_uri).search_experiments(max_results=1)
            relocate_store(tracking_uri)
    _READY.add(tracking_uri)


def _local_path(location: str) -> Path | None:
    """The local path an artifact location names (``file://`` URI or plain path), else ``None``."""
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def relative_location(tracking_uri: str, location: str) -> str | None:
    """``location`` relative to the folder of the SQLite store's database (POSIX), when it lies in
    that folder; ``None`` otherwise (another store kind, or artifacts kept elsewhere)."""
    db, path = sqlite_path(tracking_uri), _local_path(location)
    if db is None or path is None:
        return None
    try:
        rel = path.resolve().relative_to(db.parent.resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def relocate_store(tracking_uri: str) -> list[tuple[str, str, str]]:
    """Re-point the artifact locations of a SQLite store at the folder its database is in now.

    For every experiment tagged :data:`RELATIVE_LOCATION_TAG` (``rel``) whose recorded location is
    not ``<database folder>/<rel>``: the experiment's location and the artifact URIs of its runs
    (``<old location>/<run id>/artifacts``) are rewritten to the new folder, in one transaction,
    with SQLite's ``secure_delete`` on (the old paths are not left in freed pages). An experiment
    without the tag whose location is a ``mlruns`` folder beside this database, or (when this is
    the embedded default's store, ``$HVLA_HOME/mlflow.db``) any local ``…/mlruns`` or
    ``…/mlruns/<id>`` folder (stores written before the tag, and MLflow's ``Default`` experiment,
    created under the working directory), is tagged ``mlruns[/<id>]`` first.

    Returns:
        ``[(experiment id, old location, new location)]`` of the experiments re-pointed.
    """
    db = sqlite_path(tracking_uri)
    if db is None or not db.is_file():
        return []
    from mlflow import MlflowClient  # noqa: PLC0415 - mlflow takes ~2 s to import
    from mlflow.entities import ViewType  # noqa: PLC0415

    client = MlflowClient(tracking_uri=tracking_uri)
    default_store = sqlite_path(mlflow_tracking_uri()) == db
    moves = []
    for exp in client.search_experiments(view_type=ViewType.ALL):
        loc = exp.artifact_location or ""
        rel = exp.tags.get(RELATIVE_LOCATION_TAG)
        if rel is None:
            rel = relative_location(tracking_uri, loc)
            path = _local_path(loc)
            if rel is None and default_store and path is not None:
                tail = path.parts[-2:] if path.name != "mlruns" else path.parts[-1:]
                rel = "/".join(tail) if tail[0] == "mlruns" else None
            if rel is None or not (rel == "mlruns" or rel.startswith("mlruns/")):
                continue
            client.set_experiment_tag(exp.experiment_id, RELATIVE_LOCATION_TAG, rel)
        want = (db.parent.resolve() / rel).as_uri()
        if loc != want:
            moves.append((exp.experiment_id, loc, want))
    if moves:
        con = sqlite3.connect(db, timeout=60)
        try:
            con.execute("PRAGMA secure_delete = ON")
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            with con:
                for exp_id, old, new in moves:
                    con.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
                                (new, int(exp_id)))
                    if old:
                        con.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                                    "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                                    (new, len(old) + 1, int(exp_id), len(old), old))
                        if "logged_models" in tables:
                            con.execute("UPDATE logged_models SET artifact_location = ? || substr(artifact_location, ?) "
                                        "WHERE experiment_id = ? AND substr(artifact_location, 1, ?) = ?",
                                        (new, len(old) + 1, int(exp_id), len(old), old))
        finally:
            con.close()
    return moves


def _client(tracking_uri: str):
    from mlflow import MlflowClient  # noqa: PLC0415 - mlflow takes ~2 s to import

    ensure_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


def get_or_create_experiment(tracking_uri: str, name: str, artifact_dir: str | Path | None = None) -> str:
    """Id of experiment ``name``, creating it (with artifacts under ``artifact_dir``) if absent.

    ``artifact_dir`` is a local path or a URI (``file:///…``, ``s3://…``, used as given).
    An existing experiment keeps its own artifact location. A location in the folder of a SQLite
    store's database is also recorded relative to it (:data:`RELATIVE_LOCATION_TAG`), so it moves
    with the store (:func:`relocate_store`).
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
    from mlflow.exceptions import MlflowException  # noqa: PLC0415 - mlflow takes ~2 s to import

    rel = relative_location(tracking_uri, location) if location else None
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={RELATIVE_LOCATION_TAG: rel} if rel else None)
    except MlflowException:  # another process created it in the meantime
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def fail_orphaned_runs(tracking_uri: str, experiment_ids: Sequence[str] | None = None) -> list[str]:
    """Mark ``FAILED`` (with the reason in :data:`FAILURE_REASON_TAG`) every ``RUNNING`` run whose
    creating process (:data:`OWNER_TAG`) is gone; the run ids. Default: every experiment."""
    client = _client(tracking_uri)
    ids = list(experiment_ids) if experiment_ids is not None else [
        e.experiment_id for e in client.search_experiments()]
    if not ids:
        return []
    out = []
    for r in client.search_runs(ids, filter_string="attributes.status = 'RUNNING'", max_results=1000):
        token = r.data.tags.get(OWNER_TAG)
        if not token or owner_alive(token) is not False:
            continue
        client.set_tag(r.info.run_id, FAILURE_REASON_TAG,
                       f"the process that ran it ({token}) is gone (killed or crashed); marked failed by "
                       f"{owner_token()} at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        client.set_terminated(r.info.run_id, status="FAILED")
        out.append(r.info.run_id)
    return out


def find_finished_run(tracking_uri: str, experiment: str, tags: Mapping[str, str]) -> str | None:
    """Id of a ``FINISHED`` run of ``experiment`` carrying all ``tags`` (the newest), or ``None``."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    flt = " and ".join([f"tags.`{k}` = '{v}'" for k, v in tags.items()] + ["attributes.status = 'FINISHED'"])
    runs = client.search_runs([exp.experiment_id], filter_string=flt, max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


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
    The run is tagged with the creating process (:data:`OWNER_TAG`); creating one first marks
    failed the runs of the experiment that a dead process left ``RUNNING``
    (:func:`fail_orphaned_runs`).
    """

    def __init__(self, tracking_uri: str, experiment: str, *, run_name: str | None = None,
                 artifact_dir: str | Path | None = None, tags: Mapping[str, str] | None = None):
        self.tracking_uri = tracking_uri
        self.client = _client(tracking_uri)
        self.experiment_id = get_or_create_experiment(tracking_uri, experiment, artifact_dir)
        fail_orphaned_runs(tracking_uri, [self.experiment_id])
        run = self.client.create_run(self.experiment_id, run_name=run_name,
                                     tags={**dict(tags or {}), OWNER_TAG: owner_token()})
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
