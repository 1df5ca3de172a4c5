"""Which lake to open: the local-directory default or an S3 bucket, from settings or environment.

Both the Dagster resource (:class:`hvla_platform.defs.resources.LakeResource`) and the ``hvla``
command open the lake through :func:`open_lake`, so there is one place that knows how a backend is
built. Environment (read by :func:`lake_config_from_env`): ``HVLA_LAKE_BACKEND`` (``local`` |
``s3``), ``HVLA_LAKE_ROOT``; ``HVLA_S3_BUCKET``, ``HVLA_S3_PREFIX``, ``HVLA_S3_ENDPOINT_URL``,
``AWS_REGION``; credentials from the standard ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from hvla_platform.lib.core import settings
from hvla_platform.lib.core.lake import Lake, LocalLake, S3Lake

BACKENDS = ("local", "s3")


@dataclass(frozen=True)
class LakeConfig:
    """How to reach the lake.

    Attributes:
        backend: ``"local"`` (a directory, ``root``) or ``"s3"`` (``bucket``/``prefix`` behind
            ``endpoint_url``, path-style addressing for RustFS/MinIO; AWS when it is empty).
        access_key_id, secret_access_key: explicit credentials; empty means boto3's own lookup
            (environment, config files).
    """

    backend: str = "local"
    root: str = ""
    bucket: str = "hvla-lake"
    prefix: str = ""
    endpoint_url: str = ""
    region_name: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""


def lake_config_from_env() -> LakeConfig:
    """The :class:`LakeConfig` the environment asks for (see the module docstring)."""
    backend = os.environ.get("HVLA_LAKE_BACKEND", "local")
    if backend == "s3":
        bucket, prefix = os.environ.get("HVLA_S3_BUCKET", "hvla-lake"), os.environ.get("HVLA_S3_PREFIX", "")
        return lake_config_from_uri(f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}")
    return LakeConfig(backend=backend, root=str(settings.lake_root()))


def lake_config_from_uri(uri: str) -> LakeConfig:
    """The :class:`LakeConfig` of a lake named by ``uri``: ``s3://bucket[/prefix]`` (endpoint and
    region from the environment as for the configured lake, credentials from boto3's lookup) or a
    local directory (``file://`` optional). E.g. ``hvla serve --lake``.

    Raises:
        ValueError: a local path that is not a directory.
    """
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        return LakeConfig(backend="s3", bucket=bucket, prefix=prefix,
                          endpoint_url=os.environ.get("HVLA_S3_ENDPOINT_URL", ""),
                          region_name=os.environ.get("AWS_REGION", "us-east-1"))
    root = os.path.expanduser(uri.removeprefix("file://"))
    if not os.path.isdir(root):
        raise ValueError(f"{uri}: no lake directory there")
    return LakeConfig(backend="local", root=root)


def open_lake(config: LakeConfig | None = None) -> Lake:
    """Open the lake ``config`` describes (default: :func:`lake_config_from_env`).

    Raises:
        ValueError: an unknown backend (the message names the valid ones).
    """
    cfg = config or lake_config_from_env()
    if cfg.backend == "local":
        return LocalLake(cfg.root or settings.lake_root())
    if cfg.backend == "s3":
        import boto3  # noqa: PLC0415 - deferred: boto3 is only needed for the S3 backend
        from botocore.config import Config  # noqa: PLC0415

        client = boto3.client(
            "s3",
            endpoint_url=cfg.endpoint_url or None,
            region_name=cfg.region_name,
            aws_access_key_id=cfg.access_key_id or None,
            aws_secret_access_key=cfg.secret_access_key or None,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}),
        )
        return S3Lake(cfg.bucket, client, prefix=cfg.prefix)
    raise ValueError(f"unknown lake backend {cfg.backend!r} (expected one of {', '.join(BACKENDS)})")
