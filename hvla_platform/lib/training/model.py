"""The small flax (linen) action-chunk policy.

Architecture (trained from scratch; no pretrained weights are available offline):

* every camera has its own CNN encoder: 3 × [3×3 conv, stride 2, ReLU] with 16/32/32 channels on the
  image resized to ``image_size`` and scaled to [0, 1], then flatten → Dense(feature_dim) → ReLU.
  Flattening (rather than global pooling) keeps *where* things are in the image, which a reaching
  policy needs;
* the normalized state goes through Dense(feature_dim) → ReLU;
* the task instruction (``prompt``), when ``vocab_size > 0``: its word ids (``prompt_len`` of them,
  :mod:`.tokenizer`: a vocabulary of the training tasks' words, id 0 padding, id 1 unknown word)
  → Embed(vocab_size, prompt_dim) → mean over the *known* words (padding and unknown words are
  masked out; word order is not used) → Dense(feature_dim) → ReLU, **concatenated** with the image
  and state features (conditioning by concatenation, not FiLM);
* the concatenated features go through an MLP (``hidden_dim`` × 2, ReLU) to ``H × A`` outputs,
  reshaped to a (H, A) chunk of **normalized** future actions;
* with ``residual=True`` the chunk is predicted as a correction to ``base``: the current positions
  of the action joints, normalized with the *action* statistics and repeated over the chunk. The
  output layer starts at zero, so the untrained policy is exactly the "hold position" baseline and
  training learns the motion relative to it (the same idea as openpi's ``DeltaActions`` transform,
  but keeping the loss and norm stats on absolute actions, which is what the release's openpi
  norm stats describe).

Checkpoints written before the prompt was an input have no ``vocab_size`` (read as 0): the model
then has no prompt branch and ignores the prompt (docs/training.md, "What is trained").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hvla_platform.lib.training.tokenizer import FIRST_WORD_ID


@dataclass(frozen=True)
class ModelDims:
    """Sizes that fix the parameter shapes.

    Attributes:
        state_dim: D, length of ``observation/state``.
        action_dim: A, length of one action.
        action_horizon: H, actions per predicted chunk.
        cameras: camera names, in input order.
        image_size: (height, width) the images are resized to before the CNN.
        conv_channels: channels of the three conv layers.
        feature_dim: per-camera and state feature size.
        hidden_dim: width of the two hidden layers of the head MLP.
        residual: predict the chunk as a correction to ``base`` (see the module docstring).
        vocab_size: rows of the prompt's word embedding (words + padding + unknown); 0: the model
            has no prompt input.
        prompt_len: L, word ids per prompt (0 without a prompt input).
        prompt_dim: size of one word embedding.
    """

    state_dim: int
    action_dim: int
    action_horizon: int
    cameras: tuple[str, ...]
    image_size: tuple[int, int]
    conv_channels: tuple[int, ...] = (16, 32, 32)
    feature_dim: int = 64
    hidden_dim: int = 256
    residual: bool = False
    vocab_size: int = 0
    prompt_len: int = 0
    prompt_dim: int = 32

    @property
    def uses_prompt(self) -> bool:
        """Whether the model takes the prompt's word ids."""
        return self.vocab_size > 0

    def to_dict(self) -> dict:
        """JSON form."""
        d = asdict(self)
        d["cameras"] = list(self.cameras)
        d["image_size"] = list(self.image_size)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelDims":
        """Inverse of :meth:`to_dict`."""
        return cls(
            state_dim=int(d["state_dim"]),
            action_dim=int(d["action_dim"]),
            action_horizon=int(d["action_horizon"]),
            cameras=tuple(d["cameras"]),
            image_size=(int(d["image_size"][0]), int(d["image_size"][1])),
            conv_channels=tuple(int(c) for c in d["conv_channels"]),
            feature_dim=int(d["feature_dim"]),
            hidden_dim=int(d["hidden_dim"]),
            residual=bool(d.get("residual", False)),
            vocab_size=int(d.get("vocab_size", 0)),
            prompt_len=int(d.get("prompt_len", 0)),
            prompt_dim=int(d.get("prompt_dim", 32)),
        )


def preprocess_images(images: jax.Array, image_size: Sequence[int]) -> jax.Array:
    """Resize uint8 images (..., H, W, 3) to (..., h, w, 3) float32 in [0, 1].

    Bilinear with antialiasing (``jax.image.resize``), so downsampling averages neighbouring pixels.
    The same function is used when building training arrays and at inference.
    """
    x = images.astype(jnp.float32) / 255.0
    h, w = int(image_size[0]), int(image_size[1])
    if x.shape[-3:-1] == (h, w):
        return x
    return jax.image.resize(x, x.shape[:-3] + (h, w, 3), method="linear", antialias=True)


class CameraEncoder(nn.Module):
    """CNN of one camera: (B, h, w, 3) float32 in [0, 1] → (B, feature_dim)."""

    conv_channels: tuple[int, ...]
    feature_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for ch in self.conv_channels:
            x = nn.relu(nn.Conv(ch, kernel_size=(3, 3), strides=(2, 2), padding="SAME")(x))
        x = x.reshape((x.shape[0], -1))
        return nn.relu(nn.Dense(self.feature_dim)(x))


class PromptEncoder(nn.Module):
    """Word ids (B, L) int32 → (B, feature_dim) float32: embedding, mean over known words
    (ids ≥ :data:`~hvla_platform.lib.training.tokenizer.FIRST_WORD_ID`), Dense, ReLU. A prompt
    with no known word pools to zeros."""

    vocab_size: int
    prompt_dim: int
    feature_dim: int

    @nn.compact
    def __call__(self, ids: jax.Array) -> jax.Array:
        emb = nn.Embed(self.vocab_size, self.prompt_dim, name="embed")(ids)
        mask = (ids >= FIRST_WORD_ID).astype(jnp.float32)[..., None]
        pooled = jnp.sum(emb * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
        return nn.relu(nn.Dense(self.feature_dim, name="proj")(pooled))


class ChunkPolicy(nn.Module):
    """Maps (normalized state, preprocessed images, prompt word ids) to a normalized action chunk.

    Call: ``apply(params, state (B, D) float32, images tuple of (B, h, w, 3) float32 in camera order,
    base (B, A) float32 normalized current action-joint positions, required iff dims.residual,
    prompt (B, L) int32 word ids (:mod:`.tokenizer`), required iff dims.uses_prompt)``
    → (B, H, A) float32 normalized actions.
    """

    dims: ModelDims

    @nn.compact
    def __call__(self, state: jax.Array, images: Sequence[jax.Array], base: jax.Array | None = None,
                 prompt: jax.Array | None = None) -> jax.Array:
        d = self.dims
        if d.residual and base is None:
            raise ValueError("a residual policy needs 'base' (normalized current action-joint positions)")
        if d.uses_prompt and prompt is None:
            raise ValueError("a prompt-conditioned policy needs 'prompt' (word ids, (B, L) int32)")
        if len(images) != len(d.cameras):
            raise ValueError(f"expected {len(d.cameras)} camera images, got {len(images)}")
        feats = [
            CameraEncoder(tuple(d.conv_channels), d.feature_dim, name=f"camera_{cam}")(img)
            for cam, img in zip(d.cameras, images)
        ]
        feats.append(nn.relu(nn.Dense(d.feature_dim, name="state_proj")(state)))
        if d.uses_prompt:
            feats.append(PromptEncoder(d.vocab_size, d.prompt_dim, d.feature_dim, name="prompt")(prompt))
        x = jnp.concatenate(feats, axis=-1)
        for i in range(2):
            x = nn.relu(nn.Dense(d.hidden_dim, name=f"hidden_{i}")(x))
        init = nn.initializers.zeros if d.residual else nn.initializers.lecun_normal()
        out = nn.Dense(d.action_horizon * d.action_dim, kernel_init=init, name="action_head")(x)
        out = out.reshape((state.shape[0], d.action_horizon, d.action_dim))
        if d.residual:
            out = out + base[:, None, :]
        return out


def init_params(dims: ModelDims, seed: int) -> dict:
    """Initial parameters (a nested dict of float32 arrays) for ``dims`` from ``seed``."""
    model = ChunkPolicy(dims)
    state = jnp.zeros((1, dims.state_dim), jnp.float32)
    imgs = tuple(jnp.zeros((1, *dims.image_size, 3), jnp.float32) for _ in dims.cameras)
    base = jnp.zeros((1, dims.action_dim), jnp.float32) if dims.residual else None
    prompt = jnp.zeros((1, dims.prompt_len), jnp.int32) if dims.uses_prompt else None
    return model.init(jax.random.PRNGKey(seed), state, imgs, base, prompt)["params"]


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
