"""Evaluation report: ``metrics.json`` + a self-contained ``report.html`` (plots embedded as PNG).

The HTML has: the checkpoint and its data/rights, headline numbers, the loss curve, per-joint action
error of policy vs the hold-position baseline, error along the chunk, closed-loop success in and
out of the training distribution (each with its 95 % Wilson interval, never pooled:
:mod:`.report_closed_loop`) and per task instruction, whether the policy reads the prompt (the
offline result's ``prompt.used_by_policy``, i.e. the checkpoint's metadata), and a plain-language
section on what the numbers mean and their limits. Other artifacts are named by lake key, never by filesystem path. Plots use matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml
from hvla_platform.lib.core.tracking import TrackedRun
from hvla_platform.lib.evaluation.report_closed_loop import (
    closed_loop_explanation, closed_loop_figure, closed_loop_metrics, closed_loop_section, require_groups,
    with_per_task)

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
#: |improvement| below this (5 % of the baseline's error) is reported as "about as good as".
SAME_BAND = 0.05


def fmt(x: Any, digits: int = 4) -> str:
    """How numbers appear in the report: ``f"{x:.{digits}f}"``, ``n/a`` for None/NaN/inf."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return html.escape(str(x))
    if not math.isfinite(v):
        return "n/a"
    return f"{v:.{digits}f}"


def _json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars/arrays by Python values, recursively."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _png(fig) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(offline: Mapping[str, Any], closed_loop: Mapping[str, Any] | None,
           loss_curve: Sequence[float]) -> dict[str, str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    out: dict[str, str] = {}
    if loss_curve:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.plot(np.arange(1, len(loss_curve) + 1), loss_curve, lw=1)
        if min(loss_curve) > 0:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("minibatch MSE (normalized actions)")
        ax.set_title("Training loss")
        ax.grid(alpha=0.3)
        out["loss_curve"] = _png(fig)

    names = offline.get("action_names") or [str(i) for i in range(len(offline["policy"]["first"]["mae_per_dim"]))]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names)), 3.6))
    ax.bar(x - 0.2, offline["policy"]["first"]["mae_per_dim"], 0.4, label="policy")
    ax.bar(x + 0.2, offline["baseline"]["first"]["mae_per_dim"], 0.4, label="hold position")
    ax.set_xticks(x)
    ax.set_xticklabels([n.replace("_joint", "") for n in names], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("MAE of first action (rad)")
    ax.set_title("Held-out action error per joint")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    out["per_dim_error"] = _png(fig)

    ps = offline["policy"]["chunk"].get("mae_per_step") or []
    bs = offline["baseline"]["chunk"].get("mae_per_step") or []
    if ps:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        k = np.arange(len(ps))
        ax.plot(k, [np.nan if v is None else v for v in ps], "o-", label="policy")
        ax.plot(k, [np.nan if v is None else v for v in bs], "s--", label="hold position")
        ax.set_xlabel("chunk step k (frames ahead)")
        ax.set_ylabel("MAE (rad)")
        ax.set_title("Error along the predicted chunk")
        ax.legend()
        ax.grid(alpha=0.3)
        out["chunk_error"] = _png(fig)

    if closed_loop:
        fig = closed_loop_figure(closed_loop)
        if fig is not None:
            out["closed_loop"] = _png(fig)
    return out


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def prompt_sentence(offline: Mapping[str, Any]) -> str:
    """What the report says about the prompt (HTML), from ``offline["prompt"]["used_by_policy"]``:
    True → the policy reads the instruction; False → it does not; absent/None → not recorded."""
    used = (offline.get("prompt") or {}).get("used_by_policy")
    if used is True:
        return ("The policy reads the task instruction (the prompt) through a small word embedding learned from "
                "the training tasks' words only: held-out episodes are queried with their own task, closed-loop "
                "trials with theirs, and a word no training task contains (e.g. an unseen colour) is ignored, so "
                "an out-of-distribution instruction is read as its known words.")
    if used is False:
        return "This checkpoint does not read the task prompt: it acts the same whatever the instruction asks."
    return "Whether this policy reads the task prompt is not recorded."


def _explanation(offline: Mapping[str, Any], closed_loop: Mapping[str, Any] | None,
                 num_train_frames: int | None) -> str:
    p, b = offline["policy"]["first"], offline["baseline"]["first"]
    imp = offline["comparison"].get("first_mae_improvement")
    if imp is None:
        verdict = "not comparable with"
    elif imp > SAME_BAND:
        verdict = "better than"
    elif imp < -SAME_BAND:
        verdict = "worse than"
    else:
        verdict = "about as good as"
    parts = [
        f"<p><b>Action error.</b> On {offline['num_frames']} frames of {offline['num_episodes']} held-out "
        f"episode(s) the policy's next joint target is off by {fmt(p['mae'])} rad on average "
        f"(≈ {fmt(math.degrees(p['mae']), 2)}°; RMSE {fmt(p['rmse'])} rad). Simply holding the current joint "
        f"positions is off by {fmt(b['mae'])} rad. The policy is <b>{verdict}</b> that trivial baseline"
        + (f" (error change vs the baseline: {fmt(-100 * imp, 1)}%)." if imp is not None else ".")
        + " These are errors against what the demonstrator commanded, not task success: a small error can "
          "still accumulate into a miss, and a different but valid motion counts as error.</p>",
    ]
    parts.append(closed_loop_explanation(closed_loop))
    frames = f"{num_train_frames} training frames" if num_train_frames else "a few hundred training frames"
    parts.append(
        "<p><b>Limits.</b> This is a deliberately tiny setup: a small CNN + MLP (trained from scratch, "
        f"no pretrained vision or language model) on {frames}, trained for a few minutes on a CPU. "
        f"{prompt_sentence(offline)} Held-out episodes come from the same robot, scene and task "
        "distribution as the training episodes, so the action error says nothing about generalisation; "
        "only the out-of-distribution closed-loop trials touch it (other objects and hands of the same "
        "simulated scene), and simulation success does not imply real-robot success. Use the report to "
        "catch regressions and data problems, not to certify a policy.</p>")
    return "\n".join(parts)


def write_eval_report(
    out_dir: str | Path,
    *,
    offline: Mapping[str, Any],
    closed_loop: Mapping[str, Any] | None,
    checkpoint_manifest: Mapping[str, Any],
    loss_curve: Sequence[float],
    title: str | None = None,
    training: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json`` and ``report.html`` into ``out_dir`` and return the HTML path.

    Args:
        out_dir: report directory (created), e.g. ``eval-reports/<exp_name>/<step>``.
        offline: result of :func:`~hvla_platform.lib.evaluation.offline.evaluate_offline`.
        closed_loop: result of :func:`~hvla_platform.lib.evaluation.closed_loop.evaluate_closed_loop`
            (split into ``in_distribution`` / ``out_of_distribution``), or None.
        checkpoint_manifest: the checkpoint's ``checkpoint_manifest.yaml`` contents.
        loss_curve: per-step training loss of the checkpoint.
        title: page title (default: the checkpoint path).
        training: extra training facts to record (e.g. ``num_train_frames``, ``seconds``, ``mlflow_run_id``).

    ``metrics.json`` = ``{"checkpoint", "checkpoint_manifest", "training": {"steps", "final_minibatch_loss",
    ...}, "offline", "closed_loop"}`` with NaN/inf written as null; ``closed_loop.per_task`` holds the
    success per task instruction (computed from ``per_trial`` when the result has none,
    :func:`~hvla_platform.lib.evaluation.report_closed_loop.with_per_task`).

    Raises:
        ValueError: ``closed_loop`` is not split by distribution
            (:func:`~hvla_platform.lib.evaluation.report_closed_loop.require_groups`).
    """
    if closed_loop is not None:
        closed_loop = with_per_task(closed_loop)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    training_d = {"steps": len(loss_curve), "first_minibatch_loss": loss_curve[0] if loss_curve else None,
                  "final_minibatch_loss": loss_curve[-1] if loss_curve else None, **dict(training or {})}
    metrics = _json_safe({
        "checkpoint": checkpoint_manifest.get("checkpoint"),
        "checkpoint_manifest": dict(checkpoint_manifest),
        "training": training_d,
        "offline": dict(offline),
        "closed_loop": dict(closed_loop) if closed_loop is not None else None,
    })
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=str))

    plots = _plots(offline, closed_loop, loss_curve)
    title = title or f"Evaluation of {checkpoint_manifest.get('checkpoint', 'checkpoint')}"
    p, b, c = offline["policy"], offline["baseline"], offline["comparison"]
    headline = _table(
        ["metric (rad)", "policy", "hold position", "policy / baseline", "improvement"],
        [
            ["first action MAE", fmt(p["first"]["mae"]), fmt(b["first"]["mae"]), fmt(c["first_mae_ratio"], 3),
             fmt(c["first_mae_improvement"], 3)],
            ["first action RMSE", fmt(p["first"]["rmse"]), fmt(b["first"]["rmse"]), fmt(c["first_rmse_ratio"], 3),
             fmt(c["first_rmse_improvement"], 3)],
            ["whole chunk MAE", fmt(p["chunk"]["mae"]), fmt(b["chunk"]["mae"]), fmt(c["chunk_mae_ratio"], 3),
             fmt(c["chunk_mae_improvement"], 3)],
            ["whole chunk RMSE", fmt(p["chunk"]["rmse"]), fmt(b["chunk"]["rmse"]), fmt(c["chunk_rmse_ratio"], 3),
             fmt(c["chunk_rmse_improvement"], 3)],
        ],
    )
    names = offline.get("action_names") or []
    per_dim = _table(
        ["joint", "policy MAE", "baseline MAE", "policy RMSE", "baseline RMSE"],
        [[html.escape(n), fmt(p["first"]["mae_per_dim"][i]), fmt(b["first"]["mae_per_dim"][i]),
          fmt(p["first"]["rmse_per_dim"][i]), fmt(b["first"]["rmse_per_dim"][i])] for i, n in enumerate(names)],
    )
    cl_html = closed_loop_section(closed_loop, _table)
    img = lambda k, alt: (f'<img alt="{alt}" src="data:image/png;base64,{plots[k]}">' if k in plots else "")  # noqa: E731
    m = checkpoint_manifest
    ckpt_rows = [
        ["checkpoint", html.escape(str(m.get("checkpoint")))],
        ["base model", html.escape(str(m.get("base_model")))],
        ["training data", html.escape(", ".join(
            f"{d.get('repo_id')} @ {d.get('release')} ({d.get('split')}, {d.get('num_episodes')} episodes)"
            for d in m.get("training_data", [])))],
        ["norm stats", html.escape(str(m.get("norm_stats")))],
        ["serving allowed", html.escape(", ".join(m.get("serving_allowed", [])) or "(none)")],
        ["serving blocked", html.escape(", ".join(m.get("serving_blocked", [])) or "(none)")],
        ["training steps", str(training_d["steps"])],
        ["final minibatch loss", fmt(training_d["final_minibatch_loss"], 6)],
    ]
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; font-size: 0.9em; }}
th {{ background: #f3f3f3; }} td:first-child {{ text-align: left; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
pre {{ background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<h2>What the numbers mean</h2>
{_explanation(offline, closed_loop, (training or {}).get("num_train_frames"))}
<h2>Checkpoint</h2>
{_table(["", ""], ckpt_rows)}
<h2>Held-out action error (split: {html.escape(str(offline['split']))}, {offline['num_episodes']} episodes,
{offline['num_frames']} frames, chunk length {offline['horizon']})</h2>
{headline}
{img("per_dim_error", "per-joint error")}
{img("chunk_error", "error along the chunk")}
<details><summary>Per-joint numbers (first action, rad)</summary>{per_dim}</details>
<h2>Closed loop</h2>
{cl_html}
{img("closed_loop", "closed-loop outcomes")}
<h2>Training</h2>
{img("loss_curve", "loss curve")}
<h2>Checkpoint manifest</h2>
<pre>{html.escape(yaml.safe_dump(_json_safe(dict(m)), sort_keys=False))}</pre>
</body></html>
"""
    path = out_dir / REPORT_FILE
    path.write_text(doc, encoding="utf-8")
    return path


def eval_summary_metrics(offline: Mapping[str, Any], closed_loop: Mapping[str, Any] | None) -> dict[str, float]:
    """Flat scalar metrics for tracking (``offline/...``, ``closed_loop/...``: per-group success,
    :func:`~hvla_platform.lib.evaluation.report_closed_loop.closed_loop_metrics`); None values dropped."""
    out: dict[str, Any] = {
        "offline/policy_first_mae": offline["policy"]["first"]["mae"],
        "offline/policy_first_rmse": offline["policy"]["first"]["rmse"],
        "offline/policy_chunk_mae": offline["policy"]["chunk"]["mae"],
        "offline/baseline_first_mae": offline["baseline"]["first"]["mae"],
        "offline/baseline_first_rmse": offline["baseline"]["first"]["rmse"],
        "offline/baseline_chunk_mae": offline["baseline"]["chunk"]["mae"],
        "offline/first_mae_improvement": offline["comparison"].get("first_mae_improvement"),
        "offline/chunk_mae_improvement": offline["comparison"].get("chunk_mae_improvement"),
        "offline/num_frames": offline["num_frames"],
    }
    if closed_loop:
        out.update(closed_loop_metrics(closed_loop))
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}


def log_eval_to_mlflow(
    report_dir: str | Path,
    *,
    tracking_uri: str,
    offline: Mapping[str, Any],
    closed_loop: Mapping[str, Any] | None,
    checkpoint_manifest: Mapping[str, Any],
    experiment: str = "hvla-evaluation",
    run_name: str | None = None,
    training_run_id: str | None = None,
    artifact_dir: str | Path | None = None,
) -> str:
    """Log an evaluation as its own MLflow run and return the run id.

    Logs :func:`eval_summary_metrics`, the report directory as artifacts (``eval_report/``), and
    tags ``hvla.checkpoint`` and (if given) ``hvla.training_run_id`` linking back to the training run.
    """
    tags = {"hvla.checkpoint": str(checkpoint_manifest.get("checkpoint")), "hvla.kind": "evaluation"}
    if training_run_id:
        tags["hvla.training_run_id"] = training_run_id
    run = TrackedRun(tracking_uri, experiment, run_name=run_name or f"eval {checkpoint_manifest.get('checkpoint')}",
                     artifact_dir=artifact_dir, tags=tags)
    try:
        run.log_params({"checkpoint": checkpoint_manifest.get("checkpoint"), "split": offline.get("split"),
                        "episode_ids": ",".join(offline.get("episode_ids", [])),
                        "closed_loop_trials": closed_loop["trials"] if closed_loop else 0})
        run.log_metrics(eval_summary_metrics(offline, closed_loop))
        run.log_artifacts(report_dir, "eval_report")
        run.finish("FINISHED")
    except BaseException:
        run.finish("FAILED")
        raise
    return run.run_id
