"""Create the S3 buckets the deployment needs (docker-compose's one-shot `buckets` service).

    python deploy/create_buckets.py [--endpoint-url URL] [--wait SECONDS] [--object-lock BUCKET] BUCKET [BUCKET ...]

A bucket named with ``--object-lock`` is created with S3 Object Lock enabled, so that raw episodes
written to it carry a COMPLIANCE retention period from their rights (WORM raw storage, seed 001;
``hvla_platform.lib.core.lake.S3Lake.put_file_retained``). Object Lock can only be enabled when a
bucket is created: an existing bucket without it is reported, not changed.

The endpoint defaults to ``$HVLA_S3_ENDPOINT_URL`` (empty: AWS), credentials come from the standard
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` variables. The object store may still be starting
when this runs, so connection failures are retried until ``--wait`` seconds have passed. Existing
buckets are left alone; running it again changes nothing. Exit status 0 when every bucket exists
afterwards, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable


def s3_client(endpoint_url: str | None, region: str) -> Any:
    """A boto3 S3 client with path-style addressing (RustFS/MinIO) and few internal retries."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint_url or None, region_name=region,
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                      connect_timeout=3, read_timeout=10))


def ensure_bucket(client: Any, bucket: str, object_lock: bool = False) -> str:
    """Create ``bucket`` unless it exists (with Object Lock when ``object_lock``); return
    ``"created"``, ``"exists"`` or, for an existing bucket that should have Object Lock and has not,
    ``"exists without object lock (WORM not enforced)"``.

    Raises ``botocore.exceptions.ClientError`` for anything but "not found" (e.g. access denied),
    and ``botocore.exceptions.EndpointConnectionError`` when the endpoint does not answer."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return "exists" if not object_lock or _has_object_lock(client, bucket) else \
            "exists without object lock (WORM not enforced)"
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    try:
        client.create_bucket(Bucket=bucket, **({"ObjectLockEnabledForBucket": True} if object_lock else {}))
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return "exists"  # created concurrently by someone else with our credentials
        raise
    return "created"


def _has_object_lock(client: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        conf = client.get_object_lock_configuration(Bucket=bucket)
    except ClientError:
        return False
    return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"


def ensure_buckets(client: Any, buckets: list[str], wait_s: float, log: Callable[[str], None] = print,
                   sleep: Callable[[float], None] = time.sleep, object_lock: frozenset[str] = frozenset()) -> dict[str, str]:
    """Ensure every bucket exists, retrying while the endpoint is unreachable for up to ``wait_s``
    seconds. Returns ``{bucket: "created" | "exists"}``; raises the last connection error on timeout."""
    from botocore.exceptions import ConnectionError as BotoConnectionError

    deadline = time.monotonic() + wait_s
    done: dict[str, str] = {}
    while True:
        try:
            for b in buckets:
                if b not in done:
                    done[b] = ensure_bucket(client, b, b in object_lock)
                    log(f"bucket {b}: {done[b]}" + (" (object lock)" if b in object_lock and done[b] == "created" else ""))
            return done
        except BotoConnectionError as e:
            if time.monotonic() >= deadline:
                raise
            log(f"object store not reachable yet ({e.__class__.__name__}); retrying")
            sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("buckets", nargs="+", help="bucket names")
    p.add_argument("--endpoint-url", default=os.environ.get("HVLA_S3_ENDPOINT_URL", ""),
                   help="S3 endpoint (default $HVLA_S3_ENDPOINT_URL; empty for AWS)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the endpoint (default 60)")
    p.add_argument("--object-lock", action="append", default=[], metavar="BUCKET",
                   help="create this bucket with S3 Object Lock (WORM raw storage); repeatable")
    args = p.parse_args(argv)
    buckets = list(dict.fromkeys([*args.buckets, *args.object_lock]))
    try:
        ensure_buckets(s3_client(args.endpoint_url, args.region), buckets, args.wait,
                       object_lock=frozenset(args.object_lock))
    except Exception as e:  # noqa: BLE001 - report any failure as the exit status
        print(f"create_buckets: {e.__class__.__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
