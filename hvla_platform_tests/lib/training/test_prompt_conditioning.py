"""The reference policy reads its task instruction: trained on a tiny real cache where only the
instruction tells "left hand" from "right hand", swapping the prompt swaps the motion; the same
network without the prompt cannot tell them apart. Plus the tokenizer and old checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.training import Policy, TrainConfig, train_policy
from hvla_platform.lib.training.data import load_split
from hvla_platform.lib.training.tokenizer import MIN_MAX_LEN, PAD_ID, UNK_ID, PromptVocab, prompt_words
from hvla_platform_tests.fixtures.norm_stats import norm_stats_doc
from hvla_platform_tests.lib.training import tiny_cache as tc

LEFT = "touch the blue sphere with the left hand"
RIGHT = "touch the blue sphere with the right hand"
GOAL = {LEFT: 0.8, RIGHT: -0.8}
CAMS = ("head", "wrist_right")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """4 train + 2 held-out episodes, alternating LEFT / RIGHT; every episode shows the same images
    (goal 0) and starts from the same arm pose, so at frame 0 only the instruction differs."""
    root = tmp_path_factory.mktemp("lang")
    tasks = [LEFT, RIGHT] * 3
    return tc.write_cache(root / "cache", [GOAL[t] for t in tasks], ["train"] * 4 + ["heldout"] * 2, frames=10,
                          tasks=tasks, image_goals=[0.0] * 6, start_spread=0.0)


@pytest.fixture(scope="module")
def norm_stats(cache) -> dict:
    return norm_stats_doc(*tc.read_split_arrays(cache, "train"))


def _train(cache, norm_stats, out: Path, *, use_prompt: bool, steps: int = 100, seed: int = 0):
    cfg = TrainConfig(exp_name=f"lang-{use_prompt}", release="tiny-v1", steps=steps, batch_size=32, seed=seed,
                      image_size=(16, 16), use_prompt=use_prompt, log_every=steps)
    return train_policy(cache, norm_stats, cfg, out_dir=out, state_names=tc.STATE_NAMES, action_names=tc.ACTION_NAMES)


@pytest.fixture(scope="module")
def results(cache, norm_stats, tmp_path_factory) -> dict:
    """use_prompt → TrainResult of 100 steps, seed 0 (the same network with and without the prompt)."""
    root = tmp_path_factory.mktemp("lang-ckpt")
    return {use: _train(cache, norm_stats, root / str(use), use_prompt=use) for use in (True, False)}


@pytest.fixture(scope="module")
def policies(results) -> dict[bool, Policy]:
    return {use: Policy.load(r.step_dir) for use, r in results.items()}


def _first_frame(ep) -> dict:
    return {"observation/state": ep.state[0], **{f"observation/images/{c}": ep.images[c][0] for c in CAMS}}


def _chunk_gt(ep, horizon: int = 10) -> np.ndarray:
    return np.stack([ep.actions[min(k, ep.length - 1)] for k in range(horizon)])


def test_swapping_the_prompt_moves_the_prediction_to_the_other_tasks_motion(policies, cache):
    held = load_split(cache, "heldout", CAMS)
    assert sorted(ep.task for ep in held) == sorted([LEFT, RIGHT])
    policy = policies[True]
    md = policy.metadata
    assert md["prompt_used"] is True and md["tasks"] == sorted([LEFT, RIGHT]) and md["default_prompt"] is None
    assert set(md["prompt_vocabulary"]) == {"touch", "the", "blue", "sphere", "with", "left", "right", "hand"}
    # frame 0 of both held-out episodes is the same input (state, images): only the prompt differs
    np.testing.assert_array_equal(held[0].state[0], held[1].state[0])
    np.testing.assert_array_equal(held[0].images["head"][0], held[1].images["head"][0])
    for ep in held:
        other = RIGHT if ep.task == LEFT else LEFT
        gt, gt_other = _chunk_gt(ep), _chunk_gt(next(e for e in held if e.task == other))
        own = policy.infer({**_first_frame(ep), "prompt": ep.task})["actions"]
        swapped = policy.infer({**_first_frame(ep), "prompt": other})["actions"]
        err_own, err_swapped = np.abs(own - gt).mean(), np.abs(swapped - gt).mean()
        hold = np.abs(ep.state[0, 3:] - gt).mean()
        assert err_own < 0.25 * hold, (ep.task, err_own, hold)  # it does the instructed motion
        # the swapped prompt gives the other task's motion, not this one's
        assert np.abs(swapped - gt_other).mean() < 0.25 * hold
        assert err_swapped > 4 * err_own, (err_own, err_swapped)
        # direction, joint by joint: moving from own to swapped goes the way the other task's targets lie
        change, want = (swapped - own).ravel(), (gt_other - gt).ravel()
        assert float(change @ want) / (np.linalg.norm(change) * np.linalg.norm(want)) > 0.9


def test_the_unconditioned_policy_cannot_tell_the_tasks_apart(policies, cache):
    held = load_split(cache, "heldout", CAMS)
    base, cond = policies[False], policies[True]
    assert base.metadata["prompt_used"] is False and base.metadata["prompt_vocabulary"] is None
    assert "not used" in base.metadata["prompt_note"]
    errs_base, errs_cond = [], []
    for ep in held:
        a = base.infer({**_first_frame(ep), "prompt": LEFT})["actions"]
        np.testing.assert_array_equal(a, base.infer({**_first_frame(ep), "prompt": RIGHT})["actions"])
        np.testing.assert_array_equal(a, base.infer(_first_frame(ep))["actions"])  # prompt not even needed
        errs_base.append(np.abs(a - _chunk_gt(ep)).mean())
        errs_cond.append(np.abs(cond.infer({**_first_frame(ep), "prompt": ep.task})["actions"] - _chunk_gt(ep)).mean())
    # one prediction for both tasks: it cannot be close to both, the conditioned policy is
    assert max(errs_base) > 5 * max(errs_cond), (errs_base, errs_cond)


def test_how_prompts_are_read(policies, cache):
    policy = policies[True]
    obs = _first_frame(load_split(cache, "heldout", CAMS)[0])
    infer = lambda p: policy.infer({**obs, "prompt": p})["actions"]  # noqa: E731
    # case, punctuation and spacing do not matter
    np.testing.assert_array_equal(infer("Touch the BLUE sphere,  with the left-hand!"), infer(LEFT))
    # a word no training task has (an unseen colour) is ignored: read as the known words only
    np.testing.assert_array_equal(infer("touch the red sphere with the left hand"),
                                  infer("touch the sphere with the left hand"))
    with pytest.raises(ValueError, match="missing key 'prompt'.*2 tasks"):
        policy.infer(obs)  # two training tasks: no default
    with pytest.raises(ValueError, match="'prompt'.*no word"):
        policy.infer({**obs, "prompt": " ... "})
    with pytest.raises(ValueError, match="'prompt' must be a str"):
        policy.infer({**obs, "prompt": ["touch"]})
    config = json.loads((policy.step_dir / "config.json").read_text())
    assert config["prompt_used"] is True and config["prompt_vocab"]["words"] == sorted(policy.metadata["prompt_vocabulary"])
    assert config["model"]["vocab_size"] == 8 + 2 and config["model"]["prompt_len"] == MIN_MAX_LEN


def test_a_checkpoint_without_a_vocabulary_still_loads_and_ignores_the_prompt(policies, cache, tmp_path):
    """A config.json as written before the prompt was an input (no prompt_vocab, no prompt dims)."""
    old = tmp_path / "100"
    shutil.copytree(policies[False].step_dir, old)
    config = json.loads((old / "config.json").read_text())
    for key in ("prompt_vocab", "default_prompt"):
        del config[key]
    for key in ("vocab_size", "prompt_len", "prompt_dim"):
        del config["model"][key]
    (old / "config.json").write_text(json.dumps(config))
    policy = Policy.load(old)
    assert policy.metadata["prompt_used"] is False and policy.metadata["default_prompt"] is None
    obs = _first_frame(load_split(cache, "heldout", CAMS)[0])
    np.testing.assert_array_equal(policy.infer({**obs, "prompt": "anything at all"})["actions"],
                                  policies[False].infer(obs)["actions"])


def test_the_same_seed_gives_the_same_training(results, cache, norm_stats, tmp_path):
    again = _train(cache, norm_stats, tmp_path / "again", use_prompt=True)  # seed 0, as the fixture's
    first = results[True]
    assert again.loss_curve == first.loss_curve and again.final_loss == first.final_loss
    assert first.loss_curve != results[False].loss_curve  # the prompt is an input: same seed, other training


def test_tokenizer():
    assert prompt_words("Touch the BLUE cube, with the left-hand!") == \
        ["touch", "the", "blue", "cube", "with", "the", "left", "hand"]
    vocab = PromptVocab.from_tasks([LEFT, RIGHT, LEFT])
    assert vocab.words == ("blue", "hand", "left", "right", "sphere", "the", "touch", "with")
    assert vocab.size == 10 and vocab.max_len == MIN_MAX_LEN
    ids, unknown = vocab.encode("touch the red sphere")
    assert ids.dtype == np.int32 and ids.shape == (MIN_MAX_LEN,)
    assert ids[:4].tolist() == [8, 7, UNK_ID, 6] and unknown == 1 and set(ids[4:].tolist()) == {PAD_ID}
    long = PromptVocab.from_tasks(["w" + str(i) for i in range(3)] + [" ".join(["hand"] * 20)])
    assert long.max_len == 20  # the longest training task sets the length when above the minimum
    assert (long.encode(" ".join(["hand"] * 30))[0] != PAD_ID).sum() == 20  # longer prompts are cut
    assert PromptVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    with pytest.raises(ValueError, match="another tokenizer"):
        PromptVocab.from_dict({**vocab.to_dict(), "unk_id": 5})
    with pytest.raises(ValueError, match="no word"):
        PromptVocab.from_tasks(["touch it", "!!"])
    with pytest.raises(ValueError, match="at least one"):
        PromptVocab.from_tasks([])
