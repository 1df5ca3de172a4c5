"""Encode one camera of one episode HDF5 straight into an MP4 with LeRobot's codec settings, and
compute its LeRobot image statistics on a sample of frames.

This is the fast path of the release build (:mod:`hvla_platform.lib.dataset.lerobot_writer`): LeRobot's
``add_frame`` writes every frame to a PNG, ``save_episode`` re-reads every PNG to compute image
statistics over all of them (``compute_episode_stats`` → ``sample_images``, ≥ 100 frames per
episode, a 5000-bin histogram per channel) and re-reads them again to encode
(``encode_video_frames``). Here the frames decoded from the HDF5 go straight into the encoder:

- **Encoding** follows LeRobot 0.4.4's own streaming encoder (``video_utils._CameraEncoderThread``):
  PyAV, ``add_stream(vcodec, fps, options=_get_codec_options(vcodec, g=2, crf=30))`` (LeRobot's
  defaults: GOP 2, CRF 30; ``preset 12`` for SVT-AV1), ``pix_fmt yuv420p``, frame ``pts = k`` in a
  ``1/fps`` time base, flushed at the end. ``threads`` is set per encoder (LeRobot's
  ``encoder_threads``) because episodes and cameras are encoded in parallel instead.
- **Image statistics** are LeRobot's ``get_feature_stats(…, axis=(0, 2, 3), keepdims=True)`` on
  :data:`IMAGE_STATS_FRAMES` frames per episode at most, evenly spaced (LeRobot's own
  ``sample_indices`` formula, ``round(linspace(0, T-1, n))``), each downsampled by LeRobot's
  ``auto_downsample_height_width``, then divided by 255 and squeezed to (3, 1, 1) exactly as
  ``compute_episode_stats`` does; ``count`` is the number of sampled frames (LeRobot's count for
  images is its number of sampled frames too). LeRobot samples up to ``max(100, T**0.75)``.

Nothing here imports Dagster or a higher lib package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hvla_platform.lib.formats.episode_h5 import EpisodeReader

#: Frames per episode and camera that image statistics are computed on (evenly spaced). LeRobot
#: itself uses max(100, T**0.75) (all frames of an episode shorter than 100 frames).
IMAGE_STATS_FRAMES = 12
#: LeRobot 0.4.4's encoder settings (``LeRobotDataset.create`` / ``encode_video_frames`` defaults).
LEROBOT_GOP, LEROBOT_CRF, LEROBOT_PIX_FMT = 2, 30, "yuv420p"


def stats_sample_indices(num_frames: int, max_frames: int = IMAGE_STATS_FRAMES) -> list[int]:
    """Indices of the frames image statistics are computed on: LeRobot's ``sample_indices``
    formula ``round(linspace(0, T-1, n))`` with ``n = min(T, max_frames)`` (sorted, may repeat
    nothing: n ≤ T)."""
    n = min(num_frames, max_frames)
    return np.round(np.linspace(0, num_frames - 1, n)).astype(int).tolist()


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """LeRobot image statistics of sampled frames, as ``compute_episode_stats`` stores them.

    Args:
        frames: (n, 3, h, w) uint8 RGB, channel first, already downsampled (:func:`downsample`), n ≥ 1.

    Returns:
        ``{"min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99"}`` float64 (3, 1, 1) in
        [0, 1] and ``"count"`` int64 (1,) = n (LeRobot's ``get_feature_stats``, divided by 255).
    """
    from lerobot.datasets.compute_stats import get_feature_stats  # deferred: LeRobot import is slow

    stats = get_feature_stats(frames, axis=(0, 2, 3), keepdims=True)
    return {k: v if k == "count" else np.squeeze(v / 255.0, axis=0) for k, v in stats.items()}


@dataclass(frozen=True)
class CameraVideo:
    """What :func:`encode_camera` produced for one camera of one episode.

    Attributes:
        path: the MP4 (alone in its own directory: LeRobot's ``_save_episode_video`` removes the
            directory of the episode video it moves into the dataset).
        num_frames: frames encoded (= the episode's T).
        stats: :func:`image_stats` of the sampled frames.
        duration_s: the MP4's duration (:func:`video_duration_s`), seconds.
    """

    path: Path
    num_frames: int
    stats: dict[str, np.ndarray]
    duration_s: float = 0.0


def codec_options(vcodec: str, threads: int | None) -> dict[str, str]:
    """LeRobot's encoder options for ``vcodec`` (``video_utils._get_codec_options`` with LeRobot's
    GOP and CRF), plus ``threads`` (libx264/libx265) or ``svtav1-params lp=`` (SVT-AV1) as
    LeRobot's ``encoder_threads`` sets them."""
    from lerobot.datasets.video_utils import _get_codec_options  # deferred: LeRobot import is slow

    opts = _get_codec_options(vcodec, LEROBOT_GOP, LEROBOT_CRF, None)
    if threads is not None:
        if vcodec == "libsvtav1":
            opts["svtav1-params"] = (opts["svtav1-params"] + ":" if "svtav1-params" in opts else "") + f"lp={threads}"
        else:
            opts["threads"] = str(threads)
    return opts


def encode_frames(h5_path: str | os.PathLike[str], camera: str, out_path: str | os.PathLike[str], *, fps: int,
                  vcodec: str, options: dict[str, str], sample: list[int]) -> tuple[int, np.ndarray]:
    """Decode every frame of ``camera`` from an episode HDF5 (each stored frame once) and encode
    them into ``out_path`` (module docstring: LeRobot's streaming-encoder settings).

    Runs in a worker process (:mod:`hvla_platform.lib.dataset.lerobot_writer`), so it imports
    neither LeRobot nor torch: ``vcodec`` must be resolved and ``options`` built by the caller
    (:func:`codec_options`).

    Args:
        h5_path: episode HDF5 (:mod:`hvla_platform.lib.formats.episode_h5`, format 2 or 3).
        camera: an RGB camera of the episode.
        out_path: MP4 to write (its directory must exist).
        fps: dataset frame rate.
        vcodec: a PyAV encoder name LeRobot uses (``h264``, ``hevc``, ``libsvtav1``).
        options: encoder options.
        sample: sorted frame indices to return (for image statistics).

    Returns:
        ``(T, frames)``: the number of frames encoded and the sampled frames, (len(sample), C, h, w)
        uint8, each downsampled like LeRobot's ``auto_downsample_height_width`` (C = 3).

    Raises:
        KeyError: the episode has no such camera. EpisodeFormatError: a frame does not decode.
    """
    import av  # deferred: PyAV is only needed when encoding

    sampled: list[np.ndarray] = []
    with EpisodeReader(h5_path) as reader:
        info = reader.cameras[camera]
        n = reader.num_frames
        pos = 0
        tb = Fraction(1, fps)
        with av.open(str(out_path), "w") as container:
            stream = container.add_stream(vcodec, fps, options=dict(options))
            stream.pix_fmt = LEROBOT_PIX_FMT
            stream.width, stream.height = info.width, info.height
            stream.time_base = tb
            for k, img in enumerate(reader.iter_frames(camera)):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = k, tb
                for packet in stream.encode(frame):
                    container.mux(packet)
                while pos < len(sample) and sample[pos] == k:
                    sampled.append(downsample(np.ascontiguousarray(img.transpose(2, 0, 1))))
                    pos += 1
            for packet in stream.encode():
                container.mux(packet)
    return n, np.stack(sampled) if sampled else np.zeros((0, 3, 1, 1), np.uint8)


def video_duration_s(path: str | os.PathLike[str]) -> float:
    """Duration of an MP4's first video stream, seconds: LeRobot 0.4.4's ``get_video_duration_in_s``
    (stream duration × time base, else the container's duration), re-stated so that encoder
    processes need not import LeRobot."""
    import av  # deferred: PyAV is only needed when encoding

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration / av.time_base)


def downsample(img: np.ndarray, target_size: int = 150, max_size_threshold: int = 300) -> np.ndarray:
    """LeRobot 0.4.4's ``compute_stats.auto_downsample_height_width`` (same arguments and result,
    re-stated here so that encoder processes need not import LeRobot): (C, H, W) → every
    ``int(longer side / target_size)``-th pixel when the longer side is ≥ ``max_size_threshold``."""
    _, height, width = img.shape
    if max(width, height) < max_size_threshold:
        return img
    factor = int(width / target_size) if width > height else int(height / target_size)
    return img[:, ::factor, ::factor]


def encode_camera(h5_path: str | os.PathLike[str], camera: str, out_path: str | os.PathLike[str], *, fps: int,
                  vcodec: str, threads: int | None = 1, stats_frames: int = IMAGE_STATS_FRAMES) -> CameraVideo:
    """:func:`encode_frames` in this process, with LeRobot's options for ``vcodec`` and the image
    statistics of ``stats_frames`` evenly spaced frames (:func:`stats_sample_indices`).

    Raises:
        KeyError: no such camera. EpisodeFormatError: a frame does not decode.
        ValueError: LeRobot rejects ``vcodec`` (``resolve_vcodec``).
    """
    from lerobot.datasets.video_utils import resolve_vcodec  # deferred: LeRobot import is slow

    vcodec = resolve_vcodec(vcodec)
    with EpisodeReader(h5_path) as reader:
        n = reader.num_frames
    n, sampled = encode_frames(h5_path, camera, out_path, fps=fps, vcodec=vcodec,
                               options=codec_options(vcodec, threads), sample=stats_sample_indices(n, stats_frames))
    return CameraVideo(path=Path(out_path), num_frames=n, stats=image_stats(sampled), duration_s=video_duration_s(out_path))
