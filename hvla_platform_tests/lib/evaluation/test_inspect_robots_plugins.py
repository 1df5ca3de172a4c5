"""The inspect-robots plugins themselves: found by name through inspect-robots' registry (our entry
points), the policy client built from a real server's metadata (and refusing metadata it cannot
use), the task's seeds and groups, and the embodiment's action guard on the real simulator."""

from __future__ import annotations

import json

import numpy as np
import pytest
from inspect_robots import Action, Scene, registered, resolve

from hvla_platform.lib.evaluation.inspect_robots import names
from hvla_platform.lib.evaluation.inspect_robots.embodiment import G1ReachEmbodiment, g1_reach_embodiment
from hvla_platform.lib.evaluation.inspect_robots.policy import openpi_server_policy
from hvla_platform.lib.evaluation.inspect_robots.scorers import (
    in_distribution_scorer, steps_scorer, success_scorer)
from hvla_platform.lib.evaluation.inspect_robots.server_spec import ServerMetadataError
from hvla_platform.lib.evaluation.inspect_robots.task import reach_touch_from_args
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS
from hvla_platform.lib.serving.checkpoint import server_metadata
from hvla_platform.lib.serving.safety import SafetyLog
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform.lib.sim.env import ReachEnv
from hvla_platform.lib.sim.task import sample_task

ARM_IDX = [G1_JOINTS.index(n) for n in G1_ARM_JOINTS]


def sim_task(seed: int) -> str:
    return sample_task(np.random.default_rng(seed)).instruction


class RecordingEnv(ReachEnv):
    """ReachEnv without cameras that keeps every arm command it executed."""

    def __init__(self):
        super().__init__(render=False)
        self.commands: list[np.ndarray] = []

    def step(self, arm_targets):
        self.commands.append(np.array(arm_targets, copy=True))
        return super().step(arm_targets)


def test_every_plugin_is_found_by_name_through_the_registry():
    expected = {
        ("embodiment", names.EMBODIMENT): g1_reach_embodiment,
        ("policy", names.POLICY): openpi_server_policy,
        ("task", names.TASK): reach_touch_from_args,
        ("scorer", names.SUCCESS): success_scorer,
        ("scorer", names.STEPS): steps_scorer,
        ("scorer", names.IN_DISTRIBUTION): in_distribution_scorer,
    }
    for (kind, name), factory in expected.items():
        # the entry point resolved to our factory: no builtin of the same name shadows it
        assert registered(kind)[name] is factory, (kind, name)
    assert {"openpi", "cubepick"}.isdisjoint({n for _, n in expected})
    assert resolve("scorer", names.SUCCESS).name == names.SUCCESS


def test_the_task_plans_seeds_in_and_out_of_the_training_tasks():
    training = [sim_task(1000)]
    task = resolve("task", names.TASK, trials=3, first_seed=1000, training_tasks=training[0], max_steps=7)
    assert task.name == names.TASK and task.max_steps == 7
    assert [s.name for s in task.scorers] == [names.SUCCESS, names.STEPS, names.IN_DISTRIBUTION]
    groups = [s.metadata["distribution"] for s in task.scenes]
    assert sorted(groups) == ["in_distribution", "in_distribution", "out_of_distribution"]
    for scene in task.scenes:
        assert scene.id == f"seed-{scene.init_seed}" and scene.instruction == sim_task(scene.init_seed)
        assert (scene.instruction in training) == (scene.metadata["distribution"] == "in_distribution")
    explicit = reach_touch_from_args(seeds="1003,1001", max_steps=4)
    assert [s.init_seed for s in explicit.scenes] == [1003, 1001]
    # without training tasks the trials are not classified
    assert [s.name for s in explicit.scorers] == [names.SUCCESS, names.STEPS]
    with pytest.raises(ValueError, match="not both"):
        reach_touch_from_args(training_tasks="a", checkpoint="b")


def test_the_task_reads_the_training_tasks_of_a_checkpoint(step_dir):
    task = reach_touch_from_args(checkpoint=str(step_dir), trials=2, max_steps=3)
    trained = json.loads((step_dir / "config.json").read_text())["tasks"]
    assert task.metadata["training_tasks"] == sorted(trained)
    out = [s for s in task.scenes if s.metadata["distribution"] == "out_of_distribution"]
    assert out and all(s.instruction not in trained for s in out)


def test_the_policy_client_takes_keys_and_shapes_from_the_server(policy):
    meta = server_metadata(dict(policy.metadata), use="lab_robot",
                           checkpoint_key="checkpoints/hvla_serve_test/serve/5")
    with PolicyServer(policy, port=0, metadata=meta) as server:
        client = resolve("policy", names.POLICY, url=f"ws://127.0.0.1:{server.port}", replan_every=4)
        try:
            assert client.spec.state_key == "observation/state"
            assert client.spec.state_names == tuple(policy.metadata["state_names"])
            assert {c: i.shape for c, i in client.spec.images.items()} == {
                c: tuple(s) for c, s in policy.metadata["image_shapes"].items()}
            assert client.info.action_space.dim == policy.metadata["action_dim"]
            assert client.info.observation_space.state_keys == frozenset(policy.metadata["state_names"])
            assert client.config.action_horizon == policy.metadata["action_horizon"]
            assert client.config.replan_interval == 4
            assert client.info.checkpoint == "checkpoints/hvla_serve_test/serve/5"
        finally:
            client.close()
        with pytest.raises(ValueError, match="between 1 and the server's action horizon 10"):
            resolve("policy", names.POLICY, url=f"ws://127.0.0.1:{server.port}", replan_every=11)


@pytest.mark.parametrize("drop, message", [
    ("observation_spec", r"metadata lacks \['observation_spec'\]"),
    ("state names", r"state entry 'observation/state' of shape \[17\] does not name its 17 joints"),
])
def test_the_policy_client_refuses_metadata_without_what_it_needs(policy, drop, message):
    meta = server_metadata(dict(policy.metadata), use="lab_robot", checkpoint_key=None)
    if drop == "observation_spec":
        del meta["observation_spec"]
    else:
        meta["observation_spec"]["observation/state"]["names"] = None
    with PolicyServer(policy, port=0, metadata=meta) as server:
        with pytest.raises(ServerMetadataError, match=message) as err:
            resolve("policy", names.POLICY, url=f"ws://127.0.0.1:{server.port}")
    assert f"ws://127.0.0.1:{server.port}" in str(err.value) and "hvla serve" in str(err.value)


def test_the_embodiment_guard_clips_to_joint_limits_and_step_size(tmp_path):
    probe = ReachEnv(render=False)
    q0 = probe.reset(1000)["state"][ARM_IDX].astype(np.float64)
    probe.close()
    slog = SafetyLog(tmp_path / "safety.jsonl")
    emb = G1ReachEmbodiment(RecordingEnv, arm_limits=(q0 - 0.1, q0 + 0.4), max_step_rad=0.25, safety_log=slog)
    try:
        assert emb.info.name == names.EMBODIMENT
        assert emb.info.action_space.semantics.dim_labels == tuple(G1_ARM_JOINTS)
        obs = emb.reset(Scene(id="seed-1000", instruction=sim_task(1000), init_seed=1000))
        assert obs.instruction == sim_task(1000) and set(obs.state) == set(G1_JOINTS)
        target = q0.astype(np.float32).copy()
        target[0] += 1.0    # beyond the step limit: +0.25
        target[1] -= 1.0    # beyond the lower joint limit (q0 - 0.1) before the step limit
        target[2] += 0.05   # within both
        result = emb.step(Action(data=target))
        sent = emb._env.commands[-1]
        np.testing.assert_allclose(sent[:3], [q0[0] + 0.25, q0[1] - 0.1, q0[2] + 0.05], atol=1e-6)
        assert result.info["clipped"] and not result.terminated
        within = sent.copy()
        within[1] = q0[1]  # back inside the joint limits, 0.1 rad from the previous command
        calm = emb.step(Action(data=within))
        assert not calm.info["clipped"]
        np.testing.assert_array_equal(emb._env.commands[-1], within)
        with pytest.raises(ValueError, match="non-finite"):
            emb.step(Action(data=np.full(14, np.nan, np.float32)))
        with pytest.raises(ValueError, match="seed 1000 gives the task"):
            emb.reset(Scene(id="x", instruction="wave with both hands", init_seed=1000))
    finally:
        emb.close()
        slog.close()
    lines = [json.loads(ln) for ln in (tmp_path / "safety.jsonl").read_text().splitlines()]
    limit = [ln for ln in lines if ln["event"] == "limit"]
    assert len(limit) == 1 and limit[0]["joints"] == list(G1_ARM_JOINTS[:2])
    assert limit[0]["max_excess_rad"] == pytest.approx(0.9, abs=1e-5)
    assert [ln["reason"] for ln in lines if ln["event"] == "stop"] == ["interrupted"]
