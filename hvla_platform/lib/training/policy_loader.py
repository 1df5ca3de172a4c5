"""Load any checkpoint for inference, whichever backend trained it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.lerobot_backend import BACKENDS, LEROBOT_BACKEND


def checkpoint_backend(step_dir: str | Path) -> str:
    """The backend that trained a checkpoint: ``config.json``'s ``backend`` (absent: ``"jax"``,
    the only backend before there were several).

    Raises:
        CheckpointError: the directory is missing or incomplete.
        ValueError: ``backend`` names no known backend.
    """
    backend = ckpt.read_config(step_dir).get("backend", "jax")
    if backend not in BACKENDS:
        raise ValueError(f"{step_dir}/config.json names backend {backend!r}; known backends: {', '.join(BACKENDS)}")
    return backend


def load_policy(step_dir: str | Path, *, warmup: bool = True) -> Any:
    """The checkpoint's policy: :class:`~hvla_platform.lib.training.policy.Policy` (JAX) or
    :class:`~hvla_platform.lib.training.lerobot_policy.LeRobotPolicy`, by ``config.json``'s
    ``backend``. Both have ``.infer(obs)`` (openpi observation → ``{"actions": (H, A) float32
    radians, "policy_timing": {...}}``) and ``.metadata``.

    Raises:
        CheckpointError: the directory is missing or incomplete.
        ValueError: unknown backend, or a malformed checkpoint.
    """
    if checkpoint_backend(step_dir) == LEROBOT_BACKEND:
        # deferred: torch + LeRobot (seconds) only for LeRobot checkpoints
        from hvla_platform.lib.training.lerobot_policy import LeRobotPolicy  # noqa: PLC0415

        return LeRobotPolicy.load(step_dir, warmup=warmup)
    # deferred: the JAX policy imports jax/flax/orbax (seconds) only for JAX checkpoints
    from hvla_platform.lib.training.policy import Policy  # noqa: PLC0415

    return Policy.load(step_dir, warmup=warmup)


__all__ = ["checkpoint_backend", "load_policy"]
