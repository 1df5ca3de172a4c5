"""The drop-area resource the landing sensor watches."""

import os

import dagster as dg

from hvla_platform.defs.automation import settings
from hvla_platform.lib.ingest.drop_area import DropArea, LocalDropArea, S3DropArea, parse_drop_uri


class DropAreaResource(dg.ConfigurableResource):
    """Where uploaders drop finished recordings: a folder or ``s3://<bucket>/<prefix>``.

    On S3 the client uses ``endpoint_url`` (path-style, for RustFS/MinIO; empty for AWS) and the
    standard AWS credential chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, instance role),
    so no secret is part of the config. ``settle_seconds``: a folder lands once its files have not
    changed for that long; ``budget_seconds``: time one sensor tick may spend landing.
    """

    uri: str
    endpoint_url: str = ""
    region_name: str = "us-east-1"
    settle_seconds: float = 10.0
    budget_seconds: float = 30.0

    def get_drop_area(self) -> DropArea:
        """The drop area. Raises ``ValueError`` for a malformed ``uri``."""
        kind, where, prefix = parse_drop_uri(self.uri)
        if kind == "local":
            return LocalDropArea(where)
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", endpoint_url=self.endpoint_url or None, region_name=self.region_name,
                              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}))
        return S3DropArea(where, prefix, client)


def drop_area_from_env() -> DropAreaResource:
    """The resource as configured by ``HVLA_DROP_URI``, ``HVLA_DROP_SETTLE_SECONDS``, and for S3
    ``HVLA_DROP_S3_ENDPOINT_URL`` (default: ``HVLA_S3_ENDPOINT_URL``, the lake's) and ``AWS_REGION``."""
    return DropAreaResource(
        uri=settings.drop_uri(),
        endpoint_url=os.environ.get("HVLA_DROP_S3_ENDPOINT_URL", os.environ.get("HVLA_S3_ENDPOINT_URL", "")),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        settle_seconds=settings.drop_settle_seconds(),
    )


@dg.definitions
def resources() -> dg.Definitions:
    """The drop area, bound for the landing sensor."""
    return dg.Definitions(resources={"drop_area": drop_area_from_env()})
