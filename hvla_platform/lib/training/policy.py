"""Inference wrapper around a saved checkpoint, with openpi's observation/action conventions.

``Policy.load(step_dir).infer(obs)`` takes one observation::

    {"observation/state": (D,) float32 raw joint positions (radians),
     "observation/images/<camera>": (H, W, 3) uint8 raw image, one per trained camera,
     "prompt": str, the task instruction}

and returns ``{"actions": (H_chunk, A) float32 raw joint targets (radians, in ``action_names``
order)}``, like openpi's ``Policy.infer``. Input is normalized and output unnormalized with the
checkpoint's own ``norm_stats.json``; preprocessing, the network and unnormalization run in one
jitted function.

**The prompt.** A checkpoint trained with ``use_prompt`` (``config.json`` has ``prompt_vocab``)
reads the prompt as word ids (:mod:`.tokenizer`: the training tasks' words; an unknown word is
ignored). ``prompt`` is required when the checkpoint was trained on more than one task; with
exactly one training task a missing prompt means that task (``metadata["default_prompt"]``).
Older checkpoints (no ``prompt_vocab``) load as before and ignore the prompt
(``metadata["prompt_used"]`` is False).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY
from hvla_platform.lib.training.observation import check_observation
from hvla_platform.lib.training.model import ChunkPolicy, ModelDims, init_params, preprocess_images
from hvla_platform.lib.training.normalize import NormStats, normalize, unnormalize
from hvla_platform.lib.training.tokenizer import PromptVocab


class Policy:
    """A loaded checkpoint ready for inference. Build with :meth:`load`.

    Attributes:
        metadata: JSON-serialisable description (config/experiment names, step, dims, cameras,
            image shapes, state/action names, normalization, serving allowance, ``prompt_used``,
            ``tasks`` (the training tasks), ``default_prompt`` (the only training task, else None),
            ``prompt_vocabulary`` (the known words, or None)...). A policy server sends this to
            clients after the handshake.
        step_dir: the checkpoint directory.
    """

    def __init__(self, step_dir: Path, params: Any, dims: ModelDims, stats: NormStats, config: dict,
                 manifest: dict, vocab: PromptVocab | None = None):
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
        if dims.uses_prompt and vocab is None:
            raise ValueError(f"{step_dir}/config.json: the model reads a prompt but 'prompt_vocab' is missing")
        self._vocab = vocab if dims.uses_prompt else None
        self._tasks = [str(t) for t in config.get("tasks") or []]
        self._default_prompt = self._tasks[0] if self._vocab is not None and len(self._tasks) == 1 else None

        def _infer(p, state, images, prompt):
            s = jnp.clip(normalize(state, stats.state, kind), -clip, clip)
            imgs = tuple(preprocess_images(im, size) for im in images)
            base = normalize(state[:, arm_idx], stats.actions, kind) if arm_idx is not None else None
            out = model.apply({"params": p}, s, imgs, base, prompt)
            return unnormalize(out, stats.actions, kind)

        self._infer_fn = jax.jit(_infer)
        self.metadata: dict[str, Any] = {
            "policy": "hvla chunk policy (flax CNN+MLP)",
            **ckpt.policy_metadata(step_dir, config, manifest, action_horizon=dims.action_horizon,
                                   action_dim=dims.action_dim, state_dim=dims.state_dim, cameras=dims.cameras,
                                   camera_shapes=self._camera_shapes),
            "base_model": tc["base_model"],
            "normalization": self._normalization,
            "residual_to_state": dims.residual,
            "prompt_used": self._vocab is not None,
            "tasks": list(self._tasks),
            "default_prompt": self._default_prompt,
            "prompt_vocabulary": list(self._vocab.words) if self._vocab is not None else None,
            "prompt_note": (
                "the prompt is read as word ids of the training tasks' vocabulary; unknown words are ignored"
                + ("" if self._default_prompt is None else "; a missing prompt means the only training task")
                if self._vocab is not None else
                "this checkpoint has no prompt vocabulary: the prompt is accepted but not used"),
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
        vocab = None
        if dims.uses_prompt:
            try:
                vocab = PromptVocab.from_dict(config.get("prompt_vocab") or {})
            except ValueError as exc:
                raise ValueError(f"{step_dir}/config.json: {exc}") from exc
            if (vocab.size, vocab.max_len) != (dims.vocab_size, dims.prompt_len):
                raise ValueError(f"{step_dir}/config.json: prompt_vocab has {vocab.size} ids × {vocab.max_len} words, "
                                 f"the model {dims.vocab_size} × {dims.prompt_len}")
        abstract = jax.eval_shape(lambda: init_params(dims, 0))
        params = ckpt.restore_params(step_dir, abstract)
        policy = cls(step_dir, params, dims, stats, config, manifest, vocab)
        if warmup:
            obs = {STATE_KEY: np.asarray(stats.state.mean, np.float32)}
            if policy._tasks:
                obs["prompt"] = policy._tasks[0]
            for cam, shape in policy._camera_shapes.items():
                obs[IMAGE_PREFIX + cam] = np.zeros(shape, np.uint8)
            policy.infer(obs)
        return policy

    def _prompt_ids(self, obs: Mapping[str, Any]) -> np.ndarray | None:
        """(L,) int32 word ids of the observation's prompt (None when the model reads no prompt)."""
        prompt = obs.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ValueError(f"'prompt' must be a str, got {type(prompt).__name__}")
        if self._vocab is None:
            return None
        if prompt is None:
            if self._default_prompt is None:
                raise ValueError(
                    f"observation is missing key 'prompt': this checkpoint was trained on {len(self._tasks)} tasks "
                    f"and reads the instruction (e.g. {self._tasks[0]!r})" if self._tasks else
                    "observation is missing key 'prompt' (the task instruction this checkpoint reads)")
            prompt = self._default_prompt
        try:
            return self._vocab.encode(prompt)[0]
        except ValueError as exc:
            raise ValueError(f"'prompt': {exc}") from exc

    def _check(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        need = "'prompt'" if self._vocab is not None and self._default_prompt is None else "optional 'prompt'"
        return check_observation(obs, state_dim=self._dims.state_dim, cameras=self._dims.cameras,
                                 camera_shapes=self._camera_shapes, prompt_hint=need)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One action chunk for one observation (see the module docstring for the keys).

        Returns:
            ``{"actions": (H, A) float32 radians, "policy_timing": {"infer_ms": float}}``.

        Raises:
            ValueError: a key is missing (``prompt`` too, when the checkpoint was trained on more
                than one task), a shape/dtype is wrong, the state is not finite, or the prompt is not
                a string or has no word.
        """
        state, images = self._check(obs)
        ids = self._prompt_ids(obs)
        t0 = time.perf_counter()
        out = self._infer_fn(self._params, state[None], tuple(im[None] for im in images),
                             None if ids is None else ids[None])
        actions = np.asarray(out[0], dtype=np.float32)
        return {"actions": actions, "policy_timing": {"infer_ms": (time.perf_counter() - t0) * 1000.0}}
