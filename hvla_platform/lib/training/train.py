"""Train the small action-chunk policy on a Robo-DM cache (JAX + flax + optax, orbax, MLflow).

Data: the cache's ``train`` split is decoded once into a local frame store
(:mod:`hvla_platform.lib.training.frame_store`) and minibatches are read from it by a prefetch
thread; nothing holds the split in memory, so the process's memory does not grow with the release.

Recipe (see docs/training.md):

* samples: every frame ``t`` of every ``train``-split episode; input = state ``s_t`` and the camera
  images at ``t``; target = the chunk ``a_t .. a_{t+H-1}`` (padded with the episode's last action);
* normalization with the release's openpi norm stats (``quantile`` as in pi0.5, or ``zscore``);
  the normalized state is clipped to ``[-state_clip, state_clip]``;
* with ``residual_to_state`` (default) the model predicts the chunk relative to the current
  positions of the action joints (picked from the state by name; see ``model.py``), so it starts
  as the hold-position baseline;
* with ``use_prompt`` (default) the model also reads the frame's task instruction: the word ids of
  its episode's task (:mod:`.tokenizer`, a vocabulary of the train split's task words stored in
  ``config.json`` ``prompt_vocab``);
* loss: mean squared error on normalized actions; optimizer: Adam (optax) after global-norm
  gradient clipping at 1.0; minibatches drawn uniformly with replacement from all train frames with
  ``numpy.random.default_rng(seed)``;
* the loss curve logged is the per-step minibatch loss; ``initial_loss`` / ``final_loss`` are the
  mean loss over (up to 1024 evenly spaced) train frames before and after training, which is
  less noisy than one minibatch.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, Sequence

import numpy as np
from pydantic import Field

from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data import read_manifest
from hvla_platform.lib.training.frame_store import Batch, BatchPrefetcher, FrameStore, open_frame_store, uniform_batches
from hvla_platform.lib.training.model import ChunkPolicy, ModelDims, count_params, init_params, preprocess_images
from hvla_platform.lib.training.normalize import NormStats, check_normalization, normalize
from hvla_platform.lib.training.tokenizer import PromptVocab
from hvla_platform.lib.core.tracking import TrackedRun
from hvla_platform.lib.core.keys import norm_stats_prefix

#: The allowed use a dataset must grant for a policy to be trained on it (lib/core/rights.py).
TRAINING_USE = "internal_training"
_EVAL_FRAMES = 1024
#: Frames per forward pass when computing the mean loss over the evaluation frames.
_EVAL_CHUNK = 256
#: Minibatches the prefetch thread reads ahead of the training step.
PREFETCH_DEPTH = 4


class TrainConfigError(ValueError):
    """A stored training config (e.g. a checkpoint's ``config.json``) breaks its contract."""


@dataclass(kw_only=True)
class TrainConfig:
    """What to train and how.

    Attributes:
        config_name: openpi-style training config name (first level of the checkpoint path).
        exp_name: experiment name (second level of the checkpoint path).
        release: dataset release name the data comes from.
        steps: optimizer steps.
        batch_size: frames per minibatch.
        learning_rate: Adam learning rate.
        seed: seeds parameter init and minibatch sampling.
        action_horizon: H, actions per predicted chunk.
        image_size: (height, width) images are resized to, pixels.
        cameras: camera names used as inputs, in input order; None (the default): every camera of
            the release (:func:`~hvla_platform.lib.training.build.train_experiment` takes the
            release spec's cameras; :func:`train_policy` on its own takes the cache's, sorted by
            name), recorded resolved in the checkpoint.
        normalization: ``"quantile"`` (q01..q99 → -1..1, pi0.5) or ``"zscore"``.
        base_model: recorded in the checkpoint manifest.
        state_clip: bound on the normalized state (see docs/training.md).
        save_every: also save a checkpoint every this many steps (0: only the final step).
        log_every: call ``log`` with the loss every this many steps.
        residual_to_state: predict actions as a correction to the current action-joint positions
            (needs ``state_names`` and ``action_names``).
        use_prompt: condition on the task instruction (each frame's episode task in training, the
            observation's ``prompt`` at inference) through a word embedding of the train split's
            task words (:mod:`~hvla_platform.lib.training.tokenizer`); False: the prompt is not an
            input (the unconditioned policy of earlier checkpoints).
    """

    config_name: str = "hvla_g1_reach_small"
    exp_name: str
    release: str
    steps: int = 300
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    action_horizon: int = 10
    image_size: tuple[int, int] = (48, 64)
    cameras: tuple[str, ...] | None = None
    normalization: str = "quantile"
    base_model: str = "none (trained from scratch)"
    state_clip: float = 5.0
    save_every: int = 0
    log_every: int = 50
    residual_to_state: bool = True
    use_prompt: bool = True

    def validate(self) -> None:
        """Raise ValueError if a field is out of range."""
        for name in ("steps", "batch_size", "action_horizon"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"TrainConfig.image_size must be (h, w) with both >= 8, got {self.image_size}")
        if self.cameras is not None and not self.cameras:
            raise ValueError("TrainConfig.cameras must name at least one camera (or be None: the release's)")
        if not self.state_clip > 0:
            raise ValueError(f"TrainConfig.state_clip must be > 0, got {self.state_clip}")
        if self.save_every < 0 or self.log_every < 1:
            raise ValueError("TrainConfig.save_every must be >= 0 and log_every >= 1")
        for name in ("config_name", "exp_name", "release"):
            v = getattr(self, name)
            if not v or "/" in v or v in (".", ".."):
                raise ValueError(f"TrainConfig.{name} must be a non-empty name without '/', got {v!r}")
        check_normalization(self.normalization)

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["cameras"] = None if self.cameras is None else list(self.cameras)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "training config") -> "TrainConfig":
        """Inverse of :meth:`to_dict`, validated strictly by :class:`TrainConfigDocument`.

        Missing optional keys take the dataclass defaults. Range checks stay in :meth:`validate`.
        ``source`` names the file in messages (e.g. a checkpoint's ``config.json``).

        Raises:
            TrainConfigError: one line naming ``source`` and each problem: an unknown key (with the
                closest valid key), a missing ``exp_name``/``release``, or a value of the wrong type.
        """
        doc = validate_document(TrainConfigDocument, d, source=source, error_cls=TrainConfigError)
        return cls(**{f.name: getattr(doc, f.name) for f in fields(cls)})


_DEFAULTS = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
_Int = Annotated[int, Field(strict=True)]
_Float = Annotated[float, Field(strict=True)]
_Bool = Annotated[bool, Field(strict=True)]


class TrainConfigDocument(StrictModel):
    """The contract of a stored :class:`TrainConfig` (the JSON form of :meth:`TrainConfig.to_dict`).

    Same fields and defaults as the dataclass; unknown keys are refused, ``exp_name`` and
    ``release`` are required, numbers must be numbers (an integer where the field is one) and
    flags true/false. Lists are accepted for the tuple fields (JSON has no tuples).
    """

    config_name: str = _DEFAULTS["config_name"]
    exp_name: str
    release: str
    steps: _Int = _DEFAULTS["steps"]
    batch_size: _Int = _DEFAULTS["batch_size"]
    learning_rate: _Float = _DEFAULTS["learning_rate"]
    seed: _Int = _DEFAULTS["seed"]
    action_horizon: _Int = _DEFAULTS["action_horizon"]
    image_size: tuple[_Int, _Int] = _DEFAULTS["image_size"]
    cameras: tuple[str, ...] | None = _DEFAULTS["cameras"]
    normalization: str = _DEFAULTS["normalization"]
    base_model: str = _DEFAULTS["base_model"]
    state_clip: _Float = _DEFAULTS["state_clip"]
    save_every: _Int = _DEFAULTS["save_every"]
    log_every: _Int = _DEFAULTS["log_every"]
    residual_to_state: _Bool = _DEFAULTS["residual_to_state"]
    use_prompt: _Bool = _DEFAULTS["use_prompt"]


@dataclass
class TrainResult:
    """Outcome of :func:`train_policy`.

    Attributes:
        step_dir: the final checkpoint directory.
        final_loss, initial_loss: mean normalized-action MSE over train frames after / before training.
        loss_curve: per-step minibatch loss (``loss_curve[i]`` is step ``i + 1``).
        mlflow_run_id: the MLflow run, or None when no tracking URI was given.
        num_train_frames: training samples (frames of train episodes).
        seconds: wall time of the whole call (loading, compiling, training, saving, logging).
        timings: seconds per phase (``load``, ``train``, ``save``, ``mlflow``).
        checkpoint_dirs: every checkpoint written (intermediate ones first).
        num_params: model parameter count.
        train_episode_ids: episodes trained on.
    """

    step_dir: Path
    final_loss: float
    initial_loss: float
    loss_curve: list[float]
    mlflow_run_id: str | None
    num_train_frames: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    checkpoint_dirs: list[Path] = field(default_factory=list)
    num_params: int = 0
    train_episode_ids: list[str] = field(default_factory=list)


def check_training_rights(rights: Mapping[str, Any] | None, *, today: dt.date | None = None) -> Rights | None:
    """Enforce the data's rights before training.

    Raises:
        RightsError: the rights are malformed, do not include ``internal_training``, or the
            retention date has passed.
    """
    if rights is None:
        return None
    r = Rights.from_dict(rights)
    if TRAINING_USE not in r.allowed_uses:
        raise RightsError(
            f"the training data's rights do not allow '{TRAINING_USE}' (allowed: {sorted(r.allowed_uses)})")
    today = today or dt.date.today()
    if r.is_expired(today):
        raise RightsError(f"the training data's retention ended on {r.retention_until.isoformat()}")
    return r


def _host_batch(batch: Batch, stats: NormStats, config: TrainConfig,
                action_state_index: list[int] | None, task_ids: np.ndarray | None = None) -> dict[str, Any]:
    """The model inputs of one :class:`Batch`, on the host: normalized (and clipped) state, raw
    uint8 images (resized on the device, inside the step), normalized target chunks, with
    ``residual_to_state`` the normalized current positions of the action joints and, with
    ``task_ids`` ((n_tasks, L) int32 word ids of the store's sorted tasks), each frame's prompt
    ``(B, L)`` int32."""
    out: dict[str, Any] = {
        "state": np.clip(normalize(batch.state, stats.state, config.normalization),
                         -config.state_clip, config.state_clip).astype(np.float32),
        "images": tuple(batch.images[c] for c in config.cameras),
        "target": normalize(batch.chunks, stats.actions, config.normalization).astype(np.float32),
    }
    if config.residual_to_state:
        out["base"] = normalize(batch.state[:, action_state_index], stats.actions,
                                config.normalization).astype(np.float32)
    if task_ids is not None:
        out["prompt"] = task_ids[batch.task_index]
    return out


def train_policy(
    cache_dir: str | Path,
    norm_stats: Mapping[str, Any],
    config: TrainConfig,
    *,
    out_dir: str | Path,
    log: Callable[[str], None] | None = None,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str = "hvla-training",
    mlflow_artifact_dir: str | Path | None = None,
    dataset_info: Mapping[str, Any] | None = None,
    rights: Mapping[str, Any] | None = None,
    state_names: Sequence[str] | None = None,
    action_names: Sequence[str] | None = None,
    overwrite: bool = False,
    frame_store_dir: str | Path | None = None,
) -> TrainResult:
    """Train the policy on the ``train`` split of a Robo-DM cache and save checkpoint(s).

    Args:
        cache_dir: Robo-DM cache directory (``episode_*.vla`` + ``manifest.parquet``).
        norm_stats: openpi norm stats (``{"norm_stats": {"state": ..., "actions": ...}}``) of the
            release's train split; their dims must match the cache's state/action dims.
        config: :class:`TrainConfig`.
        out_dir: ``.../checkpoints/<config_name>/<exp_name>``; checkpoints go to ``out_dir/<step>``.
        log: progress callback (one line per call), e.g. a Dagster ``context.log.info``.
        mlflow_tracking_uri: MLflow tracking URI (``sqlite:////abs/mlflow.db``); None: no tracking.
        mlflow_experiment: MLflow experiment name.
        mlflow_artifact_dir: artifact location for a newly created experiment.
        dataset_info: optional ``repo_id``, ``release`` (default ``config.release``), ``source``
            (dataset source recorded in MLflow; default the release name) and ``norm_stats_ref``
            (where the norm stats live; default ``norm-stats/<release>/norm_stats.json``); copied
            into ``config.json`` and the checkpoint manifest, so give lake keys (relative), never
            URIs or local paths.
        rights: combined rights of the training data (:meth:`Rights.to_dict` form); they must allow
            ``internal_training``; they decide ``serving_allowed``/``serving_blocked``. None: the
            checkpoint is marked as undeclared and every serving use is blocked.
        state_names, action_names: joint names of the state (D) and action (A) dims, stored in
            ``config.json`` (evaluation needs them to build the hold-position baseline and to
            select state joints in closed loop).
        overwrite: replace existing step directories instead of raising FileExistsError.
        frame_store_dir: where the decoded frame store of the cache's train split lives
            (:func:`~hvla_platform.lib.training.frame_store.open_frame_store`): a store of the same
            cache version there is reused, a missing one built and kept. None: a temporary
            directory (``$TMPDIR``), built for this call and removed at the end.

    Returns:
        :class:`TrainResult`.

    Raises:
        ValueError: invalid config, norm stats or names; :class:`CacheError` for cache problems;
        :class:`RightsError` when the rights forbid training; FileExistsError when the final step
        directory exists and ``overwrite`` is false.
    """
    t_start = time.perf_counter()
    say = log or (lambda _msg: None)
    config.validate()
    check_training_rights(rights)
    stats = NormStats.from_dict(norm_stats)
    # the checkpoint stores the caller's norm stats verbatim (openpi wrapper added if absent)
    norm_stats_copy = dict(norm_stats) if "norm_stats" in norm_stats else {"norm_stats": dict(norm_stats)}
    info = dict(dataset_info or {})
    release = str(info.get("release", config.release))
    out_dir = Path(out_dir).absolute()
    final_dir = out_dir / str(config.steps)
    if final_dir.exists() and not overwrite:
        raise FileExistsError(f"checkpoint {final_dir} already exists (pass overwrite=True to replace it)")

    # ---- data ---------------------------------------------------------------------------
    tmp_store = None if frame_store_dir is not None else Path(tempfile.mkdtemp(prefix="hvla-frame-store-"))
    store: FrameStore | None = None
    try:
        store = open_frame_store(cache_dir, frame_store_dir if frame_store_dir is not None else tmp_store,
                                 split="train", cameras=config.cameras, log=say)
        return _train(store, cache_dir, stats, norm_stats_copy, config, info, release, out_dir, say, t_start,
                      mlflow_tracking_uri=mlflow_tracking_uri, mlflow_experiment=mlflow_experiment,
                      mlflow_artifact_dir=mlflow_artifact_dir, rights=rights, state_names=state_names,
                      action_names=action_names, overwrite=overwrite)
    finally:
        if store is not None:
            store.close()
        if tmp_store is not None:
            shutil.rmtree(tmp_store, ignore_errors=True)


def _train(store: FrameStore, cache_dir: str | Path, stats: NormStats, norm_stats_copy: dict[str, Any],
           config: TrainConfig, info: dict[str, Any], release: str, out_dir: Path, say: Callable[[str], None],
           t_start: float, *, mlflow_tracking_uri: str | None, mlflow_experiment: str,
           mlflow_artifact_dir: str | Path | None, rights: Mapping[str, Any] | None,
           state_names: Sequence[str] | None, action_names: Sequence[str] | None, overwrite: bool) -> TrainResult:
    """The body of :func:`train_policy` once the frame store is open."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import optax  # noqa: PLC0415

    if config.cameras is None:  # every camera of the cache; the checkpoint records them resolved
        config = replace(config, cameras=tuple(store.cameras))
        config.validate()
    d, a = store.state_dim, store.action_dim
    if stats.state.dim != d or stats.actions.dim != a:
        raise ValueError(f"norm stats have state/action dims {stats.state.dim}/{stats.actions.dim}, "
                         f"the cache has {d}/{a}")
    if state_names is not None and len(state_names) != d:
        raise ValueError(f"{len(state_names)} state_names for state dim {d}")
    if action_names is not None and len(action_names) != a:
        raise ValueError(f"{len(action_names)} action_names for action dim {a}")
    action_state_index: list[int] | None = None
    if state_names is not None and action_names is not None:
        missing = [n for n in action_names if n not in state_names]
        if missing:
            raise ValueError(f"action joints {missing} are not state joints")
        action_state_index = [list(state_names).index(nm) for nm in action_names]
    if config.residual_to_state and action_state_index is None:
        raise ValueError("TrainConfig.residual_to_state needs state_names and action_names (to find the "
                         "action joints in the state); pass them or set residual_to_state=False")
    n = store.num_frames
    camera_shapes = {c: list(store.camera_shapes[c]) for c in config.cameras}
    size = (int(config.image_size[0]), int(config.image_size[1]))
    episode_ids = store.episode_ids
    t_loaded = time.perf_counter()
    tasks = store.tasks
    vocab = PromptVocab.from_tasks(tasks) if config.use_prompt else None
    task_ids = vocab.encode_many(tasks) if vocab is not None else None
    default_prompt = tasks[0] if vocab is not None and len(tasks) == 1 else None
    say(f"loaded {len(store.episodes)} train episodes, {n} frames (state {d}, action {a}, "
        f"cameras {list(config.cameras)}) in {t_loaded - t_start:.1f}s")
    if vocab is not None:
        say(f"prompt: {len(tasks)} training task(s), vocabulary of {len(vocab.words)} words, "
            f"{vocab.max_len} word ids per prompt")
    else:
        say("prompt: not used (use_prompt=False)")

    def host(idx: np.ndarray) -> dict[str, Any]:
        return _host_batch(store.read_batch(idx, config.action_horizon), stats, config, action_state_index, task_ids)

    # ---- model + optimizer ----------------------------------------------------------------
    dims = ModelDims(state_dim=d, action_dim=a, action_horizon=config.action_horizon,
                     cameras=tuple(config.cameras), image_size=size, residual=config.residual_to_state,
                     vocab_size=vocab.size if vocab is not None else 0,
                     prompt_len=vocab.max_len if vocab is not None else 0)
    model = ChunkPolicy(dims)
    params = init_params(dims, config.seed)
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config.learning_rate))
    opt_state = tx.init(params)

    def loss_fn(p, dat):
        images = tuple(preprocess_images(im, size) for im in dat["images"])
        pred = model.apply({"params": p}, dat["state"], images, dat.get("base"), dat.get("prompt"))
        return jnp.mean((pred - dat["target"]) ** 2)

    @jax.jit
    def train_step(p, o, dat):
        loss, grads = jax.value_and_grad(loss_fn)(p, dat)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    batch_loss = jax.jit(loss_fn)

    eval_idx = np.unique(np.linspace(0, n - 1, min(n, _EVAL_FRAMES)).astype(np.int64))

    def mean_loss(p) -> float:
        """Mean loss over ``eval_idx``, read and evaluated :data:`_EVAL_CHUNK` frames at a time."""
        total = 0.0
        for i in range(0, len(eval_idx), _EVAL_CHUNK):
            part = eval_idx[i:i + _EVAL_CHUNK]
            total += float(batch_loss(p, host(part))) * len(part)
        return total / len(eval_idx)

    # ---- tracking -------------------------------------------------------------------------
    run = None
    prefetch: BatchPrefetcher | None = None
    if mlflow_tracking_uri:
        run = TrackedRun(mlflow_tracking_uri, mlflow_experiment, run_name=f"{config.exp_name}",
                         artifact_dir=mlflow_artifact_dir,
                         tags={"hvla.config_name": config.config_name, "hvla.exp_name": config.exp_name,
                               "hvla.release": release})
    try:
        if run is not None:
            run.log_params({"train": config.to_dict(), "model": dims.to_dict(), "num_params": count_params(params),
                            "num_train_frames": n, "num_train_episodes": len(store.episodes),
                            "repo_id": info.get("repo_id"), "release": release})
            import pandas as pd  # noqa: PLC0415

            rows = [r for r in read_manifest(cache_dir) if r["split"] == "train"]
            df = pd.DataFrame(rows)
            run.log_dataset(df, name=release, source=str(info.get("source", release)), context="training")

        # ---- training loop ----------------------------------------------------------------
        rng = np.random.default_rng(config.seed)
        # the same draws as before the frame store: rng.integers(0, n, batch_size) per step
        prefetch = BatchPrefetcher(store, uniform_batches(n, config.batch_size, rng), config.action_horizon,
                                   depth=PREFETCH_DEPTH)
        initial_loss = mean_loss(params)
        say(f"model has {count_params(params)} params; initial train loss {initial_loss:.4f}")
        losses = []
        saved: list[Path] = []
        t_train = time.perf_counter()
        t_save = 0.0
        manifest_common = dict(
            config_name=config.config_name, exp_name=config.exp_name, base_model=config.base_model,
            release=release, repo_id=info.get("repo_id"), train_episode_ids=episode_ids,
            norm_stats_ref=str(info.get("norm_stats_ref", f"{norm_stats_prefix(release)}/norm_stats.json")),
            rights=rights,
        )
        for step in range(1, config.steps + 1):
            batch = _host_batch(next(prefetch), stats, config, action_state_index, task_ids)
            params, opt_state, loss = train_step(params, opt_state, batch)
            losses.append(loss)
            if step % config.log_every == 0 or step == config.steps:
                say(f"step {step}/{config.steps} loss {float(loss):.4f} "
                    f"({time.perf_counter() - t_train:.1f}s)")
            if step == config.steps or (config.save_every and step % config.save_every == 0):
                t0 = time.perf_counter()
                curve = [float(v) for v in jax.device_get(losses)]
                cfg = {
                    "train_config": config.to_dict(), "model": dims.to_dict(), "step": step,
                    "state_names": list(state_names) if state_names is not None else None,
                    "action_names": list(action_names) if action_names is not None else None,
                    "action_state_index": action_state_index,
                    "camera_shapes": camera_shapes, "num_train_frames": n,
                    "train_episode_ids": episode_ids, "tasks": tasks, "prompt_used": vocab is not None,
                    "prompt_vocab": vocab.to_dict() if vocab is not None else None,
                    "default_prompt": default_prompt,
                    "num_params": count_params(params), "dataset": {"release": release, **info},
                }
                manifest = ckpt.build_checkpoint_manifest(step=step, **manifest_common)
                saved.append(ckpt.write_checkpoint(
                    out_dir / str(step), params=jax.device_get(params), norm_stats=norm_stats_copy, config=cfg,
                    manifest=manifest, loss_curve=curve, overwrite=overwrite))
                t_save += time.perf_counter() - t0
                say(f"saved checkpoint {saved[-1]}")
        loss_curve = [float(v) for v in jax.device_get(losses)]
        final_loss = mean_loss(params)
        t_trained = time.perf_counter()
        say(f"final train loss {final_loss:.4f} (initial {initial_loss:.4f})")

        t0 = time.perf_counter()
        if run is not None:
            run.log_metric_series("train/loss", loss_curve)
            run.log_metrics({"train/initial_loss": initial_loss, "train/final_loss": final_loss,
                             "train/seconds": t_trained - t_train - t_save}, step=config.steps)
            run.log_artifacts(saved[-1], f"checkpoint/{saved[-1].name}")
            run.set_tags({"hvla.checkpoint": ckpt.checkpoint_key(config.config_name, config.exp_name,
                                                                 config.steps)})
            run.finish("FINISHED")
        t_mlflow = time.perf_counter() - t0
    except BaseException:
        if run is not None:
            run.finish("FAILED")
        raise
    finally:
        if prefetch is not None:
            prefetch.close()

    seconds = time.perf_counter() - t_start
    return TrainResult(
        step_dir=saved[-1], final_loss=final_loss, initial_loss=initial_loss, loss_curve=loss_curve,
        mlflow_run_id=run.run_id if run is not None else None, num_train_frames=n, seconds=seconds,
        timings={"load": t_loaded - t_start, "train": t_trained - t_train - t_save, "save": t_save,
                 "mlflow": t_mlflow},
        checkpoint_dirs=saved, num_params=count_params(params), train_episode_ids=episode_ids,
    )


__all__ = ["TrainConfig", "TrainConfigDocument", "TrainConfigError", "TrainResult", "train_policy", "check_training_rights", "TRAINING_USE"]
