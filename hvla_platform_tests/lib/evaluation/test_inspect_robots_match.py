"""The eval report's closed loop through inspect-robots gives the numbers of the deployment path it
replaced (``hvla deploy``'s robot client against the policy server: ``closed_loop_via_server``):
the same checkpoint over the same seeds succeeds and stops at the same step, after the same
commands, bit for bit. The EvalLog it attaches is read by inspect-robots' own ``inspect`` command
and rendered by its ``view``; a user's ``inspect-robots run`` against a policy server works too."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from inspect_robots import read_eval_log

from hvla_platform.lib.evaluation.closed_loop import evaluate_closed_loop, run_inspect_trials
from hvla_platform.lib.evaluation.distribution import IN
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS
from hvla_platform.lib.serving.checkpoint import server_metadata
from hvla_platform.lib.serving.loopback import closed_loop_via_server
from hvla_platform.lib.serving.robot import RobotConfig
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits
from hvla_platform.lib.sim.task import sample_task
from hvla_platform_tests.lib.serving.test_control_loop import STATE_NAMES, ArmReachEnv, oracle_policy

KEY = "checkpoints/hvla_serve_test/serve/5"
CLI = Path(sys.executable).parent / "inspect-robots"
COMPARED = ("seed", "task", "success", "steps", "stop_reason", "clipped_steps", "queries", "sim_time_s")


def sim_task(seed: int) -> str:
    return sample_task(np.random.default_rng(seed)).instruction


def recording(base: type) -> tuple[type, dict[int, list[np.ndarray]]]:
    """A subclass of ``base`` that keeps the arm commands of each reset seed (last reset wins)."""
    sent: dict[int, list[np.ndarray]] = {}

    class Recording(base):
        def reset(self, seed):
            self._sent = sent[int(seed)] = []
            return super().reset(seed)

        def step(self, arm_targets):
            self._sent.append(np.array(arm_targets, copy=True))
            return super().step(arm_targets)

    return Recording, sent


def compared(result: dict) -> list[dict]:
    """The per-trial fields both paths report, trial by trial."""
    return [{k: t[k] for k in COMPARED} for t in result["per_trial"]]


def assert_same_commands(old: dict, new: dict, seeds) -> None:
    for seed in seeds:
        assert len(old[seed]) == len(new[seed]), seed
        for a, b in zip(old[seed], new[seed]):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def both_paths(policy, tmp_path_factory):
    """The fixture checkpoint over the same 3 seeds (2 in, 1 out of distribution), 15 steps each:
    ``(inspect-robots result, deployment-path result, report folder, commands old, commands new)``."""
    root = tmp_path_factory.mktemp("match")
    cfg = RobotConfig(seed=1000, max_steps=15, replan_every=5, max_step_rad=0.25)
    training = [sim_task(1000)]
    env_new, sent_new = recording(ReachEnv)
    new = evaluate_closed_loop(policy, checkpoint_key=KEY, env_factory=env_new, arm_limits=arm_joint_limits(),
                               cfg=cfg, trials=3, training_tasks=training, release_tasks=training,
                               release="tiny-v1", log_dir=root / "report" / "logs")
    seeds = [t["seed"] for t in new["per_trial"]]
    env_old, sent_old = recording(ReachEnv)
    old = closed_loop_via_server(policy, checkpoint_key=KEY, env_factory=env_old,
                                 arm_limits=arm_joint_limits(),
                                 cfg=replace(cfg, episodes=len(seeds), seeds=tuple(seeds)), log_dir=root / "old")
    return new, old, root / "report", sent_old, sent_new


def test_the_checkpoint_gives_the_same_trials_through_both_paths(both_paths):
    new, old, _, sent_old, sent_new = both_paths
    seeds = [t["seed"] for t in new["per_trial"]]
    assert len(seeds) == 3 and new["seed_plan"]["planned"] == {"in_distribution": 2, "out_of_distribution": 1}
    assert compared(new) == compared(old)
    assert_same_commands(sent_old, sent_new, seeds)
    assert all(len(sent_new[s]) == t["steps"] for s, t in zip(seeds, new["per_trial"]))
    assert new["served_via"]["requests"] == old["served_via"]["requests"]
    assert new["config"]["action_names"] == old["config"]["action_names"]


def test_the_report_attaches_the_evallog_and_its_html_view(both_paths):
    new, _, report, _, _ = both_paths
    ins = new["inspect"]
    log_path, html_path = report / ins["eval_log"], report / ins["html"]
    assert ins["eval_log"].startswith("logs/inspect/") and ins["html"] == ins["eval_log"][:-5] + ".html"
    log = read_eval_log(str(log_path))
    assert (log.status, log.eval.task, log.eval.policy, log.eval.embodiment) == (
        "success", "hvla_reach_touch", "hvla_openpi", "hvla_g1_reach")
    assert log.eval.policy_checkpoint == KEY and log.eval.max_steps == 15
    for scene, trial in zip(log.samples, new["per_trial"]):
        assert scene.scene_id == f"seed-{trial['seed']}" and scene.instruction == trial["task"]
        assert scene.epochs[0]["hvla_success"] == float(trial["success"])
        assert scene.epochs[0]["hvla_steps"] == trial["steps"]
        assert scene.epochs[0]["hvla_in_distribution"] == float(trial["distribution"] == IN)
        assert scene.trial_metadata[0]["queries"] == trial["queries"]
    page = html_path.read_text(encoding="utf-8")
    assert "hvla_reach_touch" in page and all(f"seed-{t['seed']}" in page for t in new["per_trial"])
    # the deployment path's logs are still there: inference log and robot safety log
    lines = [json.loads(ln) for ln in (report / "logs" / "robot_safety.jsonl").read_text().splitlines()]
    assert [ln["mode"] for ln in lines if ln["event"] == "mode"] == [
        "connecting", "ready", "running", "running", "running", "stopped"]
    stops = [ln["reason"] for ln in lines if ln["event"] == "stop"]
    assert stops == [t["stop_reason"] for t in new["per_trial"]]
    assert any((report / "logs" / "serving").glob("inference-*.jsonl"))
    assert str(report) not in log_path.read_text() and str(report) not in page


def test_inspect_robots_own_inspect_command_reads_the_attached_log(both_paths):
    new, _, report, _, _ = both_paths
    proc = subprocess.run([str(CLI), "inspect", str(report / new["inspect"]["eval_log"])],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "task:        hvla_reach_touch" in proc.stdout and "trials: 3" in proc.stdout
    for t in new["per_trial"]:
        assert f"seed-{t['seed']}:" in proc.stdout and t["task"] in proc.stdout


def test_successes_and_clipped_commands_match_too():
    """An oracle served over the same protocol (its chunks in another joint order) solves ArmReachEnv
    at different steps or runs out of steps, with the guard clipping its jumps: both paths agree
    trial by trial."""
    horizon, order = 10, list(reversed(G1_ARM_JOINTS))

    class Oracle:
        metadata = {"checkpoint": "oracle", "action_horizon": horizon, "action_dim": 14, "state_dim": 17,
                    "state_names": STATE_NAMES, "action_names": order, "cameras": ["head", "wrist_right"],
                    "image_shapes": {"head": [96, 128, 3], "wrist_right": [96, 128, 3]}}

        def infer(self, obs):
            return oracle_policy(obs, horizon=horizon, action_order=order)

    limits = (np.full(14, -1.5), np.full(14, 1.5))
    cfg = RobotConfig(seed=0, max_steps=21, replan_every=4, max_step_rad=0.05)
    seeds = [0, 3, 4]  # the oracle needs 21, 19 and 22 steps at 0.05 rad per step
    env_old, sent_old = recording(ArmReachEnv)
    env_new, sent_new = recording(ArmReachEnv)
    with tempfile.TemporaryDirectory() as tmp:
        old = closed_loop_via_server(Oracle(), checkpoint_key=None, env_factory=env_old, arm_limits=limits,
                                     cfg=replace(cfg, episodes=3, seeds=tuple(seeds)),
                                     log_dir=Path(tmp) / "old")
        new = run_inspect_trials(Oracle(), checkpoint_key=None, env_factory=env_new, arm_limits=limits,
                                 cfg=cfg, seeds=seeds, tasks={s: "reach the goal posture" for s in seeds},
                                 groups={s: IN for s in seeds}, training_tasks=["reach the goal posture"],
                                 log_dir=Path(tmp) / "new" / "logs")
    assert compared(new) == compared(old)
    assert [(t["stop_reason"], t["steps"]) for t in new["per_trial"]] == [("success", 21), ("success", 19),
                                                                          ("timeout", 21)]
    assert all(t["clipped_steps"] > 0 for t in new["per_trial"])
    assert_same_commands(sent_old, sent_new, seeds)


def actions_of(log_dir: Path, scene_id: str) -> list[list[float]]:
    """The executed actions inspect-robots stored for one trial (its ``actions/<run>/`` side-car)."""
    (path,) = list(log_dir.glob(f"actions/*/{scene_id}-e0.jsonl"))
    return [json.loads(ln)["action"] for ln in path.read_text().splitlines()[1:]]


def test_a_user_runs_inspect_robots_against_a_policy_server(policy, both_paths, tmp_path):
    """The command line of docs/training.md, against the fixture checkpoint served as `hvla serve`
    does, reproduces the eval report's trial of the same seed action for action."""
    new, _, report, _, _ = both_paths
    first = new["per_trial"][0]
    meta = server_metadata(dict(policy.metadata), use="lab_robot", checkpoint_key=KEY)
    with PolicyServer(policy, port=0, metadata=meta) as server:
        proc = subprocess.run(
            [str(CLI), "run", "--task", "hvla_reach_touch", "-T", f"seeds={first['seed']}",
             "-T", "max_steps=15",
             "--policy", "hvla_openpi", "-P", f"url=ws://127.0.0.1:{server.port}",
             "--embodiment", "hvla_g1_reach", "-E", f"safety_log={tmp_path / 'safety.jsonl'}",
             "--no-prompt", "--disable-guardrails", "--log-dir", str(tmp_path / "logs")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    logs = list((tmp_path / "logs").glob("hvla-reach-touch_*.json"))
    assert len(logs) == 1
    log = read_eval_log(str(logs[0]))
    scene = f"seed-{first['seed']}"
    assert log.status == "success" and [s.scene_id for s in log.samples] == [scene]
    assert log.samples[0].instruction == first["task"]
    assert log.samples[0].epochs[0]["hvla_steps"] == first["steps"]
    assert log.samples[0].epochs[0]["hvla_success"] == float(first["success"])
    assert actions_of(tmp_path / "logs", scene) == actions_of(report / "logs" / "inspect", scene)
    stops = [json.loads(ln) for ln in (tmp_path / "safety.jsonl").read_text().splitlines()]
    assert [(ln["reason"], ln["steps"]) for ln in stops if ln["event"] == "stop"] == [
        (first["stop_reason"], first["steps"])]


def test_the_command_line_refuses_a_server_without_an_observation_spec_in_one_line(policy, tmp_path):
    meta = server_metadata(dict(policy.metadata), use="lab_robot", checkpoint_key=KEY)
    del meta["observation_spec"]
    with PolicyServer(policy, port=0, metadata=meta) as server:
        proc = subprocess.run(
            [str(CLI), "run", "--task", "hvla_reach_touch", "-T", "seeds=1000", "--policy", "hvla_openpi",
             "-P", f"url=ws://127.0.0.1:{server.port}", "--embodiment", "hvla_g1_reach", "--no-prompt",
             "--log-dir", str(tmp_path / "logs")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"policy server ws://127.0.0.1:{server.port}: metadata lacks ['observation_spec']" in err
