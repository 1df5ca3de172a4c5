"""Offline metrics on a real tiny Robo-DM cache, the report files and the MLflow eval run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.core.compat import import_robodm
from hvla_platform.lib.evaluation import evaluate_offline, log_eval_to_mlflow, split_by_distribution, write_eval_report
from hvla_platform.lib.evaluation.report import fmt
from hvla_platform.lib.evaluation.wilson import wilson_interval
from hvla_platform.lib.training.data import action_chunks
from hvla_platform_tests.lib.training import tiny_cache as tc

H = 10


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evalcache")
    return tc.write_cache(root / "cache", [-0.9, 0.5, 0.2, -0.4], ["train", "heldout", "train", "heldout"], frames=25)


def _raw(cache: Path, name: str) -> dict:
    """Read one episode with robodm directly (independent of the code under test)."""
    return import_robodm().Trajectory(str(cache / name)).load(return_type="numpy")


@pytest.fixture(scope="module")
def heldout(cache):
    return [_raw(cache, "episode_000001.vla"), _raw(cache, "episode_000003.vla")]


def _lookup_policy(episodes, shift: float = 0.0):
    """Returns the true future chunk for the frame whose state it is given (+ ``shift`` rad)."""
    table = {}
    for ep in episodes:
        chunks, _ = action_chunks(ep["action"], H)
        for t in range(len(ep["action"])):
            table[ep["observation/state"][t].tobytes()] = chunks[t] + shift
    return lambda obs: {"actions": table[np.asarray(obs["observation/state"], np.float32).tobytes()]}


def test_perfect_policy_and_baseline(cache, heldout):
    res = evaluate_offline(_lookup_policy(heldout), cache, state_names=tc.STATE_NAMES, action_names=tc.ACTION_NAMES)
    assert res["episode_ids"] == ["ep001", "ep003"] and res["num_frames"] == 50 and res["horizon"] == H
    assert res["policy"]["first"]["mae"] == 0.0 and res["policy"]["chunk"]["rmse"] == 0.0
    assert res["policy"]["first"]["mae_per_dim"] == [0.0] * 14
    # baseline = hold current arm positions; the fixture's action is arm + GAIN * (goal - arm)
    states = np.concatenate([e["observation/state"] for e in heldout]).astype(np.float64)
    actions = np.concatenate([e["action"] for e in heldout]).astype(np.float64)
    err = states[:, 3:] - actions
    assert res["baseline"]["first"]["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-9)
    assert res["baseline"]["first"]["rmse"] == pytest.approx(np.sqrt((err ** 2).mean()), rel=1e-9)
    assert res["baseline"]["first"]["mae_per_dim"] == pytest.approx(np.abs(err).mean(0).tolist(), rel=1e-9)
    assert res["baseline"]["first"]["mae"] > 0.005
    assert res["comparison"]["first_mae_ratio"] == 0.0 and res["comparison"]["first_mae_improvement"] == 1.0
    # chunk baseline error grows with the horizon (the arm keeps moving away from where it was)
    steps = res["baseline"]["chunk"]["mae_per_step"]
    assert steps[0] == pytest.approx(res["baseline"]["first"]["mae"]) and steps[-1] > steps[0]
    # only real (non-padded) targets are scored: 25 + 24 + ... + 16 per episode
    assert res["policy"]["chunk"]["count"] == 2 * sum(range(16, 26))


def test_offset_policy_error_equals_offset(cache, heldout):
    res = evaluate_offline(_lookup_policy(heldout, shift=0.05), cache, state_names=tc.STATE_NAMES,
                           action_names=tc.ACTION_NAMES)
    assert res["policy"]["first"]["mae"] == pytest.approx(0.05, abs=1e-6)
    assert res["policy"]["chunk"]["rmse"] == pytest.approx(0.05, abs=1e-6)


def test_each_heldout_episode_is_queried_with_its_own_task(tmp_path):
    tasks = ["touch the blue cube with the left hand", "touch the green sphere with the right hand", "wave"]
    cache = tc.write_cache(tmp_path / "cache", [0.1, 0.2, 0.3], ["heldout", "train", "heldout"], frames=4,
                           tasks=tasks)
    episodes = [_raw(cache, "episode_000000.vla"), _raw(cache, "episode_000002.vla")]
    table = _lookup_policy(episodes)
    seen: list[tuple[bytes, str]] = []

    def policy(obs):
        seen.append((np.asarray(obs["observation/state"], np.float32).tobytes(), obs["prompt"]))
        return table(obs)

    res = evaluate_offline(policy, cache, state_names=tc.STATE_NAMES, action_names=tc.ACTION_NAMES,
                           prompt_used=True)
    want = [(ep["observation/state"][t].tobytes(), task) for ep, task in zip(episodes, (tasks[0], tasks[2]))
            for t in range(4)]
    assert seen == want
    assert [e["task"] for e in res["per_episode"]] == [tasks[0], tasks[2]]
    assert res["prompt"] == {"source": "each episode's own task instruction (the cache manifest's task)",
                             "used_by_policy": True, "tasks": [tasks[0], tasks[2]]}


def test_offline_errors(cache, heldout):
    with pytest.raises(ValueError, match="not among"):
        evaluate_offline(_lookup_policy(heldout), cache, state_names=tc.STATE_NAMES,
                         action_names=["x_joint"] + tc.ACTION_NAMES[1:])
    with pytest.raises(ValueError, match="state_names"):
        evaluate_offline(_lookup_policy(heldout), cache, state_names=tc.STATE_NAMES[:5], action_names=tc.ACTION_NAMES)
    with pytest.raises(ValueError, match="shape"):
        evaluate_offline(lambda o: {"actions": np.zeros((H, 3))}, cache, state_names=tc.STATE_NAMES,
                         action_names=tc.ACTION_NAMES)


TRAINED = "touch the blue cube with the left hand"
OTHER = "touch the red sphere with the right hand"


def _closed_loop_result(training_tasks=(TRAINED,)):
    """A runner result (run_closed_loop's form): trials 0 and 2 on the training task succeed, trial 1
    on another task fails; split by distribution as the evaluation does."""
    per = [{"trial": i, "seed": 5 + i, "success": i != 1, "steps": [12, 40, 17][i], "sim_time_s": 0.05 * [12, 40, 17][i],
            "wall_s": 0.1, "queries": 3, "infer_ms_mean": 1.5, "task": [TRAINED, OTHER, TRAINED][i]} for i in range(3)]
    raw = {"trials": 3, "successes": 2, "success_rate": 2 / 3, "mean_steps_success": 14.5, "per_trial": per,
           "timing": {"infer_ms_mean": 1.5, "infer_ms_p50": 1.4, "infer_ms_p95": 2.5, "infer_ms_max": 3.0,
                      "env_step_ms_mean": 0.1, "wall_s": 0.3},
           "config": {"seed": 5, "max_steps": 40, "replan_every": 5, "cameras": ["head"], "state_names": [],
                      "action_names": []}}
    return split_by_distribution(raw, training_tasks=list(training_tasks), release_tasks=[TRAINED, OTHER],
                                 release="tiny-v1")


def test_report_and_mlflow(cache, heldout, tmp_path):
    offline = evaluate_offline(_lookup_policy(heldout, shift=0.001), cache, state_names=tc.STATE_NAMES,
                               action_names=tc.ACTION_NAMES)
    closed = _closed_loop_result()
    manifest = {"checkpoint": "checkpoints/hvla_g1_reach_small/unit/100", "base_model": "none (trained from scratch)",
                "training_data": [{"repo_id": "hvla/tiny", "release": "tiny-v1", "split": "train", "num_episodes": 2}],
                "norm_stats": "norm-stats/tiny-v1/norm_stats.json", "serving_allowed": ["lab_robot"],
                "serving_blocked": ["public_api", "staging_demo", "third_party_resale"]}
    loss = list(np.geomspace(1.0, 0.01, 100))
    html_path = write_eval_report(tmp_path / "report", offline=offline, closed_loop=closed,
                                  checkpoint_manifest=manifest, loss_curve=loss, training={"num_train_frames": 50})
    assert html_path == tmp_path / "report" / "report.html"
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["checkpoint"] == manifest["checkpoint"]
    assert metrics["offline"]["policy"]["first"]["mae"] == pytest.approx(0.001, abs=1e-6)
    cl = metrics["closed_loop"]
    assert "success_rate" not in cl and "successes" not in cl  # never one pooled rate
    assert (cl["in_distribution"]["trials"], cl["in_distribution"]["successes"]) == (2, 2)
    assert (cl["out_of_distribution"]["trials"], cl["out_of_distribution"]["successes"]) == (1, 0)
    assert cl["out_of_distribution"]["ci95"] == list(wilson_interval(0, 1))
    assert cl["per_task"] == [
        {"task": TRAINED, "distribution": "in_distribution", "in_training_tasks": True, "trials": 2, "successes": 2,
         "success_rate": 1.0, "ci95": list(wilson_interval(2, 2)), "interval": cl["in_distribution"]["interval"],
         "seeds": [5, 7]},
        {"task": OTHER, "distribution": "out_of_distribution", "in_training_tasks": False, "trials": 1,
         "successes": 0, "success_rate": 0.0, "ci95": list(wilson_interval(0, 1)),
         "interval": cl["in_distribution"]["interval"], "seeds": [6]}]
    assert metrics["training"]["steps"] == 100 and metrics["training"]["final_minibatch_loss"] == pytest.approx(0.01)

    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 4  # loss, per-joint, chunk, closed loop
    for number in (fmt(offline["policy"]["first"]["mae"]), fmt(offline["baseline"]["first"]["mae"]),
                   fmt(offline["baseline"]["chunk"]["rmse"]), fmt(offline["comparison"]["first_mae_ratio"], 3)):
        assert number in page, number
    lo, hi = wilson_interval(2, 2)
    assert f"2/2 trials succeeded (rate 1.00, 95% Wilson interval {lo:.2f}–{hi:.2f})" in page
    lo, hi = wilson_interval(0, 1)
    assert f"0/1 trials succeeded (rate 0.00, 95% Wilson interval {lo:.2f}–{hi:.2f})" in page
    assert "2/3" not in page and fmt(2 / 3, 2) not in page  # the pooled rate is not shown
    assert "public_api" in page and "right_elbow_joint" in page
    assert "What the numbers mean" in page and "Limits" in page and "<b>better than</b>" in page
    assert "<script" not in page and "http" not in page.replace("http-equiv", "")  # self-contained
    # success per task instruction, each marked in / out of the training tasks
    lo2, hi2 = wilson_interval(2, 2)
    lo0, hi0 = wilson_interval(0, 1)
    assert (f"<tr><td>{TRAINED}</td><td>yes</td><td>2</td><td>2</td><td>1.00</td><td>{lo2:.2f}–{hi2:.2f}</td>"
            "<td>5, 7</td></tr>") in page
    assert (f"<tr><td>{OTHER}</td><td>no</td><td>1</td><td>0</td><td>0.00</td><td>{lo0:.2f}–{hi0:.2f}</td>"
            "<td>6</td></tr>") in page
    assert f"&lsquo;{TRAINED}&rsquo; (trained on): 2/2" in page and f"&lsquo;{OTHER}&rsquo; (not trained on): 0/1" in page
    # a policy of unknown prompt use: the page says so rather than claiming either
    assert "Whether this policy reads the task prompt is not recorded." in page
    assert "The task prompt is not used" not in page

    uri = f"sqlite:///{tmp_path.absolute()}/mlflow.db"
    run_id = log_eval_to_mlflow(tmp_path / "report", tracking_uri=uri, offline=offline, closed_loop=closed,
                                checkpoint_manifest=manifest, training_run_id="abc123",
                                artifact_dir=tmp_path / "mlartifacts")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["offline/policy_first_mae"] == pytest.approx(0.001, abs=1e-6)
    assert "closed_loop/success_rate" not in run.data.metrics
    assert run.data.metrics["closed_loop/in_distribution_success_rate"] == 1.0
    assert run.data.metrics["closed_loop/out_of_distribution_success_rate"] == 0.0
    assert run.data.metrics["closed_loop/out_of_distribution_ci95_upper"] == pytest.approx(wilson_interval(0, 1)[1])
    assert run.data.metrics["closed_loop/out_of_distribution_trials"] == 1
    assert run.data.tags["hvla.training_run_id"] == "abc123"
    assert {a.path for a in client.list_artifacts(run_id, "eval_report")} == {
        "eval_report/metrics.json", "eval_report/report.html"}


def test_report_without_closed_loop(cache, heldout, tmp_path):
    offline = evaluate_offline(_lookup_policy(heldout), cache, state_names=tc.STATE_NAMES, action_names=tc.ACTION_NAMES)
    path = write_eval_report(tmp_path, offline=offline, closed_loop=None, checkpoint_manifest={"checkpoint": "c"},
                             loss_curve=[])
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # strict JSON (no NaN/Infinity)
    assert metrics["closed_loop"] is None
    page = path.read_text()
    assert "Not run" in page and "<b>better than</b>" in page
    assert "Whether this policy reads the task prompt is not recorded." in page
    for used, sentence in ((True, "The policy reads the task instruction (the prompt)"),
                           (False, "This checkpoint does not read the task prompt")):
        off = {**offline, "prompt": {**offline["prompt"], "used_by_policy": used}}
        page = write_eval_report(tmp_path / str(used), offline=off, closed_loop=None,
                                 checkpoint_manifest={"checkpoint": "c"}, loss_curve=[]).read_text()
        assert sentence in page and "not recorded" not in page
    worse = evaluate_offline(_lookup_policy(heldout, shift=0.5), cache, state_names=tc.STATE_NAMES,
                             action_names=tc.ACTION_NAMES)
    page = write_eval_report(tmp_path / "worse", offline=worse, closed_loop=None,
                             checkpoint_manifest={"checkpoint": "c"}, loss_curve=[0.5]).read_text()
    assert "<b>worse than</b>" in page


def test_report_says_when_a_group_was_not_measured(cache, heldout, tmp_path):
    offline = evaluate_offline(_lookup_policy(heldout), cache, state_names=tc.STATE_NAMES, action_names=tc.ACTION_NAMES)
    closed = _closed_loop_result(training_tasks=(TRAINED, OTHER))  # every trial was on a training task
    page = write_eval_report(tmp_path, offline=offline, closed_loop=closed, checkpoint_manifest={"checkpoint": "c"},
                             loss_curve=[0.5]).read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())["closed_loop"]
    assert metrics["out_of_distribution"] == {**metrics["out_of_distribution"], "trials": 0, "successes": 0,
                                              "success_rate": None, "ci95": None, "note": "no trials: not measured"}
    assert "Out of distribution</b> (other objects or the other hand, absent from its training data): no trials: " \
           "not measured." in page
    # a result split by distribution but without per-task rows (e.g. an older one) gets them from its trials
    no_rows = {k: v for k, v in closed.items() if k != "per_task"}
    write_eval_report(tmp_path / "rows", offline=offline, closed_loop=no_rows, checkpoint_manifest={"checkpoint": "c"},
                      loss_curve=[])
    assert json.loads((tmp_path / "rows" / "metrics.json").read_text())["closed_loop"]["per_task"] == \
        metrics["per_task"] and [e["in_training_tasks"] for e in metrics["per_task"]] == [True, True]
    # a raw runner result (pooled success only) is refused rather than shown as if it meant either
    raw = {k: v for k, v in closed.items() if k not in ("in_distribution", "out_of_distribution")}
    with pytest.raises(ValueError, match="split_by_distribution"):
        write_eval_report(tmp_path / "raw", offline=offline, closed_loop=raw, checkpoint_manifest={"checkpoint": "c"},
                          loss_curve=[])
