"""Raw recording (MCAP) → synchronised episode (:class:`~hvla_platform.lib.formats.episode_h5.EpisodeData`).

The synchronisation rules are those of :mod:`hvla_platform.lib.processing.sync`. Every camera frame is
decoded (Pillow) once, so QA can judge the source frames and matching can skip undecodable ones.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from hvla_platform.lib.formats.episode_h5 import EpisodeData
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.streams import EpisodeStreams
from hvla_platform.lib.processing.sync import (
    SyncError, frame_times_ns, interpolate_linear, match_nearest, sample_and_hold, source_rate_hz)


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


@dataclass
class DecodedCamera:
    """One camera's source frames after decoding.

    Attributes:
        stamps_ns: (N,) int64 stamps of the decodable frames.
        frames: (N, H, W, 3) uint8 decodable frames.
        undecodable: indices (into the original stream) of frames that did not decode, with reasons
            in ``errors``.
        total: number of frames in the original stream.
    """

    stamps_ns: np.ndarray
    frames: np.ndarray
    undecodable: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    total: int = 0


def decode_cameras(streams: EpisodeStreams, *, path: str | os.PathLike[str] = "") -> dict[str, DecodedCamera]:
    """Decode every frame of every camera stream, keeping the undecodable ones' indices and reasons.

    Raises:
        RawLogError: ``undecodable_frame`` if a camera has no decodable frame at all, or
            ``bad_message`` if its decodable frames change resolution.
    """
    out: dict[str, DecodedCamera] = {}
    for name, cam in streams.cameras.items():
        ok_t, ok_f, bad, errs = [], [], [], []
        for i, (data, fmt) in enumerate(zip(cam.frames, cam.formats)):
            try:
                ok_f.append(decode_image(data, fmt, path=path, where=f"camera {name} message {i}"))
                ok_t.append(int(cam.stamps_ns[i]))
            except RawLogError as exc:
                bad.append(i)
                errs.append(exc.detail)
        if not ok_f:
            raise RawLogError(path, "undecodable_frame", f"camera {name}: none of its {len(cam.frames)} frames decodes"
                              + (f" (first error: {errs[0]})" if errs else ""))
        shapes = {f.shape for f in ok_f}
        if len(shapes) != 1:
            raise RawLogError(path, "bad_message", f"camera {name} changes resolution within the episode: {shapes}")
        out[name] = DecodedCamera(np.array(ok_t, np.int64), np.stack(ok_f), bad, errs, len(cam.frames))
    return out


def synchronise(streams: EpisodeStreams, cfg: SyncConfig, *, path: str | os.PathLike[str] = "",
                cameras: dict[str, DecodedCamera] | None = None) -> dict[str, Any]:
    """Resample decoded streams onto frame times at ``cfg.fps``.

    Camera frames are matched among the *decodable* source frames (``cameras``, decoded here if not
    given); an undecodable frame therefore shows up as a larger skew at the frames that needed it.

    Returns a dict with ``times_ns`` (T,) int64, ``state``/``velocity`` (T, 29) float32,
    ``action`` (T, 14) float32, ``locomotion_command`` (T, 4) float32, ``images`` camera →
    (T, H, W, 3) uint8, ``skew`` camera → (T,) float32 seconds, ``source_index`` camera → (T,)
    int64 index (among the camera's decodable frames) of the source frame each frame shows (equal
    neighbours = a repeated frame), ``source_rate_hz`` camera → float, the camera's mean rate over
    all its recorded frames (:func:`~hvla_platform.lib.processing.sync.source_rate_hz`).

    Raises:
        RawLogError: reason ``sync_failed`` (no overlap, unsorted stamps), ``undecodable_frame``.
    """
    cameras = cameras if cameras is not None else decode_cameras(streams, path=path)
    js, arm = streams.joint_states, streams.arm_command
    starts = [int(js.stamps_ns[0]), int(arm.stamps_ns[0]), int(streams.locomotion_stamps_ns[0])]
    ends = [int(js.stamps_ns[-1]), int(arm.stamps_ns[-1]), int(streams.locomotion_stamps_ns[-1])]
    for cam in cameras.values():
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
        source_index: dict[str, np.ndarray] = {}
        for name, cam in cameras.items():
            idx, skew = match_nearest(cam.stamps_ns, t, f"camera {name}")
            images[name] = cam.frames[idx]
            skews[name] = skew
            source_index[name] = idx
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
        "source_index": source_index,
        "source_rate_hz": {name: source_rate_hz(np.asarray(streams.cameras[name].stamps_ns, np.int64))
                           for name in cameras},
    }


def to_episode(streams: EpisodeStreams, synced: dict[str, Any], *, episode_id: str, robot_id: str, capture_day: str,
               fps: float, attrs: dict[str, Any] | None = None) -> EpisodeData:
    """Assemble an :class:`EpisodeData` from :func:`synchronise`'s output (including each camera's
    source frame indices and source rate); ``attrs`` become HDF5 file attributes (non-scalar values
    as JSON)."""
    t = synced["times_ns"]
    return EpisodeData(
        episode_id=episode_id,
        robot_id=robot_id,
        capture_day=capture_day,
        task=streams.task,
        fps=float(fps),
        timestamps=((t - t[0]) / 1e9).astype(np.float64),
        state=synced["state"],
        state_names=list(streams.joint_states.names),
        velocity=synced["velocity"],
        action=synced["action"],
        action_names=list(streams.arm_command.names),
        locomotion_command=synced["locomotion_command"],
        images=synced["images"],
        skew=synced["skew"],
        source_index=dict(synced.get("source_index", {})),
        source_rate_hz=dict(synced.get("source_rate_hz", {})),
        start_time_ns=int(t[0]),
        attrs={k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str))
               for k, v in (attrs or {}).items()},
    )
