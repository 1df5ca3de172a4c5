"""Write episodes into a ``LeRobotDataset`` (v3.0) with LeRobot's own writer, without its PNG
round trip, encoding cameras and episodes in parallel.

LeRobot 0.4.4's ``save_episode`` does, per episode: ``validate_episode_buffer``, global ``index``
and ``task_index`` (``meta.save_episode_tasks``), ``compute_episode_stats``, ``_save_episode_data``
(the frame rows into ``data/chunk-*/file-*.parquet``), ``_save_episode_video`` per camera (moves
or concatenates the episode's MP4 into ``videos/<key>/chunk-*/file-*.mp4`` and returns its
from/to timestamps) and ``meta.save_episode`` (``meta/episodes`` row with the per-episode stats,
``info.json`` totals, running ``stats.json``). :func:`save_episode` runs exactly those LeRobot
calls in that order; the only differences are where the frames come from:

- the episode's MP4s are already encoded (as with LeRobot's own parallel and streaming encoders)
  by :func:`~hvla_platform.lib.dataset.episode_video.encode_frames` straight from the HDF5, with
  LeRobot's codec settings, instead of PNG files → ``encode_video_frames``;
- they are placed into the dataset's video files by :class:`VideoPlacer`, which takes
  ``_save_episode_video``'s decisions but concatenates in batches;
- image statistics come with them, computed on a sample of frames (that module's docstring);
  the low-dimensional features' statistics are LeRobot's ``compute_episode_stats``.

:func:`write_episodes` runs the encoders of the next episodes in worker processes
(:mod:`hvla_platform.lib.dataset.encode_worker`) while the calling thread writes the
finished episodes in order, so LeRobot's files are written in the same order and with the same content as with one
thread: the output does not depend on the number of workers.

``new_file_at``: the episode index at which the frame rows start a new ``data`` file (LeRobot's
``_writer_closed_for_reading`` switch): the release starts its held-out episodes in their own
data file so that a later version can reuse the train episodes' files unchanged
(:mod:`hvla_platform.lib.dataset.lerobot_extend`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from hvla_platform.lib.dataset.encode_worker import EncoderPool
from hvla_platform.lib.dataset.episode_video import (
    IMAGE_STATS_FRAMES, CameraVideo, codec_options, encode_frames, image_stats, stats_sample_indices, video_duration_s)


def default_workers() -> int:
    """Encoder processes: the CPUs this process may run on (``os.sched_getaffinity``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class EpisodeFrames:
    """One episode to write: its HDF5 (for the cameras), its low-dimensional features and task.

    Attributes:
        path: episode HDF5.
        num_frames: T.
        task: the episode's task string (every frame's task).
        low_dim: LeRobot feature name → (T, D) float32 array (``observation.state``, ``action``, …).
        source: anything the caller wants back with the episode (e.g. its low-dimensional
            ``EpisodeData``); not written.
    """

    path: Path
    num_frames: int
    task: str
    low_dim: Mapping[str, np.ndarray]
    source: Any = None


_EMBED_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_image_embedding(dataset: Any) -> Iterator[None]:
    """Skip LeRobot's ``embed_images`` inside ``_save_episode_data`` when the dataset has no
    ``image`` feature (ours: cameras are ``video``). It is a per-row ``datasets.map`` of
    ``embed_table_storage``, which leaves a table without image/audio columns unchanged (the data
    rows and schema of the data files are identical with and without it, checked; only the schema
    metadata no longer carries the ``fingerprint`` of that map) and was 25 % of the build's main
    thread (py-spy). The module attribute is swapped under a lock and restored."""
    import lerobot.datasets.lerobot_dataset as lrd  # deferred: LeRobot import is slow

    if any(ft["dtype"] == "image" for ft in dataset.features.values()):
        yield
        return
    with _EMBED_LOCK:
        saved = lrd.embed_images
        lrd.embed_images = lambda ds: ds
        try:
            yield
        finally:
            lrd.embed_images = saved


class VideoPlacer:
    """Puts episode MP4s into a dataset's ``videos/<key>/chunk-*/file-*.mp4`` the way LeRobot
    0.4.4's ``_save_episode_video`` decides (first episode → file 0 of chunk 0; a new file with
    ``update_chunk_file_indices`` when the current file plus the episode would reach
    ``video_files_size_in_mb``; else appended, ``from_timestamp`` = the file's duration so far), but
    concatenates the appended episodes in batches with LeRobot's ``concatenate_video_files``
    (stream copy) instead of re-muxing the whole file once per episode (its cost grows with the
    file: 35 % of the build's main thread, py-spy). The decisions use the sum of the episode files'
    sizes for the file size (LeRobot: the concatenated file's size; they differ by container
    headers only). Call :meth:`flush` before the dataset is read.
    """

    def __init__(self, dataset: Any, batch: int = 64):
        self._ds = dataset
        self._batch = batch
        self._current: dict[str, tuple[int, int, float, float]] = {}  # key → chunk, file, MB, seconds
        self._pending: dict[str, list[Path]] = {}

    def place(self, key: str, episode_index: int, video: CameraVideo) -> dict[str, Any]:
        """Place one episode's MP4 (moved or queued; its directory is removed once placed);
        returns its ``videos/<key>/*`` metadata columns."""
        from lerobot.datasets.utils import update_chunk_file_indices  # deferred: LeRobot import is slow
        from lerobot.datasets.utils import write_info  # deferred: LeRobot import is slow

        meta = self._ds.meta
        size_mb = video.path.stat().st_size / (1024 * 1024)
        cur = self._current.get(key)
        if cur is None or cur[2] + size_mb >= meta.video_files_size_in_mb:
            if cur is None:
                chunk, file = 0, 0
            else:
                self._flush(key)
                chunk, file = update_chunk_file_indices(cur[0], cur[1], meta.chunks_size)
            dst = self._ds.root / meta.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(video.path), str(dst))
            shutil.rmtree(video.path.parent, ignore_errors=True)
            start = 0.0
            self._current[key] = (chunk, file, size_mb, video.duration_s)
            if episode_index == 0:
                meta.update_video_info(key)
                write_info(meta.info, meta.root)
        else:
            chunk, file, mb, start = cur
            self._pending.setdefault(key, []).append(video.path)
            self._current[key] = (chunk, file, mb + size_mb, start + video.duration_s)
            if len(self._pending[key]) >= self._batch:
                self._flush(key)
        return {f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                f"videos/{key}/from_timestamp": start, f"videos/{key}/to_timestamp": start + video.duration_s}

    def _flush(self, key: str) -> None:
        from lerobot.datasets.video_utils import concatenate_video_files  # deferred: LeRobot import is slow

        pending = self._pending.pop(key, [])
        if not pending:
            return
        chunk, file = self._current[key][:2]
        path = self._ds.root / self._ds.meta.video_path.format(video_key=key, chunk_index=chunk, file_index=file)
        concatenate_video_files([path, *pending], path)
        for p in pending:
            shutil.rmtree(p.parent, ignore_errors=True)

    def flush(self) -> None:
        """Concatenate every queued episode into its file."""
        for key in list(self._pending):
            self._flush(key)


def save_episode(dataset: Any, episode: EpisodeFrames, videos: Mapping[str, CameraVideo], placer: VideoPlacer, *,
                 new_data_file: bool = False) -> dict[str, Any]:
    """Save one episode into ``dataset`` (a ``LeRobotDataset`` from ``LeRobotDataset.create``) the
    way LeRobot 0.4.4's ``save_episode`` does (module docstring), with its videos already encoded.

    Args:
        videos: video feature key → the episode's encoded camera (every video key of the dataset).
        placer: where the dataset's video files are (:class:`VideoPlacer`; flush it at the end).
        new_data_file: start a new ``data`` parquet file with this episode.

    Returns:
        the episode's LeRobot metadata (``data/*``, ``dataset_from_index``, ``videos/*`` columns).

    Raises:
        ValueError: LeRobot's ``validate_episode_buffer`` rejects the episode (feature set, no frames).
        KeyError: a video key has no encoded video.
    """
    from lerobot.datasets.compute_stats import compute_episode_stats  # deferred: LeRobot import is slow
    from lerobot.datasets.utils import validate_episode_buffer  # deferred: LeRobot import is slow

    feats = dataset.features
    n = episode.num_frames
    ep_index = dataset.meta.total_episodes
    buf = dataset.create_episode_buffer()
    buf["size"], buf["task"] = n, [episode.task] * n
    buf["frame_index"] = np.arange(n)
    buf["timestamp"] = np.arange(n) / dataset.fps  # what add_frame records: frame_index / fps
    for key, value in episode.low_dim.items():
        buf[key] = value
    video_keys = list(dataset.meta.video_keys)
    for key in video_keys:
        buf[key] = [None] * n  # no PNG paths: the frames are in videos[key]
    validate_episode_buffer(buf, dataset.meta.total_episodes, feats)
    buf.pop("size")
    buf.pop("task")
    buf["index"] = np.arange(dataset.meta.total_frames, dataset.meta.total_frames + n)
    buf["episode_index"] = np.full((n,), ep_index)
    dataset.meta.save_episode_tasks([episode.task])
    buf["task_index"] = np.full((n,), dataset.meta.get_task_index(episode.task))
    non_video = {k: v for k, v in buf.items() if feats[k]["dtype"] != "video"}
    low_stats = compute_episode_stats(non_video, {k: feats[k] for k in non_video})
    ep_stats = {k: (videos[k].stats if feats[k]["dtype"] == "video" else low_stats[k])
                for k in feats if k in low_stats or feats[k]["dtype"] == "video"}
    if new_data_file and dataset.latest_episode is not None:
        dataset._writer_closed_for_reading = True  # LeRobot's switch to a new data file
    with _no_image_embedding(dataset):
        metadata = dataset._save_episode_data(buf)
    for key in video_keys:
        metadata.update(placer.place(key, ep_index, videos[key]))
    dataset.meta.save_episode(ep_index, n, [episode.task], ep_stats, metadata)
    return metadata


def write_episodes(dataset: Any, episodes: list[Callable[[], EpisodeFrames]], cameras: Mapping[str, str], *,
                   workers: int | None = None, new_file_at: int | None = None,
                   stats_frames: int = IMAGE_STATS_FRAMES) -> Iterator[tuple[int, EpisodeFrames]]:
    """Write ``episodes`` into ``dataset`` in order, encoding ahead in ``workers`` processes; yields
    ``(episode_index, episode)`` after each episode is saved.

    The encoders run in worker processes started once per call
    (:class:`~hvla_platform.lib.dataset.encode_worker.EncoderPool`: why not threads or
    ``multiprocessing``), each encoder with one codec thread. With ``workers == 1`` everything
    runs in this process, in order.

    Args:
        dataset: a ``LeRobotDataset`` made by ``LeRobotDataset.create`` (no episode yet, or the
            episodes written before).
        episodes: per episode, a function reading its :class:`EpisodeFrames` (called in order on
            the calling thread, a few episodes ahead of the one being saved).
        cameras: video feature key → the HDF5 camera name.
        workers: encoder processes (default :func:`default_workers`).
        new_file_at: the position in ``episodes`` that starts a new ``data`` file (None: none).
        stats_frames: frames per episode and camera for image statistics.

    Raises:
        whatever :func:`save_episode` or :func:`~hvla_platform.lib.dataset.episode_video.encode_frames`
        raises (pending encodings are cancelled and their files removed).
    """
    from lerobot.datasets.video_utils import resolve_vcodec  # deferred: LeRobot import is slow

    workers = workers or default_workers()
    fps, root = int(dataset.fps), Path(dataset.root)
    vcodec = resolve_vcodec(dataset.vcodec)
    options = codec_options(vcodec, 1)
    pending: dict[int, dict[str, Any]] = {}
    loaded: dict[int, EpisodeFrames] = {}
    temp_dirs: list[Path] = []
    window = 2 * workers  # episodes encoded ahead: bounds the temporary MP4s on disk

    def submit(pool: EncoderPool | None, i: int, ep: EpisodeFrames) -> None:
        sample = stats_sample_indices(ep.num_frames, stats_frames)
        jobs: dict[str, Any] = {}
        for key, cam in cameras.items():
            d = Path(tempfile.mkdtemp(dir=root, prefix=".hvla-encode-"))
            temp_dirs.append(d)
            args = (ep.path, cam, d / f"{key.replace('/', '_')}.mp4")
            kw = {"fps": fps, "vcodec": vcodec, "options": options, "sample": sample}
            if pool is not None:
                jobs[key] = (args[2], pool.submit(*args, **kw, post=image_stats))
            else:
                n, sampled = encode_frames(*args, **kw)
                jobs[key] = (args[2], (n, video_duration_s(args[2]), image_stats(sampled)))
        pending[i] = jobs

    def result(job: Any) -> tuple[int, float, dict[str, np.ndarray]]:
        return job.result() if isinstance(job, cf.Future) else job

    placer = VideoPlacer(dataset)
    pool = EncoderPool(workers) if workers > 1 else None
    try:
        for i in range(len(episodes)):
            for j in range(i, min(len(episodes), i + window)):
                if j not in pending:
                    loaded[j] = episodes[j]()
                    submit(pool, j, loaded[j])
            episode = loaded.pop(i)
            videos = {}
            for key, (path, job) in pending.pop(i).items():
                n, duration, stats = result(job)
                if n != episode.num_frames:
                    raise RuntimeError(f"{episode.path}: camera {cameras[key]} gave {n} frames, the episode has "
                                       f"{episode.num_frames}")
                videos[key] = CameraVideo(path=path, num_frames=n, stats=stats, duration_s=duration)
            ep_index = dataset.meta.total_episodes
            save_episode(dataset, episode, videos, placer, new_data_file=new_file_at is not None and i == new_file_at)
            yield ep_index, episode
        placer.flush()
    finally:
        if pool is not None:
            pool.close()
        for d in temp_dirs:
            shutil.rmtree(d, ignore_errors=True)
