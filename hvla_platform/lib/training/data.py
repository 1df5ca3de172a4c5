"""Load a Robo-DM training cache into numpy arrays and build action-chunk training samples.

A cache directory (DESIGN.md: ``robodm-cache/<release>/``) holds ``episode_<NNNNNN>.vla`` files and
``manifest.parquet``. Each ``.vla`` file stores one frame per feature per time step:

* ``observation/state`` (D,) float32 — joint positions, radians;
* ``action`` (A,) float32 — commanded joint targets, radians;
* ``observation/locomotion_command`` (4,) float32 — only for robot profiles with locomotion; not
  used by the policy;
* ``observation/images/<camera>`` (H, W, 3) uint8, at the release's camera size.

D, A, the cameras and their sizes are the release's (its spec and robot profile): nothing here
assumes a robot. ``cameras=None`` means every camera the files hold.

``robodm.Trajectory(path).load(return_type="numpy")`` returns ``{name: (T, ...) array}``.
The manifest names each file's ``split`` (``train`` / ``heldout``); training reads ``train`` only,
offline evaluation ``heldout`` only. The cache is flat, so a manifest's ``vla_path`` (which may be
a lake key or an absolute path of the machine that built it) is looked up by its **file name**
inside ``cache_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from hvla_platform.lib.core import features
from hvla_platform.lib.core.compat import import_robodm
from hvla_platform.lib.core.tables import TableError
from hvla_platform.lib.formats.robodm_manifest import read_cache_manifest

STATE_KEY, ACTION_KEY = features.VLA_STATE, features.VLA_ACTION
LOCOMOTION_KEY, IMAGE_PREFIX = features.VLA_LOCOMOTION_COMMAND, features.VLA_IMAGE_PREFIX
SPLITS = ("train", "heldout")


class CacheError(ValueError):
    """The Robo-DM cache is missing, malformed or inconsistent with what was asked for."""


@dataclass
class Episode:
    """One episode of the cache, fully loaded.

    Attributes:
        episode_id: raw episode id (manifest ``episode_id``).
        task: task instruction (manifest ``task``).
        state: (T, D) float32 joint positions, radians.
        actions: (T, A) float32 joint targets, radians.
        images: camera name → (T, H, W, 3) uint8.
        vla_path: the ``.vla`` file read.
    """

    episode_id: str
    task: str
    state: np.ndarray
    actions: np.ndarray
    images: dict[str, np.ndarray]
    vla_path: Path

    @property
    def length(self) -> int:
        """Number of frames T."""
        return int(self.state.shape[0])


def read_manifest(cache_dir: str | Path) -> list[dict]:
    """Rows of the cache's ``manifest.parquet`` as dicts, in episode order
    (:func:`~hvla_platform.lib.formats.robodm_manifest.read_cache_manifest`).

    Raises:
        CacheError: the manifest is missing or does not match its schema
            (:func:`~hvla_platform.lib.core.tables.robodm_manifest_schema`: columns, dtypes, split
            ``train``/``heldout``, unique episode ids...); the message names the column and rows.
    """
    try:
        return read_cache_manifest(cache_dir)
    except FileNotFoundError as exc:
        raise CacheError(exc.strerror) from exc
    except TableError as exc:
        raise CacheError(str(exc)) from exc


def _load_vla(path: Path) -> dict[str, np.ndarray]:
    # compat.import_robodm keeps robodm from reconfiguring the host's root logger
    traj = import_robodm().Trajectory(str(path))
    try:
        return traj.load(return_type="numpy")
    finally:
        traj.close()  # read mode: only marks the trajectory closed


def load_episode(cache_dir: str | Path, row: dict, cameras: Sequence[str] | None = None) -> Episode:
    """Load one manifest row's ``.vla`` file.

    Args:
        cameras: cameras to load; None: every ``observation/images/<camera>`` stream of the file,
            sorted by name.

    Raises:
        CacheError: the file is missing, a required feature (state, action, each camera) is absent,
            features have different lengths, or shapes/dtypes are wrong.
    """
    path = Path(cache_dir) / Path(str(row["vla_path"])).name
    if not path.is_file():
        raise CacheError(f"episode file {path} (manifest vla_path {row['vla_path']!r}) does not exist")
    data = _load_vla(path)
    if cameras is None:
        cameras = sorted(k[len(IMAGE_PREFIX):] for k in data if k.startswith(IMAGE_PREFIX))
    needed = [STATE_KEY, ACTION_KEY] + [IMAGE_PREFIX + c for c in cameras]
    missing = [k for k in needed if k not in data]
    if missing:
        raise CacheError(f"{path.name} lacks feature(s) {missing}; has {sorted(data)}")
    lengths = {k: int(np.asarray(data[k]).shape[0]) for k in needed}
    if len(set(lengths.values())) != 1:
        raise CacheError(f"{path.name}: features have different frame counts {lengths}")
    state = np.asarray(data[STATE_KEY], dtype=np.float32)
    actions = np.asarray(data[ACTION_KEY], dtype=np.float32)
    if state.ndim != 2 or actions.ndim != 2:
        raise CacheError(f"{path.name}: state {state.shape} and action {actions.shape} must be (T, dim)")
    if state.shape[0] == 0:
        raise CacheError(f"{path.name} has no frames")
    images = {}
    for cam in cameras:
        img = np.asarray(data[IMAGE_PREFIX + cam])
        if img.ndim != 4 or img.shape[-1] != 3 or img.dtype != np.uint8:
            raise CacheError(f"{path.name}: camera {cam!r} must be (T, H, W, 3) uint8, got {img.shape} {img.dtype}")
        images[cam] = img
    if not (np.all(np.isfinite(state)) and np.all(np.isfinite(actions))):
        raise CacheError(f"{path.name}: state or action contains non-finite values")
    return Episode(str(row["episode_id"]), str(row["task"]), state, actions, images, path)


def load_split(cache_dir: str | Path, split: str, cameras: Sequence[str] | None = None) -> list[Episode]:
    """All episodes of ``split`` (``"train"`` or ``"heldout"``), in file-name order.

    Args:
        cameras: cameras to load; None: every camera of the files (sorted by name), which must be
            the same in every episode.

    Raises:
        CacheError: see :func:`read_manifest` / :func:`load_episode`; also when the split is empty
            or episodes disagree on state/action/image dimensions or on their cameras.
    """
    if split not in SPLITS:
        raise CacheError(f"split must be one of {SPLITS}, got {split!r}")
    rows = [r for r in read_manifest(cache_dir) if r["split"] == split]
    if not rows:
        raise CacheError(f"Robo-DM cache {cache_dir} has no '{split}' episodes")
    episodes = [load_episode(cache_dir, r, cameras) for r in rows]
    for ep in episodes[1:]:
        check_same_layout(episodes[0], ep)
    return episodes


def check_same_layout(ref: Episode, ep: Episode) -> None:
    """Refuse ``ep`` unless it has ``ref``'s cameras (same names, same (H, W, 3) frame size) and
    state/action dimensions: the episodes of one split are stacked into one batch layout.

    Raises:
        CacheError: naming both episodes and what differs.
    """
    if list(ep.images) != list(ref.images):
        raise CacheError(f"episode {ep.episode_id} has cameras {list(ep.images)}, episode {ref.episode_id} "
                         f"has {list(ref.images)}")
    if ep.state.shape[1] != ref.state.shape[1] or ep.actions.shape[1] != ref.actions.shape[1]:
        raise CacheError(
            f"episode {ep.episode_id} has state/action dims {ep.state.shape[1]}/{ep.actions.shape[1]}, "
            f"episode {ref.episode_id} has {ref.state.shape[1]}/{ref.actions.shape[1]}")
    for cam in ref.images:
        if ep.images[cam].shape[1:] != ref.images[cam].shape[1:]:
            raise CacheError(f"camera {cam!r} image size differs between episodes {ref.episode_id} "
                             f"{ref.images[cam].shape[1:]} and {ep.episode_id} {ep.images[cam].shape[1:]}")


def action_chunks(actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Future-action chunks of one episode.

    Args:
        actions: (T, A) actions of one episode.
        horizon: H ≥ 1.

    Returns:
        ``chunks`` (T, H, A) with ``chunks[t, k] = actions[min(t + k, T - 1)]`` (padded with the
        last action past the end, as openpi's LeRobot loader does via delta timestamps clamping) and
        ``valid`` (T, H) bool, True where ``t + k < T`` (a real, not padded, target).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    t = actions.shape[0]
    idx = np.minimum(np.arange(t)[:, None] + np.arange(horizon)[None, :], t - 1)
    valid = (np.arange(t)[:, None] + np.arange(horizon)[None, :]) < t
    return actions[idx], valid


@dataclass
class FrameArrays:
    """All frames of a set of episodes, flattened, as training/evaluation samples.

    Attributes:
        state: (N, D) float32 raw state.
        images: camera → (N, H, W, 3) uint8 raw images.
        chunks: (N, Hz, A) float32 raw target action chunks (see :func:`action_chunks`).
        valid: (N, Hz) bool, True where the chunk target is real rather than padding.
        episode_index: (N,) int, index of the episode in the input list.
        frame_index: (N,) int, frame index within its episode.
        episode_ids: ids of the episodes, by ``episode_index``.
    """

    state: np.ndarray
    images: dict[str, np.ndarray]
    chunks: np.ndarray
    valid: np.ndarray
    episode_index: np.ndarray
    frame_index: np.ndarray
    episode_ids: list[str]

    @property
    def num_frames(self) -> int:
        """N."""
        return int(self.state.shape[0])


def stack_frames(episodes: Sequence[Episode], horizon: int) -> FrameArrays:
    """Concatenate episodes into :class:`FrameArrays` with H-step action chunks per frame."""
    if not episodes:
        raise CacheError("no episodes to stack")
    cams = list(episodes[0].images)
    chunks, valid = zip(*(action_chunks(ep.actions, horizon) for ep in episodes))
    return FrameArrays(
        state=np.concatenate([ep.state for ep in episodes]),
        images={c: np.concatenate([ep.images[c] for ep in episodes]) for c in cams},
        chunks=np.concatenate(chunks).astype(np.float32),
        valid=np.concatenate(valid),
        episode_index=np.concatenate([np.full(ep.length, i) for i, ep in enumerate(episodes)]),
        frame_index=np.concatenate([np.arange(ep.length) for ep in episodes]),
        episode_ids=[ep.episode_id for ep in episodes],
    )
