"""The training pod of the Helm deployment: the ``checkpoint`` asset's ``PipesK8sClient`` arguments
are built from the code location's env in deploy/helm/values.yaml (the run pods inherit it), and
dagster-k8s' own ``build_pod_body`` (what ``PipesK8sClient.run`` submits) turns them into a pod that
asks for one GPU and runs the Pipes worker. No cluster here: the pod is built, not created.
"""

from __future__ import annotations

import os
import sys

import pytest
import yaml

from hvla_platform.defs.training.launcher import (
    CONTAINER_NAME, FORWARDED_ENV, TrainingLauncherResource, training_launcher_from_env)
from hvla_platform.defs.training.pipes_worker import WORKER_MODULE
from hvla_platform_tests.deploy.conftest import DEPLOY

VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
(DEPLOYMENT,) = VALUES["dagster-user-deployments"]["deployments"]
ENV = DEPLOYMENT["env"]


@pytest.fixture()
def helm_env(monkeypatch):
    """The code location's (and so every run pod's) environment from values.yaml."""
    for k in [k for k in os.environ if k.startswith("HVLA_TRAINING_") or k in FORWARDED_ENV]:
        monkeypatch.delenv(k)
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def test_the_helm_values_configure_a_gpu_training_pod(helm_env):
    from dagster_k8s.pipes import build_pod_body

    launcher = training_launcher_from_env()
    assert launcher.launcher == "k8s"
    args = launcher.k8s_run_args(env={"HVLA_EXTRA": "1"})
    assert args["image"] == ENV["HVLA_TRAINING_IMAGE"] and args["namespace"] == ENV["HVLA_TRAINING_NAMESPACE"]
    pod = build_pod_body(pod_name="dagster-training-0123", image=args["image"], command=args["command"],
                         env_vars={"DAGSTER_PIPES_CONTEXT": "x", **args["env"]},
                         base_pod_meta=args["base_pod_meta"], base_pod_spec=args["base_pod_spec"])
    (container,) = pod.spec.containers
    assert container.name == CONTAINER_NAME and container.image == ENV["HVLA_TRAINING_IMAGE"]
    assert container.command == ["python", "-m", WORKER_MODULE]
    assert container.resources.limits == {"nvidia.com/gpu": "1", "cpu": "4", "memory": "16Gi"}
    assert container.resources.requests == container.resources.limits
    assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
    (tol,) = pod.spec.tolerations
    assert (tol.key, tol.operator, tol.effect) == ("nvidia.com/gpu", "Exists", "NoSchedule")
    assert pod.spec.restart_policy == "Never"
    # S3 credentials from the Secret, never as plain values; the non-secret MLflow/S3 settings copied
    assert [e.secret_ref.name for e in container.env_from] == ["hvla-s3"]
    env = {e.name: e.value for e in container.env}
    assert env["MLFLOW_S3_ENDPOINT_URL"] == ENV["MLFLOW_S3_ENDPOINT_URL"] and env["AWS_REGION"] == ENV["AWS_REGION"]
    assert env["HVLA_EXTRA"] == "1" and "DAGSTER_PIPES_CONTEXT" in env
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert pod.metadata.labels["app.kubernetes.io/component"] == "training"


def test_the_default_is_a_subprocess_of_the_run(monkeypatch):
    for k in [k for k in os.environ if k.startswith("HVLA_TRAINING_")]:
        monkeypatch.delenv(k)
    launcher = training_launcher_from_env()
    assert launcher.launcher == "subprocess"
    assert launcher.command() == [sys.executable, "-m", WORKER_MODULE]


def test_a_pod_without_gpus_asks_for_none():
    spec = TrainingLauncherResource(launcher="k8s", image="img:1", gpus=0, cpu="2").pod_spec()
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}


@pytest.mark.parametrize("env, message", [
    ({"HVLA_TRAINING_LAUNCHER": "subproces"}, "unknown training launcher 'subproces' (did you mean 'subprocess'?)"),
    ({"HVLA_TRAINING_LAUNCHER": "k8s"}, "needs the training pod's image (HVLA_TRAINING_IMAGE)"),
    ({"HVLA_TRAINING_GPUS": "one"}, "HVLA_TRAINING_GPUS must be an integer, got 'one'"),
    ({"HVLA_TRAINING_NODE_SELECTOR": "gpu=true"}, "HVLA_TRAINING_NODE_SELECTOR is not valid JSON"),
    ({"HVLA_TRAINING_TOLERATIONS": '{"key": "x"}'}, "HVLA_TRAINING_TOLERATIONS must be a JSON list"),
])
def test_a_bad_setting_is_refused_by_name(monkeypatch, env, message):
    for k in [k for k in os.environ if k.startswith("HVLA_TRAINING_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError) as e:
        training_launcher_from_env()
    assert message in str(e.value)
