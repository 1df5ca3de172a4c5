"""Where the ``checkpoint`` asset's training process runs: a Dagster Pipes client chosen by config.

``launcher="subprocess"`` (the embedded default): :class:`TrainingSubprocessClient`, a
``PipesSubprocessClient`` that starts ``python -m hvla_platform.defs.training.pipes_worker`` next to
the run. ``launcher="k8s"`` (the Helm deployment): dagster-k8s' ``PipesK8sClient`` starts the same
module in its own pod, with the image, GPU requests, node selector and tolerations of
:class:`TrainingLauncherResource` (docs/deployment.md, "Training out of process (Dagster Pipes)").

Environment (read by :func:`training_launcher_from_env`; a bad value fails the code location's
load with a message naming the variable): ``HVLA_TRAINING_LAUNCHER`` (``subprocess`` | ``k8s``),
``HVLA_TRAINING_IMAGE``, ``HVLA_TRAINING_NAMESPACE``, ``HVLA_TRAINING_GPUS`` (int),
``HVLA_TRAINING_GPU_RESOURCE``, ``HVLA_TRAINING_CPU``, ``HVLA_TRAINING_MEMORY`` (Kubernetes
quantities), ``HVLA_TRAINING_NODE_SELECTOR`` (JSON object), ``HVLA_TRAINING_TOLERATIONS`` (JSON
list of objects), ``HVLA_TRAINING_ENV_SECRETS`` (comma-separated Secret names),
``HVLA_TRAINING_SERVICE_ACCOUNT``.

At module level this imports only Dagster: ``dagster_k8s``/``kubernetes`` are imported when a pod
is launched or its spec built.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any, Mapping, Sequence

import dagster as dg

from hvla_platform.defs.training.pipes_worker import PARENT_PID_ENV, WORKER_MODULE
from hvla_platform.lib.core.suggest import did_you_mean

#: Launchers :class:`TrainingLauncherResource` knows.
LAUNCHERS = ("subprocess", "k8s")

#: Non-secret variables of the run's environment copied into the training pod when set (the
#: subprocess inherits the whole environment). Secrets reach the pod through ``env_secrets`` only.
FORWARDED_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "MLFLOW_S3_ENDPOINT_URL", "HVLA_TIMEZONE")

#: Name of the training container in the pod.
CONTAINER_NAME = "hvla-training"


def describe_exit(returncode: int, pid: int, error: str | None = None) -> str:
    """One line naming why the training process ended with ``returncode`` (a ``Popen`` return code:
    negative = killed by that signal number).

    >>> describe_exit(-9, 42)
    'training process (pid 42) was killed by SIGKILL (signal 9): killed from outside the run or by the kernel (out of memory?); no checkpoint was published'
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        why = {signal.SIGKILL: ": killed from outside the run or by the kernel (out of memory?)",
               signal.SIGTERM: ": terminated from outside the run",
               signal.SIGINT: ": interrupted"}.get(-returncode, "")
        msg = f"training process (pid {pid}) was killed by {name} (signal {-returncode}){why}"
    else:
        msg = f"training process (pid {pid}) exited with code {returncode}"
    if error:
        msg += f": {error}"
    return msg + "; no checkpoint was published"


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group ``proc`` leads (its own session, see
    :meth:`TrainingSubprocessClient.run`); nothing if the group is gone."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class TrainingSubprocessClient(dg.PipesSubprocessClient):
    """A ``PipesSubprocessClient`` for the training process that (1) starts it in its own process
    group and session, with :data:`~hvla_platform.defs.training.pipes_worker.PARENT_PID_ENV` set so
    it dies with the run (``PR_SET_PDEATHSIG``); (2) fails the step with a :class:`dagster.Failure`
    naming the signal or exit code and the error the worker reported (:func:`describe_exit`)
    instead of "External execution process failed with code -9"; (3) leaves no process behind: on
    interruption the group gets SIGINT, then SIGKILL after ``termination_timeout_seconds``, and
    whatever the worker started is killed with its group when it ends."""

    def run(self, *, context: dg.AssetExecutionContext | dg.OpExecutionContext,  # type: ignore[override]
            extras: Mapping[str, Any] | None = None, command: str | Sequence[str],
            env: Mapping[str, str] | None = None, cwd: str | None = None) -> dg.PipesClientCompletedInvocation:
        """Start ``command`` in a Pipes session and wait for it.

        Raises:
            dagster.Failure: the process exited non-zero or was killed (:func:`describe_exit`).
        """
        with dg.open_pipes_session(context=context, context_injector=self.context_injector,
                                   message_reader=self.message_reader, extras=extras) as session:
            proc = subprocess.Popen(
                command, cwd=cwd or self.cwd, start_new_session=True,
                env={**os.environ, **self.env, **(env or {}), PARENT_PID_ENV: str(os.getpid()),
                     **session.get_bootstrap_env_vars()})
            context.log.info(f"training process pid {proc.pid} launched: {' '.join(command)}")
            try:
                returncode = proc.wait()
            except BaseException:  # the run was terminated (DagsterExecutionInterruptedError) or failed here
                if self.forward_termination and proc.poll() is None:
                    context.log.info(f"stopping training process pid {proc.pid} (SIGINT, then SIGKILL after "
                                     f"{self.termination_timeout_seconds:g} s)")
                    _kill_group(proc, signal.SIGINT)
                    try:
                        proc.wait(timeout=self.termination_timeout_seconds)
                    except subprocess.TimeoutExpired:
                        pass
                _kill_group(proc, signal.SIGKILL)
                proc.wait()
                raise
            finally:
                _kill_group(proc, signal.SIGKILL)  # anything the worker started and left running
        if returncode != 0:
            errors = [m for m in session.get_custom_messages() if isinstance(m, dict) and "error" in m]
            meta = {"hvla/training_returncode": returncode, "hvla/training_pid": proc.pid}
            err = errors[-1] if errors else {}
            if returncode > 0 and str(err.get("error_class", "")).startswith("hvla_platform.lib."):
                # one of the platform's refusals (rights, unknown id, bad spec): its own message, and
                # its class for `hvla train`'s exit code 2 (cli/outcome.py reads hvla/error_class)
                raise dg.Failure(description=str(err.get("error_message") or err["error"]),
                                 metadata={**meta, "hvla/error_class": str(err["error_class"])})
            raise dg.Failure(description=describe_exit(returncode, proc.pid, err.get("error")), metadata=meta)
        return dg.PipesClientCompletedInvocation(session)


def _json_env(name: str, kind: type) -> Any:
    """``json.loads`` of variable ``name`` (None when unset/empty).

    Raises:
        ValueError: not JSON, or not a ``kind`` (the message names the variable).
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"{name} is not valid JSON ({e.msg} at char {e.pos}): {raw!r}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{name} must be a JSON {kind.__name__}, got {type(value).__name__}: {raw!r}")
    return value


class TrainingLauncherResource(dg.ConfigurableResource):
    """How the ``checkpoint`` asset runs its training process (a Dagster Pipes client).

    Attributes:
        launcher: ``subprocess`` (a child process of the run, on the run's host) or ``k8s`` (a pod).
        image: k8s: the training pod's image (required); it must contain this package (the
            image built from deploy/Dockerfile, or a GPU build of it).
        namespace: k8s: the pod's namespace ("" = the run pod's own namespace).
        gpus: k8s: GPUs requested and limited (``gpu_resource``), 0 for none.
        gpu_resource: k8s: the extended resource name of a GPU (``nvidia.com/gpu``).
        cpu, memory: k8s: CPU and memory requested (Kubernetes quantities, e.g. ``"4"``, ``"16Gi"``);
            the limits are the same; "" = not set.
        node_selector: k8s: the pod's ``nodeSelector``.
        tolerations: k8s: the pod's ``tolerations`` (Kubernetes Toleration objects, string values).
        env_secrets: k8s: Secrets whose keys become the container's environment (``envFrom``): the
            S3 credentials, as the run pods get them.
        service_account: k8s: the pod's service account ("" = the namespace's default).
        termination_timeout_s: subprocess: seconds between SIGINT and SIGKILL when the run is
            terminated.
        pod_wait_timeout_s: k8s: longest a training pod may run, seconds.
    """

    launcher: str = "subprocess"
    image: str = ""
    namespace: str = ""
    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    cpu: str = ""
    memory: str = ""
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []
    env_secrets: list[str] = []
    service_account: str = ""
    termination_timeout_s: float = 20.0
    pod_wait_timeout_s: float = 7 * 24 * 3600.0

    def validate(self) -> "TrainingLauncherResource":
        """This resource, after checking the launcher name and the settings it needs.

        Raises:
            ValueError: an unknown launcher (with the closest), or ``k8s`` without an image, or a
                negative GPU count.
        """
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"unknown training launcher {self.launcher!r}{did_you_mean(self.launcher, LAUNCHERS)}")
        if self.launcher == "k8s" and not self.image:
            raise ValueError("training launcher k8s needs the training pod's image (HVLA_TRAINING_IMAGE)")
        if self.gpus < 0:
            raise ValueError(f"training launcher: gpus must be ≥ 0, got {self.gpus}")
        return self

    def command(self) -> list[str]:
        """The training process' command: this interpreter on the subprocess launcher, the image's
        ``python`` (first on its ``PATH``) in a pod."""
        return [sys.executable if self.launcher == "subprocess" else "python", "-m", WORKER_MODULE]

    def pod_spec(self) -> dict[str, Any]:
        """The training pod's base ``PodSpec`` (camelCase, as in a manifest) for ``PipesK8sClient``:
        one container :data:`CONTAINER_NAME` with the resources, secrets, node selector,
        tolerations and service account of this resource; ``restartPolicy: Never``."""
        requests: dict[str, str] = {}
        if self.cpu:
            requests["cpu"] = self.cpu
        if self.memory:
            requests["memory"] = self.memory
        if self.gpus:
            requests[self.gpu_resource] = str(self.gpus)
        container: dict[str, Any] = {"name": CONTAINER_NAME,
                                     "resources": {"requests": dict(requests), "limits": dict(requests)}}
        if self.env_secrets:
            container["envFrom"] = [{"secretRef": {"name": s}} for s in self.env_secrets]
        spec: dict[str, Any] = {"containers": [container], "restartPolicy": "Never"}
        if self.node_selector:
            spec["nodeSelector"] = dict(self.node_selector)
        if self.tolerations:
            spec["tolerations"] = [dict(t) for t in self.tolerations]
        if self.service_account:
            spec["serviceAccountName"] = self.service_account
        return spec

    def k8s_run_args(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Keyword arguments of ``PipesK8sClient.run`` (besides ``context`` and ``extras``): image,
        command, namespace, env (``env`` plus the set :data:`FORWARDED_ENV` variables),
        ``base_pod_meta`` (labels) and ``base_pod_spec`` (:meth:`pod_spec`)."""
        forwarded = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
        return {"image": self.image, "command": self.command(), "namespace": self.namespace or None,
                "env": {**forwarded, **(env or {})},
                "base_pod_meta": {"labels": {"app.kubernetes.io/part-of": "hvla-platform",
                                             "app.kubernetes.io/component": "training"}},
                "base_pod_spec": self.pod_spec(), "pod_wait_timeout": self.pod_wait_timeout_s}

    def run(self, context: dg.AssetExecutionContext, *, extras: Mapping[str, Any],
            secret_env: Mapping[str, str] | None = None) -> dg.PipesClientCompletedInvocation:
        """Run the training worker through Pipes and wait for it.

        Args:
            context: the asset's context.
            extras: the worker's inputs (:data:`~hvla_platform.defs.training.pipes_worker.EXTRAS_KEYS`).
            secret_env: secrets for the subprocess' environment (never sent to a pod: there they
                come from ``env_secrets``).

        Raises:
            dagster.Failure: the training process or pod failed (the message names why).
        """
        self.validate()
        if self.launcher == "subprocess":
            client = TrainingSubprocessClient(termination_timeout_seconds=self.termination_timeout_s)
            return client.run(context=context, extras=extras, command=self.command(), env=dict(secret_env or {}))
        from dagster_k8s import PipesK8sClient  # noqa: PLC0415
        from dagster_k8s.client import DagsterK8sError  # noqa: PLC0415

        args = self.k8s_run_args()
        context.log.info(f"launching the training pod: image {self.image}, {self.gpus} × {self.gpu_resource}")
        try:
            return PipesK8sClient().run(context=context, extras=extras, **args)
        except DagsterK8sError as e:
            raise dg.Failure(description=f"training pod failed: {e}; no checkpoint was published") from e


def training_launcher_from_env() -> TrainingLauncherResource:
    """The launcher the environment configures (see the module docstring; unset = subprocess).

    Raises:
        ValueError: a variable that does not parse, an unknown launcher, or k8s without an image.
    """
    gpus = os.environ.get("HVLA_TRAINING_GPUS", "").strip()
    try:
        n_gpus = int(gpus) if gpus else 1
    except ValueError:
        raise ValueError(f"HVLA_TRAINING_GPUS must be an integer, got {gpus!r}") from None
    tolerations = _json_env("HVLA_TRAINING_TOLERATIONS", list) or []
    if not all(isinstance(t, dict) for t in tolerations):
        raise ValueError("HVLA_TRAINING_TOLERATIONS must be a JSON list of objects")
    return TrainingLauncherResource(
        launcher=os.environ.get("HVLA_TRAINING_LAUNCHER", "").strip() or "subprocess",
        image=os.environ.get("HVLA_TRAINING_IMAGE", ""),
        namespace=os.environ.get("HVLA_TRAINING_NAMESPACE", ""),
        gpus=n_gpus,
        gpu_resource=os.environ.get("HVLA_TRAINING_GPU_RESOURCE", "") or "nvidia.com/gpu",
        cpu=os.environ.get("HVLA_TRAINING_CPU", ""),
        memory=os.environ.get("HVLA_TRAINING_MEMORY", ""),
        node_selector={str(k): str(v) for k, v in (_json_env("HVLA_TRAINING_NODE_SELECTOR", dict) or {}).items()},
        tolerations=[{str(k): str(v) for k, v in t.items()} for t in tolerations],
        env_secrets=[s.strip() for s in os.environ.get("HVLA_TRAINING_ENV_SECRETS", "").split(",") if s.strip()],
        service_account=os.environ.get("HVLA_TRAINING_SERVICE_ACCOUNT", ""),
    ).validate()
