"""Inference wrapper around a saved checkpoint, with openpi's observation/action conventions.

``Policy.load(step_dir).infer(obs)`` takes one observation::

    {"observation/state": (D,) float32 raw joint positions (radians),
     "observation/images/<camera>": (H, W, 3) uint8 raw image, one per trained camera,
     "prompt": str (optional; accepted but not used by this model)}

and returns ``{"actions": (H_chunk, A) float32 raw joint targets (radians, in ``action_names``
order)}``, like openpi's ``Policy.infer``. Input is normalized and output unnormalized with the
checkpoint's own ``norm_stats.json``; preprocessing, the network and unnormalization run in one
jitted function.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY
from hvla_platform.lib.training.model import ChunkPolicy, ModelDims, init_params, preprocess_images
from hvla_platform.lib.training.normalize import NormStats, normalize, unnormalize


class Policy:
    """A loaded checkpoint ready for inference. Build with :meth:`load`.

    Attributes:
        metadata: JSON-serialisable description (config/experiment names, step, dims, cameras,
            image shapes, state/action names, normalization, serving allowance...). A policy
            server sends this to clients after the handshake.
        step_dir: the checkpoint directory.
    """

    def __init__(self, step_dir: Path, params: Any, dims: ModelDims, stats: NormStats, config: dict,
                 manifest: dict):
        import jax  # noqa: PLC0415
        import jax.numpy as jnp  # noqa: PLC0415

        self.step_dir = step_dir
        self._dims = dims
        self._stats = stats
        tc = config["train_config"]
        self._normalization = str(tc["normalization"])
        self._state_clip = float(tc["state_clip"])
        self._camera_shapes = {c: tuple(int(v) for v in s) for c, s in config["camera_shapes"].items()}
        self._params = params
        model = ChunkPolicy(dims)
        kind, clip, size = self._normalization, self._state_clip, dims.image_size
        idx = config.get("action_state_index")
        if dims.residual and (not idx or len(idx) != dims.action_dim):
            raise ValueError(f"{step_dir}/config.json: a residual policy needs 'action_state_index' of length "
                             f"{dims.action_dim}, got {idx!r}")
        arm_idx = np.asarray(idx, dtype=np.int32) if dims.residual else None

        def _infer(p, state, images):
            s = jnp.clip(normalize(state, stats.state, kind), -clip, clip)
            imgs = tuple(preprocess_images(im, size) for im in images)
            base = normalize(state[:, arm_idx], stats.actions, kind) if arm_idx is not None else None
            out = model.apply({"params": p}, s, imgs, base)
            return unnormalize(out, stats.actions, kind)

        self._infer_fn = jax.jit(_infer)
        self.metadata: dict[str, Any] = {
            "policy": "hvla chunk policy (flax CNN+MLP)",
            "checkpoint": manifest.get("checkpoint"),
            "checkpoint_dir": str(step_dir),
            "config_name": tc["config_name"],
            "exp_name": tc["exp_name"],
            "release": tc["release"],
            "step": int(config["step"]),
            "base_model": tc["base_model"],
            "action_horizon": dims.action_horizon,
            "action_dim": dims.action_dim,
            "state_dim": dims.state_dim,
            "cameras": list(dims.cameras),
            "image_shapes": {c: list(s) for c, s in self._camera_shapes.items()},
            "state_names": config.get("state_names"),
            "action_names": config.get("action_names"),
            "normalization": self._normalization,
            "residual_to_state": dims.residual,
            "prompt_used": bool(config.get("prompt_used", False)),
            "tasks": config.get("tasks", []),
            "serving_allowed": manifest.get("serving_allowed", []),
            "serving_blocked": manifest.get("serving_blocked", []),
        }

    @classmethod
    def load(cls, step_dir: str | Path, *, warmup: bool = True) -> "Policy":
        """Load ``step_dir`` (``checkpoints/<config>/<exp>/<step>``).

        Args:
            step_dir: checkpoint directory written by :func:`~hvla_platform.lib.training.train.train_policy`.
            warmup: run one inference on zeros so the first real call does not pay jit compilation.

        Raises:
            CheckpointError: the directory is missing or incomplete.
            ValueError: config or norm stats are malformed / inconsistent with the params.
        """
        import jax  # noqa: PLC0415

        step_dir = ckpt.check_checkpoint_dir(step_dir)
        config = ckpt.read_config(step_dir)
        manifest = ckpt.read_checkpoint_manifest(step_dir)
        try:
            dims = ModelDims.from_dict(config["model"])
            _ = config["train_config"]["normalization"], config["camera_shapes"], config["step"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{step_dir}/config.json is malformed: {exc!r}") from exc
        stats = NormStats.load(step_dir / ckpt.NORM_STATS_FILE)
        if stats.state.dim != dims.state_dim or stats.actions.dim != dims.action_dim:
            raise ValueError(f"{step_dir}: norm stats dims {stats.state.dim}/{stats.actions.dim} do not match "
                             f"the model's {dims.state_dim}/{dims.action_dim}")
        abstract = jax.eval_shape(lambda: init_params(dims, 0))
        params = ckpt.restore_params(step_dir, abstract)
        policy = cls(step_dir, params, dims, stats, config, manifest)
        if warmup:
            obs = {STATE_KEY: np.asarray(stats.state.mean, np.float32)}
            for cam, shape in policy._camera_shapes.items():
                obs[IMAGE_PREFIX + cam] = np.zeros(shape, np.uint8)
            policy.infer(obs)
        return policy

    def _check(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        if not isinstance(obs, Mapping):
            raise ValueError(f"observation must be a dict, got {type(obs).__name__}")
        expected = [STATE_KEY] + [IMAGE_PREFIX + c for c in self._dims.cameras]
        missing = [k for k in expected if k not in obs]
        if missing:
            raise ValueError(f"observation is missing key(s) {missing}; expected {expected} (+ optional 'prompt')")
        if "prompt" in obs and not isinstance(obs["prompt"], str):
            raise ValueError(f"'prompt' must be a str, got {type(obs['prompt']).__name__}")
        state = np.asarray(obs[STATE_KEY])
        if state.shape != (self._dims.state_dim,):
            raise ValueError(f"'{STATE_KEY}' must have shape ({self._dims.state_dim},), got {state.shape}")
        if not (np.issubdtype(state.dtype, np.floating) or np.issubdtype(state.dtype, np.integer)):
            raise ValueError(f"'{STATE_KEY}' must be numeric, got dtype {state.dtype}")
        state = state.astype(np.float32)
        if not np.all(np.isfinite(state)):
            raise ValueError(f"'{STATE_KEY}' contains non-finite values")
        images = []
        for cam in self._dims.cameras:
            key = IMAGE_PREFIX + cam
            img = np.asarray(obs[key])
            want = self._camera_shapes[cam]
            if img.shape != want:
                raise ValueError(f"'{key}' must have shape {want} (as in training), got {img.shape}")
            if img.dtype != np.uint8:
                raise ValueError(f"'{key}' must be uint8 (0..255), got dtype {img.dtype}")
            images.append(img)
        return state, tuple(images)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One action chunk for one observation (see the module docstring for the keys).

        Returns:
            ``{"actions": (H, A) float32 radians, "policy_timing": {"infer_ms": float}}``.

        Raises:
            ValueError: a key is missing, a shape/dtype is wrong, the state is not finite or the
                prompt is not a string.
        """
        state, images = self._check(obs)
        t0 = time.perf_counter()
        out = self._infer_fn(self._params, state[None], tuple(im[None] for im in images))
        actions = np.asarray(out[0], dtype=np.float32)
        return {"actions": actions, "policy_timing": {"infer_ms": (time.perf_counter() - t0) * 1000.0}}
