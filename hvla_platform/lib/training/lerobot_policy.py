"""Inference on a checkpoint trained by LeRobot's trainer (``backend: lerobot``), behind the same
openpi-style interface as :class:`hvla_platform.lib.training.policy.Policy`.

``LeRobotPolicy.load(step_dir).infer(obs)`` takes one observation::

    {"observation/state": (D,) float32 raw joint positions (radians),
     "observation/images/<camera>": (H, W, 3) uint8 raw image, one per trained camera,
     "prompt": str (optional; accepted but not used: ACT and diffusion have no language input)}

and returns ``{"actions": (H_chunk, A) float32 raw joint targets (radians, in ``action_names``
order), "policy_timing": {"infer_ms": float}}``.

Loading and inference are LeRobot 0.4.4's own: the policy class's ``from_pretrained`` on the
checkpoint's ``params/`` folder (LeRobot's ``pretrained_model``), the saved pre/post-processor
pipelines (``make_pre_post_processors(cfg, pretrained_path=...)``: batch dim, device,
normalisation with the stats saved at training; unnormalisation of the actions) and
``predict_action_chunk``. Images go in as LeRobot's datasets deliver them: float32 (3, H, W) in
[0, 1]. Each call is independent (openpi's protocol has no episode boundaries): ACT predicts
from the current observation; diffusion's observation history (``n_obs_steps = 2``) is filled with
the current observation, as LeRobot does on the first step of an episode (``populate_queues``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from hvla_platform.lib.core.compat import ensure_torchvision_importable
from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data import IMAGE_PREFIX, STATE_KEY
from hvla_platform.lib.training.lerobot_backend import LEROBOT_BACKEND, PRETRAINED_DIR
from hvla_platform.lib.training.observation import check_observation

#: LeRobot's feature names (``lerobot.utils.constants``: ``OBS_STATE``, ``OBS_IMAGES`` + ``.<cam>``).
_LR_STATE, _LR_IMAGE_PREFIX = "observation.state", "observation.images."


class LeRobotPolicy:
    """A loaded LeRobot checkpoint ready for inference. Build with :meth:`load`.

    Attributes:
        metadata: the same keys as :attr:`Policy.metadata <hvla_platform.lib.training.policy.Policy>`
            (``policy`` names the LeRobot policy type, e.g. ``"lerobot act"``), plus ``backend``;
            a policy server sends it to clients after the handshake.
        step_dir: the checkpoint directory.
    """

    def __init__(self, step_dir: Path, config: dict[str, Any], manifest: dict[str, Any]):
        ensure_torchvision_importable()  # LeRobot imports torchvision (see lib/core/compat.py)
        # deferred: torch and LeRobot take seconds to import; only a LeRobot checkpoint needs them
        import torch  # noqa: PLC0415
        from lerobot.configs.policies import PreTrainedConfig  # noqa: PLC0415
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors  # noqa: PLC0415

        self.step_dir = step_dir
        self._torch = torch
        pretrained = step_dir / PRETRAINED_DIR
        tc = config["train_config"]
        self._lr_cfg = PreTrainedConfig.from_pretrained(str(pretrained))
        self._lr_cfg.device = "cpu"
        self._type = str(self._lr_cfg.type)
        if self._type != config["policy"]:
            raise ValueError(f"{step_dir}: config.json says policy {config['policy']!r}, its LeRobot folder holds "
                             f"{self._type!r}")
        self._model = get_policy_class(self._type).from_pretrained(str(pretrained), config=self._lr_cfg)
        self._model.eval()
        self._pre, self._post = make_pre_post_processors(self._lr_cfg, pretrained_path=str(pretrained))
        self._cameras = tuple(config["cameras"])
        self._camera_shapes = {c: tuple(int(v) for v in config["camera_shapes"][c]) for c in self._cameras}
        self._state_dim, self._action_dim = int(config["state_dim"]), int(config["action_dim"])
        self._horizon = int(config["action_horizon"])
        missing = [c for c in self._cameras if _LR_IMAGE_PREFIX + c not in self._lr_cfg.image_features]
        if missing:
            raise ValueError(f"{step_dir}: cameras {missing} are not image features of the LeRobot policy "
                             f"({sorted(self._lr_cfg.image_features)})")
        self.metadata: dict[str, Any] = {
            "policy": f"lerobot {self._type}",
            "backend": LEROBOT_BACKEND,
            **ckpt.policy_metadata(step_dir, config, manifest, action_horizon=self._horizon,
                                   action_dim=self._action_dim, state_dim=self._state_dim, cameras=self._cameras,
                                   camera_shapes=self._camera_shapes),
            "base_model": manifest.get("base_model", tc["base_model"]),
            "normalization": "lerobot " + ", ".join(f"{k}: {v}" for k, v in sorted(
                {str(k.value if hasattr(k, "value") else k): str(v.value if hasattr(v, "value") else v)
                 for k, v in self._lr_cfg.normalization_mapping.items()}.items())),
            "residual_to_state": False,
            "prompt_used": False,  # ACT and diffusion have no language input
            "tasks": config.get("tasks", []),
            "default_prompt": None,
            "prompt_vocabulary": None,
            "prompt_note": f"LeRobot's {self._type} has no language input: the prompt is accepted but not used",
        }

    @classmethod
    def load(cls, step_dir: str | Path, *, warmup: bool = True) -> "LeRobotPolicy":
        """Load ``step_dir`` (``checkpoints/<config>/<exp>/<step>`` written by the lerobot backend).

        Args:
            warmup: run one inference on zeros so the first real call is not the slowest.

        Raises:
            CheckpointError: the directory is missing or incomplete.
            ValueError: ``config.json`` is not a LeRobot checkpoint's or is malformed, or it does
                not match the LeRobot folder.
        """
        step_dir = ckpt.check_checkpoint_dir(step_dir)
        config = ckpt.read_config(step_dir)
        manifest = ckpt.read_checkpoint_manifest(step_dir)
        if config.get("backend") != LEROBOT_BACKEND:
            raise ValueError(f"{step_dir}/config.json has backend {config.get('backend')!r}, not {LEROBOT_BACKEND!r}")
        try:
            _ = (config["policy"], config["train_config"]["exp_name"], config["cameras"], config["camera_shapes"],
                 config["state_dim"], config["action_dim"], config["action_horizon"], config["step"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{step_dir}/config.json is malformed: {exc!r}") from exc
        policy = cls(step_dir, config, manifest)
        if warmup:
            obs: dict[str, Any] = {STATE_KEY: np.zeros(policy._state_dim, np.float32)}
            for cam, shape in policy._camera_shapes.items():
                obs[IMAGE_PREFIX + cam] = np.zeros(shape, np.uint8)
            policy.infer(obs)
        return policy

    def _check(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The validated state (float32) and images (uint8, by camera) of ``obs``; the same errors as
        :class:`~hvla_platform.lib.training.policy.Policy` (:func:`check_observation`)."""
        state, images = check_observation(obs, state_dim=self._state_dim, cameras=self._cameras,
                                          camera_shapes=self._camera_shapes)
        return state, dict(zip(self._cameras, images))

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One action chunk for one observation (see the module docstring for the keys).

        Returns:
            ``{"actions": (H, A) float32 radians, "policy_timing": {"infer_ms": float}}``.

        Raises:
            ValueError: a key is missing, a shape/dtype is wrong, the state is not finite or the
                prompt is not a string.
        """
        torch = self._torch
        state, images = self._check(obs)
        t0 = time.perf_counter()
        frame: dict[str, Any] = {_LR_STATE: torch.from_numpy(state)}
        for cam, img in images.items():  # LeRobot's dataset convention: float32 (3, H, W) in [0, 1]
            frame[_LR_IMAGE_PREFIX + cam] = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0
        frame["task"] = str(obs.get("prompt", ""))
        with torch.inference_mode():
            batch = self._pre(frame)
            if self._type == "diffusion":
                actions = self._diffusion_chunk(batch)
            else:
                actions = self._model.predict_action_chunk(batch)
            actions = self._post(actions)
        out = np.asarray(actions.detach().cpu().numpy()[0], dtype=np.float32)
        if out.shape != (self._horizon, self._action_dim):
            raise ValueError(f"the LeRobot policy returned a chunk of shape {out.shape}, expected "
                             f"({self._horizon}, {self._action_dim})")
        return {"actions": out, "policy_timing": {"infer_ms": (time.perf_counter() - t0) * 1000.0}}

    def _diffusion_chunk(self, batch: dict[str, Any]) -> Any:
        """Diffusion's chunk for one observation: the observation queues are reset and filled with
        this observation (LeRobot's ``DiffusionPolicy.select_action`` on an episode's first step),
        then ``predict_action_chunk``."""
        from lerobot.policies.utils import populate_queues  # noqa: PLC0415
        from lerobot.utils.constants import OBS_IMAGES  # noqa: PLC0415

        model = self._model
        model.reset()
        batch = {k: v for k, v in batch.items() if k != "action"}
        if model.config.image_features:
            batch[OBS_IMAGES] = self._torch.stack([batch[k] for k in model.config.image_features], dim=-4)
        model._queues = populate_queues(model._queues, batch)
        return model.predict_action_chunk(batch)


__all__ = ["LeRobotPolicy"]
