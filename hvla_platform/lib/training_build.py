"""Train an experiment on a release's Robo-DM cache and publish the checkpoint, idempotently."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hvla_platform.lib.ingest.layout import CHECKPOINTS
from hvla_platform.lib.manifest import InputRef, build_manifest, fingerprint, manifest_sha256
from hvla_platform.lib.norm_stats_build import NORM_STATS_FILE, norm_stats_prefix
from hvla_platform.lib.releases import load_release
from hvla_platform.lib.rights import Rights
from hvla_platform.lib.robodm_build import robodm_prefix
from hvla_platform.lib.storage.lake import Lake
from hvla_platform.lib.training.checkpoint import checkpoint_key
from hvla_platform.lib.training.train import TrainConfig, train_policy


@dataclass
class TrainingBuild:
    """Outcome of :func:`train_experiment` (``status``: ``materialized`` or ``cached``)."""

    status: str
    uri: str
    key: str
    manifest: dict[str, Any]
    rights: Rights


def find_checkpoint(lake: Lake, exp_name: str) -> str | None:
    """Key of the newest committed checkpoint of ``exp_name`` (highest step of the latest run)."""
    best: tuple[str, int, str] | None = None
    for prefix in lake.list_artifacts(CHECKPOINTS):
        parts = prefix.split("/")
        if len(parts) == 4 and parts[2] == exp_name and parts[3].isdigit():
            created = lake.read_manifest(prefix)["created_at"]
            cand = (created, int(parts[3]), prefix)
            if best is None or cand[:2] > best[:2]:
                best = cand
    return best[2] if best else None


def train_experiment(lake: Lake, cfg: TrainConfig, *, tracking_uri: str | None, artifact_root: str | None = None,
                     log: Callable[[str], None] | None = None) -> TrainingBuild:
    """Train ``cfg`` on the cache and norm stats of ``cfg.release`` and publish
    ``checkpoints/<config_name>/<exp_name>/<steps>/``.

    Raises:
        ArtifactNotFoundError: the release's cache or norm stats are not materialized.
        RightsError: the release's rights do not allow ``internal_training``.
    """
    cfg.validate()
    spec = load_release(lake, cfg.release)
    cache_m = lake.require_manifest(robodm_prefix(cfg.release))
    ns_m = lake.require_manifest(norm_stats_prefix(cfg.release))
    rights = Rights.from_dict(cache_m["rights"])
    inputs = [
        InputRef(uri=lake.uri(robodm_prefix(cfg.release)), sha256=manifest_sha256(cache_m), kind="robodm_cache",
                 episode_ids=list(cache_m["train_episode_ids"])),
        InputRef(uri=lake.uri(f"{norm_stats_prefix(cfg.release)}/{NORM_STATS_FILE}"), sha256=manifest_sha256(ns_m),
                 kind="norm_stats", episode_ids=list(ns_m["episode_ids"])),
    ]
    config = cfg.to_dict()
    fp = fingerprint([i.to_dict() for i in inputs], config)
    key = checkpoint_key(cfg.config_name, cfg.exp_name, cfg.steps)
    existing = lake.read_manifest(key)
    if existing is not None and existing.get("fingerprint") == fp:
        return TrainingBuild("cached", lake.uri(key), key, existing, rights)
    norm_stats = lake.read_json(f"{norm_stats_prefix(cfg.release)}/{NORM_STATS_FILE}")
    with lake.local_artifact(robodm_prefix(cfg.release)) as cache_dir, tempfile.TemporaryDirectory(prefix="hvla-ckpt-") as tmp:
        out_dir = Path(tmp) / cfg.config_name / cfg.exp_name
        res = train_policy(
            cache_dir, norm_stats, cfg, out_dir=out_dir, log=log, mlflow_tracking_uri=tracking_uri,
            mlflow_artifact_dir=artifact_root,
            dataset_info={"repo_id": spec.repo_id, "release": cfg.release, "source": lake.uri(robodm_prefix(cfg.release)),
                          "norm_stats_ref": lake.uri(f"{norm_stats_prefix(cfg.release)}/{NORM_STATS_FILE}")},
            rights=rights.to_dict(), state_names=list(spec.state_joints), action_names=list(spec.action_joints),
        )
        manifest = build_manifest(
            artifact_type="checkpoint", artifact_uri=lake.uri(key), inputs=inputs, config=config, rights=rights,
            local_dir=res.step_dir, episode_ids=res.train_episode_ids,
            extra={"experiment": cfg.exp_name, "config_name": cfg.config_name, "step": cfg.steps,
                   "release": cfg.release, "repo_id": spec.repo_id, "initial_loss": res.initial_loss,
                   "final_loss": res.final_loss, "mlflow_run_id": res.mlflow_run_id,
                   "num_train_frames": res.num_train_frames, "num_params": res.num_params,
                   "train_seconds": res.seconds, "timings": res.timings,
                   "serving_allowed": rights.serving_allowed(), "serving_blocked": rights.serving_blocked()},
        )
        lake.publish_artifact(key, res.step_dir, manifest)
    return TrainingBuild("materialized", lake.uri(key), key, manifest, rights)
