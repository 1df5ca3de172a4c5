"""docker-compose.yml agrees with itself and with the files it uses. No Docker engine exists on the
development machines, so the stack is never started here; when a compose client is installed
(`docker compose` plugin or Debian's `docker-compose`), it renders and validates the file too."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from hvla_platform_tests.deploy.conftest import DEPLOY, REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
HVLA_SERVICES = {"buckets", "dagster-init", "mlflow", "hvla-code", "webserver", "daemon"}
INTERP = re.compile(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}")


def default(value: str) -> str:
    """``value`` with every ``${VAR:-default}`` replaced by its default (what compose renders when
    the variable is unset); a ``${VAR}`` without default is an error here."""
    def repl(m: re.Match) -> str:
        if m.group(2) is None:
            raise AssertionError(f"{m.group(0)} has no default")
        return m.group(2)
    return INTERP.sub(repl, str(value))


def env_refs(node) -> set[str]:
    """Names of the environment variables a Dagster YAML reads with ``{env: NAME}``."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_refs(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_refs(v) for v in node)) if node else set()
    return set()


def test_services():
    assert set(SERVICES) == {"postgres", "rustfs", "lake-web"} | HVLA_SERVICES  # lake-web: test_lake_web_deploy.py


def test_hvla_services_share_one_image_and_environment():
    first = SERVICES["hvla-code"]
    assert first["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert (REPO_ROOT / first["build"]["dockerfile"]).is_file()
    for name in HVLA_SERVICES:
        svc = SERVICES[name]
        assert (svc["image"], svc["build"], svc["environment"]) == (first["image"], first["build"],
                                                                    first["environment"]), name


def test_environment_feeds_the_production_instance():
    env = SERVICES["hvla-code"]["environment"]
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    needed = env_refs(instance)
    assert needed == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}
    assert needed <= set(env)
    pg = SERVICES["postgres"]["environment"]
    assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_PORT"] == "5432"
    assert (env["DAGSTER_PG_USER"], env["DAGSTER_PG_PASSWORD"], env["DAGSTER_PG_DB"]) == (
        pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"])
    assert env["HVLA_LAKE_BACKEND"] == "s3" and env["HVLA_S3_ENDPOINT_URL"] == "http://rustfs:9000"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        SERVICES["rustfs"]["environment"]["RUSTFS_ACCESS_KEY"], SERVICES["rustfs"]["environment"]["RUSTFS_SECRET_KEY"])


def test_secrets_come_from_the_environment():
    for name, svc in SERVICES.items():
        for key, value in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key):
                assert INTERP.fullmatch(str(value)), f"{name}.{key} is a literal, not ${{VAR:-…}}"
    # the MLflow backend URI carries the password only through the same variable
    uri = SERVICES["mlflow"]["command"][SERVICES["mlflow"]["command"].index("--backend-store-uri") + 1]
    assert "${POSTGRES_PASSWORD:-" in uri and "${POSTGRES_USER:-" in uri


def test_code_server_matches_the_workspace_and_the_image():
    ws = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert ws["host"] == "hvla-code" in SERVICES
    cmd = SERVICES["hvla-code"]["command"]
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == str(ws["port"])
    assert cmd[cmd.index("-m") + 1] == "hvla_platform.definitions"
    assert cmd[cmd.index("--location-name") + 1] == ws["location_name"]
    for name in ("webserver", "daemon"):
        c = SERVICES[name]["command"]
        assert c[c.index("-w") + 1] == "/opt/hvla/deploy/workspace.yaml", name


def test_files_the_services_use_exist():
    # the image holds the repository at /opt/hvla (deploy/Dockerfile: COPY . /opt/hvla)
    for name in HVLA_SERVICES:
        for arg in SERVICES[name]["command"]:
            if str(arg).startswith("/opt/hvla/"):
                assert (REPO_ROOT / arg.removeprefix("/opt/hvla/")).is_file(), f"{name}: {arg}"
    for vol in SERVICES["postgres"]["volumes"]:
        src = vol.split(":")[0]
        if src.startswith("./"):
            assert (REPO_ROOT / src).is_file(), src


def test_mlflow_uses_the_database_and_buckets_that_are_created():
    cmd = SERVICES["mlflow"]["command"]
    uri = default(cmd[cmd.index("--backend-store-uri") + 1])
    assert uri.startswith("postgresql+psycopg2://") and uri.endswith("@postgres:5432/mlflow")
    init_sql = (DEPLOY / "postgres-init.sql").read_text()
    assert re.search(r"^CREATE DATABASE mlflow;", init_sql, re.M)
    env = SERVICES["mlflow"]["environment"]
    host = default(env["MLFLOW_TRACKING_URI"]).removeprefix("http://")
    allowed = cmd[cmd.index("--allowed-hosts") + 1].split(",")
    assert host in allowed and host.split(":")[0] in allowed  # MLflow 3 rejects other Host headers

    buckets = set(map(default, SERVICES["buckets"]["command"][4:]))
    wanted = {default(env["HVLA_S3_BUCKET"])}
    for uri in (env["HVLA_DROP_URI"], env["HVLA_MLFLOW_ARTIFACT_ROOT"], cmd[cmd.index("--default-artifact-root") + 1]):
        m = re.fullmatch(r"s3://([^/]+)/.*", default(uri))
        assert m, uri
        wanted.add(m.group(1))
    assert wanted <= buckets, wanted - buckets


def test_start_order_and_healthchecks():
    for name, svc in SERVICES.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep}'s health, which has no check"
            if cond["condition"] == "service_completed_successfully":
                assert SERVICES[dep]["restart"] == "no", f"{dep} is one-shot but restarts"
    deps = {n: set(s.get("depends_on") or {}) for n, s in SERVICES.items()}
    assert {"dagster-init", "hvla-code"} <= deps["webserver"] and {"dagster-init", "hvla-code"} <= deps["daemon"]
    assert {"dagster-init", "buckets", "mlflow"} <= deps["hvla-code"]
    assert SERVICES["dagster-init"]["command"] == ["sh", "/opt/hvla/deploy/init-instance.sh"]
    for name in ("postgres", "mlflow", "hvla-code", "webserver", "daemon"):
        assert SERVICES[name]["healthcheck"]["test"], name


def test_runs_share_the_code_servers_limits_and_logs():
    # DefaultRunLauncher: runs are subprocesses of hvla-code, so its limits bound them all
    assert set(SERVICES["hvla-code"]["deploy"]["resources"]["limits"]) == {"cpus", "memory"}
    # compute logs written where runs execute must be readable by the webserver
    for name in ("hvla-code", "webserver", "daemon"):
        assert "dagster-storage:/opt/dagster/home/storage" in SERVICES[name]["volumes"], name
    used = {v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", []) if not v.startswith("./")}
    assert used == set(COMPOSE["volumes"])


def _compose_client() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_compose_client_renders_the_file(tmp_path):
    client = _compose_client()
    if client is None:
        pytest.skip("no compose client here (neither the `docker compose` plugin nor `docker-compose`)")
    env = {**os.environ, "POSTGRES_PASSWORD": "from-env-7d1c", "RUSTFS_SECRET_KEY": "rustfs-env-5e2a"}
    res = subprocess.run([*client, "-f", str(REPO_ROOT / "docker-compose.yml"), "config"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rendered = yaml.safe_load(res.stdout)["services"]
    assert set(rendered) == set(SERVICES)
    assert rendered["postgres"]["environment"]["POSTGRES_PASSWORD"] == "from-env-7d1c"
    assert rendered["daemon"]["environment"]["DAGSTER_PG_PASSWORD"] == "from-env-7d1c"
    assert rendered["rustfs"]["environment"]["RUSTFS_SECRET_KEY"] == "rustfs-env-5e2a"
    assert rendered["hvla-code"]["environment"]["AWS_SECRET_ACCESS_KEY"] == "rustfs-env-5e2a"
    assert "from-env-7d1c@postgres:5432/mlflow" in " ".join(rendered["mlflow"]["command"])
