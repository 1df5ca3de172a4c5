"""deploy/create_buckets.py (docker-compose's `buckets` service) against a real S3 endpoint over
HTTP (a SeaweedFS server), and against an endpoint that does not answer."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hvla_platform_tests.deploy.conftest import DEPLOY, free_port

SCRIPT = DEPLOY / "create_buckets.py"


@pytest.mark.s3
def test_creates_missing_buckets_and_leaves_existing_ones(s3_server, s3_client, monkeypatch):
    s3_client.create_bucket(Bucket="hvla-existing")
    s3_client.put_object(Bucket="hvla-existing", Key="keep.txt", Body=b"keep")
    monkeypatch.setenv("HVLA_S3_ENDPOINT_URL", s3_server)  # the default endpoint, as in compose
    cmd = [sys.executable, str(SCRIPT), "--wait", "10", "hvla-existing", "hvla-new-lake", "hvla-new-mlflow"]

    first = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "bucket hvla-existing: exists" in first.stdout
    assert "bucket hvla-new-lake: created" in first.stdout and "bucket hvla-new-mlflow: created" in first.stdout
    for name in ("hvla-existing", "hvla-new-lake", "hvla-new-mlflow"):
        # HeadBucket, not ListBuckets: SeaweedFS without an IAM config lists no buckets to anyone
        assert s3_client.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3_client.get_object(Bucket="hvla-existing", Key="keep.txt")["Body"].read() == b"keep"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": exists") == 3 and "created" not in again.stdout


@pytest.mark.s3
def test_the_lake_bucket_is_created_with_object_lock(s3_server, s3_client, monkeypatch):
    monkeypatch.setenv("HVLA_S3_ENDPOINT_URL", s3_server)
    s3_client.create_bucket(Bucket="hvla-old-lake")  # created earlier without the lock
    res = subprocess.run([sys.executable, str(SCRIPT), "--wait", "10", "--object-lock", "hvla-worm-lake",
                          "--object-lock", "hvla-old-lake", "hvla-worm-drop"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "bucket hvla-worm-lake: created (object lock)" in res.stdout
    assert "bucket hvla-old-lake: exists without object lock (WORM not enforced)" in res.stdout
    assert "bucket hvla-worm-drop: created\n" in res.stdout
    conf = s3_client.get_object_lock_configuration(Bucket="hvla-worm-lake")["ObjectLockConfiguration"]
    assert conf["ObjectLockEnabled"] == "Enabled"


def test_gives_up_with_a_clear_error_when_the_store_never_answers(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, str(SCRIPT), "--endpoint-url", dead, "--wait", "2", "hvla-lake"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "not reachable yet" in res.stdout  # it retried
    assert "create_buckets: EndpointConnectionError" in res.stderr and dead in res.stderr
    assert time.monotonic() - t0 >= 2
