"""Dagster resources: the lake (local directory or S3), MLflow tracking and the training launcher."""

from pathlib import Path

import dagster as dg

from hvla_platform.defs.training.launcher import TrainingLauncherResource, training_launcher_from_env
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.lake_config import LakeConfig, lake_config_from_env, open_lake


def _resolve(value: "str | dg.EnvVar") -> str:
    """The value of a field that may still hold an unresolved ``dg.EnvVar`` (when the resource is
    used outside a Dagster run, e.g. by the ``hvla`` CLI)."""
    return value.get_value() or "" if isinstance(value, dg.EnvVar) else value


class LakeResource(dg.ConfigurableResource):
    """The lake. ``backend="local"`` (embedded default) keeps it in ``root``; ``backend="s3"`` uses
    boto3 against ``endpoint_url`` (RustFS/MinIO, path-style addressing) or AWS when it is empty.
    Credentials come from the standard AWS environment variables unless set here."""

    backend: str = "local"
    root: str = ""
    bucket: str = "hvla-lake"
    prefix: str = ""
    endpoint_url: str = ""
    region_name: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""

    def get_lake(self) -> Lake:
        """Open the lake (:func:`hvla_platform.lib.core.lake_config.open_lake`).

        Raises:
            ValueError: an unknown backend.
        """
        return open_lake(LakeConfig(
            backend=self.backend, root=self.root, bucket=self.bucket, prefix=self.prefix,
            endpoint_url=self.endpoint_url, region_name=self.region_name,
            access_key_id=_resolve(self.access_key_id), secret_access_key=_resolve(self.secret_access_key)))

    def process_settings(self) -> tuple[dict[str, str], dict[str, str]]:
        """How another process (the training worker) opens this lake: ``(config, secret_env)``.

        ``config`` holds the non-secret :class:`LakeConfig` fields (a local root resolved to an
        absolute path; sent in the Dagster Pipes context); ``secret_env`` the S3 credentials set on
        this resource as ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (empty when the environment
        provides them), only ever passed through a process environment."""
        config = {"backend": self.backend, "root": self.root, "bucket": self.bucket, "prefix": self.prefix,
                  "endpoint_url": self.endpoint_url, "region_name": self.region_name}
        if self.backend == "local":
            config["root"] = str(Path(self.root).resolve() if self.root else settings.lake_root())
        secret_env = {name: value for name, value in (("AWS_ACCESS_KEY_ID", _resolve(self.access_key_id)),
                                                      ("AWS_SECRET_ACCESS_KEY", _resolve(self.secret_access_key)))
                      if value}
        return config, secret_env


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking server or store (``sqlite:///...`` by default)."""

    tracking_uri: str = ""
    artifact_root: str = ""

    def uri(self) -> str:
        """The tracking URI to use."""
        return self.tracking_uri or settings.mlflow_tracking_uri()

    def artifacts(self) -> str:
        """Artifact location for experiments created by the platform."""
        return self.artifact_root or settings.mlflow_artifact_root()


def lake_from_env() -> LakeResource:
    """The lake resource as the environment configures it
    (:func:`hvla_platform.lib.core.lake_config.lake_config_from_env`); S3 credentials are read with
    ``dg.EnvVar`` so they never appear in the UI."""
    cfg = lake_config_from_env()
    if cfg.backend == "s3":
        return LakeResource(backend="s3", bucket=cfg.bucket, prefix=cfg.prefix, endpoint_url=cfg.endpoint_url,
                            region_name=cfg.region_name, access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
                            secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"))
    return LakeResource(backend=cfg.backend, root=cfg.root)


@dg.definitions
def resources() -> dg.Definitions:
    """Resources bound to every asset."""
    return dg.Definitions(resources={"lake": lake_from_env(), "mlflow": MlflowResource(),
                                     "training_launcher": training_launcher_from_env()})


__all__ = ["LakeResource", "MlflowResource", "TrainingLauncherResource", "lake_from_env", "resources"]
