"""A lake named by a URI (``hvla serve --lake``) and the configured one are described the same way."""

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.lake_config import lake_config_from_env, lake_config_from_uri, open_lake


def test_s3_uri_and_environment_give_the_same_config(monkeypatch):
    monkeypatch.setenv("HVLA_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    cfg = lake_config_from_uri("s3://lab-lake/fleet/a")
    assert (cfg.backend, cfg.bucket, cfg.prefix, cfg.endpoint_url, cfg.region_name) == (
        "s3", "lab-lake", "fleet/a", "http://127.0.0.1:8333", "eu-west-1")
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "s3")
    monkeypatch.setenv("HVLA_S3_BUCKET", "lab-lake")
    monkeypatch.setenv("HVLA_S3_PREFIX", "fleet/a")
    assert lake_config_from_env() == cfg
    monkeypatch.delenv("HVLA_S3_PREFIX")
    assert lake_config_from_env() == lake_config_from_uri("s3://lab-lake")


def test_local_uri_must_name_a_directory(tmp_path):
    lake = open_lake(lake_config_from_uri(f"file://{tmp_path}"))
    assert isinstance(lake, LocalLake) and lake.root == tmp_path
    with pytest.raises(ValueError, match="no lake directory there"):
        lake_config_from_uri(str(tmp_path / "missing"))
