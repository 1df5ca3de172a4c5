"""Training stage: a small JAX policy trained on a release's Robo-DM cache, per experiment."""

import dagster as dg

from hvla_platform.defs.metadata import lineage_metadata, rights_metadata
from hvla_platform.defs.partitions import experiment_partitions
from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform.lib.training.build import train_experiment

#: The loss must end at most this fraction of where it started for the ``loss_fell`` check.
LOSS_RATIO_MAX = 0.9


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


@dg.asset(
    partitions_def=experiment_partitions,
    deps=[dg.AssetDep("robodm_cache", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("norm_stats", partition_mapping=dg.AllPartitionMapping())],
    group_name="training",
    owners=["team:ml-training"],
    kinds={"jax", "mlflow"},
    pool="training",
    description="Policy checkpoint (images + state → action chunk) trained with JAX on the release's Robo-DM cache.",
    check_specs=[dg.AssetCheckSpec("loss_fell", asset="checkpoint", partitions_def=experiment_partitions, blocking=True,
                                   description=f"Final training loss ≤ {LOSS_RATIO_MAX} × initial loss.")],
    metadata={"hvla/layer": "model"},
)
def checkpoint(context: dg.AssetExecutionContext, config: CheckpointConfig, lake: LakeResource,
               mlflow: MlflowResource) -> dg.MaterializeResult:
    """Train on the release named in the config; the run is logged to MLflow."""
    lk = lake.get_lake()
    cfg = TrainConfig(config_name=config.config_name, exp_name=context.partition_key, release=config.release,
                      steps=config.steps, seed=config.seed, batch_size=config.batch_size,
                      learning_rate=config.learning_rate, action_horizon=config.action_horizon,
                      normalization=config.normalization)
    b = train_experiment(lk, cfg, tracking_uri=mlflow.uri(), artifact_root=mlflow.artifacts(), log=context.log.info,
                         norm_stats_release=config.norm_stats_release or None)
    m = b.manifest
    ratio = m.final_loss / m.initial_loss if m.initial_loss > 0 else float("inf")
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "hvla/experiment": context.partition_key,
            "hvla/release": config.release,
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
            **lineage_metadata(lk, b.prefix),
            **rights_metadata(b.rights),
        },
        check_results=[dg.AssetCheckResult(check_name="loss_fell", passed=ratio <= LOSS_RATIO_MAX,
                                           metadata={"hvla/loss_ratio": round(ratio, 4)})],
    )
