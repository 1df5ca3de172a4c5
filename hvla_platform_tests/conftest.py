"""Shared fixtures: a moto S3 server over real HTTP, isolated HVLA_HOME/DAGSTER_HOME."""

import pytest


@pytest.fixture(scope="session")
def s3_server():
    """moto's ThreadedMotoServer on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture()
def s3_client(s3_server, monkeypatch):
    """A real boto3 S3 client talking HTTP to the moto server (path-style addressing)."""
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}))


from hvla_platform_tests.fixtures.checkpoints import policy, step_dir  # noqa: E402,F401  (shared fixtures)
