"""The training read path: a Robo-DM cache split decoded once into a local frame store, read in
random-access minibatches with bounded memory.

Why: decoding the cache's video on every step (robodm's ``Trajectory.load`` decodes ~1,600
frames/s of two 96 × 128 cameras on one core) cannot feed training at ≥ 10 × LeRobot's loader, and
holding every decoded frame in RAM (the previous path, 61–140 KB per frame) grows with the release.
So each ``.vla`` of the split is decoded **once per cache version** (:func:`open_frame_store`:
robodm's own loader, one episode at a time, with the checks of
:func:`~hvla_platform.lib.training.data.load_episode`) into flat files laid out by global frame
index, and minibatches are read from them with ``os.preadv`` straight into the batch arrays.
``preadv`` (not ``mmap``) keeps the process's RSS flat: the kernel's page cache holds the hot file
pages, and they are not charged to the process, whatever the store's size.

Store layout (``<store_root>/<split>-<fingerprint>/``; N frames of E episodes, in manifest order)::

    meta.json            format, fingerprint, split, cameras, shapes, dims, episodes
                         (episode_id, task, start, length, vla_path)
    state.f32            (N, D) float32 raw state, row-major
    action.f32           (N, A) float32 raw actions
    images-<camera>.u8   (N, H, W, 3) uint8, one file per camera

The fingerprint is the sha256 of the cache's ``manifest.parquet`` bytes (which name every ``.vla``,
its size and the release version), the split, the cameras and :data:`STORE_FORMAT`: a new cache
version gets a new store, an unchanged one reuses it. A store is written to a temporary directory
and renamed when complete (a crashed build leaves no store that looks complete).

A sample is what :func:`~hvla_platform.lib.training.data.stack_frames` gives for frame ``t`` of its
episode: ``state[t]``, each camera's image at ``t``, the action chunk ``a_t .. a_{t+H-1}`` padded
with the episode's last action and the mask of real targets
(:func:`~hvla_platform.lib.training.data.action_chunks`), and the position of the frame's episode
task among the store's sorted distinct tasks (:attr:`FrameStore.tasks`; the task comes from
``meta.json``, so the prompt needs no new store file and no format change). Memory: the episode offsets
((E + 1,) int64) plus the batches in flight (:class:`BatchPrefetcher`: at most ``depth`` read ahead,
one being read, one being used).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from hvla_platform.lib.formats.robodm_manifest import MANIFEST_FILE
from hvla_platform.lib.training.data import SPLITS, CacheError, check_same_layout, load_episode, read_manifest

#: Version of the store layout (part of the fingerprint).
STORE_FORMAT = 1
META_FILE = "meta.json"


@dataclass(frozen=True)
class StoreEpisode:
    """One episode of a store: frames ``start .. start + length - 1``."""

    episode_id: str
    task: str
    start: int
    length: int
    vla_path: str


@dataclass
class Batch:
    """A minibatch of training samples (B = ``len(index)``).

    Attributes:
        index: (B,) int64 global frame indices (0 ≤ i < N).
        state: (B, D) float32 raw state.
        images: camera → (B, H, W, 3) uint8 raw images.
        chunks: (B, Hz, A) float32 raw action chunks (padded with the episode's last action).
        valid: (B, Hz) bool, True where the chunk target is real rather than padding.
        task_index: (B,) int64 position of each frame's episode task in the store's
            :attr:`FrameStore.tasks` (sorted distinct task instructions).
    """

    index: np.ndarray
    state: np.ndarray
    images: dict[str, np.ndarray]
    chunks: np.ndarray
    valid: np.ndarray
    task_index: np.ndarray


def store_fingerprint(cache_dir: str | Path, split: str, cameras: Sequence[str] | None) -> str:
    """Hex sha256 identifying the store of ``split`` / ``cameras`` of a cache version (module docstring).

    Raises:
        CacheError: the cache has no ``manifest.parquet``.
    """
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.is_file():
        raise CacheError(f"no {MANIFEST_FILE} in Robo-DM cache {cache_dir}")
    h = hashlib.sha256(path.read_bytes())
    h.update(json.dumps({"split": split, "cameras": None if cameras is None else list(cameras),
                         "format": STORE_FORMAT}, sort_keys=True).encode())
    return h.hexdigest()


def _append(f, arr: np.ndarray) -> None:
    f.write(np.ascontiguousarray(arr).tobytes())


def _build(cache_dir: Path, rows: list[dict], cameras: Sequence[str] | None, out: Path, meta: dict[str, Any]) -> None:
    """Decode the episodes of ``rows`` one at a time into the store files under ``out``."""
    files: dict[str, Any] = {}
    episodes: list[dict[str, Any]] = []
    start = 0
    ref = None
    try:
        for row in rows:
            ep = load_episode(cache_dir, row, cameras)  # robodm's loader + the cache's checks
            if ref is None:
                ref = ep
                cameras = list(ep.images)
                files["state"] = open(out / "state.f32", "wb")
                files["action"] = open(out / "action.f32", "wb")
                for cam in cameras:
                    files[cam] = open(out / f"images-{cam}.u8", "wb")
                meta.update(cameras=list(cameras), state_dim=int(ep.state.shape[1]),
                            action_dim=int(ep.actions.shape[1]),
                            camera_shapes={c: list(ep.images[c].shape[1:]) for c in cameras})
            else:
                check_same_layout(ref, ep)
            _append(files["state"], ep.state.astype(np.float32))
            _append(files["action"], ep.actions.astype(np.float32))
            for cam in cameras:
                _append(files[cam], ep.images[cam])
            episodes.append({"episode_id": ep.episode_id, "task": ep.task, "start": start, "length": ep.length,
                             "vla_path": ep.vla_path.name})
            start += ep.length
            del ep  # one decoded episode at a time
    finally:
        for f in files.values():
            f.close()
    meta.update(num_frames=start, episodes=episodes)
    (out / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))


def open_frame_store(
    cache_dir: str | Path,
    store_root: str | Path,
    *,
    split: str = "train",
    cameras: Sequence[str] | None = None,
    log: Any = None,
) -> "FrameStore":
    """The frame store of ``split`` of a Robo-DM cache under ``store_root``, built if absent.

    Args:
        cache_dir: Robo-DM cache (``episode_*.vla`` + ``manifest.parquet``).
        store_root: directory holding stores (created if missing); a store of the same fingerprint
            already there is reused, not rebuilt.
        split: ``train`` or ``heldout``.
        cameras: cameras to store, in this order; None: every camera of the files, sorted by name.
        log: optional callback taking one line.

    Returns:
        an open :class:`FrameStore` (close it, or use it as a context manager).

    Raises:
        CacheError: unknown or empty split, a missing/malformed file, or episodes that disagree on
            cameras, dimensions or image sizes (the checks and messages of
            :func:`~hvla_platform.lib.training.data.load_split`).
    """
    if split not in SPLITS:
        raise CacheError(f"split must be one of {SPLITS}, got {split!r}")
    cache_dir = Path(cache_dir)
    fp = store_fingerprint(cache_dir, split, cameras)
    root = Path(store_root)
    final = root / f"{split}-{fp[:20]}"
    if not (final / META_FILE).is_file():
        rows = [r for r in read_manifest(cache_dir) if r["split"] == split]
        if not rows:
            raise CacheError(f"Robo-DM cache {cache_dir} has no '{split}' episodes")
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
        try:
            _build(cache_dir, rows, cameras, tmp, {"format": STORE_FORMAT, "fingerprint": fp, "split": split,
                                                   "cache_manifest": MANIFEST_FILE})
            try:
                tmp.rename(final)
            except OSError:  # another process built the same store meanwhile: use theirs
                if not (final / META_FILE).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if log:
            log(f"decoded {len(rows)} {split} episodes of {cache_dir.name} into frame store {final}")
    return FrameStore(final)


class FrameStore:
    """Read side of a frame store (module docstring). Thread-safe for concurrent :meth:`read_batch`.

    Attributes:
        root: the store directory.
        num_frames: N.
        cameras: camera names, in input order.
        camera_shapes: camera → (H, W, 3).
        state_dim, action_dim: D, A.
        episodes: :class:`StoreEpisode` list in frame order.

    Raises:
        CacheError: the directory is not a complete store of this format.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            meta = json.loads((self.root / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise CacheError(f"{self.root} is not a complete frame store: {exc}") from exc
        if meta.get("format") != STORE_FORMAT:
            raise CacheError(f"{self.root}: frame store format {meta.get('format')}, expected {STORE_FORMAT}")
        self.meta = meta
        self.num_frames = int(meta["num_frames"])
        self.cameras: list[str] = list(meta["cameras"])
        self.camera_shapes = {c: tuple(int(v) for v in s) for c, s in meta["camera_shapes"].items()}
        self.state_dim, self.action_dim = int(meta["state_dim"]), int(meta["action_dim"])
        self.episodes = [StoreEpisode(**e) for e in meta["episodes"]]
        self._starts = np.asarray([e.start for e in self.episodes], np.int64)
        self._ends = np.asarray([e.start + e.length for e in self.episodes], np.int64)
        tasks = self.tasks
        self._episode_task = np.asarray([tasks.index(e.task) for e in self.episodes], np.int64)
        self._fds: dict[str, int] = {}
        names = {"state": "state.f32", "action": "action.f32", **{c: f"images-{c}.u8" for c in self.cameras}}
        try:
            for key, name in names.items():
                self._fds[key] = os.open(self.root / name, os.O_RDONLY)
        except OSError as exc:
            self.close()
            raise CacheError(f"{self.root}: {exc}") from exc
        self._frame_bytes = {c: int(np.prod(self.camera_shapes[c])) for c in self.cameras}

    @property
    def episode_ids(self) -> list[str]:
        """Episode ids in store order."""
        return [e.episode_id for e in self.episodes]

    @property
    def tasks(self) -> list[str]:
        """Distinct tasks, sorted."""
        return sorted({e.task for e in self.episodes})

    def episode_of(self, index: np.ndarray) -> np.ndarray:
        """(B,) int64 position in :attr:`episodes` of each global frame index."""
        return np.searchsorted(self._starts, np.asarray(index, np.int64), side="right") - 1

    def _read_into(self, key: str, view: np.ndarray, offset: int) -> None:
        mv = memoryview(view).cast("B")
        got = os.preadv(self._fds[key], [mv], offset)
        if got != mv.nbytes:
            raise CacheError(f"{self.root}: short read of {key} at byte {offset} ({got} of {mv.nbytes})")

    def read_batch(self, index: Sequence[int] | np.ndarray, horizon: int) -> Batch:
        """The samples of global frame indices ``index`` (any order, repeats allowed).

        Reads are issued in ascending frame order (sequential where indices are close) and land in
        the row of each index.

        Raises:
            ValueError: ``horizon`` < 1 or an index out of ``[0, N)``.
            CacheError: a store file is shorter than its metadata says.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        idx = np.asarray(index, np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= self.num_frames)):
            raise ValueError(f"frame indices must be a 1-d array in [0, {self.num_frames})")
        b, d, a = idx.shape[0], self.state_dim, self.action_dim
        state = np.empty((b, d), np.float32)
        chunks = np.empty((b, horizon, a), np.float32)
        valid = np.zeros((b, horizon), bool)
        images = {c: np.empty((b, *self.camera_shapes[c]), np.uint8) for c in self.cameras}
        episode = self.episode_of(idx)
        ends = self._ends[episode]
        for row in np.argsort(idx, kind="stable"):
            t = int(idx[row])
            n = min(horizon, int(ends[row]) - t)
            self._read_into("state", state[row], t * d * 4)
            self._read_into("action", chunks[row, :n], t * a * 4)
            if n < horizon:
                chunks[row, n:] = chunks[row, n - 1]
            valid[row, :n] = True
            for c in self.cameras:
                self._read_into(c, images[c][row], t * self._frame_bytes[c])
        return Batch(index=idx, state=state, images=images, chunks=chunks, valid=valid,
                     task_index=self._episode_task[episode])

    def close(self) -> None:
        """Close the store's files."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __enter__(self) -> "FrameStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def uniform_batches(num_frames: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless minibatches of ``batch_size`` indices drawn uniformly with replacement from
    ``[0, num_frames)`` -- ``rng.integers(0, num_frames, size=batch_size)``, the draws training
    made before the frame store (so the same seed gives the same batches)."""
    while True:
        yield rng.integers(0, num_frames, size=batch_size).astype(np.int64)


def epoch_batches(num_frames: int, batch_size: int, rng: np.random.Generator, *, epochs: int = 1) -> Iterator[np.ndarray]:
    """Each frame once per epoch in a random order (``rng.permutation``), ``batch_size`` at a time
    (the last batch of an epoch may be smaller): what a shuffled ``torch`` DataLoader does."""
    for _ in range(epochs):
        perm = rng.permutation(num_frames)
        for i in range(0, num_frames, batch_size):
            yield perm[i:i + batch_size].astype(np.int64)


_END = object()


class BatchPrefetcher:
    """Read :class:`Batch` es of a :class:`FrameStore` in a background thread, ``depth`` ahead.

    ``os.preadv`` releases the GIL, so the reads overlap the training step. At most ``depth``
    finished batches wait in the queue, one is being read and one is held by the consumer: memory is
    bounded by ``depth + 2`` batches whatever the store's size. :attr:`max_ahead` records the most
    index batches taken from ``index_batches`` but not yet handed to the consumer (≤ ``depth + 1``).
    Iterate it; :meth:`close` (or the context manager) stops the thread.

    Raises (from ``next``):
        whatever the reading thread raised (e.g. :class:`CacheError`).
    """

    def __init__(self, store: FrameStore, index_batches: Iterator[np.ndarray], horizon: int, *, depth: int = 4):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.store, self.horizon, self.depth = store, int(horizon), int(depth)
        self._indices = index_batches
        self._queue: queue.Queue = queue.Queue(maxsize=self.depth)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._taken = 0
        self._given = 0
        self.max_ahead = 0
        self._thread = threading.Thread(target=self._run, name="frame-store-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for idx in self._indices:
                if self._stop.is_set():
                    return
                with self._lock:
                    self._taken += 1
                    self.max_ahead = max(self.max_ahead, self._taken - self._given)
                if not self._put(self.store.read_batch(idx, self.horizon)):
                    return
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            self._put(exc)

    def __iter__(self) -> "BatchPrefetcher":
        return self

    def __next__(self) -> Batch:
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # stay exhausted
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        with self._lock:
            self._given += 1
        return item

    def close(self) -> None:
        """Stop the reading thread and drop the batches read ahead."""
        self._stop.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(timeout=10)

    def __enter__(self) -> "BatchPrefetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
