"""deploy/helm/values.yaml for the official `dagster` chart. No helm binary or cluster exists here,
so the chart is not rendered; instead:

- the values use the keys the chart documents (checked by hand against the chart's schema at
  authoring time, see docs/deployment.md) and agree with docker-compose and deploy/dagster.yaml;
- the Dagster instance the chart renders from them (modelled below after the chart's
  configmap-instance template) is validated by Dagster's own config schemas, including
  dagster-k8s's K8sRunLauncher;
- a run pod is built with dagster-k8s from the run launcher and code-location settings, as the
  K8sRunLauncher builds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hvla_platform_tests.deploy.conftest import DEPLOY, REPO_ROOT

VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
INSTANCE = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
COMPOSE_ENV = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["hvla-code"]["environment"]
# top-level keys of the chart's values (its values.schema.json "properties")
CHART_KEYS = {"global", "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
              "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
              "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
              "telemetry", "serviceAccount", "retention", "concurrency", "additionalInstanceConfig"}
# k8sRunLauncher.runK8sConfig keys the chart accepts, and the run_k8s_config keys it renders them to
RUN_K8S_CONFIG_KEYS = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
                       "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
                       "jobMetadata": "job_metadata"}


def deployment() -> dict[str, Any]:
    (dep,) = VALUES["dagster-user-deployments"]["deployments"]
    return dep


def test_only_chart_keys():
    assert set(VALUES) <= CHART_KEYS, set(VALUES) - CHART_KEYS


def test_code_location_is_a_user_deployment_of_our_image():
    ud = VALUES["dagster-user-deployments"]
    assert ud["enabled"] is True and ud["enableSubchart"] is True
    dep = deployment()
    assert dep["image"]["repository"] and isinstance(dep["image"]["tag"], str) and dep["image"]["tag"]
    args = dep["codeServerArgs"]
    assert args[args.index("-m") + 1] == "hvla_platform.definitions"
    assert "dagsterApiGrpcArgs" not in dep  # one way of starting the server
    assert dep["includeConfigInLaunchedRuns"] == {"enabled": True}
    assert "resources" not in dep  # would be forwarded to every run pod


def test_webserver_and_daemon_find_the_code_location():
    ws = VALUES["dagsterWebserver"]["workspace"]
    assert ws["enabled"] is True
    (server,) = ws["servers"]
    dep = deployment()
    assert (server["host"], server["port"]) == (dep["name"], dep["port"])  # the chart's Service for it
    compose_ws = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"][0]["grpc_server"]
    assert server["name"] == compose_ws["location_name"]
    args = dep["codeServerArgs"]
    assert args[args.index("--location-name") + 1] == server["name"]


def test_code_location_env_matches_compose():
    env = deployment()["env"]
    # Postgres is configured by the chart itself; the S3 keys come from the `hvla-s3` Secret, the
    # optional alert webhook from a secret the operator adds (commented in values.yaml)
    from_chart = {k for k in COMPOSE_ENV if k.startswith("DAGSTER_PG_")}
    from_secret = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "HVLA_ALERT_WEBHOOK_URL"}
    # the training launcher: pods here (test_training_pod.py), compose keeps the subprocess default
    k8s_only = {k for k in env if k.startswith("HVLA_TRAINING_")}
    assert env["HVLA_TRAINING_LAUNCHER"] == "k8s" and "HVLA_TRAINING_LAUNCHER" not in COMPOSE_ENV
    assert set(env) - k8s_only == set(COMPOSE_ENV) - from_chart - from_secret
    assert deployment()["envSecrets"] == [{"name": "hvla-s3"}]
    assert env["HVLA_LAKE_BACKEND"] == "s3" and all(isinstance(v, str) for v in env.values())


def test_external_postgres_with_the_production_driver():
    pg = VALUES["postgresql"]
    assert pg["enabled"] is False and pg["postgresqlHost"] and pg["postgresqlDatabase"] == "dagster"
    assert pg["postgresqlScheme"] == INSTANCE["storage"]["postgres"]["postgres_db"]["scheme"]
    assert VALUES["generatePostgresqlPasswordSecret"] is False and VALUES["global"]["postgresqlSecretName"]


def test_queue_limits_equal_the_compose_instance():
    conc = VALUES["concurrency"]
    assert conc["enabled"] is True
    mine = {(t["key"], json.dumps(t["value"])): t["limit"] for t in conc["runs"]["tagConcurrencyLimits"]}
    compose = {(t["key"], json.dumps(t["value"])): t["limit"]
               for t in INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]}
    assert mine == compose == {("dagster/partition", '{"applyLimitPerUniqueValue": true}'): 1}
    # the stages are limited by their pools (held for the whole run), not by the stage tag
    assert (conc["pools"]["defaultLimit"], conc["pools"]["granularity"]) == (
        INSTANCE["concurrency"]["pools"]["default_limit"], INSTANCE["concurrency"]["pools"]["granularity"]) == (1, "run")
    rc = VALUES["dagsterDaemon"]["runCoordinator"]
    assert rc["enabled"] is True and rc["type"] == "QueuedRunCoordinator"
    # the chart fails when limits are set both here and under `concurrency`
    assert "config" not in rc


def chart_instance(values: dict[str, Any], release: str = "hvla", namespace: str = "hvla") -> dict[str, Any]:
    """The dagster.yaml the chart's configmap-instance template renders from ``values`` (the parts
    these values set), as read from the chart's templates at authoring time."""
    pg = values["postgresql"]
    pg_config = {"postgres_db": {"username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
                                 "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"],
                                 "port": pg["service"]["port"], "params": pg["postgresqlParams"],
                                 "scheme": pg["postgresqlScheme"]}}
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    unknown = set(k8s["runK8sConfig"]) - set(RUN_K8S_CONFIG_KEYS)
    assert not unknown, f"runK8sConfig keys the chart does not know: {unknown}"
    launcher = {
        "load_incluster_config": k8s["loadInclusterConfig"], "job_namespace": namespace,
        "image_pull_policy": k8s["imagePullPolicy"], "service_account_name": f"{release}-dagster",
        "dagster_home": {"env": "DAGSTER_HOME"}, "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}] + [c["name"] for c in k8s["envConfigMaps"]],
        "env_secrets": [s["name"] for s in k8s["envSecrets"]], "env_vars": k8s["envVars"],
        "volume_mounts": k8s["volumeMounts"], "volumes": k8s["volumes"], "labels": k8s["labels"],
        "fail_pod_on_run_failure": k8s["failPodOnRunFailure"],
        "run_k8s_config": {RUN_K8S_CONFIG_KEYS[k]: v for k, v in k8s["runK8sConfig"].items()},
    }
    daemon = values["dagsterDaemon"]
    mon = daemon["runMonitoring"]
    conc = values["concurrency"]
    retention = values["retention"]
    rendered = {
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
                        "config": {"postgres_db": pg_config["postgres_db"]}},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage",
                              "config": {"postgres_db": pg_config["postgres_db"]}},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage",
                             "config": {"postgres_db": pg_config["postgres_db"]}},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"},
        "run_monitoring": {"enabled": mon["enabled"], "start_timeout_seconds": mon["startTimeoutSeconds"],
                           "cancel_timeout_seconds": mon["cancelTimeoutSeconds"],
                           "max_resume_run_attempts": mon["maxResumeRunAttempts"],
                           "poll_interval_seconds": mon["pollIntervalSeconds"]},
        "concurrency": {"pools": {"default_limit": conc["pools"]["defaultLimit"],
                                  "granularity": conc["pools"]["granularity"]},
                        "runs": {"max_concurrent_runs": conc["runs"]["maxConcurrentRuns"],
                                 "tag_concurrency_limits": conc["runs"]["tagConcurrencyLimits"]}},
        "retention": {"schedule": {"purge_after_days": retention["schedule"]["purgeAfterDays"]},
                      "sensor": {"purge_after_days": retention["sensor"]["purgeAfterDays"]}},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }
    if daemon["runRetries"]["enabled"]:
        rendered["run_retries"] = {"enabled": True, "max_retries": daemon["runRetries"]["maxRetries"]}
    overlap = set(rendered) & set(values.get("additionalInstanceConfig") or {})
    assert not overlap, f"additionalInstanceConfig repeats keys the chart renders: {overlap}"
    return {**rendered, **(values.get("additionalInstanceConfig") or {})}


@pytest.fixture()
def chart_env(monkeypatch):
    for k, v in {"DAGSTER_PG_PASSWORD": "x", "DAGSTER_HOME": "/opt/dagster/dagster_home",
                 "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "hvla-dagster-instance",
                 "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
                 "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "hvla-dagster-pipeline-env"}.items():
        monkeypatch.setenv(k, v)


def test_rendered_instance_is_valid_for_dagster(chart_env, tmp_path: Path):
    from dagster._config import validate_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    rendered = chart_instance(VALUES)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    config, _cls = dagster_instance_config(str(tmp_path))  # raises on any schema or conflict error
    assert config["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    for klass, section in ((PostgresRunStorage, "run_storage"), (PostgresEventLogStorage, "event_log_storage"),
                           (PostgresScheduleStorage, "schedule_storage"), (K8sRunLauncher, "run_launcher"),
                           (QueuedRunCoordinator, "run_coordinator")):
        res = validate_config(klass.config_type(), rendered[section].get("config", {}))
        assert res.success, (section, [e.message for e in res.errors])
    # the same limits as compose's instance, read back through Dagster
    runs = config["concurrency"]["runs"]
    assert runs["tag_concurrency_limits"] == INSTANCE["concurrency"]["runs"]["tag_concurrency_limits"]


def test_each_run_is_a_pod_sized_by_the_run_launcher(chart_env):
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job

    launcher = chart_instance(VALUES)["run_launcher"]["config"]
    dep = deployment()
    # what the K8sRunLauncher merges: its own config, then the code location's container context
    # (includeConfigInLaunchedRuns: the deployment's env ConfigMap and env Secrets)
    ctx = K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
                              labels=launcher["labels"]).merge(
        K8sContainerContext(image_pull_policy=dep["image"]["pullPolicy"],
                            env_config_maps=[f"hvla-dagster-user-deployments-{dep['name']}-user-env"],
                            env_secrets=[s["name"] for s in dep["envSecrets"]]))
    image = f"{dep['image']['repository']}:{dep['image']['tag']}"
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=image, dagster_home="/opt/dagster/dagster_home",
                            instance_config_map="hvla-dagster-instance", image_pull_policy=dep["image"]["pullPolicy"]),
        args=["dagster", "api", "execute_run", "{}"], job_name="dagster-run-0123456789",
        user_defined_k8s_config=ctx.run_k8s_config)
    (container,) = job.spec.template.spec.containers
    assert container.image == image
    assert container.resources.requests == {"cpu": "2", "memory": "8Gi"}
    assert container.resources.limits == {"cpu": "4", "memory": "16Gi"}
    assert job.spec.ttl_seconds_after_finished == 86400 and job.spec.backoff_limit == 0
    assert {e.secret_ref.name for e in container.env_from if e.secret_ref} == {"hvla-s3"}
    assert job.metadata.labels["app.kubernetes.io/part-of"] == "hvla-platform"


def test_retention_equals_the_compose_instance():
    r = VALUES["retention"]
    assert r["enabled"] is True
    sensor = r["sensor"]["purgeAfterDays"]
    assert set(sensor) == {"skipped", "success", "failure", "started"}  # the chart's schema wants all four
    assert sensor == INSTANCE["retention"]["sensor"]["purge_after_days"]
    assert r["schedule"]["purgeAfterDays"] == INSTANCE["retention"]["schedule"]["purge_after_days"]


def test_daemon_settings():
    d = VALUES["dagsterDaemon"]
    assert d["enabled"] is True and d["runMonitoring"]["enabled"] is True
    assert d["runMonitoring"]["maxResumeRunAttempts"] > 0  # K8sRunLauncher can resume; compose cannot
    assert INSTANCE["run_monitoring"]["max_resume_run_attempts"] == 0
    assert VALUES["additionalInstanceConfig"]["run_retries"] == INSTANCE["run_retries"]
    assert VALUES["telemetry"] == {"enabled": False} and VALUES["migrate"] == {"enabled": True}
