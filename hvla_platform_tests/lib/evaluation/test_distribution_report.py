"""The eval report says what it measured: closed-loop trials in and out of the checkpoint's training
distribution, each group with n, k, rate and its 95 % Wilson interval, never one pooled rate; other
artifacts named by lake key, never by path.

A real lake (four recordings with two instructions → ingest → a release that holds out both
episodes of one instruction → norm stats → Robo-DM cache → a 5-step checkpoint) evaluated with
the real simulator through the policy server and robot client. The instruction only the held-out
episodes have is in the release's task set but not among the checkpoint's training tasks: out of
distribution.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import EvalReportManifest, require_manifest
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.evaluation.build import EvalConfig, evaluate_experiment, read_eval_metrics
from hvla_platform.lib.evaluation.closed_loop import env_task_of_seed
from hvla_platform.lib.evaluation.distribution import plan_seeds
from hvla_platform.lib.evaluation.report_closed_loop import MEANING
from hvla_platform.lib.evaluation.wilson import wilson_interval
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.serving.control_loop import run_closed_loop
from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits
from hvla_platform.lib.sim.task import sample_task
from hvla_platform.lib.training.build import train_experiment
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform_tests.fixtures.recordings import write_recording

LEFT, RIGHT = "touch the green cube with the left hand", "touch the green cube with the right hand"
TASK_OF = {"ep-0": LEFT, "ep-1": LEFT, "ep-2": RIGHT, "ep-3": RIGHT}
SPEC = "name: ood-v1\nrepo_id: hvla/ood\npartitions: all\nheldout: {episode_ids: [ep-2, ep-3]}\n"
CKPT = "checkpoints/c/exp-ood/5"
REPORT = "eval-reports/exp-ood/5"
FIRST_SEED = 1000


def sim_task(seed: int) -> str:
    """The instruction the simulator samples for ``seed`` (ReachEnv.reset's own sampler)."""
    return sample_task(np.random.default_rng(seed)).instruction


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("ood")
    lake = LocalLake(root / "lake")
    for i, (ep, task) in enumerate(TASK_OF.items()):
        write_recording(root / "recs", episode_id=ep, robot_id="g1-a", seed=i, task=task)
    for rec in find_recordings(root / "recs"):
        land_recording(lake, rec)
    ingest_partition(lake, "2026-11-10", "g1-a")
    convert_partition(lake, "2026-11-10", "g1-a")
    spec = register_release(lake, SPEC)
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    build_cache(lake, spec)
    train_experiment(lake, TrainConfig(exp_name="exp-ood", release="ood-v1", steps=5, config_name="c"),
                     tracking_uri=None)
    published = evaluate_experiment(lake, "exp-ood", EvalConfig(closed_loop_trials=4, seed=FIRST_SEED, max_steps=3,
                                                                replan_every=3),
                                    env_factory=ReachEnv, arm_limits=arm_joint_limits(), tracking_uri=None)
    assert published.prefix == REPORT
    return lake


def test_trials_are_reported_in_and_out_of_distribution_with_wilson_intervals(lake):
    release = lake.read_manifest("lerobot/hvla/ood/ood-v1")
    assert release["heldout_episode_ids"] == ["ep-2", "ep-3"]  # as the spec says
    trained = sorted({TASK_OF[e] for e in release["train_episode_ids"]})
    assert trained == [LEFT] and release["tasks"] == [LEFT, RIGHT]

    cl = read_eval_metrics(lake, REPORT)["closed_loop"]
    # no pooled success count or rate anywhere in the closed-loop result
    assert not {"success_rate", "successes", "mean_steps_success"} & set(cl)
    assert cl["distribution_basis"]["training_tasks"] == trained
    assert cl["distribution_basis"]["release_tasks"] == [LEFT, RIGHT]
    # each group got the first two seeds (from 1000 on) whose simulator task falls in it
    want = {"in_distribution": [], "out_of_distribution": []}
    seed = FIRST_SEED
    while min(len(v) for v in want.values()) < 2:
        group = "in_distribution" if sim_task(seed) in trained else "out_of_distribution"
        if len(want[group]) < 2:
            want[group].append(seed)
        seed += 1
    assert cl["trials"] == 4 and cl["seed_plan"]["probed"] == seed - FIRST_SEED
    for t in cl["per_trial"]:
        assert t["task"] == sim_task(t["seed"])
        assert t["distribution"] == ("in_distribution" if t["task"] in trained else "out_of_distribution")
    for group, seeds in want.items():
        members = [t for t in cl["per_trial"] if t["distribution"] == group]
        k = sum(t["success"] for t in members)
        assert [t["seed"] for t in members] == seeds == cl[group]["seeds"]
        assert (cl[group]["trials"], cl[group]["successes"]) == (2, k)
        assert cl[group]["success_rate"] == k / 2 and cl[group]["ci95"] == list(wilson_interval(k, 2))
    assert LEFT not in {t["task"] for t in cl["per_trial"] if t["distribution"] == "out_of_distribution"}
    # success per task instruction, each marked in / out of the training tasks
    assert [e["task"] for e in cl["per_task"]] == sorted({t["task"] for t in cl["per_trial"]},
                                                         key=lambda task: (task not in trained, task))
    for e in cl["per_task"]:
        members = [t for t in cl["per_trial"] if t["task"] == e["task"]]
        k = sum(t["success"] for t in members)
        assert (e["trials"], e["successes"], e["seeds"]) == (len(members), k, [t["seed"] for t in members])
        assert e["ci95"] == list(wilson_interval(k, len(members)))
        assert e["in_training_tasks"] == (e["task"] in trained)
        assert e["distribution"] == ("in_distribution" if e["task"] in trained else "out_of_distribution")

    m = require_manifest(lake, REPORT, EvalReportManifest)
    assert m.checkpoint == CKPT and m.release == "ood-v1"
    assert m.training_tasks == trained and m.release_tasks == [LEFT, RIGHT]
    assert m.closed_loop == {g: {k: cl[g][k] for k in ("trials", "successes", "success_rate", "ci95")}
                             for g in ("in_distribution", "out_of_distribution")}


def test_the_page_states_each_group_and_its_interval(lake):
    cl = read_eval_metrics(lake, REPORT)["closed_loop"]
    page = lake.read_bytes(f"{REPORT}/report.html").decode()
    for group, label in (("in_distribution", "in distribution"), ("out_of_distribution", "out of distribution")):
        g = cl[group]
        lo, hi = g["ci95"]
        assert (f"<td>{label}</td><td>{MEANING[group]}</td><td>2</td><td>{g['successes']}</td>"
                f"<td>{g['success_rate']:.2f}</td><td>{lo:.2f}–{hi:.2f}</td>") in page
        assert f"{g['successes']}/2 trials succeeded (rate {g['success_rate']:.2f}, 95% Wilson interval " \
               f"{lo:.2f}–{hi:.2f})" in page
    assert "never pooled into one success rate" in page and "Success rate <b>" not in page
    assert f"Training tasks: {LEFT}.<br>Release tasks: {LEFT}; {RIGHT} <i>(held-out episodes only)</i>." in page
    for e in cl["per_task"]:
        lo, hi = e["ci95"]
        assert (f"<tr><td>{e['task']}</td><td>{'yes' if e['in_training_tasks'] else 'no'}</td><td>{e['trials']}</td>"
                f"<td>{e['successes']}</td><td>{e['success_rate']:.2f}</td><td>{lo:.2f}–{hi:.2f}</td>") in page
    # the checkpoint reads its prompt, and the page says so
    assert "The policy reads the task instruction (the prompt)" in page and "prompt is not used" not in page
    assert read_eval_metrics(lake, REPORT)["offline"]["prompt"]["used_by_policy"] is True
    for t in cl["per_trial"]:
        short = "in" if t["distribution"] == "in_distribution" else "out"
        assert f"<td>{t['seed']}</td><td>{t['task']}</td><td>{short}</td>" in page


def test_the_report_names_artifacts_by_lake_key_never_by_path(lake):
    root = str(lake.root)
    files = [k for k in lake.list_keys(REPORT) if not k.endswith("_hvla_manifest.json")]
    assert {f"{REPORT}/report.html", f"{REPORT}/metrics.json", f"{REPORT}/logs/robot_safety.jsonl"} <= set(files)
    assert any(k.startswith(f"{REPORT}/logs/serving/inference-") for k in files)
    # the inspect-robots EvalLog and its HTML view, named in metrics.json and linked from the report
    assert any(k.startswith(f"{REPORT}/logs/inspect/hvla-reach-touch_") and k.endswith(".json") for k in files)
    ins = read_eval_metrics(lake, REPORT)["closed_loop"]["inspect"]
    assert {f"{REPORT}/{ins['eval_log']}", f"{REPORT}/{ins['html']}"} <= set(files)
    assert f'href="{ins["eval_log"]}"' in lake.read_bytes(f"{REPORT}/report.html").decode()
    for key in files:
        text = lake.read_bytes(key).decode()
        assert root not in text and "file://" not in text, key
    metrics = read_eval_metrics(lake, REPORT)
    assert metrics["checkpoint"] == CKPT
    manifest = lake.read_manifest(REPORT)  # the fields the evaluation writes (inputs/artifact_uri: the lake's)
    for field in ("checkpoint", "training_tasks", "release_tasks", "closed_loop"):
        assert root not in json.dumps(manifest[field]) and "file://" not in json.dumps(manifest[field]), field


def test_the_evaluation_server_logs_each_unknown_prompt_once(lake):
    cl = read_eval_metrics(lake, REPORT)["closed_loop"]
    key = next(k for k in lake.list_keys(f"{REPORT}/logs/serving") if k.endswith(".jsonl"))
    lines = [json.loads(ln) for ln in lake.read_bytes(key).decode().splitlines()]
    warned = [ln["prompt"] for ln in lines if ln["event"] == "prompt_warning"]
    ood = list(dict.fromkeys(t["task"] for t in cl["per_trial"] if t["distribution"] == "out_of_distribution"))
    assert sorted(warned) == sorted(ood) and len(warned) == len(set(warned))


def test_a_group_that_cannot_be_filled_gives_its_trials_to_the_other_and_says_why():
    every_task = sorted({sim_task(s) for s in range(FIRST_SEED, FIRST_SEED + 200)})
    assert len(every_task) == 12  # 3 colours x 2 shapes x 2 hands
    task_of_seed, close = env_task_of_seed(ReachEnv)
    try:
        plan = plan_seeds(task_of_seed, every_task, trials=3, start=FIRST_SEED, max_probes=5)
    finally:
        close()
    assert plan["seeds"] == [FIRST_SEED, FIRST_SEED + 1, FIRST_SEED + 2]
    assert plan["planned"] == {"in_distribution": 3, "out_of_distribution": 0}
    assert plan["shortfall"] == {"out_of_distribution": "only 0 of the 5 seeds scanned from 1000 gave a task outside "
                                                        "the training tasks"}


def test_explicit_seeds_must_match_the_trial_count():
    with pytest.raises(ValueError, match="2 seeds for 3 trials"):
        run_closed_loop(lambda obs: {}, ReachEnv, trials=3, seed=0, max_steps=1, replan_every=1, state_names=[],
                        seeds=[1000, 1005])
