"""Evaluation stage: the eval report of an experiment's checkpoint (offline + closed loop in simulation)."""

import dagster as dg

from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.metadata import lineage_metadata, rights_metadata
from hvla_platform.defs.partitions import experiment_partitions
from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.defs.stages import TRAINING
from hvla_platform.lib.web.links import lake_file_url, mlflow_run_url

# hvla_platform.lib.evaluation is imported inside the functions below: it imports the policy
# (lib.training → JAX, flax), which the code server must not load (docs/deployment.md, "Training
# out of process"); the evaluation itself still runs in the run's process.


class EvalReportConfig(dg.Config):
    """Evaluation settings (see ``hvla_platform.lib.evaluation.build.EvalConfig``).

    ``closed_loop_trials`` is the total: half (rounded up) on the checkpoint's training tasks, the
    rest on other tasks, each group reported with its own 95 % Wilson interval."""

    closed_loop_trials: int = 8
    seed: int = 1000
    max_steps: int = 140
    replan_every: int = 5
    max_step_rad: float = 0.25
    control_hz: float = 20.0


def closed_loop_metadata(closed: dict) -> dict:
    """``hvla/closed_loop_<group>`` (``"k/n = rate (95% Wilson lower–upper)"``, or why not measured) and
    ``hvla/closed_loop_<group>_success_rate`` (a float, or ``"not measured"``) for both groups of
    ``metrics.json``'s ``closed_loop`` (``"not run"`` without closed loop)."""
    # deferred: lib.evaluation imports the policy (JAX, flax); the code server must not load it
    from hvla_platform.lib.evaluation.distribution import GROUPS  # noqa: PLC0415

    out: dict = {}
    for g in GROUPS:
        grp = closed.get(g)
        if not grp:
            out[f"hvla/closed_loop_{g}"] = out[f"hvla/closed_loop_{g}_success_rate"] = "not run"
        elif not grp["trials"]:
            out[f"hvla/closed_loop_{g}"] = grp.get("note") or "no trials: not measured"
            out[f"hvla/closed_loop_{g}_success_rate"] = "not measured"
        else:
            lo, hi = grp["ci95"]
            out[f"hvla/closed_loop_{g}"] = (f"{grp['successes']}/{grp['trials']} = {grp['success_rate']:.2f} "
                                            f"(95% Wilson {lo:.2f}–{hi:.2f})")
            out[f"hvla/closed_loop_{g}_success_rate"] = float(grp["success_rate"])
    return out


def per_task_markdown(per_task: list[dict]) -> dg.MetadataValue | str:
    """``metrics.json``'s ``closed_loop.per_task`` as a Markdown table (task, in the training task set,
    k/n, 95 % Wilson interval), or ``"not run"`` without closed-loop trials."""
    if not per_task:
        return "not run"
    rows = ["| task | trained on | success | 95% Wilson |", "|---|---|---|---|"]
    for e in per_task:
        lo, hi = e["ci95"]
        rows.append(f"| {e['task']} | {'yes' if e['in_training_tasks'] else 'no'} | {e['successes']}/{e['trials']} | "
                    f"{lo:.2f}–{hi:.2f} |")
    return dg.MetadataValue.md("\n".join(rows))


@dg.asset(
    partitions_def=experiment_partitions,
    deps=["checkpoint"],
    group_name="evaluation",
    owners=["team:ml-evaluation"],
    kinds={"html", "mlflow"},
    pool=TRAINING,
    description="Eval report of the experiment's checkpoint: held-out action error vs a hold-position baseline; closed-loop success in the G1 simulator run with inspect-robots (hvla_openpi client → policy server on loopback, hvla_g1_reach embodiment with the robot client's action guard; EvalLog and HTML view under logs/inspect/), in and out of the training distribution separately, each with a 95% Wilson interval.",
    check_specs=[dg.AssetCheckSpec("metrics_finite", asset="eval_report", partitions_def=experiment_partitions,
                                   description="The offline error metrics are finite numbers (the evaluation ran on real frames).")]
    + rights_check_specs("eval_report", experiment_partitions),
    metadata={"hvla/layer": "evaluation"},
)
def eval_report(context: dg.AssetExecutionContext, config: EvalReportConfig, lake: LakeResource,
                mlflow: MlflowResource) -> dg.MaterializeResult:
    """Evaluate and publish ``eval-reports/<experiment>/<step>/`` (report.html + metrics.json)."""
    # deferred: lib.evaluation imports the policy (JAX, flax); the code server must not load it
    from hvla_platform.lib.evaluation.build import EvalConfig, evaluate_experiment, read_eval_metrics  # noqa: PLC0415

    lk = lake.get_lake()
    cfg = EvalConfig(closed_loop_trials=config.closed_loop_trials, seed=config.seed, max_steps=config.max_steps,
                     replan_every=config.replan_every, max_step_rad=config.max_step_rad)

    # deferred: the simulator imports mujoco; the code server should not load it to list assets
    from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits  # noqa: PLC0415

    def env_factory():
        return ReachEnv(control_hz=config.control_hz)

    b = evaluate_experiment(lk, context.partition_key, cfg, env_factory=env_factory if config.closed_loop_trials else None,
                            arm_limits=arm_joint_limits() if config.closed_loop_trials else None,
                            tracking_uri=mlflow.uri(), artifact_root=mlflow.artifacts(), log=context.log.info)
    metrics = read_eval_metrics(lk, b.prefix)
    off = metrics.get("offline", {})
    comp = off.get("comparison", {})
    closed = metrics.get("closed_loop") or {}
    pol_mae = (off.get("policy", {}).get("first", {}) or {}).get("mae")
    base_mae = (off.get("baseline", {}).get("first", {}) or {}).get("mae")
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "hvla/report": dg.MetadataValue.url(lake_file_url(f"{b.prefix}/report.html")),
            **({"hvla/mlflow_run": dg.MetadataValue.url(mlflow_run_url(b.manifest.mlflow_run_id))}
               if b.manifest.mlflow_run_id else {}),
            "hvla/checkpoint": b.manifest.checkpoint,
            "hvla/heldout_episodes": ", ".join(b.manifest.episode_ids) or "(none)",
            "hvla/policy_mae_rad": pol_mae if pol_mae is not None else "n/a",
            "hvla/baseline_mae_rad": base_mae if base_mae is not None else "n/a",
            "hvla/mae_ratio_vs_baseline": comp.get("first_mae_ratio") if comp.get("first_mae_ratio") is not None else "n/a",
            **closed_loop_metadata(closed),
            "hvla/closed_loop_trials": closed.get("trials", 0),
            "hvla/closed_loop_per_task": per_task_markdown(closed.get("per_task") or []),
            "hvla/closed_loop_path": (closed.get("served_via") or {}).get("protocol", "not run"),
            "hvla/closed_loop_harness": (closed.get("served_via") or {}).get("harness", "not run"),
            "hvla/inspect_eval_log": (dg.MetadataValue.url(lake_file_url(f"{b.prefix}/{closed['inspect']['eval_log']}"))
                                      if closed.get("inspect") else "not run"),
            "hvla/inspect_eval_log_html": (dg.MetadataValue.url(lake_file_url(f"{b.prefix}/{closed['inspect']['html']}"))
                                           if closed.get("inspect") else "not run"),
            "status": b.status,
            **lineage_metadata(lk, b.prefix),
            **rights_metadata(b.rights),
        },
        check_results=[dg.AssetCheckResult(
            check_name="metrics_finite",
            passed=isinstance(pol_mae, (int, float)) and isinstance(base_mae, (int, float)),
            metadata={"hvla/policy_mae_rad": str(pol_mae), "hvla/baseline_mae_rad": str(base_mae)}),
            rights_check_result(lk, "eval_report", b.prefix)],
    )
