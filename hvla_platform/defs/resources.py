"""Dagster resources: the lake (local directory or S3) and MLflow tracking."""


import os

import dagster as dg

from hvla_platform.lib import settings
from hvla_platform.lib.storage import Lake, LocalLake, S3Lake


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
        """Build the backend. Raises ``ValueError`` for an unknown backend."""
        if self.backend == "local":
            return LocalLake(self.root or settings.lake_root())
        if self.backend == "s3":
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url or None,
                region_name=self.region_name,
                aws_access_key_id=_resolve(self.access_key_id) or None,
                aws_secret_access_key=_resolve(self.secret_access_key) or None,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
            )
            return S3Lake(self.bucket, client, prefix=self.prefix)
        raise ValueError(f"unknown lake backend {self.backend!r} (expected 'local' or 's3')")


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
    """The lake resource as configured by ``HVLA_LAKE_BACKEND`` (``local``/``s3``) and friends:
    ``HVLA_LAKE_ROOT``; ``HVLA_S3_BUCKET``, ``HVLA_S3_PREFIX``, ``HVLA_S3_ENDPOINT_URL``,
    ``AWS_REGION``; credentials via ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (read with
    ``dg.EnvVar`` so they never appear in the UI)."""
    backend = os.environ.get("HVLA_LAKE_BACKEND", "local")
    if backend == "s3":
        return LakeResource(
            backend="s3",
            bucket=os.environ.get("HVLA_S3_BUCKET", "hvla-lake"),
            prefix=os.environ.get("HVLA_S3_PREFIX", ""),
            endpoint_url=os.environ.get("HVLA_S3_ENDPOINT_URL", ""),
            region_name=os.environ.get("AWS_REGION", "us-east-1"),
            access_key_id=dg.EnvVar("AWS_ACCESS_KEY_ID"),
            secret_access_key=dg.EnvVar("AWS_SECRET_ACCESS_KEY"),
        )
    return LakeResource(backend="local", root=str(settings.lake_root()))


@dg.definitions
def resources() -> dg.Definitions:
    """Resources bound to every asset."""
    return dg.Definitions(resources={"lake": lake_from_env(), "mlflow": MlflowResource()})
