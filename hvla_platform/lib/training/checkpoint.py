"""Checkpoint directories: orbax params + norm stats + config + the checkpoint manifest.

Layout of one checkpoint, openpi-style ``checkpoints/<config_name>/<exp_name>/<step>/``::

    params/                    orbax StandardCheckpointer pytree (the flax params)
    norm_stats.json            copy of the openpi norm stats the model was trained with
    config.json                TrainConfig + model dims + state/action names + data summary
    checkpoint_manifest.yaml   seed 000's checkpoint manifest (data, rights, serving allowance)
    loss_curve.json            per-step training loss

The step directory is written under a temporary name in the same parent and renamed into place
last, so a reader never sees half a checkpoint.

Nothing in a checkpoint names a local path or a lake URI: ``config.json`` and the manifest refer to
the release, the norm stats and the cache by lake key, and orbax's ``params/commit_success.txt``
(which orbax fills with the absolute directory it saved to) is rewritten to name ``params``
relative to the checkpoint, so a copied lake's checkpoints are unchanged. Not byte-reproducible:
orbax's timestamps (``params/_CHECKPOINT_METADATA``) and the random names of its OCDBT data files,
and the manifest's ``created_at``.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from hvla_platform.lib.core.rights import SERVING_USES, Rights
from hvla_platform.lib.core.keys import checkpoint_key

PARAMS_DIR = "params"
NORM_STATS_FILE = "norm_stats.json"
CONFIG_FILE = "config.json"
MANIFEST_FILE = "checkpoint_manifest.yaml"
LOSS_CURVE_FILE = "loss_curve.json"
#: orbax's commit marker inside ``params/`` (orbax writes the absolute save path into it).
COMMIT_SUCCESS_FILE = "commit_success.txt"
REQUIRED_FILES = (PARAMS_DIR, NORM_STATS_FILE, CONFIG_FILE, MANIFEST_FILE)


class CheckpointError(ValueError):
    """A checkpoint directory is missing or incomplete."""


def build_checkpoint_manifest(
    *,
    config_name: str,
    exp_name: str,
    step: int,
    base_model: str,
    release: str,
    repo_id: str | None,
    train_episode_ids: Sequence[str],
    norm_stats_ref: str,
    rights: Mapping[str, Any] | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checkpoint manifest in seed 000's form.

    ``norm_stats_ref`` is recorded as ``norm_stats``: the lake key of the norm stats file
    (``norm-stats/<release>/norm_stats.json``), never a URI or local path.

    ``serving_allowed`` / ``serving_blocked`` come from :meth:`Rights.serving_allowed` /
    :meth:`Rights.serving_blocked` of the training data's combined rights. Without rights
    (``rights=None``) nothing is allowed: every serving use is blocked, the ``contains_*`` flags
    are ``null`` and ``rights_declared`` is false.

    Raises:
        RightsError: ``rights`` is given but malformed.
    """
    if rights is not None:
        r = Rights.from_dict(rights)
        allowed, blocked = r.serving_allowed(), r.serving_blocked()
        human, customer = r.contains_human_video, r.contains_customer_environment
        allowed_use: list[str] | None = sorted(r.allowed_uses)
        rights_dict: dict[str, Any] | None = r.to_dict()
    else:
        allowed, blocked = [], sorted(SERVING_USES)
        human = customer = None
        allowed_use = None
        rights_dict = None
    manifest: dict[str, Any] = {
        "checkpoint": checkpoint_key(config_name, exp_name, step),
        "base_model": base_model,
        "config_name": config_name,
        "experiment_name": exp_name,
        "step": int(step),
        "training_data": [
            {
                "repo_id": repo_id,
                "release": release,
                "split": "train",
                "allowed_use": allowed_use,
                "num_episodes": len(train_episode_ids),
                "episode_ids": sorted(train_episode_ids),
            }
        ],
        "norm_stats": norm_stats_ref,
        "contains_human_video_derivatives": human,
        "contains_customer_environment": customer,
        "serving_allowed": allowed,
        "serving_blocked": blocked,
        "rights_declared": rights is not None,
        "rights": rights_dict,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if extra:
        manifest.update(dict(extra))
    return manifest


def write_checkpoint(
    step_dir: str | Path,
    *,
    params: Any,
    norm_stats: Mapping[str, Any],
    config: Mapping[str, Any],
    manifest: Mapping[str, Any],
    loss_curve: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete checkpoint to ``step_dir`` atomically (temp dir + rename).

    Args:
        step_dir: final directory, e.g. ``.../checkpoints/<config>/<exp>/300``.
        params: flax params pytree (saved with ``orbax.checkpoint.StandardCheckpointer``).
        norm_stats: openpi norm stats dict (written as JSON).
        config: JSON-serialisable training config.
        manifest: the checkpoint manifest (written as YAML).
        loss_curve: per-step losses (``loss_curve[i]`` is the loss of step ``i + 1``).
        overwrite: replace an existing ``step_dir``; otherwise FileExistsError.

    Returns:
        ``step_dir`` as an absolute Path.
    """
    import orbax.checkpoint as ocp  # noqa: PLC0415

    step_dir = Path(step_dir).absolute()
    if step_dir.exists() and not overwrite:
        raise FileExistsError(f"checkpoint {step_dir} already exists (pass overwrite=True to replace it)")
    step_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{step_dir.name}-", dir=step_dir.parent))
    try:
        ckptr = ocp.StandardCheckpointer()
        try:
            ckptr.save(tmp / PARAMS_DIR, params)
            ckptr.wait_until_finished()
        finally:
            ckptr.close()
        commit = tmp / PARAMS_DIR / COMMIT_SUCCESS_FILE
        if commit.is_file():  # orbax names the absolute directory it wrote to; keep the marker, not the path
            commit.write_text(f"Checkpoint commit was successful to {PARAMS_DIR}")
        (tmp / NORM_STATS_FILE).write_text(json.dumps(dict(norm_stats), indent=2))
        (tmp / CONFIG_FILE).write_text(json.dumps(dict(config), indent=2, sort_keys=True))
        if loss_curve is not None:
            (tmp / LOSS_CURVE_FILE).write_text(json.dumps(
                {"step": list(range(1, len(loss_curve) + 1)), "loss": [float(v) for v in loss_curve]}))
        (tmp / MANIFEST_FILE).write_text(yaml.safe_dump(dict(manifest), sort_keys=False))
        if step_dir.exists():
            shutil.rmtree(step_dir)
        tmp.rename(step_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return step_dir


def check_checkpoint_dir(step_dir: str | Path) -> Path:
    """Return ``step_dir`` if it holds every required file, else raise :class:`CheckpointError`."""
    step_dir = Path(step_dir).absolute()
    if not step_dir.is_dir():
        raise CheckpointError(f"checkpoint directory {step_dir} does not exist")
    missing = [f for f in REQUIRED_FILES if not (step_dir / f).exists()]
    if missing:
        raise CheckpointError(f"checkpoint {step_dir} is incomplete: missing {missing}")
    return step_dir


def read_config(step_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a checkpoint."""
    return json.loads((check_checkpoint_dir(step_dir) / CONFIG_FILE).read_text())


def read_checkpoint_manifest(step_dir: str | Path) -> dict[str, Any]:
    """``checkpoint_manifest.yaml`` of a checkpoint."""
    return yaml.safe_load((check_checkpoint_dir(step_dir) / MANIFEST_FILE).read_text())


def read_loss_curve(step_dir: str | Path) -> list[float]:
    """Per-step losses of a checkpoint (empty if it has no ``loss_curve.json``)."""
    p = Path(step_dir) / LOSS_CURVE_FILE
    return [float(v) for v in json.loads(p.read_text())["loss"]] if p.is_file() else []


def policy_metadata(step_dir: Path, config: Mapping[str, Any], manifest: Mapping[str, Any], *,
                    action_horizon: int, action_dim: int, state_dim: int, cameras: Sequence[str],
                    camera_shapes: Mapping[str, Sequence[int]]) -> dict[str, Any]:
    """The part of a loaded policy's ``metadata`` (the policy server's handshake) that every backend
    shares: checkpoint identity (``checkpoint``, ``checkpoint_dir``, ``config_name``, ``exp_name``,
    ``release``, ``step``), dims and names (``action_horizon``, ``action_dim``, ``state_dim``,
    ``cameras``, ``image_shapes`` as ``[H, W, 3]`` lists, ``state_names``, ``action_names``) and the
    serving allowance from the checkpoint manifest. Each backend adds its own keys (``policy``,
    ``normalization``, the prompt fields…).

    Args:
        step_dir: the checkpoint directory; ``config`` its ``config.json`` (with ``train_config``
            and ``step``); ``manifest`` its ``checkpoint_manifest.yaml``.
    """
    tc = config["train_config"]
    return {
        "checkpoint": manifest.get("checkpoint"),
        "checkpoint_dir": str(step_dir),
        "config_name": tc["config_name"],
        "exp_name": tc["exp_name"],
        "release": tc["release"],
        "step": int(config["step"]),
        "action_horizon": int(action_horizon),
        "action_dim": int(action_dim),
        "state_dim": int(state_dim),
        "cameras": list(cameras),
        "image_shapes": {c: list(s) for c, s in camera_shapes.items()},
        "state_names": config.get("state_names"),
        "action_names": config.get("action_names"),
        "serving_allowed": manifest.get("serving_allowed", []),
        "serving_blocked": manifest.get("serving_blocked", []),
    }


def restore_params(step_dir: str | Path, abstract_params: Any) -> Any:
    """Restore the params pytree with the structure/shapes/dtypes of ``abstract_params``
    (e.g. ``jax.eval_shape`` of the model init). Raises orbax errors on mismatch."""
    import orbax.checkpoint as ocp  # noqa: PLC0415

    path = check_checkpoint_dir(step_dir) / PARAMS_DIR
    ckptr = ocp.StandardCheckpointer()
    try:
        return ckptr.restore(path, abstract_params)
    finally:
        ckptr.close()
