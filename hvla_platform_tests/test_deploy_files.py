"""The deployment files parse and agree with each other (no Docker engine exists here to run them)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_and_shared_config():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"postgres", "rustfs", "mlflow", "hvla-code", "webserver", "daemon"} <= set(compose["services"])
    env = compose["services"]["webserver"]["environment"]
    assert env["HVLA_LAKE_BACKEND"] == "s3" and env["DAGSTER_PG_HOST"] == "postgres"


def test_production_instance_uses_postgres_from_env():
    inst = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    pg = inst["storage"]["postgres"]["postgres_db"]
    assert pg["hostname"] == {"env": "DAGSTER_PG_HOST"} and pg["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    ws = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
    assert ws["load_from"][0]["grpc_server"]["port"] == 4000


def test_local_files_load():
    inst = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert inst["telemetry"]["enabled"] is False
    ws = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    assert ws["load_from"][0]["python_module"]["module_name"] == "hvla_platform.definitions"
