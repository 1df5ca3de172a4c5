"""The lake web service in docker-compose.yml and deploy/helm/lake-web.yaml (issue 13 §2): the same
image and lake settings as the code location, a command the real ``hvla`` parser accepts, an API key
(it listens on 0.0.0.0), health checks on ``/healthz``, and the code location's link base URLs
pointing at the ports these services publish. The Kubernetes manifests are loaded into the
``kubernetes`` client's models strictly (an unknown field fails, as the API server's strict field
validation would)."""

from __future__ import annotations

from urllib.parse import urlparse

import re
from typing import Any

import kubernetes.client as k8s
import yaml

from hvla_platform.cli.main import build_parser
from hvla_platform_tests.deploy.conftest import DEPLOY
from hvla_platform_tests.deploy.test_compose import INTERP, SERVICES, default

VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
DEPLOYMENT, SERVICE = yaml.safe_load_all((DEPLOY / "helm" / "lake-web.yaml").read_text())


def k8s_model(klass: Any, data: Any) -> Any:
    """``data`` (a manifest's JSON/YAML form, camelCase keys) as an instance of the kubernetes
    client model ``klass``; AssertionError on a key the model does not have."""
    if isinstance(klass, str):
        if m := re.fullmatch(r"list\[(.+)\]", klass):
            return [k8s_model(m.group(1), v) for v in data]
        if m := re.fullmatch(r"dict[(\[](\w+), (.+)[)\]]", klass):
            return {k: k8s_model(m.group(2), v) for k, v in data.items()}
        if klass in ("str", "int", "bool", "float", "object"):
            return data
        klass = getattr(k8s, klass)
    to_python = {v: k for k, v in klass.attribute_map.items()}
    unknown = set(data) - set(to_python)
    assert not unknown, f"{klass.__name__} has no field {sorted(unknown)}"
    return klass(**{to_python[k]: k8s_model(klass.openapi_types[to_python[k]], v) for k, v in data.items()})


def _web_args(command: list[str]):
    assert command[0] == "hvla"
    args = build_parser().parse_args(command[1:])
    assert args.command == "web" and args.host == "0.0.0.0"
    return args


def test_compose_lake_web_is_the_code_locations_image_and_lake_with_an_api_key():
    web, code = SERVICES["lake-web"], SERVICES["hvla-code"]
    assert (web["image"], web["build"]) == (code["image"], code["build"])
    env = dict(web["environment"])
    key = env.pop("HVLA_API_KEY")
    assert env == code["environment"]  # the same lake (S3 bucket, endpoint, credentials)
    assert INTERP.fullmatch(key) and default(key)  # from the environment, with a laptop default
    args = _web_args(web["command"])
    assert web["ports"] == [f"{args.port}:{args.port}"]
    assert f"http://localhost:{args.port}/healthz" in " ".join(web["healthcheck"]["test"])
    assert web["depends_on"] == {"buckets": {"condition": "service_completed_successfully"}}


def test_compose_links_point_at_the_published_ports():
    env = SERVICES["hvla-code"]["environment"]
    web = urlparse(default(env["HVLA_WEB_URL"]))
    assert web.port == _web_args(SERVICES["lake-web"]["command"]).port
    mlflow = urlparse(default(env["HVLA_MLFLOW_UI_URL"]))
    assert f"{mlflow.port}:{mlflow.port}" in SERVICES["mlflow"]["ports"]
    allowed = SERVICES["mlflow"]["command"][SERVICES["mlflow"]["command"].index("--allowed-hosts") + 1].split(",")
    assert mlflow.netloc in allowed  # MLflow 3 answers a browser at that Host


def test_kubernetes_lake_web_matches_the_code_location():
    dep = k8s_model(k8s.V1Deployment, DEPLOYMENT)
    svc = k8s_model(k8s.V1Service, SERVICE)
    (code,) = VALUES["dagster-user-deployments"]["deployments"]
    (container,) = dep.spec.template.spec.containers
    assert container.image == f"{code['image']['repository']}:{code['image']['tag']}"
    args = _web_args(container.command)
    (port,) = container.ports
    assert port.container_port == args.port and port.name == "http"
    for probe in (container.readiness_probe, container.liveness_probe):
        assert probe.http_get.path == "/healthz" and probe.http_get.port == "http"
    env = {e.name: e.value for e in container.env}
    assert env and all(code["env"][k] == v for k, v in env.items())  # the code location's lake settings
    assert {"HVLA_LAKE_BACKEND", "HVLA_S3_BUCKET", "HVLA_S3_ENDPOINT_URL"} <= set(env)
    secrets = {e.secret_ref.name for e in container.env_from}
    assert secrets == {s["name"] for s in code["envSecrets"]} | {"hvla-web"}  # S3 credentials + HVLA_API_KEY
    assert "hvla-web --from-literal=HVLA_API_KEY=" in (DEPLOY / "helm" / "lake-web.yaml").read_text()
    labels = dep.spec.selector.match_labels
    assert labels.items() <= dep.spec.template.metadata.labels.items() and svc.spec.selector == labels
    (sport,) = svc.spec.ports
    assert sport.port == args.port and sport.target_port == "http"
    assert urlparse(code["env"]["HVLA_WEB_URL"]).scheme in ("http", "https")
    assert urlparse(code["env"]["HVLA_MLFLOW_UI_URL"]).scheme in ("http", "https")
