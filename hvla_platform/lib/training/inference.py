"""One timed policy query with the chunk validation both evaluations need."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np


def query_chunk(policy_infer: Callable[[dict], Mapping[str, Any]], obs: dict, action_dim: int, *,
                dtype: type = np.float64, where: str = "") -> tuple[np.ndarray, float]:
    """Call ``policy_infer(obs)`` and return ``(actions (H, action_dim) of dtype, latency in ms)``.

    Raises:
        ValueError: the policy returned actions of another shape or non-finite values (``where``
            is added to the message).
    """
    t0 = time.perf_counter()
    out = policy_infer(obs)
    ms = (time.perf_counter() - t0) * 1000.0
    chunk = np.asarray(out["actions"], dtype=dtype)
    if chunk.ndim != 2 or chunk.shape[1] != action_dim:
        raise ValueError(f"policy returned actions of shape {chunk.shape}, expected (H, {action_dim})")
    if not np.all(np.isfinite(chunk)):
        raise ValueError(f"policy returned non-finite actions{' at ' + where if where else ''}")
    return chunk, ms
