"""The lake: one storage interface, a local-directory backend and an S3 backend."""

from hvla_platform.lib.storage.lake import (
    MANIFEST_NAME,
    ArtifactNotFoundError,
    Lake,
    LocalLake,
    ObjectExistsError,
    S3Lake,
    validate_key,
)

__all__ = [
    "MANIFEST_NAME",
    "ArtifactNotFoundError",
    "Lake",
    "LocalLake",
    "ObjectExistsError",
    "S3Lake",
    "validate_key",
]
