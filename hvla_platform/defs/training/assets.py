"""Training stage: a small JAX policy trained on a release's Robo-DM cache, per experiment.

The training itself runs out of process, through Dagster Pipes: the asset sends its config to
``python -m hvla_platform.defs.training.pipes_worker`` (a subprocess on the embedded default, a
GPU pod in the Helm deployment: :class:`~hvla_platform.defs.training.launcher.TrainingLauncherResource`),
which streams its log lines back and reports the materialization and the ``loss_fell`` check. The
code server and the run process never import the training stack (JAX, flax, optax, orbax).
"""

import dagster as dg

from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.metadata import lineage_metadata, rights_metadata
from hvla_platform.defs.partitions import experiment_partitions
from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.defs.stages import TRAINING
from hvla_platform.defs.training.launcher import TrainingLauncherResource
from hvla_platform.defs.training.pipes_worker import LOSS_RATIO_MAX
from hvla_platform.lib.core.manifest import CheckpointManifest, require_manifest
from hvla_platform.lib.web.links import mlflow_run_url

__all__ = ["LOSS_RATIO_MAX", "CheckpointConfig", "checkpoint"]


class CheckpointConfig(dg.Config):
    """Training config; the partition key is the experiment name."""

    release: str
    config_name: str = "hvla_g1_reach_small"
    steps: int = 300
    seed: int = 0
    batch_size: int = 32
    learning_rate: float = 1e-3
    action_horizon: int = 10
    normalization: str = "quantile"
    norm_stats_release: str = ""  # reuse another release's norm stats (refused across customers)
    backend: str = "jax"  # the trainer: "jax" (the reference policy) or "lerobot" (LeRobot's own trainer)
    lerobot_policy: str = "act"  # with backend "lerobot": LeRobot's policy type (act | diffusion)


@dg.asset(
    partitions_def=experiment_partitions,
    deps=[dg.AssetDep("robodm_cache", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("norm_stats", partition_mapping=dg.AllPartitionMapping())],
    group_name="training",
    owners=["team:ml-training"],
    kinds={"jax", "mlflow"},
    pool=TRAINING,
    description="Policy checkpoint (images + state → action chunk) trained with JAX on the release's Robo-DM cache, in its own process (Dagster Pipes).",
    check_specs=[dg.AssetCheckSpec("loss_fell", asset="checkpoint", partitions_def=experiment_partitions, blocking=True,
                                   description=f"Final training loss ≤ {LOSS_RATIO_MAX} × initial loss.")]
    + rights_check_specs("checkpoint", experiment_partitions),
    metadata={"hvla/layer": "model"},
)
def checkpoint(context: dg.AssetExecutionContext, config: CheckpointConfig, lake: LakeResource,
               mlflow: MlflowResource, training_launcher: TrainingLauncherResource) -> dg.MaterializeResult:
    """Train on the release named in the config in a separate process (Dagster Pipes); the run is
    logged to MLflow. The materialization's ``hvla/*`` values and the check come from the training
    process; lineage and rights are read here from the manifest it published."""
    lk = lake.get_lake()
    lake_config, secret_env = lake.process_settings()
    extras = {
        "train": {"config_name": config.config_name, "exp_name": context.partition_key, "release": config.release,
                  "steps": config.steps, "seed": config.seed, "batch_size": config.batch_size,
                  "learning_rate": config.learning_rate, "action_horizon": config.action_horizon,
                  "normalization": config.normalization, "norm_stats_release": config.norm_stats_release,
                  "backend": config.backend, "lerobot_policy": config.lerobot_policy},
        "lake": lake_config,
        "mlflow": {"tracking_uri": mlflow.uri(), "artifact_root": mlflow.artifacts()},
    }
    invocation = training_launcher.run(context, extras=extras, secret_env=secret_env)
    reported = invocation.get_materialize_result(implicit_materialization=False)
    prefixes = [m["checkpoint"] for m in invocation.get_custom_messages() if isinstance(m, dict) and "checkpoint" in m]
    if len(prefixes) != 1:
        raise dg.Failure(description=f"the training process reported {len(prefixes)} checkpoints, expected 1")
    manifest = require_manifest(lk, prefixes[0], CheckpointManifest)
    return dg.MaterializeResult(
        metadata={**reported.metadata, **lineage_metadata(lk, prefixes[0]), **rights_metadata(manifest.rights_obj),
                  **({"hvla/mlflow_run": dg.MetadataValue.url(mlflow_run_url(manifest.mlflow_run_id))}
                     if manifest.mlflow_run_id else {})},
        check_results=[*reported.check_results, rights_check_result(lk, "checkpoint", prefixes[0])],
    )
