"""The training process the ``checkpoint`` asset launches through Dagster Pipes.

Run as ``python -m hvla_platform.defs.training.pipes_worker`` by a Pipes client (a subprocess of the
run on the embedded default, a Kubernetes pod in the Helm deployment; see docs/deployment.md,
"Training out of process (Dagster Pipes)"). It reads its inputs from the Pipes context's extras
(:data:`EXTRAS_KEYS`), trains with :func:`hvla_platform.lib.training.build.train_experiment`,
streams every progress line through Pipes' log, and reports the materialization of ``checkpoint``
(the ``hvla/*`` values of the published checkpoint manifest) and the ``loss_fell`` asset check.

This module sits under ``defs/`` so ``load_from_defs_folder`` imports it with the code location:
at module level it imports only the standard library. ``dagster_pipes`` and the training stack
(JAX, flax, optax, orbax, MLflow) are imported inside :func:`main`, in the training process only.
The worker never imports ``dagster``: the Dagster metadata that needs the lake's lineage graph and
the rights object (``hvla/lineage_*``, ``hvla/allowed_uses`` …) is added by the asset from the
published manifest (:mod:`hvla_platform.defs.metadata`).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

#: The module the Pipes clients run (``python -m``).
WORKER_MODULE = "hvla_platform.defs.training.pipes_worker"

#: The loss must end at most this fraction of where it started for the ``loss_fell`` check.
LOSS_RATIO_MAX = 0.9

#: Keys of the Pipes extras the asset sends: ``train`` (the training config: :class:`TrainConfig`
#: fields plus ``norm_stats_release``, ``backend``, ``lerobot_policy``), ``lake`` (the lake's
#: non-secret settings, :class:`~hvla_platform.lib.core.lake_config.LakeConfig` fields; the S3
#: credentials come from the process environment) and ``mlflow`` (``tracking_uri``, ``artifact_root``).
EXTRAS_KEYS = ("train", "lake", "mlflow")

#: Environment variable holding the PID of the process that launched the worker (subprocess launcher).
PARENT_PID_ENV = "HVLA_TRAINING_PARENT_PID"

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the process that launched it dies (``prctl``
    ``PR_SET_PDEATHSIG``), so a killed run never leaves an orphaned training process behind.

    A no-op outside Linux and when :data:`PARENT_PID_ENV` is unset (a Kubernetes pod: the pod is
    deleted by the Pipes client instead). Exits with status 1 if the launcher is already gone.
    """
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):  # the launcher died before prctl took effect
        sys.exit("training process: the process that launched it is gone")


def train_from_extras(extras: dict[str, Any], log) -> dict[str, Any]:
    """Train as ``extras`` says and return what the worker reports.

    Args:
        extras: the Pipes extras (:data:`EXTRAS_KEYS`); ``extras["train"]["exp_name"]`` is the
            experiment (the asset's partition key).
        log: one progress line per call (``str``).

    Returns:
        ``{"metadata": {...}, "check": {"passed": bool, "metadata": {...}}, "prefix": str}``:
        ``metadata`` are the ``dagster/uri`` and ``hvla/*`` entries of the materialization (str,
        int, float), ``prefix`` the checkpoint's lake key.

    Raises:
        KeyError: an extras key is missing. Whatever
        :func:`~hvla_platform.lib.training.build.train_experiment` raises (missing inputs, rights,
        invalid config).
    """
    # deferred: the training stack (JAX, flax, optax, orbax, MLflow) loads in the training process only
    from hvla_platform.lib.core.lake_config import LakeConfig, open_lake  # noqa: PLC0415
    from hvla_platform.lib.training.build import train_experiment  # noqa: PLC0415
    from hvla_platform.lib.training.train import TrainConfig  # noqa: PLC0415

    train = dict(extras["train"])
    norm_stats_release = train.pop("norm_stats_release", "") or None
    backend = train.pop("backend", "jax")
    lerobot_policy = train.pop("lerobot_policy", "act")
    lake = open_lake(LakeConfig(**extras["lake"],
                                access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", ""),
                                secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "")))
    cfg = TrainConfig(**train)
    b = train_experiment(lake, cfg, tracking_uri=extras["mlflow"]["tracking_uri"] or None,
                         artifact_root=extras["mlflow"]["artifact_root"] or None, log=log,
                         norm_stats_release=norm_stats_release, backend=backend, lerobot_policy=lerobot_policy)
    m = b.manifest
    ratio = m.final_loss / m.initial_loss if m.initial_loss > 0 else float("inf")
    return {
        "prefix": b.prefix,
        "metadata": {
            "dagster/uri": b.uri,
            "hvla/experiment": cfg.exp_name,
            "hvla/release": cfg.release,
            "hvla/backend": backend if backend != "lerobot" else f"lerobot {lerobot_policy}",
            "hvla/step": m.step,
            "hvla/initial_loss": m.initial_loss,
            "hvla/final_loss": m.final_loss,
            "hvla/num_train_frames": m.num_train_frames,
            "hvla/num_params": m.num_params,
            "hvla/train_seconds": round(m.train_seconds, 1),
            "hvla/mlflow_run_id": str(m.mlflow_run_id),
            "hvla/serving_allowed": ", ".join(m.serving_allowed) or "(none)",
            "hvla/serving_blocked": ", ".join(m.serving_blocked) or "(none)",
            "status": b.status,
        },
        "check": {"passed": bool(ratio <= LOSS_RATIO_MAX), "metadata": {"hvla/loss_ratio": round(ratio, 4)}},
    }


def main() -> None:
    """Entry point: open Dagster Pipes, train, report the materialization and the check."""
    from dagster_pipes import open_dagster_pipes  # noqa: PLC0415

    die_with_parent()
    with open_dagster_pipes() as pipes:
        pipes.log.info(f"training process pid {os.getpid()} started ({sys.executable})")
        try:
            out = train_from_extras(pipes.extras, pipes.log.info)
        except Exception as e:  # the launcher names it in the run's failure; Pipes reports the traceback
            pipes.report_custom_message({"error": f"{type(e).__name__}: {e}",
                                         "error_class": f"{type(e).__module__}.{type(e).__qualname__}",
                                         "error_message": str(e)})
            raise
        pipes.report_custom_message({"checkpoint": out["prefix"]})
        pipes.report_asset_materialization(metadata=out["metadata"])
        pipes.report_asset_check("loss_fell", passed=out["check"]["passed"], metadata=out["check"]["metadata"])


if __name__ == "__main__":
    main()
