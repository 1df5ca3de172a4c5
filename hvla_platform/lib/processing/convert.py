"""Raw recording → synchronised episode, in two passes whose memory does not grow with the episode.

**Pass 1** (:func:`scan_recording`) reads every stream the recording's robot profile names
(:func:`~hvla_platform.lib.formats.recording.streams.read_recording_streams`): the low-dimensional
streams into arrays, and for cameras only stamps and formats — each frame is decoded once
(:func:`~hvla_platform.lib.formats.recording.streams.camera_frame_pixels`), judged
(:class:`CameraScan`: decodable or not, mean level, saturated fraction, mean absolute difference
to the previous frame, sharpness and a perceptual hash; for depth the fraction of zero = no-reading pixels) and dropped.
:func:`synchronise` then resamples onto frame times with the rules of
:mod:`hvla_platform.lib.processing.sync` (undecodable frames are skipped when matching), and
:func:`plan_cameras` says which source frames the episode keeps: each camera's distinct matched
frames, in stream order.

**Pass 2** (:func:`write_episode_file`) re-reads only the camera topics and appends those frames to
an :class:`~hvla_platform.lib.formats.episode_h5.EpisodeWriter`: ``CompressedImage`` JPEG/PNG bytes
unchanged, raw images as lossless PNG (depth as 16-bit mm), decoding only the frames QA
thumbnails need. Nothing holds all frames of an episode, decoded or encoded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import numpy as np
from PIL import Image, ImageChops

from hvla_platform.lib.formats.episode_h5 import EpisodeData, EpisodeWriter
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.profile import MSG_COMPRESSED_IMAGE, Camera, RobotProfile
from hvla_platform.lib.formats.recording.streams import (
    FrameError,
    MessageSource,
    RecordingStreams,
    RowBuffer,
    camera_frame_for_storage,
    camera_frame_pixels,
    camera_kind,
    compressed_frame_image,
    iter_camera_messages,
    read_recording_streams,
    storage_encoding,
)
from hvla_platform.lib.processing.qa.image_stats import frame_image_stats
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.processing.sync import (
    SyncError, frame_times_ns, interpolate_linear, match_nearest, sample_and_hold, source_rate_hz)


@dataclass(frozen=True)
class SyncConfig:
    """How to synchronise a recording.

    Attributes:
        fps: target frame rate, Hz; None (the default) takes the robot profile's ``fps``. A value
            given here wins over the profile's.
        max_camera_skew_s: largest |camera stamp - frame time| for a frame to count as covered,
            seconds (default 50 ms: half a 15 Hz camera period plus transport jitter).
        min_camera_coverage: smallest fraction of covered frames per camera for the episode to be
            converted.
    """

    fps: float | None = None
    max_camera_skew_s: float = 0.05
    min_camera_coverage: float = 0.95

    def fps_for(self, profile: RobotProfile) -> float:
        """The frame rate used for a recording of ``profile``, Hz (``fps``, else the profile's)."""
        return float(self.fps) if self.fps is not None else float(profile.fps)


# ------------------------------------------------------------------------------------------------
# pass 1: camera statistics, frame by frame


@dataclass
class CameraScan:
    """What pass 1 learnt about one camera's frames (no pixels are kept).

    Attributes:
        name: camera name; ``kind``: ``rgb`` or ``depth``.
        stamps_ns: (N,) int64 header stamps of the N decodable frames.
        index: (N,) int64 position of each decodable frame in the camera's stream (all frames).
        undecodable: stream positions of the frames that did not decode, with reasons in ``errors``.
        total: number of frames in the stream.
        mean_level: (N,) float64 mean pixel value (0–255) of each decodable colour frame.
        saturated_fraction: (N,) float64 fraction of values ≥ ``saturated_level`` (colour).
        mad_prev: (N,) float64 mean absolute difference (0–255) to the previous decodable frame
            (NaN for the first; colour).
        zero_fraction: (N,) float64 fraction of zero (= no reading) pixels (depth).
        sharpness: (N,) float64 variance of the Laplacian (levels²) of each decodable colour frame,
            grey and downscaled to at most 320 px wide (Pech-Pacheco et al. 2000;
            :func:`~hvla_platform.lib.processing.qa.image_stats.frame_image_stats`).
        dhash: (N,) uint64 64-bit difference hash of each decodable colour frame (Krawetz 2013;
            :func:`~hvla_platform.lib.processing.qa.image_stats.dhash`), for frame fingerprints.
        saturated_level: the level ``saturated_fraction`` counts from.
        height, width: frame size, pixels.
    """

    name: str
    kind: str
    stamps_ns: np.ndarray
    index: np.ndarray
    undecodable: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    total: int = 0
    mean_level: np.ndarray = field(default_factory=lambda: np.zeros(0))
    saturated_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mad_prev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    zero_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sharpness: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dhash: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    saturated_level: int = QAThresholds().saturated_level
    height: int = 0
    width: int = 0


#: The name used before frames stopped being kept in memory.
DecodedCamera = CameraScan


#: Pixel values 0..255, the weights that turn a histogram into a sum of values.
_LEVELS = np.arange(256, dtype=np.int64)


class CameraScanner:
    """Judges one camera's frames as they stream by (:meth:`add`), keeping one previous frame.

    Args:
        name: camera name; ``cam``: its profile entry; ``profile``: the profile (for messages).
        saturated_level: pixel value from which a colour value counts as saturated (0–255).
        path: what error messages name.
    """

    def __init__(self, name: str, cam: Camera, profile: RobotProfile, *, saturated_level: int, path: str = ""):
        self.name, self.cam, self.profile, self.path = name, cam, profile, str(path)
        self.kind = camera_kind(cam)
        self.saturated_level = int(saturated_level)
        self._prev: Image.Image | None = None
        self._stamps = RowBuffer(None, np.int64)
        self._index = RowBuffer(None, np.int64)
        self._mean = RowBuffer(None)
        self._sat = RowBuffer(None)
        self._mad = RowBuffer(None)
        self._zero = RowBuffer(None)
        self._sharp = RowBuffer(None)
        self._dhash = RowBuffer(None, np.uint64)
        self._bad: list[int] = []
        self._errors: list[str] = []
        self._total = 0

    def add(self, index: int, stamp_ns: int, msg: Any) -> None:
        """Judge frame ``index`` (stream position) stamped ``stamp_ns`` (ns) of the camera.

        Raises:
            RawLogError: ``bad_message``: the frame decodes to another size than the profile's.
        """
        self._total += 1
        try:
            if self.cam.type == MSG_COMPRESSED_IMAGE:
                frame: np.ndarray | Image.Image = compressed_frame_image(msg, self.cam)
                h, w = frame.height, frame.width
            else:
                frame = camera_frame_pixels(msg, self.cam)
                h, w = frame.shape[:2]
        except FrameError as exc:
            self._bad.append(int(index))
            self._errors.append(f"camera {self.name} message {index} ({self.cam.encoding}): {exc}")
            return
        if (h, w) != (self.cam.height, self.cam.width):
            raise RawLogError(self.path, "bad_message", (
                f"camera {self.name} message {index} is {h}x{w}, robot profile "
                f"{self.profile.key} says {self.cam.height}x{self.cam.width}"))
        self._stamps.append(int(stamp_ns))
        self._index.append(int(index))
        if self.kind == "depth":
            assert isinstance(frame, np.ndarray)
            self._zero.append((frame.size - np.count_nonzero(frame)) / frame.size)
            return
        im = frame if isinstance(frame, Image.Image) else Image.fromarray(frame)
        if self._prev is not None and self._prev.mode != im.mode:  # a grey frame among colour ones
            im, self._prev = im.convert("RGB"), self._prev.convert("RGB")
        hist = np.asarray(im.histogram(), np.int64).reshape(-1, 256)  # (bands, 256) counts
        n = hist.sum()
        self._mean.append(float((hist * _LEVELS).sum()) / n)
        self._sat.append(float(hist[:, self.saturated_level:].sum()) / n)
        if self._prev is None:
            self._mad.append(float("nan"))
        else:
            diff = np.asarray(ImageChops.difference(im, self._prev).histogram(), np.int64).reshape(-1, 256)
            self._mad.append(float((diff * _LEVELS).sum()) / n)
        self._prev = im
        sharp, hash64 = frame_image_stats(im)
        self._sharp.append(sharp)
        self._dhash.append(hash64)

    def result(self) -> CameraScan:
        """The camera's :class:`CameraScan`.

        Raises:
            RawLogError: ``undecodable_frame``: none of the camera's frames decodes.
        """
        if not len(self._stamps):
            raise RawLogError(self.path, "undecodable_frame", f"camera {self.name}: none of its {self._total} frames "
                              "decodes" + (f" (first error: {self._errors[0]})" if self._errors else ""))
        return CameraScan(
            name=self.name, kind=self.kind, stamps_ns=self._stamps.array(), index=self._index.array(),
            undecodable=list(self._bad), errors=list(self._errors), total=self._total,
            mean_level=self._mean.array(), saturated_fraction=self._sat.array(), mad_prev=self._mad.array(),
            zero_fraction=self._zero.array(), sharpness=self._sharp.array(), dhash=self._dhash.array(),
            saturated_level=self.saturated_level,
            height=self.cam.height, width=self.cam.width)


def scan_recording(source: MessageSource, profile: RobotProfile, *, path: str | os.PathLike[str] = "",
                   saturated_level: int = QAThresholds().saturated_level
                   ) -> tuple[RecordingStreams, dict[str, CameraScan]]:
    """Pass 1: the profile's streams and a :class:`CameraScan` per camera (every frame decoded
    once, judged, dropped).

    Raises:
        RawLogError: what :func:`~hvla_platform.lib.formats.recording.streams.read_recording_streams`
            raises, ``bad_message`` (a frame of another size than the profile's),
            ``undecodable_frame`` (a camera without a decodable frame).
    """
    path = str(path)
    scanners = {name: CameraScanner(name, cam, profile, saturated_level=saturated_level, path=path)
                for name, cam in profile.cameras.items()}

    def on_frame(cam: str, index: int, stamp_ns: int, msg: Any) -> None:
        scanners[cam].add(index, stamp_ns, msg)

    streams = read_recording_streams(source, profile, path=path, on_frame=on_frame)
    return streams, {name: s.result() for name, s in scanners.items()}


def decode_cameras(streams: RecordingStreams, *, path: str | os.PathLike[str] = "",
                   saturated_level: int = QAThresholds().saturated_level) -> dict[str, CameraScan]:
    """:class:`CameraScan` of every camera of ``streams`` read with ``keep_frames=True`` (the
    compressed frames in memory: small recordings and tests; conversion uses :func:`scan_recording`).

    Raises:
        ValueError: the streams were read without their frames, or a camera is a raw ``Image``
            (whose frames are never kept).
        RawLogError: ``undecodable_frame`` (a camera has no decodable frame), ``bad_message`` (a
            frame of another size than the profile's).
    """
    out: dict[str, CameraScan] = {}
    for name, cs in streams.cameras.items():
        cam = cs.camera or streams.profile.cameras[name]
        if cs.frames is None or cam.type != MSG_COMPRESSED_IMAGE:
            raise ValueError(f"camera {name}: frames were not kept (read the streams with keep_frames=True, "
                             "compressed cameras only), or use scan_recording")
        sc = CameraScanner(name, cam, streams.profile, saturated_level=saturated_level, path=path)
        for i, (data, fmt) in enumerate(zip(cs.frames, cs.formats)):
            sc.add(i, int(cs.stamps_ns[i]), SimpleNamespace(format=fmt, data=data))
        out[name] = sc.result()
    return out


# ------------------------------------------------------------------------------------------------
# synchronisation


def synchronise(streams: RecordingStreams, cfg: SyncConfig, *, path: str | os.PathLike[str] = "",
                cameras: dict[str, CameraScan] | None = None) -> dict[str, Any]:
    """Resample the streams onto frame times at ``cfg.fps_for(profile)`` Hz.

    Camera frames are matched among the *decodable* source frames (``cameras``; from
    :func:`decode_cameras` if not given); an undecodable frame therefore shows up as a larger skew
    at the frames that needed it.

    Returns a dict with ``fps``; ``times_ns`` (T,) int64; ``state``/``velocity`` (T, D) float32
    (rad, rad/s; D = profile state joints); ``action`` (T, A) float32 (the ``features.action``
    command streams, sample-and-hold, concatenated); ``locomotion_command`` (T, 4) float32 or None
    (profile without locomotion); ``extras`` name → (T, K) float32 (linear interpolation, clamped
    at the ends) and ``extras_names`` name → K columns; ``skew`` camera → (T,) float32 seconds;
    ``source_index`` camera → (T,) int64 index among the camera's decodable frames of the frame
    each frame shows (equal neighbours = a repeated frame); ``source_rate_hz`` camera → the
    camera's mean rate over all its recorded frames
    (:func:`~hvla_platform.lib.processing.sync.source_rate_hz`).

    Raises:
        RawLogError: reason ``sync_failed`` (no overlap, unsorted stamps, a command issued only
            after the first frame time), ``undecodable_frame``.
    """
    cameras = cameras if cameras is not None else decode_cameras(streams, path=path)
    profile = streams.profile
    fps = cfg.fps_for(profile)
    js = streams.joint_state
    actions = streams.action_commands
    timed = [js.stamps_ns] + [c.stamps_ns for _, c in actions]
    if streams.locomotion_stamps_ns is not None:
        timed.append(streams.locomotion_stamps_ns)
    timed += [cam.stamps_ns for cam in cameras.values()]
    try:
        if any(t.size == 0 for t in timed):
            raise SyncError("a stream has no samples")
        t = frame_times_ns([int(x[0]) for x in timed], [int(x[-1]) for x in timed], fps)
        topic = profile.joint_state.topic
        state = interpolate_linear(js.stamps_ns, js.position, t, f"{topic} position")
        vel = interpolate_linear(js.stamps_ns, js.velocity, t, f"{topic} velocity")
        action = np.concatenate([sample_and_hold(c.stamps_ns, c.position, t, f"{name} command")
                                 for name, c in actions], axis=1)
        loco = None
        if streams.locomotion is not None and streams.locomotion_stamps_ns is not None:
            loco = sample_and_hold(streams.locomotion_stamps_ns, streams.locomotion, t, "locomotion command")
        extras = {name: interpolate_linear(e.stamps_ns, e.values, t, f"extra {name}").astype(np.float32)
                  for name, e in streams.extras.items()}
        skews: dict[str, np.ndarray] = {}
        source_index: dict[str, np.ndarray] = {}
        for name, cam in cameras.items():
            idx, skew = match_nearest(cam.stamps_ns, t, f"camera {name}")
            skews[name] = skew
            source_index[name] = idx
    except SyncError as exc:
        raise RawLogError(path, "sync_failed", str(exc)) from exc
    return {
        "fps": fps,
        "times_ns": t,
        "state": state.astype(np.float32),
        "velocity": vel.astype(np.float32),
        "action": action.astype(np.float32),
        "locomotion_command": None if loco is None else loco.astype(np.float32),
        "extras": extras,
        "extras_names": {name: list(e.names) for name, e in streams.extras.items()},
        "skew": skews,
        "source_index": source_index,
        "source_rate_hz": {name: source_rate_hz(np.asarray(streams.cameras[name].stamps_ns, np.int64))
                           for name in cameras},
    }


def _stored(source_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, (T,) int64 index of each entry into them)."""
    vals, inverse = np.unique(np.asarray(source_index, np.int64), return_inverse=True)
    return vals.astype(np.int64), inverse.astype(np.int64).reshape(-1)


def to_episode(streams: RecordingStreams, synced: dict[str, Any], *, episode_id: str, robot_id: str,
               capture_day: str, fps: float | None = None, attrs: dict[str, Any] | None = None) -> EpisodeData:
    """Assemble the low-dimensional :class:`EpisodeData` (no frames) from :func:`synchronise`'s
    output. ``source_index`` becomes the index into the camera's *stored* frames (its distinct
    matched source frames, in order: what :func:`plan_cameras` keeps); ``attrs`` become HDF5 file
    attributes (non-scalar values as JSON); ``profile`` is the profile's ``name@version``; ``fps``
    defaults to the synchronised rate."""
    t = synced["times_ns"]
    profile = streams.profile
    return EpisodeData(
        episode_id=episode_id,
        robot_id=robot_id,
        capture_day=capture_day,
        task=streams.task,
        fps=float(fps if fps is not None else synced["fps"]),
        timestamps=((t - t[0]) / 1e9).astype(np.float64),
        state=synced["state"],
        state_names=list(profile.state_names),
        velocity=synced["velocity"],
        action=synced["action"],
        action_names=list(profile.action_names),
        locomotion_command=synced["locomotion_command"],
        images={},
        skew=dict(synced["skew"]),
        source_index={cam: _stored(idx)[1] for cam, idx in synced.get("source_index", {}).items()},
        source_rate_hz=dict(synced.get("source_rate_hz", {})),
        start_time_ns=int(t[0]),
        attrs={k: (v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str))
               for k, v in (attrs or {}).items()},
        extras=dict(synced.get("extras", {})),
        extras_names={k: list(v) for k, v in synced.get("extras_names", {}).items()},
        profile=profile.key,
    )


# ------------------------------------------------------------------------------------------------
# pass 2: the stored frames


@dataclass
class CameraPlan:
    """Which source frames of one camera the episode file keeps, and how.

    Attributes:
        name: camera name; ``camera``: its profile entry.
        kind: ``rgb`` or ``depth``; ``encoding``: ``jpeg``/``png`` as stored; ``source_encoding``:
            the profile's encoding (``jpeg``, ``png``, ``rgb8``, ``bgr8``, ``mono8``, ``16UC1``,
            ``32FC1``).
        height, width: frame size, pixels.
        message_index: (M,) int64 stream positions of the M stored frames, increasing.
        stamps_ns: (M,) int64 their header stamps, ns.
        stored_index: (T,) int64 stored frame each episode frame shows.
    """

    name: str
    camera: Camera
    kind: str
    encoding: str
    source_encoding: str
    height: int
    width: int
    message_index: np.ndarray
    stamps_ns: np.ndarray
    stored_index: np.ndarray

    def message_of_frame(self, k: int) -> int:
        """Stream position of the source frame episode frame ``k`` shows."""
        return int(self.message_index[self.stored_index[k]])


def plan_cameras(profile: RobotProfile, cameras: dict[str, CameraScan], synced: dict[str, Any]) -> dict[str, CameraPlan]:
    """Per camera, the distinct decodable source frames the synchronised frames show, in stream
    order (:class:`CameraPlan`)."""
    plans = {}
    for name, scan in cameras.items():
        cam = profile.cameras[name]
        vals, inverse = _stored(synced["source_index"][name])
        plans[name] = CameraPlan(
            name=name, camera=cam, kind=camera_kind(cam), encoding=storage_encoding(cam), source_encoding=cam.encoding,
            height=cam.height, width=cam.width, message_index=scan.index[vals], stamps_ns=scan.stamps_ns[vals],
            stored_index=inverse)
    return plans


def write_episode_file(source: MessageSource, profile: RobotProfile, ep: EpisodeData, plans: dict[str, CameraPlan],
                       out_path: str | os.PathLike[str] | None, *, path: str | os.PathLike[str] = "",
                       want: Iterable[tuple[str, int]] = ()) -> tuple[Path | None, dict[tuple[str, int], np.ndarray]]:
    """Pass 2: re-read the camera topics; append each camera's stored frames (``plans``) to an
    :class:`~hvla_platform.lib.formats.episode_h5.EpisodeWriter` at ``out_path`` holding ``ep``
    (low-dimensional, ``ep.source_index`` = the plans' stored indices), and decode the frames in
    ``want`` (``(camera, stream position)``, e.g. for thumbnails).

    With ``out_path`` None nothing is written and only the cameras with wanted frames are read
    (nothing at all when ``want`` is empty).

    Returns:
        ``(path of the file or None, {(camera, position): decoded frame})`` — frames as
        :func:`~hvla_platform.lib.formats.recording.streams.camera_frame_pixels` returns them.

    Raises:
        RawLogError: the second read disagrees with the first (``unreadable``: a stored frame
            missing or with another stamp), a stored frame no longer decodes (``undecodable_frame``),
            or what the source raises; the file is then not written (no partial file).
        EpisodeFormatError: ``ep`` and the plans disagree (a bug).
    """
    want = set(want)
    path = str(path)
    names = list(plans) if out_path is not None else sorted({cam for cam, _ in want if cam in plans})
    frames: dict[tuple[str, int], np.ndarray] = {}
    if not names:
        return None, frames
    writer = EpisodeWriter(out_path, ep) if out_path is not None else None
    try:
        sinks = {}
        if writer is not None:
            for name in names:
                p = plans[name]
                sinks[name] = writer.camera(name, kind=p.kind, encoding=p.encoding, height=p.height, width=p.width,
                                            num_stored=len(p.message_index), source_encoding=p.source_encoding,
                                            source_index=p.stored_index)
        nxt = {name: 0 for name in names}
        for cam, i, stamp, msg in iter_camera_messages(source, profile, names, path=path):
            p = plans[cam]
            k = nxt[cam]
            try:
                if (cam, i) in want:
                    frames[(cam, i)] = camera_frame_pixels(msg, p.camera)
                if k < len(p.message_index) and int(p.message_index[k]) == i:
                    if stamp != int(p.stamps_ns[k]):
                        raise RawLogError(path, "unreadable", (
                            f"camera {cam} message {i} is stamped {stamp} ns on the second read, "
                            f"{int(p.stamps_ns[k])} ns on the first"))
                    if writer is not None:
                        sinks[cam].append(camera_frame_for_storage(msg, p.camera), stamp)
                    nxt[cam] = k + 1
            except FrameError as exc:
                raise RawLogError(path, "undecodable_frame", f"camera {cam} message {i} decoded on the first read, "
                                                             f"not on the second: {exc}") from exc
        short = {cam: (nxt[cam], len(plans[cam].message_index)) for cam in names
                 if nxt[cam] != len(plans[cam].message_index)}
        if short:
            raise RawLogError(path, "unreadable", "the second read of the cameras found fewer frames than the first: "
                              + ", ".join(f"{c} {a} of {b}" for c, (a, b) in short.items()))
        written = writer.close() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return written, frames
