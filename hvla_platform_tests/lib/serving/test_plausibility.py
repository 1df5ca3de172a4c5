"""Plausibility bounds of a served checkpoint (issue 15 §4): a real server serving the real test
checkpoint answers an out-of-bounds state (100 rad, 1e30) and an out-of-bounds action chunk with an
error frame naming the dim, value and bound, still answers a normal observation, and servers sharing
an inference-log file write lines that tell them apart."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from hvla_platform.cli import serving as serving_cli
from hvla_platform.cli.main import build_parser, main
from hvla_platform.lib.formats.recording.profile import ProfileError
from hvla_platform.lib.serving.client import PolicyClient, ServerError
from hvla_platform.lib.serving.inference_log import InferenceLog, connection_of, read_log
from hvla_platform.lib.serving.plausibility import (
    ABSOLUTE_FLOOR, ImplausibleAction, PlausiblePolicy, bounds_from_checkpoint)
from hvla_platform.lib.serving.server import PolicyServer, RequestError
from hvla_platform_tests.lib.training import tiny_cache as tc

CKPT = "checkpoints/hvla_serve_test/serve/5"


def obs_for(policy, state=None):
    """An observation of the shapes the checkpoint was trained on (state inside its training range)."""
    rng = np.random.default_rng(0)
    obs = {"observation/state": rng.uniform(-0.5, 0.5, 17).astype(np.float32) if state is None else state,
           "prompt": tc.TASK}
    for cam, shape in policy.metadata["image_shapes"].items():
        obs[f"observation/images/{cam}"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return obs


def requests(lines):
    return [ln for ln in lines if ln["event"] == "request"]


@pytest.fixture(scope="module")
def bounds(step_dir):
    return bounds_from_checkpoint(step_dir)


def ask(port, obs):
    """One query on a new connection: the reply, or the server's error text."""
    with PolicyClient("127.0.0.1", port) as client:
        try:
            return client.infer(obs)
        except ServerError as exc:
            return str(exc)


def test_out_of_bounds_states_get_an_error_frame_and_a_normal_one_is_answered(policy, bounds, tmp_path):
    log = InferenceLog(tmp_path / "log", checkpoint=CKPT)
    with PolicyServer(PlausiblePolicy(policy, bounds), port=0, inference_log=log) as server:
        normal = ask(server.port, obs_for(policy))
        answers = {}
        for value in (100.0, 1e30, -100.0):
            state = obs_for(policy)["observation/state"].copy()
            state[5] = value
            answers[value] = ask(server.port, obs_for(policy, state))
    log.close()
    # the normal observation: a chunk inside the action bounds
    assert normal["actions"].shape == (10, 14)
    assert np.all((normal["actions"] >= bounds.actions.lower) & (normal["actions"] <= bounds.actions.upper))
    name = tc.STATE_NAMES[5]  # left_shoulder_yaw_joint: model limits ±2.618 rad
    lo, hi = bounds.state.lower[5], bounds.state.upper[5]
    assert -3 < lo < -2.618 and 2.618 < hi < 3  # the joint limits joined in, plus the floor
    for value, text in answers.items():
        assert isinstance(text, str), f"state {value} was answered: {text}"
        assert (f"observation rejected: RequestError: 'observation/state'[5] ({name}) = {value:.6g} is outside its "
                f"plausible range [{lo:.4g}, {hi:.4g}]") in text, text
        assert "robot model unitree_g1_29dof@1" in text
    lines = requests(read_log(log.path))
    assert [ln["status"] for ln in lines] == ["ok", "error", "error", "error"]
    assert "'observation/state'[5]" in lines[1]["error"] and "= 1e+30 is outside" in lines[2]["error"]


def test_an_implausible_action_is_not_sent(policy, bounds, tmp_path):
    class Drifting:
        """The real policy, with one action of its chunk pushed to 100.3 rad."""

        metadata = policy.metadata

        def infer(self, obs):
            out = policy.infer(obs)
            actions = out["actions"].copy()
            actions[2, 3] = 100.3
            return {**out, "actions": actions}

    log = InferenceLog(tmp_path / "log", checkpoint=CKPT)
    with PolicyServer(PlausiblePolicy(Drifting(), bounds), port=0, inference_log=log) as server:
        text = ask(server.port, obs_for(policy))
    log.close()
    assert isinstance(text, str), "the implausible chunk was sent"
    assert (f"inference failed: ImplausibleAction: policy produced an implausible action: actions[2, 3] "
            f"({tc.ACTION_NAMES[3]}) = 100.3 is outside its plausible range [{bounds.actions.lower[3]:.4g}, "
            f"{bounds.actions.upper[3]:.4g}]") in text, text
    (line,) = requests(read_log(log.path))
    assert line["status"] == "error" and "implausible action: actions[2, 3]" in line["error"]
    # and directly: a chunk of the wrong width is refused too, a NaN is left to the server's own check
    with pytest.raises(ImplausibleAction, match=r"a chunk of shape \(10, 3\), the checkpoint has 14"):
        bounds.check_actions({"actions": np.zeros((10, 3), np.float32)})
    bounds.check_actions({"actions": np.full((10, 14), np.nan, np.float32)})
    with pytest.raises(RequestError, match=r"= 50 is outside its plausible range \[-2.818, 2.818\]; "
                                           r"16 more values out of range \(bounds: "):
        bounds.check_state({"observation/state": np.full(17, 50.0, np.float32)})


def test_two_servers_sharing_a_log_file_write_distinguishable_lines(policy, tmp_path):
    logs = [InferenceLog(tmp_path / "shared", checkpoint=CKPT) for _ in range(2)]
    with PolicyServer(policy, port=0, inference_log=logs[0]) as a, \
            PolicyServer(policy, port=0, inference_log=logs[1]) as b:
        for server in (a, b):
            assert not isinstance(ask(server.port, obs_for(policy)), str)
    for log in logs:
        log.close()
    assert logs[0].path == logs[1].path  # one daily file
    lines = read_log(logs[0].path)
    ids = {log.instance for log in logs}
    assert len(ids) == 2 and all(i.endswith(f"-{os.getpid()}") and len(i.split("-")[0]) == 8 for i in ids)
    assert all(ln["instance"] in ids for ln in lines)  # every line, start and stop included
    reqs = requests(lines)
    assert [r["conn"] for r in reqs] == [1, 1]  # each server numbers its connections from 1 ...
    assert {connection_of(r) for r in reqs} == {(i, 1) for i in ids}  # ... (instance, conn) tells them apart
    opens = {connection_of(ln) for ln in lines if ln["event"] == "open"}
    assert opens == {connection_of(r) for r in reqs}


def test_bounds_join_the_norm_stats_range_and_the_joint_limits(step_dir, tmp_path):
    # a LeRobot-layout checkpoint: min/max in the "lerobot" block of norm_stats.json win over q01/q99
    ck = tmp_path / "lr"
    shutil.copytree(step_dir, ck)
    doc = json.loads((ck / "norm_stats.json").read_text())
    smin, smax = np.full(17, -0.1), np.full(17, 0.1)
    smin[1], smax[1] = -1.0, 1.0  # waist_roll_joint: model limits ±0.52 rad, inside the widened range
    doc["lerobot"] = {"observation.state": {"min": smin.tolist(), "max": smax.tolist()},
                      "action": {"min": [-0.5] * 14, "max": [0.5] * 14}}
    (ck / "norm_stats.json").write_text(json.dumps(doc))
    b = bounds_from_checkpoint(ck, margin=0.5)
    assert b.stats == {"state": "min/max", "actions": "min/max"} and b.profile_source == "joint names"
    f = ABSOLUTE_FLOOR
    # waist_yaw_joint: [-0.1, 0.1] ± 0.5 × 0.2 = [-0.2, 0.2], joined with ±2.618 → ±2.618, ± f
    assert b.state.lower[0] == pytest.approx(-2.618 - f) and b.state.upper[0] == pytest.approx(2.618 + f)
    # waist_roll_joint: [-1, 1] ± 0.5 × 2 = [-2, 2], wider than its limits ±0.52 → ±2, ± f
    assert b.state.lower[1] == pytest.approx(-2 - f) and b.state.upper[1] == pytest.approx(2 + f)
    assert b.state.limited.all() and b.rule() == ("norm stats min/max ± 0.5 × range ∪ joint limits of robot model "
                                                  "unitree_g1_29dof@1, ± 0.2")
    # no joint names: the norm stats alone
    cfg = json.loads((ck / "config.json").read_text())
    (ck / "config.json").write_text(json.dumps({**cfg, "state_names": None, "action_names": None}))
    alone = bounds_from_checkpoint(ck, margin=0.5)
    assert alone.robot_profile is None and not alone.state.limited.any()
    assert alone.state.lower[0] == pytest.approx(-0.2 - f) and alone.state.names[0] == "observation/state[0]"
    # another robot's model lacks these joints; a negative margin is refused
    (ck / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ProfileError, match="not in its description file"):
        bounds_from_checkpoint(ck, robot_profile="ur5e_robotiq_2f85")
    with pytest.raises(ValueError, match="finite and >= 0"):
        bounds_from_checkpoint(ck, margin=-1)


def test_hvla_serve_flags_wrap_the_policy_and_log_the_bounds(policy, step_dir, tmp_path, capsys, monkeypatch):
    parse = build_parser().parse_args
    log = InferenceLog(tmp_path / "log", checkpoint=CKPT)
    args = parse(["serve", "--checkpoint", str(step_dir), "--plausibility-margin", "2"])
    b = serving_cli._plausibility_bounds(step_dir, args)
    served = serving_cli._plausible(policy, b, log)
    assert isinstance(served, PlausiblePolicy) and served.bounds.margin == 2.0
    off = parse(["serve", "--checkpoint", str(step_dir), "--no-plausibility-check"])
    assert serving_cli._plausible(policy, serving_cli._plausibility_bounds(step_dir, off), log) is policy
    log.close()
    out, err = capsys.readouterr()
    assert "plausibility bounds of the state (17 dims) and actions (14): norm stats q01/q99 ± 2 × range" in out
    assert "hvla serve: warning: --no-plausibility-check: states and actions are not checked" in err
    on_line, off_line = [ln for ln in read_log(log.path) if ln["event"] == "plausibility"]
    assert on_line["enabled"] and on_line["margin"] == 2.0 and on_line["robot_profile"] == "unitree_g1_29dof@1"
    assert on_line["observation/state"]["names"] == tc.STATE_NAMES and len(on_line["actions"]["upper"]) == 14
    assert off_line["enabled"] is False
    # both at once contradict each other: refused before anything is loaded
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    assert main(["serve", "--checkpoint", str(step_dir), "--no-plausibility-check",
                 "--plausibility-margin", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("hvla serve: refused: --no-plausibility-check and "
                                               "--plausibility-margin contradict each other: give one")


def test_the_robot_model_is_the_profile_whose_joints_cover_the_checkpoints():
    from hvla_platform.lib.formats.recording.profile import load_profile
    from hvla_platform.lib.serving.plausibility import covering_profile

    g1 = load_profile("unitree_g1_29dof").joint_state.joints
    assert covering_profile(g1[:17]) == "unitree_g1_29dof"  # not the G1 with hands, which has them too
    assert covering_profile(load_profile("unitree_h1_3cam").joint_state.joints[:5]) == "unitree_h1_3cam"
    assert covering_profile(["shoulder_pan_joint", "right_driver_joint"]) == "ur5e_robotiq_2f85"
    with pytest.raises(ProfileError, match="give --robot-profile"):
        covering_profile(["shoulder_pan_joint", "left_hip_pitch_joint"])

