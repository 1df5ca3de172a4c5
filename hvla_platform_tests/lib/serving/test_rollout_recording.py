"""Rollouts recorded on the robot side: the robots' MCAP contract (observations, the commands sent
after the action guard, safety events), rights from the runtime-data policy, private frames
redacted before they are written, and the outcome (fault / e-stop) with its cause.

The robot is the simulated G1 (``ReachEnv``) in the real control loop (``run_robot``); the policy
is the task's scripted expert answering in-process with action chunks, as a policy server would.
The path through ``hvla serve`` / ``hvla deploy`` is tested in ``cli/test_rollout_deploy.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.episode_h5 import decode_frame
from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS, G1_ARM_JOINTS, G1_JOINTS, REQUIRED_TOPICS
from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata
from hvla_platform.lib.formats.recording.runtime_policy import parse_runtime_policy
from hvla_platform.lib.serving.robot import RobotConfig, run_robot
from hvla_platform.lib.serving.rollout_recording import SAFETY_TOPIC, RolloutRecorder
from hvla_platform.lib.serving.safety import EmergencyStop, SafetyLog
from hvla_platform.lib.sim.env import ReachEnv, arm_joint_limits
from hvla_platform_tests.lib.formats.recording.test_runtime_policy import POLICY
from hvla_platform_tests.lib.formats.recording.test_runtime_policy import policy as policy_doc

SERVER_META = {"action_horizon": 5, "state_names": G1_JOINTS, "action_names": G1_ARM_JOINTS,
               "cameras": ["head", "wrist_right"], "checkpoint": "checkpoints/hvla_serve_test/serve/5",
               "checkpoint_key": "checkpoints/hvla_serve_test/serve/5", "server_instance": "3f9c2a1b-41327",
               "serving_use": "lab_robot"}


def record_rollouts(out: Path, doc: dict, *, episodes: int = 1, max_steps: int = 10, max_step_rad: float = 0.25,
                    fail_after: int | None = None, estop_after: int | None = None, offset_rad: float = 0.0,
                    robot_id: str = "g1-deploy-001") -> tuple[list[Path], dict, SafetyLog]:
    """Run the robot with the scripted expert as the policy and record every trial under ``out``.

    ``fail_after``: the policy raises on query N+1 (a fault); ``estop_after``: the emergency stop is
    triggered on query N+1; ``offset_rad``: the policy asks for the expert's targets plus this (a
    jump the action guard clips). Returns (recording folders, run result, the safety log)."""
    envs: list[ReachEnv] = []
    queries = [0]
    estop = EmergencyStop() if estop_after is not None else None

    def factory() -> ReachEnv:
        envs.append(ReachEnv())
        return envs[-1]

    def infer(obs: dict) -> dict:
        queries[0] += 1
        if fail_after is not None and queries[0] > fail_after:
            raise RuntimeError("inference failed: the policy server answered with an error")
        if estop is not None and queries[0] > estop_after:
            estop.trigger("operator pressed the stop button")
        return {"actions": np.repeat(envs[-1].expert_action()[None] + np.float32(offset_rad), 5, axis=0)}

    rec = RolloutRecorder(out, parse_runtime_policy(doc), robot_id=robot_id, server_url="ws://127.0.0.1:8000",
                          server_metadata=SERVER_META)
    slog = SafetyLog(None)
    result = run_robot(infer, SERVER_META, rec.wrap_env(factory), arm_joint_limits(),
                       RobotConfig(episodes=episodes, max_steps=max_steps, max_step_rad=max_step_rad),
                       estop=estop, safety_log=rec.wrap_safety_log(slog), stop_on_fault=True)
    return rec.finish(result), result, slog


def stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def messages(folder: Path, topic: str) -> list:
    return list(open_bag(folder).messages([topic]))


def test_a_rollout_is_a_robot_recording_with_the_policy_rights_and_provenance(tmp_path):
    (folder,), result, slog = record_rollouts(tmp_path / "rec", POLICY, max_steps=8, max_step_rad=0.01,
                                              offset_rad=0.2)
    assert folder.parent.name == "g1-deploy-001" and (folder / f"{folder.name}_0.mcap").is_file()
    meta = parse_recording_metadata(yaml.safe_load((folder / "metadata.yaml").read_text()))
    assert meta.source == "rollout" and meta.customer == "acme" and meta.site == "acme-plant-3"
    # rights from the runtime-data policy, not from the checkpoint's training data
    assert meta.rights.allowed_uses == ["internal_training"] and meta.rights.data_owner == "acme"
    assert meta.rights.consent_refs == ["MSA-2026-17 section 4.2"] and meta.rights.contains_customer_environment
    ro = meta.rollout
    assert (ro.checkpoint_key, ro.server_instance, ro.outcome) == (
        "checkpoints/hvla_serve_test/serve/5", "3f9c2a1b-41327", result["per_trial"][0]["stop_reason"])
    assert ro.runtime_policy.policy_id == "acme-line3-2026" and ro.incident is None
    topics = open_bag(folder).topics()
    for topic, msgtype in REQUIRED_TOPICS.items():
        assert topics[topic].msgtype == msgtype and topics[topic].message_count > 0, topic
    steps = result["per_trial"][0]["steps"]
    assert topics["/joint_states"].message_count == steps + 1  # the reset's observation and one per step
    # executed actions are the commands after the guard: 0.01 rad/step at most, so the policy's
    # targets 0.2 rad away were clipped, and each clip is a safety event
    cmds = np.asarray([np.asarray(m.msg.position) for m in messages(folder, "/arm_controller/joint_command")])
    assert cmds.shape == (steps, 14)
    state0 = np.asarray(messages(folder, "/joint_states")[0].msg.position)[[G1_JOINTS.index(j) for j in G1_ARM_JOINTS]]
    assert np.abs(np.diff(np.vstack([state0, cmds]), axis=0)).max() <= 0.01 + 1e-6
    events = [json.loads(m.msg.data) for m in messages(folder, SAFETY_TOPIC)]
    assert [e["event"] for e in events].count("limit") == result["per_trial"][0]["clipped_steps"] > 0
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == ro.outcome
    assert len([ln for ln in slog.lines if ln["event"] == "limit"]) == result["per_trial"][0]["clipped_steps"]


@pytest.mark.parametrize("rule", ["blackout", "drop"])
def test_private_frames_never_leave_the_robot(tmp_path, rule):
    doc = policy_doc(redaction={"rule": rule, "cameras": ["head"], "windows_s": [[0.0, 0.3]]})
    (folder,), _, _ = record_rollouts(tmp_path / "rec", doc, max_steps=10)
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    start = meta["rollout"]["start_ns"]
    head = [((stamp_ns(m.msg) - start) / 1e9, decode_frame(bytes(m.msg.data), "rgb"))
            for m in messages(folder, CAMERA_TOPICS["head"])]
    inside = [f for t, f in head if t < 0.3]
    outside = [f for t, f in head if t >= 0.3]
    assert outside and all(f.max() > 50 for f in outside)  # the scene, lit
    wrist = messages(folder, CAMERA_TOPICS["wrist_right"])
    assert len(wrist) == 11 and all(decode_frame(bytes(m.msg.data), "rgb").max() > 50 for m in wrist)
    # 0.0, 0.05, ... 0.25 s: six frames of the head camera are private
    assert meta["rollout"]["redaction"]["frames_redacted"] == 6
    if rule == "blackout":
        assert len(inside) == 6 and all(int(f.max()) == 0 for f in inside)
    else:
        assert inside == [] and len(head) == 11 - 6


def test_a_fault_and_an_emergency_stop_are_labelled_with_their_cause(tmp_path):
    (fault,), result, _ = record_rollouts(tmp_path / "f", POLICY, max_steps=20, fail_after=1)
    meta = yaml.safe_load((fault / "metadata.yaml").read_text())["rollout"]
    assert result["stopped_by"] == "fault" and meta["outcome"] == "fault"
    assert meta["incident"] == {"kind": "fault", "cause": meta["cause"]}
    assert "the policy server answered with an error" in meta["cause"]
    modes = [json.loads(m.msg.data).get("mode") for m in messages(fault, SAFETY_TOPIC)]
    assert "fault" in modes

    (stopped,), result, _ = record_rollouts(tmp_path / "e", POLICY, episodes=2, max_steps=20, estop_after=1)
    meta = yaml.safe_load((stopped / "metadata.yaml").read_text())["rollout"]
    assert result["stopped_by"] == "estop" and result["trials_run"] == 1  # no second rollout after the stop
    assert meta["incident"] == {"kind": "estop", "cause": "operator pressed the stop button"}
    events = [json.loads(m.msg.data)["event"] for m in messages(stopped, SAFETY_TOPIC)]
    assert "estop" in events and events[-1] == "stop"


def test_every_trial_is_its_own_rollout(tmp_path):
    folders, result, _ = record_rollouts(tmp_path / "rec", POLICY, episodes=2, max_steps=4)
    assert len(folders) == result["trials_run"] == 2 and folders[0].name != folders[1].name
    seeds = [yaml.safe_load((f / "metadata.yaml").read_text())["rollout"]["seed"] for f in folders]
    assert seeds == [t["seed"] for t in result["per_trial"]]
