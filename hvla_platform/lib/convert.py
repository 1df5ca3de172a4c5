"""Raw recording (MCAP) → synchronised episode (:class:`~hvla_platform.lib.episodes_h5.EpisodeData`).

The synchronisation rules are those of :mod:`hvla_platform.lib.sync`. Camera frames are decoded
from JPEG with Pillow only for the frames actually matched.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from hvla_platform.lib.episodes_h5 import EpisodeData
from hvla_platform.lib.rawlog.errors import RawLogError
from hvla_platform.lib.rawlog.streams import EpisodeStreams, read_episode_streams
from hvla_platform.lib.sync import SyncError, frame_times_ns, interpolate_linear, match_nearest, sample_and_hold


@dataclass(frozen=True)
class SyncConfig:
    """How to synchronise a recording.

    Attributes:
        fps: target frame rate, Hz.
        max_camera_skew_s: largest |camera stamp - frame time| for a frame to count as covered,
            seconds (default 50 ms: half a 15 Hz camera period plus transport jitter).
        min_camera_coverage: smallest fraction of covered frames per camera for the episode to be
            converted.
    """

    fps: float = 20.0
    max_camera_skew_s: float = 0.05
    min_camera_coverage: float = 0.95


def decode_image(data: bytes, fmt: str, *, path: str | os.PathLike[str] = "", where: str = "") -> np.ndarray:
    """Decode one compressed camera frame to (H, W, 3) uint8 RGB.

    Raises:
        RawLogError: reason ``undecodable_frame`` if the bytes are not a decodable image.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RawLogError(path, "undecodable_frame", f"{where} ({fmt}): {exc}") from exc


def synchronise(streams: EpisodeStreams, cfg: SyncConfig, *, path: str | os.PathLike[str] = "") -> dict[str, Any]:
    """Resample decoded streams onto frame times at ``cfg.fps``.

    Returns a dict with ``times_ns`` (T,) int64, ``state``/``velocity`` (T, 29) float32,
    ``action`` (T, 14) float32, ``locomotion_command`` (T, 4) float32, ``images`` camera →
    (T, H, W, 3) uint8, ``skew`` camera → (T,) float32 seconds.

    Raises:
        RawLogError: reason ``sync_failed`` (no overlap, unsorted stamps) or ``undecodable_frame``.
    """
    js, arm = streams.joint_states, streams.arm_command
    starts = [int(js.stamps_ns[0]), int(arm.stamps_ns[0]), int(streams.locomotion_stamps_ns[0])]
    ends = [int(js.stamps_ns[-1]), int(arm.stamps_ns[-1]), int(streams.locomotion_stamps_ns[-1])]
    for cam in streams.cameras.values():
        starts.append(int(cam.stamps_ns[0]))
        ends.append(int(cam.stamps_ns[-1]))
    try:
        t = frame_times_ns(starts, ends, cfg.fps)
        state = interpolate_linear(js.stamps_ns, js.position, t, "/joint_states position")
        vel = interpolate_linear(js.stamps_ns, js.velocity, t, "/joint_states velocity")
        action = sample_and_hold(arm.stamps_ns, arm.position, t, "arm command")
        loco = sample_and_hold(streams.locomotion_stamps_ns, streams.locomotion, t, "locomotion command")
        images: dict[str, np.ndarray] = {}
        skews: dict[str, np.ndarray] = {}
        for name, cam in streams.cameras.items():
            idx, skew = match_nearest(cam.stamps_ns, t, f"camera {name}")
            decoded: dict[int, np.ndarray] = {}
            frames = []
            for k, i in enumerate(idx):
                if int(i) not in decoded:
                    decoded[int(i)] = decode_image(cam.frames[i], cam.formats[i], path=path,
                                                   where=f"camera {name} message {int(i)}")
                frames.append(decoded[int(i)])
            shapes = {f.shape for f in frames}
            if len(shapes) != 1:
                raise RawLogError(path, "bad_message", f"camera {name} changes resolution within the episode: {shapes}")
            images[name] = np.stack(frames)
            skews[name] = skew
    except SyncError as exc:
        raise RawLogError(path, "sync_failed", str(exc)) from exc
    return {
        "times_ns": t,
        "state": state.astype(np.float32),
        "velocity": vel.astype(np.float32),
        "action": action.astype(np.float32),
        "locomotion_command": loco.astype(np.float32),
        "images": images,
        "skew": skews,
    }


def mcap_to_episode(
    mcap_path: str | os.PathLike[str],
    *,
    episode_id: str,
    robot_id: str,
    capture_day: str,
    cfg: SyncConfig = SyncConfig(),
    attrs: dict[str, Any] | None = None,
) -> EpisodeData:
    """Decode and synchronise one raw recording into an :class:`EpisodeData`.

    Raises:
        RawLogError: the file is unreadable, violates the recording contract, or cannot be
            synchronised (see :func:`~hvla_platform.lib.rawlog.streams.read_episode_streams` and
            :func:`synchronise`).
    """
    mcap_path = Path(mcap_path)
    streams = read_episode_streams(mcap_path)
    s = synchronise(streams, cfg, path=mcap_path)
    t = s["times_ns"]
    return EpisodeData(
        episode_id=episode_id,
        robot_id=robot_id,
        capture_day=capture_day,
        task=streams.task,
        fps=float(cfg.fps),
        timestamps=((t - t[0]) / 1e9).astype(np.float64),
        state=s["state"],
        state_names=list(streams.joint_states.names),
        velocity=s["velocity"],
        action=s["action"],
        action_names=list(streams.arm_command.names),
        locomotion_command=s["locomotion_command"],
        images=s["images"],
        skew=s["skew"],
        start_time_ns=int(t[0]),
        attrs={k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str))
               for k, v in (attrs or {}).items()},
    )
