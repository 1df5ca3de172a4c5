"""The closed-loop part of the eval report: in- and out-of-distribution success, never pooled.

Input is :func:`~hvla_platform.lib.evaluation.distribution.split_by_distribution`'s result (the
``closed_loop`` of ``metrics.json``). Each group is shown as ``k/n``, its rate and its 95 % Wilson
interval; a group without trials says "not measured" and why. Below the groups, success per task
instruction (``closed_loop["per_task"]``, :func:`~hvla_platform.lib.evaluation.distribution.per_task_summary`),
each task marked in or out of the training task set.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from hvla_platform.lib.evaluation.distribution import GROUPS, IN, OUT, per_task_summary

LABEL = {IN: "in distribution", OUT: "out of distribution"}
SHORT = {IN: "in", OUT: "out"}
MEANING = {IN: "tasks the checkpoint was trained on", OUT: "tasks it was not trained on (another object or hand)"}


def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{float(x):.{digits}f}"


def require_groups(closed_loop: Mapping[str, Any]) -> None:
    """Check ``closed_loop`` is split by distribution.

    Raises:
        ValueError: it lacks the ``in_distribution`` / ``out_of_distribution`` summaries (e.g. it is
            the runner's raw result, whose pooled success rate the report does not show).
    """
    missing = [g for g in GROUPS if g not in closed_loop]
    if missing:
        raise ValueError(f"closed-loop result has no {missing} summaries; pass it through "
                         "hvla_platform.lib.evaluation.distribution.split_by_distribution first")


def with_per_task(closed_loop: Mapping[str, Any]) -> dict[str, Any]:
    """``closed_loop`` with ``per_task`` (:func:`~hvla_platform.lib.evaluation.distribution.per_task_summary`
    of its ``per_trial`` records and ``distribution_basis.training_tasks``) when it has none yet;
    an existing ``per_task`` is kept as it is.

    Raises:
        ValueError: not split by distribution (:func:`require_groups`).
    """
    require_groups(closed_loop)
    out = dict(closed_loop)
    if "per_task" not in out:
        out["per_task"] = per_task_summary(out.get("per_trial") or [], out["distribution_basis"]["training_tasks"])
    return out


def task_phrase(entry: Mapping[str, Any]) -> str:
    """``"'touch the blue cube with the left hand' (trained on): 2/3 (95% Wilson 0.21–0.94)"`` (HTML)."""
    lo, hi = entry["ci95"]
    where = "trained on" if entry["in_training_tasks"] else "not trained on"
    return (f"&lsquo;{html.escape(str(entry['task']))}&rsquo; ({where}): {entry['successes']}/{entry['trials']} "
            f"(95% Wilson {_f(lo)}–{_f(hi)})")


def group_phrase(group: Mapping[str, Any]) -> str:
    """``"3/8 trials succeeded (rate 0.38, 95% Wilson interval 0.14–0.69)"``, or ``"no trials: not
    measured (…)"`` for an empty group."""
    if not group["trials"]:
        return html.escape(group.get("note") or "no trials: not measured")
    lo, hi = group["ci95"]
    return (f"{group['successes']}/{group['trials']} trials succeeded (rate {_f(group['success_rate'])}, "
            f"95% Wilson interval {_f(lo)}–{_f(hi)})")


def closed_loop_explanation(closed_loop: Mapping[str, Any] | None) -> str:
    """The "What the numbers mean" paragraph on closed loop (HTML)."""
    if not closed_loop:
        return "<p><b>Closed loop.</b> Not run for this report.</p>"
    require_groups(closed_loop)
    basis = closed_loop["distribution_basis"]
    n_tasks = len(basis["training_tasks"])
    parts = [f"<p><b>Closed loop.</b> In simulation, <b>in distribution</b> (the {n_tasks} task instruction(s) "
             f"the checkpoint was trained on): {group_phrase(closed_loop[IN])}. <b>Out of distribution</b> "
             f"(other objects or the other hand, absent from its training data): {group_phrase(closed_loop[OUT])}. "
             "The two are separate questions — does it do what it was taught, and does it generalise — so "
             "they are never pooled into one success rate. The interval is where the true rate plausibly "
             "lies given so few trials; overlapping intervals mean the difference is not established.</p>"]
    per_task = with_per_task(closed_loop)["per_task"]
    if per_task:
        parts.append("<p><b>Per task instruction</b> (the policy is queried with each trial's instruction as its "
                     "prompt): " + "; ".join(task_phrase(e) for e in per_task) + ". With one to a few trials per "
                     "task these intervals are wider still: they show where the successes are, not that two "
                     "tasks differ.</p>")
    return "\n".join(parts)


def _task_list(tasks: Sequence[str], mark: set[str] | None = None) -> str:
    if not tasks:
        return "(none recorded)"
    return "; ".join(html.escape(t) + (" <i>(held-out episodes only)</i>" if mark and t in mark else "")
                     for t in tasks)


def closed_loop_section(closed_loop: Mapping[str, Any] | None, table: Any) -> str:
    """The "Closed loop" section body (HTML); ``table(headers, rows)`` renders a table."""
    if not closed_loop:
        return "<p>Not run.</p>"
    require_groups(closed_loop)
    basis = closed_loop["distribution_basis"]
    heldout_only = set(basis["release_tasks"]) - set(basis["training_tasks"])
    groups = table(
        ["group", "what it measures", "trials", "successes", "success rate", "95% Wilson interval", "tasks run"],
        [[LABEL[g], MEANING[g], str(closed_loop[g]["trials"]), str(closed_loop[g]["successes"]),
          _f(closed_loop[g]["success_rate"]),
          (f"{_f(closed_loop[g]['ci95'][0])}–{_f(closed_loop[g]['ci95'][1])}" if closed_loop[g]["ci95"]
           else html.escape(closed_loop[g].get("note") or "not measured")),
          html.escape(", ".join(closed_loop[g]["tasks"]) or "—")] for g in GROUPS])
    per_task = with_per_task(closed_loop)["per_task"]
    tasks = table(
        ["task instruction (prompt)", "in the training tasks", "trials", "successes", "success rate",
         "95% Wilson interval", "seeds"],
        [[html.escape(str(e["task"])), "yes" if e["in_training_tasks"] else "no", str(e["trials"]),
          str(e["successes"]), _f(e["success_rate"]), f"{_f(e['ci95'][0])}–{_f(e['ci95'][1])}",
          html.escape(", ".join(str(s) for s in e["seeds"]))] for e in per_task]) if per_task else ""
    cfg, tm = closed_loop["config"], closed_loop.get("timing", {})
    served = closed_loop.get("served_via")
    ins = closed_loop.get("inspect")
    plan = closed_loop.get("seed_plan")
    text = (
        f"<p>Classified by the training tasks of release <code>{html.escape(str(basis['release']))}</code>: "
        f"{html.escape(basis['rule'])}.</p>"
        f"<p>Training tasks: {_task_list(basis['training_tasks'])}.<br>Release tasks: "
        f"{_task_list(basis['release_tasks'], heldout_only)}.</p>"
        + groups
        + ("<p>Per task instruction:</p>" + tasks if tasks else "")
        + f"<p>Max {cfg['max_steps']} steps per trial, re-planning every {cfg['replan_every']} actions"
        + (f"; seeds chosen from {plan['first_seed']} on ({plan['probed']} scanned) so that both groups are run"
           if plan else "") + ". "
        + ((f"Run with inspect-robots ({html.escape(served.get('harness', 'eval()'))}): the <code>hvla_openpi</code> "
            f"client queried the policy server over the {html.escape(served['protocol'])} protocol "
            f"({served['requests']} requests) and the <code>hvla_g1_reach</code> embodiment executed the chunks "
            "behind <code>hvla deploy</code>'s action guard; server inference log and robot safety log under "
            "<code>logs/</code>"
            + (f", inspect-robots EvalLog <a href=\"{html.escape(ins['eval_log'])}\"><code>{html.escape(ins['eval_log'])}"
               f"</code></a> (<a href=\"{html.escape(ins['html'])}\">HTML view</a>)" if ins else "")
            + ". ") if served else "")
        + f"Query round trip {_f(tm.get('infer_ms_mean'))} ms mean, {_f(tm.get('infer_ms_p95'))} ms p95.</p>"
    )
    per_trial = table(
        ["trial", "seed", "task", "distribution", "success", "stop", "steps", "sim time (s)", "queries",
         "clipped commands"],
        [[str(t["trial"]), str(t["seed"]), html.escape(str(t["task"])), SHORT[t["distribution"]],
          "yes" if t["success"] else "no", html.escape(str(t.get("stop_reason", ""))), str(t["steps"]),
          _f(t["sim_time_s"]), str(t["queries"]), str(t.get("clipped_steps", ""))] for t in closed_loop["per_trial"]])
    return text + per_trial


def closed_loop_figure(closed_loop: Mapping[str, Any]) -> Any:
    """Matplotlib figure: steps per trial (green = success), one panel per group; None without trials."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    require_groups(closed_loop)
    trials = closed_loop.get("per_trial") or []
    if not trials:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 0.5 * len(trials) + 3), 3.2), sharey=True)
    for ax, g in zip(axes, GROUPS):
        members = [t for t in trials if t["distribution"] == g]
        if members:
            ax.bar(range(len(members)), [t["steps"] for t in members],
                   color=["tab:green" if t["success"] else "tab:red" for t in members])
            ax.set_xticks(range(len(members)))
            ax.set_xticklabels([str(t["seed"]) for t in members], rotation=60, fontsize=7)
        else:
            ax.text(0.5, 0.5, "no trials: not measured", ha="center", va="center", transform=ax.transAxes)
        ax.axhline(closed_loop["config"]["max_steps"], color="grey", ls=":")
        ax.set_xlabel("trial seed")
        grp = closed_loop[g]
        ax.set_title(f"{LABEL[g]}: {grp['successes']}/{grp['trials']}", fontsize=10)
    axes[0].set_ylabel("env steps (green = success)")
    return fig


def closed_loop_metrics(closed_loop: Mapping[str, Any]) -> dict[str, Any]:
    """Flat tracking metrics: ``closed_loop/<group>_{trials,successes,success_rate,ci95_lower,ci95_upper}``
    per group (rates and bounds omitted when the group has no trials), total trials and latency."""
    require_groups(closed_loop)
    out: dict[str, Any] = {"closed_loop/trials": closed_loop["trials"],
                           "closed_loop/infer_ms_mean": closed_loop.get("timing", {}).get("infer_ms_mean")}
    for g in GROUPS:
        grp = closed_loop[g]
        out[f"closed_loop/{g}_trials"] = grp["trials"]
        out[f"closed_loop/{g}_successes"] = grp["successes"]
        out[f"closed_loop/{g}_success_rate"] = grp["success_rate"]
        if grp["ci95"]:
            out[f"closed_loop/{g}_ci95_lower"], out[f"closed_loop/{g}_ci95_upper"] = grp["ci95"]
    return out
