"""Train an experiment on a release's Robo-DM cache and publish the checkpoint, idempotently."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from hvla_platform.lib.core.keys import CHECKPOINTS
from hvla_platform.lib.core.manifest import (
    CheckpointManifest, Content, InputRef, LeRobotDatasetManifest, NormStatsManifest, Published, RoboDMCacheManifest,
    publish_if_changed, require_manifest)
from hvla_platform.lib.dataset.norm_stats_build import NORM_STATS_FILE, norm_stats_prefix
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.dataset.versions import load_release_version
from hvla_platform.lib.training.data_summary import training_data_summary
from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.dataset.robodm_build import robodm_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.training.checkpoint import checkpoint_key
from hvla_platform.lib.training.lerobot_backend import LEROBOT_BACKEND, check_backend, train_lerobot_experiment
from hvla_platform.lib.training.train import TrainConfig, check_training_rights, train_policy


def resolve_cameras(cfg: TrainConfig, release_cameras: tuple[str, ...] | list[str], *, release: str) -> TrainConfig:
    """``cfg`` with its cameras resolved against the release's: None → every camera of the release
    (in the spec's order); named cameras must all be the release's.

    Raises:
        ValueError: a named camera is not the release's (the message names the closest), or the
            release has no camera.
    """
    if cfg.cameras is None:
        if not release_cameras:
            raise ValueError(f"release {release} has no camera to train on")
        return replace(cfg, cameras=tuple(release_cameras))
    unknown = [c for c in cfg.cameras if c not in release_cameras]
    if unknown:
        raise ValueError(f"training config names camera(s) release {release} does not have: "
                         + ", ".join(f"{c!r}{did_you_mean(c, release_cameras)}" for c in unknown)
                         + f"; its cameras are {list(release_cameras)}")
    return cfg


def find_checkpoint(lake: Lake, exp_name: str) -> str | None:
    """Key of the newest committed checkpoint of ``exp_name`` (highest step of the latest run)."""
    best: tuple[str, int, str] | None = None
    for prefix in lake.list_artifacts(CHECKPOINTS):
        parts = prefix.split("/")
        if len(parts) == 4 and parts[2] == exp_name and parts[3].isdigit():
            created = require_manifest(lake, prefix, CheckpointManifest).created_at
            cand = (created, int(parts[3]), prefix)
            if best is None or cand[:2] > best[:2]:
                best = cand
    return best[2] if best else None


def check_norm_stats_reuse(ns_manifest: NormStatsManifest, data_rights: Rights, *, ns_release: str, release: str) -> None:
    """Refuse norm stats derived from another customer's data (seed 000's norm-stats review:
    ``reusable_across_customers: false``).

    Raises:
        RightsError: the norm stats' customers are not all customers of the training data.
    """
    ns_customers = set(ns_manifest.rights_obj.customers)
    foreign = sorted(ns_customers - set(data_rights.customers))
    if foreign:
        raise RightsError(
            f"norm stats of release {ns_release} were computed from data of customer(s) {foreign}, which the "
            f"training data of release {release} (customers {sorted(data_rights.customers)}) does not include; "
            "norm stats are not reusable across customers — compute them from this release")


def train_experiment(lake: Lake, cfg: TrainConfig, *, tracking_uri: str | None, artifact_root: str | None = None,
                     log: Callable[[str], None] | None = None, norm_stats_release: str | None = None,
                     backend: str = "jax", lerobot_policy: str = "act") -> Published:
    """Train ``cfg`` on the cache of ``cfg.release`` with the norm stats of ``norm_stats_release``
    (default: the same release) and publish ``checkpoints/<config_name>/<exp_name>/<steps>/``.

    ``backend="jax"`` (default) trains the reference JAX policy; ``backend="lerobot"`` runs
    LeRobot's own trainer (policy ``lerobot_policy``: ``act`` or ``diffusion``) on the release's
    LeRobot dataset, train split only, with its train-split stats
    (:func:`~hvla_platform.lib.training.lerobot_backend.train_lerobot_experiment`). The backend
    (and for ``lerobot`` the policy type and LeRobot's version) enter the checkpoint's config and
    so its fingerprint; ``lerobot_policy`` is ignored by the jax backend.

    State and action names, and the cameras when ``cfg.cameras`` is None, are the release
    version's (its spec: ``state_joints``, ``action_joints``, ``cameras``), never a robot's
    constants; ``cfg.cameras`` is resolved before it enters the checkpoint's fingerprint.

    Raises:
        ArtifactNotFoundError: the release's cache or the norm stats are not materialized.
        RightsError: the data's rights do not allow ``internal_training`` or have expired, or the
            norm stats come from another customer's data (:func:`check_norm_stats_reuse`).
        ValueError: ``cfg.cameras`` names a camera the release does not have (with the closest); an
            unknown ``backend`` or ``lerobot_policy`` (with the closest valid name).
        LeRobotTrainError: ``lerobot-train`` failed (the message quotes its last output lines).
    """
    check_backend(backend, lerobot_policy)
    cfg.validate()
    spec = load_release_version(lake, cfg.release)  # the exact version: never the spec registered today
    cfg = resolve_cameras(cfg, spec.cameras, release=cfg.release)
    if backend == LEROBOT_BACKEND:
        return train_lerobot_experiment(lake, cfg, spec=spec, lerobot_policy=lerobot_policy,
                                        tracking_uri=tracking_uri, artifact_root=artifact_root, log=log,
                                        norm_stats_release=norm_stats_release)
    ns_release = norm_stats_release or cfg.release
    cache_m = require_manifest(lake, robodm_prefix(cfg.release), RoboDMCacheManifest)
    ns_m = require_manifest(lake, norm_stats_prefix(ns_release), NormStatsManifest)
    rights = cache_m.rights_obj
    for prefix in (robodm_prefix(cfg.release), norm_stats_prefix(ns_release)):
        flag = artifact_flags(lake, prefix)
        if flag:
            raise RightsError(f"{prefix} is flagged {flag['status']} ({flag['reason']}, consent {flag.get('consent')}); "
                              "train on the rebuilt release instead")
    check_training_rights(rights.to_dict())
    check_norm_stats_reuse(ns_m, rights, ns_release=ns_release, release=cfg.release)
    inputs = [
        InputRef(key=robodm_prefix(cfg.release), sha256=cache_m.sha256(), kind="robodm_cache",
                 episode_ids=list(cache_m.train_episode_ids)),
        InputRef(key=f"{norm_stats_prefix(ns_release)}/{NORM_STATS_FILE}", sha256=ns_m.sha256(),
                 kind="norm_stats", episode_ids=list(ns_m.episode_ids)),
    ]
    config = {**cfg.to_dict(), "norm_stats_release": ns_release, "backend": backend}
    key = checkpoint_key(cfg.config_name, cfg.exp_name, cfg.steps)

    def write(staging: Path) -> Content:
        norm_stats = lake.read_json(f"{norm_stats_prefix(ns_release)}/{NORM_STATS_FILE}")
        with lake.local_artifact(robodm_prefix(cfg.release)) as cache_dir:
            res = train_policy(
                cache_dir, norm_stats, cfg, out_dir=staging.parent / "work" / cfg.config_name / cfg.exp_name, log=log,
                mlflow_tracking_uri=tracking_uri, mlflow_artifact_dir=artifact_root,
                # lake keys, never this lake's URIs: config.json, the checkpoint manifest and the MLflow
                # dataset source stay true when the lake is moved
                dataset_info={"repo_id": spec.repo_id, "release": cfg.release,
                              "source": robodm_prefix(cfg.release),
                              "norm_stats_ref": f"{norm_stats_prefix(ns_release)}/{NORM_STATS_FILE}"},
                rights=rights.to_dict(), state_names=list(spec.state_joints), action_names=list(spec.action_joints),
            )
        src_m = require_manifest(lake, lerobot_prefix(spec), LeRobotDatasetManifest)
        (res.step_dir / "training_data_summary.md").write_text(training_data_summary(
            lake, release_manifest=src_m, spec=spec, checkpoint_key=key,
            train_episode_ids=res.train_episode_ids, norm_stats_release=ns_release, config=config))
        for child in res.step_dir.iterdir():
            child.rename(staging / child.name)
        return Content(episode_ids=res.train_episode_ids, extra={
            "experiment": cfg.exp_name, "config_name": cfg.config_name, "step": cfg.steps, "release": cfg.release,
            "repo_id": spec.repo_id, "initial_loss": res.initial_loss, "final_loss": res.final_loss,
            "mlflow_run_id": res.mlflow_run_id, "num_train_frames": res.num_train_frames,
            "num_params": res.num_params, "train_seconds": res.seconds, "timings": res.timings,
            "serving_allowed": rights.serving_allowed(), "serving_blocked": rights.serving_blocked()})

    return publish_if_changed(lake, key, artifact_type="checkpoint", inputs=inputs, config=config, rights=rights,
                              write=write)
