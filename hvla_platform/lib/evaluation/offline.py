"""Offline evaluation: action error of a policy on held-out episodes vs a hold-position baseline.

For every frame ``t`` of every ``heldout`` episode of a Robo-DM cache, the policy is queried with
the openpi-style observation (raw state, raw images, and as ``prompt`` the episode's own task
instruction, the manifest's ``task``) and returns a chunk ``â_t..â_{t+H-1}``.
Errors are in the action's units (radians of joint targets; state/action names, dimensions and
cameras are the checkpoint's and the cache's, whatever the robot profile):

* **first action**: ``e = â_t - a_t`` — what a controller executing one action per query would see;
* **chunk**: ``e_k = â_{t+k} - a_{t+k}`` for ``k < H`` and ``t + k < T`` (targets past the episode
  end are *not* scored, unlike training, which pads them);
* ``MAE = mean |e|``, ``RMSE = sqrt(mean e²)``, per action dimension and over all dimensions.

The **baseline** predicts "hold the current joint positions": ``â_{t+k} = s_t[action joints]`` for
all ``k``, with the action joints selected from the state by name (action joints must be a subset of
the state joints). ``error_ratio = policy / baseline`` (< 1: the policy beats holding still) and
``improvement = 1 - error_ratio``; both are ``None`` when the baseline error is 0.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hvla_platform.lib.training.inference import query_chunk
from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY, action_chunks, load_split


def _select(names: Sequence[str], subset: Sequence[str], what: str) -> np.ndarray:
    missing = [n for n in subset if n not in names]
    if missing:
        raise ValueError(f"{what}: joint(s) {missing} are not among {list(names)}")
    return np.asarray([list(names).index(n) for n in subset], dtype=np.int64)


def _errors(err: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """MAE/RMSE of ``err`` (N, [H,] A) per dim and overall, over entries where ``mask`` (N, [H]) holds."""
    a = err.shape[-1]
    flat = err.reshape(-1, a)
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    if flat.shape[0] == 0:
        raise ValueError("no valid targets to score")
    return {
        "mae_per_dim": np.abs(flat).mean(0).tolist(),
        "rmse_per_dim": np.sqrt((flat ** 2).mean(0)).tolist(),
        "mae": float(np.abs(flat).mean()),
        "rmse": float(np.sqrt((flat ** 2).mean())),
        "count": int(flat.shape[0]),
    }


def _per_step_mae(err: np.ndarray, mask: np.ndarray) -> list[float | None]:
    out = []
    for k in range(err.shape[1]):
        m = mask[:, k]
        out.append(float(np.abs(err[m, k]).mean()) if m.any() else None)
    return out


def _ratio(policy: float, baseline: float) -> tuple[float | None, float | None]:
    if baseline <= 0:
        return None, None
    r = policy / baseline
    return float(r), float(1.0 - r)


def evaluate_offline(
    policy_infer: Callable[[dict], Mapping[str, Any]],
    cache_dir,
    *,
    state_names: Sequence[str],
    action_names: Sequence[str],
    cameras: Sequence[str] | None = None,
    split: str = "heldout",
    max_frames_per_episode: int | None = None,
    prompt_used: bool | None = None,
) -> dict[str, Any]:
    """Score ``policy_infer`` on the ``split`` episodes of a Robo-DM cache (formulas: module doc).

    Args:
        policy_infer: ``obs -> {"actions": (H, A)}`` (e.g. :meth:`Policy.infer`); ``obs`` has
            ``observation/state`` (D,) float32, ``observation/images/<cam>`` (h, w, 3) uint8 and
            ``prompt`` (the episode's task).
        cache_dir: Robo-DM cache directory.
        state_names: names of the D state dims, in state order.
        action_names: names of the A action dims (must all be state joints).
        cameras: cameras to put into the observation; None: every camera of the cache (sorted by
            name).
        split: manifest split to evaluate (``heldout`` normally).
        max_frames_per_episode: evaluate at most this many evenly spaced frames per episode.
        prompt_used: whether the policy reads the prompt (its metadata's ``prompt_used``), recorded
            in the result; None: not known.

    Returns:
        ``{"split", "episode_ids", "num_frames", "horizon", "action_names", "units": "rad",
        "policy": {"first": E, "chunk": E + {"mae_per_step"}}, "baseline": {...same},
        "comparison": {"first_mae_ratio", "first_mae_improvement", "first_rmse_ratio", ...,
        "chunk_mae_ratio", "chunk_mae_improvement"}, "per_episode": [{"episode_id", "task", ...}],
        "prompt": {"source", "used_by_policy", "tasks"}, "infer_ms": {...}}`` where ``E = {"mae_per_dim", "rmse_per_dim", "mae", "rmse", "count"}``.

    Raises:
        ValueError: names do not match the data's dims, action joints are not state joints, or
            the policy returns a chunk of the wrong shape or with non-finite values.
        CacheError: the cache is missing/malformed or has no ``split`` episodes.
    """
    episodes = load_split(cache_dir, split, None if cameras is None else tuple(cameras))
    cameras = list(episodes[0].images)
    d, a = episodes[0].state.shape[1], episodes[0].actions.shape[1]
    if len(state_names) != d:
        raise ValueError(f"{len(state_names)} state_names for state dim {d}")
    if len(action_names) != a:
        raise ValueError(f"{len(action_names)} action_names for action dim {a}")
    arm_idx = _select(state_names, action_names, "baseline")

    preds, gts, valids, bases, infer_ms, per_episode = [], [], [], [], [], []
    horizon: int | None = None
    for ep in episodes:
        frames = np.arange(ep.length)
        if max_frames_per_episode is not None and ep.length > max_frames_per_episode:
            frames = np.unique(np.linspace(0, ep.length - 1, max_frames_per_episode).astype(int))
        ep_pred = []
        for t in frames:
            obs = {STATE_KEY: ep.state[t], "prompt": ep.task}
            for cam in cameras:
                obs[IMAGE_PREFIX + cam] = ep.images[cam][t]
            chunk, ms = query_chunk(policy_infer, obs, a, where=f"episode {ep.episode_id} frame {t}")
            infer_ms.append(ms)
            if horizon is None:
                horizon = chunk.shape[0]
            elif chunk.shape[0] != horizon:
                raise ValueError(f"policy changed its chunk length from {horizon} to {chunk.shape[0]}")
            ep_pred.append(chunk)
        gt, valid = action_chunks(ep.actions.astype(np.float64), horizon)
        gt, valid = gt[frames], valid[frames]
        pred = np.stack(ep_pred)
        base = np.repeat(ep.state[frames][:, None, arm_idx].astype(np.float64), horizon, axis=1)
        preds.append(pred)
        gts.append(gt)
        valids.append(valid)
        bases.append(base)
        per_episode.append({
            "episode_id": ep.episode_id, "task": ep.task, "num_frames": int(len(frames)),
            "policy_first_mae": float(np.abs(pred[:, 0] - gt[:, 0]).mean()),
            "baseline_first_mae": float(np.abs(base[:, 0] - gt[:, 0]).mean()),
        })

    pred, gt, valid, base = (np.concatenate(x) for x in (preds, gts, valids, bases))
    perr, berr = pred - gt, base - gt
    policy = {"first": _errors(perr[:, 0]), "chunk": _errors(perr, valid)}
    baseline = {"first": _errors(berr[:, 0]), "chunk": _errors(berr, valid)}
    policy["chunk"]["mae_per_step"] = _per_step_mae(perr, valid)
    baseline["chunk"]["mae_per_step"] = _per_step_mae(berr, valid)
    comparison: dict[str, float | None] = {}
    for scope in ("first", "chunk"):
        for metric in ("mae", "rmse"):
            r, imp = _ratio(policy[scope][metric], baseline[scope][metric])
            comparison[f"{scope}_{metric}_ratio"] = r
            comparison[f"{scope}_{metric}_improvement"] = imp
    ms = np.asarray(infer_ms)
    return {
        "split": split,
        "episode_ids": [ep.episode_id for ep in episodes],
        "num_episodes": len(episodes),
        "num_frames": int(pred.shape[0]),
        "horizon": int(horizon or 0),
        "action_names": list(action_names),
        "units": "rad",
        "policy": policy,
        "baseline": baseline,
        "comparison": comparison,
        "per_episode": per_episode,
        "prompt": {"source": "each episode's own task instruction (the cache manifest's task)",
                   "used_by_policy": prompt_used, "tasks": sorted({ep.task for ep in episodes})},
        "infer_ms": {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
                     "p95": float(np.percentile(ms, 95)), "max": float(ms.max())},
    }


def evaluate_policy_offline(policy, cache_dir, *, split: str = "heldout",
                            max_frames_per_episode: int | None = None) -> dict[str, Any]:
    """:func:`evaluate_offline` of a loaded :class:`~hvla_platform.lib.training.policy.Policy`,
    taking state/action names, cameras and ``prompt_used`` from its metadata. Each held-out
    episode's own task is the prompt.

    Raises:
        ValueError: the checkpoint was trained without state/action names.
    """
    md = policy.metadata
    if not md.get("state_names") or not md.get("action_names"):
        raise ValueError(f"checkpoint {md.get('checkpoint')} has no state/action names; "
                         "pass them to evaluate_offline explicitly")
    return evaluate_offline(policy.infer, cache_dir, state_names=md["state_names"],
                            action_names=md["action_names"], cameras=md["cameras"], split=split,
                            max_frames_per_episode=max_frames_per_episode,
                            prompt_used=md.get("prompt_used"))
