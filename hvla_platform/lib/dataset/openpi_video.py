"""Cut per-episode MP4s (LeRobot dataset format v2.1) out of a LeRobot v3.0 release's video files.

A v3.0 release keeps several episodes in one MP4 per camera (``videos/<key>/chunk-*/file-*.mp4``);
``meta/episodes`` gives each episode's file and its ``from_timestamp`` in it. Format v2.1 wants one
MP4 per episode and camera, starting at t = 0. :func:`cut_episode_videos` decodes each source file
**once**, in order, numbers every decoded frame by its presentation time (``round(time x fps)``,
which must run 0, 1, 2... without gap or repeat, else :class:`VideoCutError`), and re-encodes the
frames ``[round(from_timestamp x fps), + length)`` of each wanted episode into its own MP4, exactly
``length`` frames (checked), with frame ``k`` at ``pts = k`` in a ``1/fps`` time base.

Why decode + re-encode rather than copying packets: the release's H.264 has B-frames and a GOP of 2
(LeRobot's defaults), so an episode boundary need not fall on a packet we could cut at without
rewriting timestamps and edit lists; re-encoding is exact by frame and simple. The cost is one more
lossy generation: the encoder is the release's own codec with LeRobot's settings
(:func:`~hvla_platform.lib.dataset.episode_video.codec_options`: GOP 2, CRF 30, ``yuv420p``), so a
frame differs from the release's decoded frame by a few grey levels (measured in the tests).
Memory: one decoded frame at a time (one encoder open per source file at a time, since episodes are
contiguous in it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from hvla_platform.lib.dataset.episode_video import LEROBOT_PIX_FMT, codec_options


class VideoCutError(ValueError):
    """A source video does not hold the frames its episode metadata says (gap, repeat, short)."""


@dataclass(frozen=True)
class EpisodeCut:
    """One episode to cut from one source MP4.

    Attributes:
        first_frame: index of the episode's first frame in the source file (``round(from_timestamp
            x fps)``).
        length: number of frames of the episode (LeRobot ``length``).
        out_path: the per-episode MP4 to write (its directory is created).
    """

    first_frame: int
    length: int
    out_path: Path


def cut_episode_videos(source: str | os.PathLike[str], cuts: list[EpisodeCut], *, fps: int, vcodec: str,
                       threads: int | None = 1) -> dict[Path, int]:
    """Decode ``source`` once and write each cut's frames into its own MP4 (module docstring).

    Args:
        source: a v3.0 release MP4 holding several episodes back to back.
        cuts: episodes to write; their frame ranges must not overlap.
        fps: dataset frame rate (Hz); source frame ``i`` is at ``i / fps`` s.
        vcodec: PyAV encoder name (the release's ``video_codec``, e.g. ``h264``).
        threads: encoder threads.

    Returns:
        ``{out_path: frames written}`` (each equals its cut's ``length``).

    Raises:
        VideoCutError: a decoded frame's time is not the next frame number, the file ends before a
            cut's last frame, or the cuts overlap.
    """
    import av  # deferred: PyAV is only needed when cutting videos

    order = sorted(cuts, key=lambda c: c.first_frame)
    for a, b in zip(order, order[1:]):
        if a.first_frame + a.length > b.first_frame:
            raise VideoCutError(f"{source}: episode frame ranges overlap ({a.out_path.name}, {b.out_path.name})")
    written: dict[Path, int] = {c.out_path: 0 for c in order}
    opts = codec_options(vcodec, threads)
    tb = Fraction(1, fps)
    pos = 0  # index into order of the cut being written (or the next one)
    out = stream = None
    expected = 0
    try:
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                if frame.time is None:
                    raise VideoCutError(f"{source}: frame {expected} has no presentation time")
                number = int(round(frame.time * fps))
                if number != expected:
                    raise VideoCutError(f"{source}: decoded frame at {frame.time:.4f} s is frame {number}, "
                                        f"expected frame {expected} (gap or repeat in the source video)")
                expected += 1
                if pos >= len(order):
                    break
                cut = order[pos]
                if number < cut.first_frame:
                    continue
                if out is None:
                    cut.out_path.parent.mkdir(parents=True, exist_ok=True)
                    out = av.open(str(cut.out_path), "w")
                    stream = out.add_stream(vcodec, fps, options=dict(opts))
                    stream.pix_fmt = LEROBOT_PIX_FMT
                    stream.width, stream.height = frame.width, frame.height
                    stream.time_base = tb
                k = number - cut.first_frame
                img = frame.to_ndarray(format="rgb24")
                new = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                new.pts, new.time_base = k, tb
                for packet in stream.encode(new):
                    out.mux(packet)
                written[cut.out_path] = k + 1
                if k + 1 == cut.length:
                    for packet in stream.encode():
                        out.mux(packet)
                    out.close()
                    out = stream = None
                    pos += 1
    finally:
        if out is not None:
            out.close()
    short = {c.out_path.name: f"{written[c.out_path]} of {c.length} frames" for c in order
             if written[c.out_path] != c.length}
    if short:
        raise VideoCutError(f"{source} ends after {expected} frames: episode videos are short: {short}")
    return written


def count_frames(path: str | os.PathLike[str]) -> int:
    """Number of frames decoded from an MP4's first video stream (decodes the whole file)."""
    import av  # deferred: PyAV is only needed when reading videos

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


__all__ = ["EpisodeCut", "VideoCutError", "count_frames", "cut_episode_videos"]
