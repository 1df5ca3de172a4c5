"""Prompts outside a checkpoint's training tasks: warned about once each, never refused; the warning
reaches the inference log of a real server serving the real test checkpoint."""

import numpy as np

from hvla_platform.lib.serving.client import PolicyClient
from hvla_platform.lib.serving.inference_log import InferenceLog, read_log
from hvla_platform.lib.serving.prompts import (
    PromptCheckedPolicy, PromptWatch, checked_infer, is_training_task, nearest_task)
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform_tests.lib.training import tiny_cache as tc

TASKS = ["touch the blue cube with the left hand", "touch the green sphere with the right hand"]


def test_known_prompts_pass_unknown_ones_are_reported_once_with_the_nearest_task():
    watch = PromptWatch(TASKS)
    assert watch.active
    assert watch.check("touch the blue cube with the left hand") is None
    assert watch.check("  Touch the BLUE cube   with the left hand") is None  # case and spacing ignored
    assert watch.check(None) is None  # no prompt: nothing to compare
    w = watch.check("touch the red cube with the left hand")
    assert w["prompt"] == "touch the red cube with the left hand"
    assert w["nearest"] == "touch the blue cube with the left hand"
    assert w["message"] == ("prompt 'touch the red cube with the left hand' is not among the checkpoint's 2 training "
                            "tasks (nearest: 'touch the blue cube with the left hand'); it is out of distribution "
                            "and its success is unmeasured")
    assert watch.check("touch the red cube with the left hand") is None  # once per distinct prompt
    assert watch.check("Touch the red cube with the left hand") is None  # same prompt after normalization
    assert watch.check("touch the green cube with the right hand")["nearest"] == TASKS[1]
    assert nearest_task("wave", TASKS) in TASKS and nearest_task("wave", []) is None  # named however far
    assert is_training_task("TOUCH the green sphere with the right hand", TASKS)
    assert not is_training_task("touch the green sphere with the left hand", TASKS)


def test_memory_is_bounded_and_a_checkpoint_without_tasks_checks_nothing():
    watch = PromptWatch(TASKS, max_remembered=3, prompt_used=False)
    warnings = [watch.check(f"prompt {i}") for i in range(6)]
    assert [w is not None for w in warnings] == [True, True, True, True, False, False]
    assert "does not read the prompt" in warnings[0]["message"]
    assert warnings[3]["prompt"] is None and "further ones are not reported" in warnings[3]["message"]
    empty = PromptWatch([])
    assert not empty.active and empty.check("anything") is None
    infer = lambda obs: {"actions": np.zeros((1, 1))}  # noqa: E731
    assert checked_infer(infer, empty, lambda w: None) is infer  # nothing to check: not even wrapped


def test_served_policy_logs_each_unknown_prompt_once(policy, tmp_path):
    assert policy.metadata["tasks"] == [tc.TASK]
    rng = np.random.default_rng(0)
    obs = {"observation/state": rng.uniform(-0.5, 0.5, 17).astype(np.float32)}
    for cam, shape in policy.metadata["image_shapes"].items():
        obs[f"observation/images/{cam}"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    log = InferenceLog(tmp_path / "log", checkpoint="checkpoints/hvla_serve_test/serve/5")
    seen = []
    checked = PromptCheckedPolicy(policy, lambda w: (seen.append(w), log.write("prompt_warning", **w)))
    assert checked.metadata is policy.metadata
    prompts = [tc.TASK, "touch the red cube with the left hand", "touch the red cube with the left hand",
               "open the drawer", tc.TASK]
    with PolicyServer(checked, port=0, inference_log=log) as server:
        with PolicyClient(f"ws://127.0.0.1:{server.port}") as client:
            replies = [client.infer({**obs, "prompt": p}) for p in prompts]
    log.close()
    assert all(np.asarray(r["actions"]).shape == (10, 14) for r in replies)  # served, never refused
    assert [w["prompt"] for w in seen] == ["touch the red cube with the left hand", "open the drawer"]
    lines = read_log(log.path)
    warned = [ln for ln in lines if ln["event"] == "prompt_warning"]
    assert [(ln["prompt"], ln["nearest"]) for ln in warned] == [
        ("touch the red cube with the left hand", tc.TASK), ("open the drawer", tc.TASK)]
    assert "does not read the prompt" not in warned[0]["message"]  # this checkpoint reads its prompt
    assert sum(ln["event"] == "request" and ln["status"] == "ok" for ln in lines) == 5
