"""Validation of one openpi-style observation, shared by every policy backend's ``infer``."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY


def check_observation(obs: Mapping[str, Any], *, state_dim: int, cameras: Sequence[str],
                      camera_shapes: Mapping[str, tuple[int, ...]],
                      prompt_hint: str = "optional 'prompt'") -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The state and camera images of ``obs``, checked against what the checkpoint was trained on.

    Args:
        obs: ``{"observation/state": (state_dim,) numeric radians, "observation/images/<cam>":
            (H, W, 3) uint8 per camera, "prompt": str (optional here)}`` (openpi's observation keys).
        state_dim: D, the state joints the checkpoint was trained on.
        cameras: the trained cameras, in the order the images are returned.
        camera_shapes: camera → (H, W, 3) as in training.
        prompt_hint: how the error for a missing key names the prompt (``'prompt'`` when required).

    Returns:
        ``(state (D,) float32, images)``: one (H, W, 3) uint8 array per camera, in ``cameras`` order.

    Raises:
        ValueError: ``obs`` is not a mapping, a key is missing, a shape or dtype is wrong, the state
            is not finite, or ``prompt`` is present but not a string.
    """
    if not isinstance(obs, Mapping):
        raise ValueError(f"observation must be a dict, got {type(obs).__name__}")
    expected = [STATE_KEY] + [IMAGE_PREFIX + c for c in cameras]
    missing = [k for k in expected if k not in obs]
    if missing:
        raise ValueError(f"observation is missing key(s) {missing}; expected {expected} (+ {prompt_hint})")
    if "prompt" in obs and not isinstance(obs["prompt"], str):
        raise ValueError(f"'prompt' must be a str, got {type(obs['prompt']).__name__}")
    state = np.asarray(obs[STATE_KEY])
    if state.shape != (state_dim,):
        raise ValueError(f"'{STATE_KEY}' must have shape ({state_dim},), got {state.shape}")
    if not (np.issubdtype(state.dtype, np.floating) or np.issubdtype(state.dtype, np.integer)):
        raise ValueError(f"'{STATE_KEY}' must be numeric, got dtype {state.dtype}")
    state = state.astype(np.float32)
    if not np.all(np.isfinite(state)):
        raise ValueError(f"'{STATE_KEY}' contains non-finite values")
    images = []
    for cam in cameras:
        key = IMAGE_PREFIX + cam
        img = np.asarray(obs[key])
        want = tuple(camera_shapes[cam])
        if img.shape != want:
            raise ValueError(f"'{key}' must have shape {want} (as in training), got {img.shape}")
        if img.dtype != np.uint8:
            raise ValueError(f"'{key}' must be uint8 (0..255), got dtype {img.dtype}")
        images.append(img)
    return state, tuple(images)
