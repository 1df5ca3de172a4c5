"""LeRobot's own trainer as a training backend: ``lerobot-train`` (LeRobot 0.4.4's
``lerobot.scripts.lerobot_train``) run as a subprocess of this venv's Python on a release's train
split, its checkpoint published in the same form as the JAX one.

What runs (docs/training.md, "LeRobot's trainer"):

* the release (``lerobot/<repo_id>/<release>/``, LeRobot v3.0) is taken from the lake; LeRobot reads
  it from a private working copy (``meta/`` copied, ``data/`` and ``videos/`` hard-linked, or
  copied across file systems), so nothing LeRobot does can change the lake;
* ``--dataset.episodes`` = the release's train episode indices: held-out episodes are never read;
* normalisation: LeRobot normalises with the dataset's ``meta/stats.json`` whatever
  ``--dataset.episodes`` says (``lerobot.datasets.factory.make_dataset`` →
  ``LeRobotDatasetMetadata.stats``; ``lerobot_train.py`` passes ``dataset.meta.stats`` to
  ``make_pre_post_processors``). Our releases write the train split's stats there
  (:mod:`hvla_platform.lib.dataset.lerobot_release`); :func:`check_train_only_stats` refuses a
  release whose ``stats.json`` counts a different number of frames than its train episodes have.
  Camera features use ImageNet's mean/std (LeRobot's ``use_imagenet_stats``, on by default);
* offline: ``HF_HUB_OFFLINE=1``, ``HF_DATASETS_OFFLINE=1``, ``--wandb.enable=false``,
  ``--policy.push_to_hub=false``, ``--policy.pretrained_backbone_weights=null`` (ACT and diffusion
  otherwise download ImageNet ResNet-18 weights): the vision backbone trains from scratch;
* on CPU (``--policy.device=cpu``), ``--num_workers=0``, ``--log_freq=1`` (every step's loss is
  logged and parsed into the loss curve);
* steps, batch size, seed and learning rate (``--policy.optimizer_lr``) from the
  :class:`~hvla_platform.lib.training.train.TrainConfig`; the action chunk from its
  ``action_horizon`` (:func:`chunk_args`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, publish_if_changed, require_manifest)
from hvla_platform.lib.core.rights import RightsError
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.core.tracking import TrackedRun
from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.training import checkpoint as ckpt
from hvla_platform.lib.training.data_summary import training_data_summary
from hvla_platform.lib.training.train import check_training_rights

#: Training backends of ``hvla train --backend`` / the ``checkpoint`` asset's ``backend``.
BACKENDS = ("jax", "lerobot")
#: LeRobot policy types the lerobot backend trains (``--policy.type``).
LEROBOT_POLICIES = ("act", "diffusion")
#: What ``config.json`` says a LeRobot checkpoint was trained with.
LEROBOT_BACKEND = "lerobot"
#: LeRobot's ``pretrained_model`` folder inside our checkpoint: ``params/``, the directory every
#: checkpoint keeps its weights in (lib/training/checkpoint.py ``REQUIRED_FILES``); load it with
#: LeRobot's ``from_pretrained`` or ``lerobot-train --policy.path=<checkpoint>/params``.
PRETRAINED_DIR = "params"
#: Diffusion: observations per prediction (LeRobot's default ``n_obs_steps``).
DIFFUSION_OBS_STEPS = 2
#: Diffusion: the U-Net downsamples the horizon by ``2 ** len(down_dims)`` (default 3 levels → 8);
#: the horizon must be a multiple of it (``DiffusionConfig.__post_init__``).
DIFFUSION_HORIZON_MULTIPLE = 8
#: What the scratch directory of a training run is called in the checkpoint's files.
WORK_PLACEHOLDER = "<work>"
#: Lines of lerobot-train's output quoted when it fails.
ERROR_TAIL_LINES = 30

_LOSS_RE = re.compile(r"\bstep:(\S+) smpl:\S+ ep:\S+ epch:\S+ loss:([-+0-9.eE]+|nan|inf)")


class BackendError(ValueError):
    """An unknown training backend or LeRobot policy type, or a policy given to a backend that
    takes none."""


class LeRobotTrainError(RuntimeError):
    """``lerobot-train`` exited non-zero or logged a different number of steps than asked."""


def check_backend(backend: str, lerobot_policy: str | None) -> None:
    """Validate a backend and a LeRobot policy type (required for ``lerobot``; ``None`` allowed
    for ``jax``, which ignores it).

    Raises:
        BackendError: unknown backend or policy type (with the closest valid name).
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown training backend {backend!r}{did_you_mean(backend, BACKENDS)}; "
                         f"backends: {', '.join(BACKENDS)}")
    if (backend == LEROBOT_BACKEND or lerobot_policy is not None) and lerobot_policy not in LEROBOT_POLICIES:
        raise BackendError(f"unknown LeRobot policy {lerobot_policy!r}{did_you_mean(str(lerobot_policy), LEROBOT_POLICIES)}; "
                         f"the lerobot backend trains: {', '.join(LEROBOT_POLICIES)}")


def chunk_args(policy: str, action_horizon: int) -> dict[str, int]:
    """LeRobot policy options that make the policy return chunks of ``action_horizon`` actions.

    * ``act``: ``chunk_size = n_action_steps = action_horizon`` (ACT predicts ``chunk_size``
      actions from the current observation).
    * ``diffusion``: ``n_obs_steps = 2`` (LeRobot's default), ``n_action_steps = action_horizon``
      and ``horizon`` = the smallest multiple of 8 (the U-Net's downsampling) that is
      ``>= action_horizon + n_obs_steps - 1`` (LeRobot requires ``n_action_steps <= horizon -
      n_obs_steps + 1``); ``drop_n_last_frames = horizon - n_action_steps - n_obs_steps + 1``
      as LeRobot's config comment prescribes. H = 10 gives ``horizon = 16``.

    Raises:
        ValueError: unknown policy or ``action_horizon < 1``.
    """
    check_backend(LEROBOT_BACKEND, policy)
    h = int(action_horizon)
    if h < 1:
        raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
    if policy == "act":
        return {"chunk_size": h, "n_action_steps": h}
    need = h + DIFFUSION_OBS_STEPS - 1
    horizon = -(-need // DIFFUSION_HORIZON_MULTIPLE) * DIFFUSION_HORIZON_MULTIPLE
    return {"n_obs_steps": DIFFUSION_OBS_STEPS, "horizon": horizon, "n_action_steps": h,
            "drop_n_last_frames": horizon - h - DIFFUSION_OBS_STEPS + 1}


def lerobot_train_argv(*, repo_id: str, dataset_root: str | Path, output_dir: str | Path, policy: str,
                       episodes: Sequence[int], steps: int, batch_size: int, seed: int, learning_rate: float,
                       action_horizon: int, python: str | None = None) -> list[str]:
    """The command line of one ``lerobot-train`` run (LeRobot 0.4.4's draccus options).

    ``python -m lerobot.scripts.lerobot_train`` is what the ``lerobot-train`` console script runs;
    the module form pins the interpreter to ``python`` (default: this process's).
    """
    chunk = chunk_args(policy, action_horizon)
    argv = [python or sys.executable, "-m", "lerobot.scripts.lerobot_train",
            f"--dataset.repo_id={repo_id}", f"--dataset.root={dataset_root}",
            f"--dataset.episodes=[{','.join(str(int(e)) for e in episodes)}]",
            f"--policy.type={policy}", "--policy.device=cpu", "--policy.push_to_hub=false",
            "--policy.pretrained_backbone_weights=null", f"--policy.optimizer_lr={float(learning_rate)!r}",
            *[f"--policy.{k}={v}" for k, v in chunk.items()],
            # diffusion's preset warms the learning rate up over 500 steps, longer than a CPU run
            *([f"--policy.scheduler_warmup_steps={warmup_steps(policy, steps)}"] if policy == "diffusion" else []),
            f"--steps={int(steps)}", f"--batch_size={int(batch_size)}", f"--seed={int(seed)}",
            "--num_workers=0", "--log_freq=1", f"--save_freq={int(steps)}", "--eval_freq=0",
            "--wandb.enable=false", f"--output_dir={output_dir}"]
    return argv


def warmup_steps(policy: str, steps: int) -> int | None:
    """Diffusion's learning-rate warm-up: a tenth of the run (at least 1 step) instead of LeRobot's
    500-step preset, which a minutes-long CPU run would never finish; ``None`` for ACT (constant
    learning rate, no scheduler)."""
    return max(1, int(steps) // 10) if policy == "diffusion" else None


def summary_losses(losses: Sequence[float]) -> tuple[float, float]:
    """``(initial, final)`` loss of a LeRobot run: step 1's minibatch loss, and the mean of the last
    ``max(1, steps // 10)`` steps' (one minibatch is noisy; LeRobot logs no full-data loss)."""
    if not losses:
        raise ValueError("no losses")
    k = max(1, len(losses) // 10)
    return float(losses[0]), float(sum(losses[-k:]) / k)


def parse_losses(text: str) -> list[float]:
    """Per-step losses from lerobot-train's log (``step:<n> smpl:… loss:<x> …``, one line per step
    with ``--log_freq=1``; LeRobot prints the loss with 3 decimals), in step order."""
    return [float(m.group(2)) for m in _LOSS_RE.finditer(text)]


def offline_env(hf_home: str | Path) -> dict[str, str]:
    """The environment lerobot-train runs in: no hub, no Hugging Face datasets download, caches
    under ``hf_home``, no wandb, the project's modules not importable (``PYTHONPATH`` dropped)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(hf_home), WANDB_MODE="disabled",
               TOKENIZERS_PARALLELISM="false")
    return env


def working_copy(release_dir: str | Path, dest: str | Path) -> Path:
    """A copy of a LeRobot release LeRobot may read (and write caches next to) without touching
    the original: ``meta/`` and top-level files copied, ``data/`` and ``videos/`` hard-linked
    (copied when the two directories are on different file systems).

    Returns:
        ``dest``.
    """
    src, dest = Path(release_dir), Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    for child in src.iterdir():
        if child.name in ("data", "videos"):
            try:
                shutil.copytree(child, dest / child.name, copy_function=os.link)
            except OSError:
                shutil.rmtree(dest / child.name, ignore_errors=True)
                shutil.copytree(child, dest / child.name)
        elif child.is_dir():
            shutil.copytree(child, dest / child.name)
        else:
            shutil.copy2(child, dest / child.name)
    return dest


def _episode_table(release_dir: Path) -> list[dict[str, Any]]:
    """Rows of the release's ``meta/episodes/*.parquet`` (episode_index, length, tasks), sorted."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    rows: list[dict[str, Any]] = []
    for f in sorted((release_dir / "meta" / "episodes").rglob("*.parquet")):
        rows += pq.read_table(f, columns=["episode_index", "length", "tasks"]).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def check_train_only_stats(release_dir: str | Path, train_episode_indices: Sequence[int]) -> int:
    """Refuse a release whose ``meta/stats.json`` was not computed from exactly its train episodes
    (LeRobot normalises with that file whatever ``--dataset.episodes`` selects).

    Returns:
        the number of train frames.

    Raises:
        ValueError: ``stats.json`` lacks ``observation.state``/``action`` or counts a different
            number of frames than the train episodes hold.
    """
    release_dir = Path(release_dir)
    stats = json.loads((release_dir / "meta" / "stats.json").read_text())
    lengths = {int(r["episode_index"]): int(r["length"]) for r in _episode_table(release_dir)}
    n_train = sum(lengths[int(i)] for i in train_episode_indices)
    for key in ("observation.state", "action"):
        if key not in stats:
            raise ValueError(f"{release_dir}/meta/stats.json has no {key!r} stats")
        count = int(round(float(stats[key]["count"][0] if isinstance(stats[key]["count"], list)
                                else stats[key]["count"])))
        if count != n_train:
            raise ValueError(f"{release_dir}/meta/stats.json counts {count} frames for {key!r}, but the train "
                             f"episodes {list(train_episode_indices)} hold {n_train}: LeRobot would normalise with "
                             "stats that are not the train split's; rebuild the release")
    return n_train


def train_tasks(release_dir: str | Path, train_episode_indices: Sequence[int]) -> list[str]:
    """Sorted task strings of the train episodes (``meta/episodes``' ``tasks`` column)."""
    want = {int(i) for i in train_episode_indices}
    return sorted({t for r in _episode_table(Path(release_dir)) if int(r["episode_index"]) in want
                   for t in (r["tasks"] or [])})


@dataclass
class LeRobotRun:
    """Outcome of :func:`run_lerobot_train`.

    Attributes:
        pretrained_dir: LeRobot's ``checkpoints/<steps>/pretrained_model`` folder.
        losses: per-step minibatch loss as LeRobot logged it (``losses[i]`` is step ``i + 1``).
        seconds: wall time of the subprocess.
        argv: the command line (paths as given).
        log_path: lerobot-train's combined stdout/stderr.
    """

    pretrained_dir: Path
    losses: list[float]
    seconds: float
    argv: list[str] = field(default_factory=list)
    log_path: Path | None = None


def run_lerobot_train(argv: Sequence[str], *, workdir: str | Path, steps: int,
                      log: Callable[[str], None] | None = None, log_every: int = 50,
                      poll_seconds: float = 1.0) -> LeRobotRun:
    """Run lerobot-train (``argv`` from :func:`lerobot_train_argv`) offline in ``workdir`` and
    collect its loss curve and ``pretrained_model`` folder. While it runs, every ``log_every``-th
    step's loss (and the last step's) is passed to ``log`` as it is written.

    Raises:
        LeRobotTrainError: non-zero exit (the message quotes the last lines of its output), fewer
            or more logged steps than ``steps``, or no ``pretrained_model`` folder.
    """
    say = log or (lambda _m: None)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "lerobot-train.log"
    out_dir = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--output_dir=")))
    say("running LeRobot's trainer: " + " ".join(str(a) for a in argv[1:]))
    t0 = time.perf_counter()
    seen = 0

    def progress() -> None:
        nonlocal seen
        losses = parse_losses(log_path.read_text(errors="replace"))
        for i in range(seen, len(losses)):
            if (i + 1) % max(1, int(log_every)) == 0 or i + 1 == steps:
                say(f"lerobot-train step {i + 1}/{steps} loss {losses[i]:.3f} ({time.perf_counter() - t0:.0f}s)")
        seen = len(losses)

    with open(log_path, "w") as fh:
        proc = subprocess.Popen(list(argv), cwd=workdir, env=offline_env(workdir / "hf_home"),
                                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    rc = proc.wait(timeout=poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    progress()
            progress()
        except BaseException:  # interrupted: never leave the trainer running
            proc.kill()
            proc.wait()
            raise
    seconds = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    if rc != 0:
        tail = "\n".join(text.strip().splitlines()[-ERROR_TAIL_LINES:])
        raise LeRobotTrainError(f"lerobot-train exited with status {rc} after {seconds:.0f}s; its last lines:\n{tail}")
    losses = parse_losses(text)
    if len(losses) != steps:
        raise LeRobotTrainError(f"lerobot-train logged {len(losses)} step losses for {steps} steps (log {log_path})")
    pretrained = out_dir / "checkpoints" / f"{int(steps):06d}" / "pretrained_model"
    if not (pretrained / "model.safetensors").is_file():
        raise LeRobotTrainError(f"lerobot-train finished without {pretrained}/model.safetensors")
    say(f"LeRobot trained {steps} steps in {seconds:.0f}s: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    return LeRobotRun(pretrained_dir=pretrained, losses=losses, seconds=seconds, argv=list(argv), log_path=log_path)


#: openpi's names for LeRobot's features in ``norm_stats.json``.
_OPENPI_KEYS = {"observation.state": "state", "action": "actions"}


def saved_norm_stats(pretrained_dir: str | Path) -> dict[str, Any]:
    """The stats LeRobot's saved pre-processor normalises with (its normalizer step's
    ``.safetensors`` state), as ``norm_stats.json``: openpi's ``{"norm_stats": {"state": {mean,
    std, q01, q99}, "actions": {...}}}`` plus ``"lerobot"``: every feature's stats as LeRobot holds
    them (lists) and ``"norm_map"``: the normalisation mode per feature type (ACT and diffusion:
    ``MEAN_STD`` / ``MIN_MAX``).

    Raises:
        ValueError: the pre-processor has no normalizer step or no state/action stats.
    """
    from safetensors.numpy import load_file  # noqa: PLC0415

    pretrained_dir = Path(pretrained_dir)
    pipe = json.loads((pretrained_dir / "policy_preprocessor.json").read_text())
    steps = [s for s in pipe["steps"] if s.get("registry_name") == "normalizer_processor" and s.get("state_file")]
    if not steps:
        raise ValueError(f"{pretrained_dir}/policy_preprocessor.json has no normalizer step with saved stats")
    flat = load_file(str(pretrained_dir / steps[0]["state_file"]))
    features = steps[0]["config"].get("features", {})
    lerobot: dict[str, dict[str, Any]] = {}
    for name, arr in flat.items():
        feat, stat = name.rsplit(".", 1)
        if feat in features:
            lerobot.setdefault(feat, {})[stat] = arr.astype("float64").reshape(-1).tolist() if stat != "count" \
                else int(arr.reshape(-1)[0])
    missing = [k for k in _OPENPI_KEYS if k not in lerobot]
    if missing:
        raise ValueError(f"{pretrained_dir}: the saved normalizer has no stats for {missing}")
    openpi = {ours: {s: lerobot[feat][s] for s in ("mean", "std", "q01", "q99") if s in lerobot[feat]}
              for feat, ours in _OPENPI_KEYS.items()}
    return {"norm_stats": openpi, "lerobot": lerobot, "norm_map": steps[0]["config"].get("norm_map", {})}


def lerobot_version() -> str:
    """The installed LeRobot's version (package metadata)."""
    from importlib.metadata import version  # noqa: PLC0415

    return version("lerobot")


def _num_params(safetensors_path: Path) -> int:
    """Parameter count of a ``model.safetensors`` (from its tensor shapes; nothing is loaded)."""
    from safetensors import safe_open  # noqa: PLC0415

    total = 0
    with safe_open(str(safetensors_path), framework="np") as f:
        for k in f.keys():
            n = 1
            for d in f.get_slice(k).get_shape():
                n *= int(d)
            total += n
    return total


def train_lerobot_experiment(lake: Any, cfg: Any, *, spec: Any, lerobot_policy: str, tracking_uri: str | None,
                             artifact_root: str | None = None, log: Callable[[str], None] | None = None,
                             norm_stats_release: str | None = None) -> Any:
    """Train ``cfg`` with LeRobot's trainer on the train split of release ``cfg.release`` and
    publish ``checkpoints/<config_name>/<exp_name>/<steps>/`` (called by
    :func:`~hvla_platform.lib.training.build.train_experiment` with ``backend="lerobot"``).

    ``cfg`` is a validated :class:`~hvla_platform.lib.training.train.TrainConfig` whose cameras
    are resolved (:func:`~hvla_platform.lib.training.build.resolve_cameras`); ``spec`` is the
    release version's :class:`~hvla_platform.lib.dataset.spec.ReleaseSpec`.

    The checkpoint holds ``params/`` (LeRobot's ``pretrained_model`` folder: ``model.safetensors``,
    ``config.json``, ``train_config.json`` and the pre/post-processor pipelines with their
    stats), ``norm_stats.json`` (:func:`saved_norm_stats`), ``config.json`` (``"backend":
    "lerobot"``, the policy type, names, cameras and shapes, action horizon, tasks, train episode
    ids), ``checkpoint_manifest.yaml``, ``loss_curve.json``, ``training_data_summary.md`` and
    ``lerobot-train.log``. One MLflow run (``hvla-training``) gets the params, the ``train/loss``
    series, ``train/initial_loss`` / ``train/final_loss`` (:func:`summary_losses`), the train episodes as a dataset input and the checkpoint's files except the
    weights.

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset is not materialized.
        RightsError: the release is flagged, or its rights do not allow ``internal_training`` or
            have expired.
        ValueError: unknown policy; ``cfg.cameras`` is not every camera of the release (LeRobot's
            ACT/diffusion use every camera feature); ``norm_stats_release`` names another release;
            the release's ``stats.json`` is not its train split's.
        LeRobotTrainError: lerobot-train failed (its last output lines in the message).
    """
    check_backend(LEROBOT_BACKEND, lerobot_policy)
    say = log or (lambda _m: None)
    if norm_stats_release not in (None, cfg.release):
        raise ValueError(f"the lerobot backend normalises with release {cfg.release}'s own train-split stats "
                         f"(meta/stats.json); norm_stats_release={norm_stats_release!r} is for the jax backend")
    if sorted(cfg.cameras) != sorted(spec.cameras):
        raise ValueError(f"the lerobot backend trains on every camera of release {cfg.release} {list(spec.cameras)} "
                         f"(LeRobot's {lerobot_policy} uses every camera feature), got cameras {list(cfg.cameras)}")
    prefix = lerobot_prefix(spec)
    src_m = require_manifest(lake, prefix, LeRobotDatasetManifest)
    flag = artifact_flags(lake, prefix)
    if flag:
        raise RightsError(f"{prefix} is flagged {flag['status']} ({flag['reason']}, consent {flag.get('consent')}); "
                          "train on the rebuilt release instead")
    rights = src_m.rights_obj
    check_training_rights(rights.to_dict())
    train_idx = [int(i) for i in src_m.train_episode_indices]
    train_ids = list(src_m.train_episode_ids)
    chunk = chunk_args(lerobot_policy, cfg.action_horizon)
    version = lerobot_version()
    config = {**cfg.to_dict(), "backend": LEROBOT_BACKEND, "lerobot_policy": lerobot_policy,
              "lerobot_version": version, "lerobot_chunk": chunk}
    key = ckpt.checkpoint_key(cfg.config_name, cfg.exp_name, cfg.steps)
    stats_ref = f"{prefix}/meta/stats.json"
    inputs = [InputRef(key=prefix, sha256=src_m.sha256(), kind="lerobot_dataset", episode_ids=train_ids)]

    def write(staging: Path) -> Any:
        t_start = time.perf_counter()
        work = staging.parent / "lerobot-work"
        with lake.local_artifact(prefix) as release_dir:
            n_train = check_train_only_stats(release_dir, train_idx)
            tasks = train_tasks(release_dir, train_idx)
            info = json.loads((Path(release_dir) / "meta" / "info.json").read_text())
            data_root = working_copy(release_dir, work / "dataset" / spec.repo_id)
        say(f"training LeRobot {version} {lerobot_policy} on {len(train_idx)} train episodes ({n_train} frames) "
            f"of {cfg.release}, held out: {list(src_m.heldout_episode_ids)}")
        argv = lerobot_train_argv(repo_id=spec.repo_id, dataset_root=data_root, output_dir=work / "output",
                                  policy=lerobot_policy, episodes=train_idx, steps=cfg.steps,
                                  batch_size=cfg.batch_size, seed=cfg.seed, learning_rate=cfg.learning_rate,
                                  action_horizon=cfg.action_horizon)
        run = None
        if tracking_uri:
            run = TrackedRun(tracking_uri, "hvla-training", run_name=cfg.exp_name, artifact_dir=artifact_root,
                             tags={"hvla.config_name": cfg.config_name, "hvla.exp_name": cfg.exp_name,
                                   "hvla.release": cfg.release, "hvla.backend": LEROBOT_BACKEND,
                                   "hvla.lerobot_policy": lerobot_policy})
        try:
            t_prep = time.perf_counter()
            res = run_lerobot_train(argv, workdir=work, steps=cfg.steps, log=say, log_every=cfg.log_every)
            t_trained = time.perf_counter()
            shutil.copytree(res.pretrained_dir, staging / PRETRAINED_DIR)
            shutil.copy2(res.log_path, staging / "lerobot-train.log")
            for f in (staging / PRETRAINED_DIR / "train_config.json", staging / "lerobot-train.log"):
                # nothing in a checkpoint names a local path: the scratch directory becomes "<work>"
                f.write_text(f.read_text(errors="replace").replace(str(work), WORK_PLACEHOLDER))
            norm_stats = saved_norm_stats(staging / PRETRAINED_DIR)
            num_params = _num_params(staging / PRETRAINED_DIR / "model.safetensors")
            feats = info["features"]
            cameras = list(cfg.cameras)
            camera_shapes = {c: [int(v) for v in feats[f"observation.images.{c}"]["shape"]] for c in cameras}
            state_dim, action_dim = int(feats["observation.state"]["shape"][0]), int(feats["action"]["shape"][0])
            (staging / ckpt.NORM_STATS_FILE).write_text(json.dumps(norm_stats, indent=2))
            (staging / ckpt.CONFIG_FILE).write_text(json.dumps({
                "backend": LEROBOT_BACKEND, "policy": lerobot_policy, "lerobot_version": version,
                "lerobot_chunk": chunk, "lerobot_argv": [a.replace(str(work), WORK_PLACEHOLDER) for a in argv[1:]],
                "train_config": cfg.to_dict(), "step": cfg.steps,
                "state_names": list(spec.state_joints), "action_names": list(spec.action_joints),
                "state_dim": state_dim, "action_dim": action_dim, "action_horizon": cfg.action_horizon,
                "cameras": cameras, "camera_shapes": camera_shapes, "num_train_frames": n_train,
                "train_episode_ids": train_ids, "train_episode_indices": train_idx, "tasks": tasks,
                "prompt_used": False, "num_params": num_params,
                "dataset": {"release": cfg.release, "repo_id": spec.repo_id, "source": prefix,
                            "norm_stats_ref": stats_ref}}, indent=2, sort_keys=True))
            (staging / ckpt.LOSS_CURVE_FILE).write_text(json.dumps(
                {"step": list(range(1, len(res.losses) + 1)), "loss": res.losses}))
            manifest = ckpt.build_checkpoint_manifest(
                config_name=cfg.config_name, exp_name=cfg.exp_name, step=cfg.steps,
                base_model=f"none (LeRobot {lerobot_policy} trained from scratch)", release=cfg.release,
                repo_id=spec.repo_id, train_episode_ids=train_ids, norm_stats_ref=stats_ref, rights=rights.to_dict(),
                extra={"backend": LEROBOT_BACKEND, "lerobot_policy": lerobot_policy})
            (staging / ckpt.MANIFEST_FILE).write_text(yaml_dump(manifest))
            (staging / "training_data_summary.md").write_text(training_data_summary(
                lake, release_manifest=src_m, spec=spec, checkpoint_key=key, train_episode_ids=train_ids,
                norm_stats_release=cfg.release, config=config))
            initial, final = summary_losses(res.losses)
            t0 = time.perf_counter()
            if run is not None:
                run.log_params({"train": cfg.to_dict(), "backend": LEROBOT_BACKEND, "lerobot_policy": lerobot_policy,
                                "lerobot_version": version, "lerobot": chunk, "num_params": num_params,
                                "num_train_frames": n_train, "num_train_episodes": len(train_idx),
                                "repo_id": spec.repo_id, "release": cfg.release})
                import pandas as pd  # noqa: PLC0415

                run.log_dataset(pd.DataFrame({"episode_id": train_ids, "episode_index": train_idx}),
                                name=cfg.release, source=prefix, context="training")
                run.log_metric_series("train/loss", res.losses)
                run.log_metrics({"train/initial_loss": initial, "train/final_loss": final,
                                 "train/seconds": res.seconds}, step=cfg.steps)
                small = work / "mlflow-artifacts"
                shutil.copytree(staging, small, ignore=shutil.ignore_patterns("model.safetensors"))
                run.log_artifacts(small, f"checkpoint/{cfg.steps}")
                run.set_tags({"hvla.checkpoint": key})
                run.finish("FINISHED")
            t_mlflow = time.perf_counter() - t0
        except BaseException:
            if run is not None:
                run.finish("FAILED")
            raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return Content(episode_ids=train_ids, extra={
            "experiment": cfg.exp_name, "config_name": cfg.config_name, "step": cfg.steps, "release": cfg.release,
            "repo_id": spec.repo_id, "initial_loss": initial, "final_loss": final,
            "mlflow_run_id": run.run_id if run is not None else None, "num_train_frames": n_train,
            "num_params": num_params, "train_seconds": res.seconds,
            "timings": {"prepare": t_prep - t_start, "train": t_trained - t_prep, "mlflow": t_mlflow},
            "serving_allowed": rights.serving_allowed(), "serving_blocked": rights.serving_blocked()})

    return publish_if_changed(lake, key, artifact_type="checkpoint", inputs=inputs, config=config, rights=rights,
                              write=write)


def yaml_dump(doc: Mapping[str, Any]) -> str:
    """``doc`` as YAML in insertion order (the checkpoint manifest's form)."""
    import yaml  # noqa: PLC0415

    return yaml.safe_dump(dict(doc), sort_keys=False)


__all__ = ["BACKENDS", "BackendError", "LEROBOT_BACKEND", "LEROBOT_POLICIES", "LeRobotRun", "LeRobotTrainError", "PRETRAINED_DIR",
           "check_backend", "check_train_only_stats", "chunk_args", "lerobot_train_argv", "offline_env",
           "parse_losses", "run_lerobot_train", "saved_norm_stats", "summary_losses", "train_lerobot_experiment", "train_tasks",
           "warmup_steps", "working_copy"]
