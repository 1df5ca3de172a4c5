"""Policy training on a Robo-DM cache: data loading, the flax model, the JAX training loop, orbax
checkpoints with seed 000's checkpoint manifest, MLflow tracking and the inference wrapper.

Public API::

    from hvla_platform.lib.training import TrainConfig, TrainResult, train_policy, Policy

No Dagster imports here (DESIGN.md: lib/ is plain Python).
"""

from hvla_platform.lib.training.checkpoint import CheckpointError, build_checkpoint_manifest, checkpoint_key
from hvla_platform.lib.training.data import CacheError, load_split, read_manifest
from hvla_platform.lib.training.normalize import NormStats, normalize, unnormalize
from hvla_platform.lib.training.policy import Policy
from hvla_platform.lib.training.tokenizer import PromptVocab, prompt_words
from hvla_platform.lib.training.train import TRAINING_USE, TrainConfig, TrainResult, check_training_rights, train_policy

__all__ = [
    "CacheError",
    "CheckpointError",
    "NormStats",
    "Policy",
    "PromptVocab",
    "TRAINING_USE",
    "TrainConfig",
    "TrainResult",
    "build_checkpoint_manifest",
    "check_training_rights",
    "checkpoint_key",
    "load_split",
    "normalize",
    "prompt_words",
    "read_manifest",
    "train_policy",
    "unnormalize",
]
