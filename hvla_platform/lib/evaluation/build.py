"""Evaluate an experiment's checkpoint (offline on held-out episodes, closed loop in the simulator)
and publish the report, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hvla_platform.lib.core.keys import eval_report_prefix, lerobot_release_prefix, robodm_prefix
from hvla_platform.lib.core.manifest import (
    CheckpointManifest, Content, EvalReportManifest, InputRef, LeRobotDatasetManifest, Published, RoboDMCacheManifest,
    publish_if_changed, require_manifest)
from hvla_platform.lib.evaluation.closed_loop import evaluate_closed_loop
from hvla_platform.lib.evaluation.distribution import group_headlines
from hvla_platform.lib.evaluation.offline import evaluate_policy_offline
from hvla_platform.lib.evaluation.report import log_eval_to_mlflow, write_eval_report
from hvla_platform.lib.serving.robot import RobotConfig
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.training.checkpoint import read_checkpoint_manifest, read_loss_curve
from hvla_platform.lib.training.policy_loader import load_policy
from hvla_platform.lib.training.build import find_checkpoint


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Attributes:
        closed_loop_trials: simulator trials in all (0 disables closed loop): half of them (rounded
            up) on tasks the checkpoint was trained on, the rest on tasks it was not
            (:func:`~hvla_platform.lib.evaluation.distribution.plan_seeds`); each group's success is
            reported with a 95 % Wilson interval. 8 by default (4 per group): a trial costs ~1 s to
            build the simulator plus ~65 ms of CPU per control step (two software-rendered
            cameras), i.e. 3–10 s on 2 cores (docs/decisions.md, "Evaluation").
        seed: first seed scanned for trials (recordings use other seeds).
        max_steps: control steps per trial (at the release fps).
        replan_every: actions executed open-loop from each chunk before re-querying.
        max_step_rad: the robot client's per-step joint target limit, radians (as in ``hvla deploy``).
    """

    closed_loop_trials: int = 8
    seed: int = 1000
    max_steps: int = 140
    replan_every: int = 5
    max_step_rad: float = 0.25


def evaluate_experiment(lake: Lake, exp_name: str, cfg: EvalConfig, *, env_factory: Callable[[], Any] | None,
                        arm_limits: tuple[Any, Any] | None = None,
                        tracking_uri: str | None, artifact_root: str | None = None,
                        log: Callable[[str], None] | None = None) -> Published:
    """Evaluate the newest checkpoint of ``exp_name`` and publish ``eval-reports/<exp>/<step>/``.

    ``env_factory`` builds the closed-loop simulator (``ReachEnv``); ``None`` skips closed loop.
    Closed-loop trials are split into in- and out-of-distribution groups by the checkpoint's training
    tasks (:func:`~hvla_platform.lib.evaluation.closed_loop.evaluate_closed_loop`) and run with the
    inspect-robots harness (``inspect_robots.eval()``): the checkpoint is served by a
    :class:`~hvla_platform.lib.serving.server.PolicyServer` on loopback, the ``hvla_openpi`` policy
    client queries it and the ``hvla_g1_reach`` embodiment (the simulator behind ``hvla deploy``'s
    robot-side action guard) executes its chunks — per trial the numbers of ``hvla deploy``'s robot
    client; ``arm_limits`` (lower, upper) radians are the robot's arm joint limits the guard
    enforces. Published with the report under ``logs/``: the server's inference log, the robot
    safety log and ``logs/inspect/``: inspect-robots' EvalLog (``hvla-reach-touch_<id>.json``, named
    in ``metrics.json`` as ``closed_loop.inspect.eval_log``), its HTML view (``.html``) and each
    trial's executed actions. The report names other artifacts by lake key (``checkpoints/…``) and
    its own files by path relative to the report, never by filesystem path or URI.

    Raises:
        FileNotFoundError: the experiment has no checkpoint.
        ArtifactNotFoundError: the release's LeRobot dataset or Robo-DM cache is not committed.
        ValueError: closed loop requested without ``arm_limits``.
    """
    ckpt_key = find_checkpoint(lake, exp_name)
    if ckpt_key is None:
        raise FileNotFoundError(f"experiment {exp_name!r} has no committed checkpoint; materialize `checkpoint` first")
    ck_m = require_manifest(lake, ckpt_key, CheckpointManifest)
    release = ck_m.release
    cache_m = require_manifest(lake, robodm_prefix(release), RoboDMCacheManifest)
    release_tasks = require_manifest(lake, lerobot_release_prefix(ck_m.repo_id, release), LeRobotDatasetManifest).tasks
    config = {"closed_loop_trials": cfg.closed_loop_trials if env_factory else 0, "seed": cfg.seed,
              "max_steps": cfg.max_steps, "replan_every": cfg.replan_every, "max_step_rad": cfg.max_step_rad,
              "closed_loop_path": "inspect-robots eval(): hvla_openpi client → policy server (openpi websocket, "
                                  "loopback), hvla_g1_reach embodiment with the robot client's action guard",
              "closed_loop_groups": "in/out of distribution by the checkpoint's training tasks, 95% Wilson intervals"}
    inputs = [InputRef(key=ckpt_key, sha256=ck_m.sha256(), kind="checkpoint",
                       episode_ids=list(ck_m.episode_ids)),
              InputRef(key=robodm_prefix(release), sha256=cache_m.sha256(), kind="robodm_cache",
                       episode_ids=list(cache_m.heldout_episode_ids))]

    def write(out: Path) -> Content:
        with lake.local_artifact(ckpt_key) as step_dir, lake.local_artifact(robodm_prefix(release)) as cache_dir:
            policy = load_policy(step_dir)
            training_tasks = sorted(policy.metadata.get("tasks") or [])
            if log:
                log(f"offline evaluation of {ckpt_key} on held-out episodes {cache_m.heldout_episode_ids}")
            offline = evaluate_policy_offline(policy, cache_dir, split="heldout")
            closed = None
            if env_factory is not None and cfg.closed_loop_trials > 0:
                if arm_limits is None:
                    raise ValueError("closed-loop evaluation needs the robot's arm joint limits (arm_limits)")
                closed = evaluate_closed_loop(
                    policy, checkpoint_key=ckpt_key, env_factory=env_factory, arm_limits=arm_limits,
                    cfg=RobotConfig(seed=cfg.seed, max_steps=cfg.max_steps, replan_every=cfg.replan_every,
                                    max_step_rad=cfg.max_step_rad),
                    trials=cfg.closed_loop_trials, training_tasks=training_tasks, release_tasks=release_tasks,
                    release=release, log_dir=out / "logs", log=log)
            ck_manifest = read_checkpoint_manifest(step_dir)
            write_eval_report(out, offline=offline, closed_loop=closed, checkpoint_manifest=ck_manifest,
                              loss_curve=read_loss_curve(step_dir), title=f"{exp_name} @ step {ck_m.step}",
                              training={"num_train_frames": ck_m.num_train_frames, "seconds": ck_m.train_seconds,
                                        "mlflow_run_id": ck_m.mlflow_run_id})
        run_id = None
        if tracking_uri:
            run_id = log_eval_to_mlflow(out, tracking_uri=tracking_uri, offline=offline, closed_loop=closed,
                                        checkpoint_manifest=ck_manifest, run_name=f"{exp_name}-eval-{ck_m.step}",
                                        training_run_id=ck_m.mlflow_run_id, artifact_dir=artifact_root)
        return Content(episode_ids=list(cache_m.heldout_episode_ids), extra={
            "experiment": exp_name, "checkpoint": ckpt_key, "step": ck_m.step, "release": release,
            "mlflow_run_id": run_id, "training_tasks": training_tasks, "release_tasks": list(release_tasks),
            "closed_loop": group_headlines(closed) if closed is not None else None})

    return publish_if_changed(lake, eval_report_prefix(exp_name, ck_m.step), artifact_type="eval_report",
                              inputs=inputs, config=config, rights=ck_m.rights_obj, write=write)


def read_eval_metrics(lake: Lake, prefix: str) -> dict[str, Any]:
    """``metrics.json`` of a committed eval report (``offline``, ``closed_loop``… see
    :func:`~hvla_platform.lib.evaluation.report.write_eval_report`).

    Raises:
        ArtifactNotFoundError: no committed eval report at ``prefix``.
    """
    require_manifest(lake, prefix, EvalReportManifest)
    return lake.read_json(f"{prefix}/metrics.json")
