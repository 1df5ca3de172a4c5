"""The processed-episode HDF5 format: one file per episode, streams synchronised at a fixed fps.

Layout of ``episodes-hdf5/<YYYY-MM-DD>/<robot_id>/<episode_id>.h5`` (T frames at ``fps`` Hz; D state
joints and A action joints as the recording's robot profile names them):

=======================================  =================  ==========================================
dataset                                  shape / dtype      meaning
=======================================  =================  ==========================================
``timestamps``                           (T,) float64       seconds since the first frame (k / fps)
``observation/state``                    (T, D) float32     joint positions, radians (attr ``names``)
``observation/velocity``                 (T, D) float32     joint velocities, rad/s (attr ``names``)
``action``                               (T, A) float32     commanded joint targets (attr ``names``)
``locomotion_command``                   (T, 4) float32     forward/lateral/yaw flags, stance height
                                                            (m); only for profiles with locomotion
``observation/extras/<name>``            (T, K) float32     an extra sensor (IMU, wrench), linearly
                                                            interpolated (attr ``names``); format ≥ 3
``observation/images/<camera>/data``     (B,) uint8         the camera's **stored frames, encoded**,
                                                            back to back (format ≥ 3, see below)
``observation/images/<camera>/offsets``  (N + 1,) int64     stored frame i is ``data[off[i]:off[i+1]]``
``observation/images/<camera>/stamps_ns`` (N,) int64        header stamp of each stored frame, ns
``alignment/skew/<camera>``              (T,) float32       |frame stamp - frame time|, seconds
``alignment/source_index/<camera>``      (T,) int64         stored frame each frame shows; equal
                                                            neighbours are a repeated frame
=======================================  =================  ==========================================

**Camera frames stay compressed** (format 3): each camera keeps the N distinct source frames its T
frames show (a 15 Hz camera in a 20 fps episode stores each source frame once, not once per frame),
encoded as ``encoding`` (group attribute): ``jpeg`` — the recording's own JPEG bytes, unchanged; or
``png`` — lossless PNG of a raw ``sensor_msgs/Image`` (``rgb8``; ``bgr8`` converted to RGB;
``mono8``; depth ``16UC1`` in millimetres as 16-bit PNG; ``32FC1`` metres converted to 16UC1 mm,
non-finite/non-positive → 0 = "no reading", REP 118) or of frames handed over decoded. So the layer
holds about the recording's image bytes (≤ 1 ×) and still reads frame by frame
(:class:`EpisodeReader`). Group attributes: ``kind`` (``rgb`` or ``depth``), ``height``, ``width``,
``encoding``, ``source_encoding`` (what the recording carried: ``jpeg``, ``png``, ``rgb8``, …),
``source_rate_hz`` (the camera's own mean rate), ``depth_unit`` (``mm``, depth only). Colour frames
decode to (H, W, 3) uint8 RGB, depth frames to (H, W) uint16 millimetres.

Format 2 files (decoded RGB frames as one (T, H, W, 3) uint8 dataset per camera, gzip 4) are still
read.

File attributes: ``episode_id``, ``robot_id``, ``capture_day``, ``task``, ``fps``, ``start_time_ns``
(ROS time of frame 0), ``format_version``, ``profile`` (``<name>@<version>`` of the robot profile,
format ≥ 3) and what the processing stage adds: ``source_key`` (lake key of the raw recording, never a
filesystem path or URI), ``source_sha256``, ``rights`` (JSON), ``operator``, ``site`` and ``outcome``
(JSON ``{"success": bool, "min_distance_m": float | null}``, ``null`` when the recording states none).

Files are byte-reproducible: the same content always gives the same bytes (h5py does not record
object times by default; attributes are written in a fixed order; PNG encoding is deterministic).
Writers go through a temporary file renamed on success, so no half file is ever visible.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
from PIL import Image

#: 2: ``alignment/source_index``, ``source_rate_hz``, ``source_key``, ``outcome``.
#: 3: cameras stored encoded (distinct source frames once), depth cameras, extras, optional
#:    locomotion command, ``profile`` attribute.
FORMAT_VERSION = 3

#: Bytes per chunk of a camera's ``data`` dataset (unfiltered, so one frame reads only its bytes).
DATA_CHUNK_BYTES = 1 << 18

_ATTR_ORDER = ("format_version", "episode_id", "robot_id", "capture_day", "task", "fps", "start_time_ns")


class EpisodeFormatError(ValueError):
    """An episode file or in-memory episode breaks the format (names the dataset and the problem)."""


@dataclass
class EncodedFrames:
    """One camera's stored frames, encoded (what format 3 keeps per camera).

    Attributes:
        frames: N encoded frames (``encoding`` bytes), in stream order.
        encoding: ``jpeg`` or ``png``.
        kind: ``rgb`` (decodes to (H, W, 3) uint8) or ``depth`` (decodes to (H, W) uint16 mm).
        height, width: frame size, pixels.
        source_encoding: what the recording carried (``jpeg``, ``png``, ``rgb8``, ``bgr8``, ``mono8``,
            ``16UC1``, ``32FC1``).
        stamps_ns: (N,) int64 header stamps of the stored frames (empty when unknown).
    """

    frames: list[bytes]
    encoding: str
    kind: str
    height: int
    width: int
    source_encoding: str = ""
    stamps_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def encode_png(frame: np.ndarray) -> bytes:
    """Lossless PNG of an (H, W, 3) uint8 RGB, (H, W) uint8 grey or (H, W) uint16 depth frame.

    Deterministic (Pillow, compress level 1). Raises:
        EpisodeFormatError: another shape or dtype.
    """
    arr = np.ascontiguousarray(frame)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        im = Image.fromarray(arr, "RGB")
    elif arr.dtype == np.uint8 and arr.ndim == 2:
        im = Image.fromarray(arr, "L")
    elif arr.dtype == np.uint16 and arr.ndim == 2:
        im = Image.fromarray(arr)  # mode I;16: a 16-bit greyscale PNG
    else:
        raise EpisodeFormatError(f"cannot store a {arr.shape} {arr.dtype} frame as PNG "
                                 "(expected (H, W, 3) uint8, (H, W) uint8 or (H, W) uint16)")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_frame(data: bytes, kind: str) -> np.ndarray:
    """Decode one stored frame: ``rgb`` → (H, W, 3) uint8 RGB; ``depth`` → (H, W) uint16 mm.

    Raises:
        EpisodeFormatError: the bytes do not decode as an image.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            if kind == "depth":
                arr = np.asarray(im)
                return arr.astype(np.uint16, copy=False)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise EpisodeFormatError(f"a stored {kind} frame does not decode: {exc}") from exc


@dataclass
class EpisodeData:
    """One synchronised episode in memory. Shapes as in the module docstring.

    Attributes:
        episode_id, robot_id, capture_day: identity of the raw episode.
        task: natural-language task instruction.
        fps: frame rate, Hz.
        timestamps: (T,) float64 seconds since frame 0.
        state: (T, D) float32 joint positions, radians; ``state_names`` has D entries.
        velocity: (T, D) float32 joint velocities, rad/s.
        action: (T, A) float32 commanded joint targets; ``action_names`` has A entries.
        locomotion_command: (T, 4) float32, or None for a robot without locomotion.
        images: colour camera → (T, H, W, 3) uint8 RGB, decoded (empty when not loaded, or when the
            camera is given in ``encoded``).
        skew: camera → (T,) float32 seconds (every camera, colour or depth).
        start_time_ns: ROS time (ns) of frame 0.
        attrs: extra attributes (source key, sha256, rights JSON, outcome JSON...).
        source_index: camera → (T,) int64 index of the source frame each frame shows (empty when
            unknown, e.g. a format-version-1 file).
        source_rate_hz: camera → the camera's own mean frame rate, Hz (empty when unknown).
        depth: depth camera → (T, H, W) uint16 millimetres, decoded (empty when not loaded).
        encoded: camera → :class:`EncodedFrames`, the stored frames as the file keeps them (the
            writer's input when frames stay compressed; ``source_index`` then indexes them).
        extras: name → (T, K) float32 extra sensor values; ``extras_names`` name → K column names.
        profile: ``<name>@<version>`` of the robot profile the episode follows ("" when unknown).
    """

    episode_id: str
    robot_id: str
    capture_day: str
    task: str
    fps: float
    timestamps: np.ndarray
    state: np.ndarray
    state_names: list[str]
    velocity: np.ndarray
    action: np.ndarray
    action_names: list[str]
    locomotion_command: np.ndarray | None
    images: dict[str, np.ndarray]
    skew: dict[str, np.ndarray]
    start_time_ns: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    source_index: dict[str, np.ndarray] = field(default_factory=dict)
    source_rate_hz: dict[str, float] = field(default_factory=dict)
    depth: dict[str, np.ndarray] = field(default_factory=dict)
    encoded: dict[str, EncodedFrames] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    extras_names: dict[str, list[str]] = field(default_factory=dict)
    profile: str = ""

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.timestamps.shape[0])

    @property
    def cameras(self) -> list[str]:
        """Every camera of the episode (colour and depth), in skew order."""
        return list(self.skew)

    def validate(self, *, require_images: bool = True) -> None:
        """Check shapes and dtypes agree with the format.

        Args:
            require_images: every camera in ``skew`` must have its frames (``images``, ``depth`` or
                ``encoded``); False for an episode read without images.

        Raises:
            EpisodeFormatError: naming the first inconsistent field.
        """
        t = self.num_frames
        checks = [
            ("timestamps", self.timestamps, (t,), np.float64),
            ("state", self.state, (t, len(self.state_names)), np.float32),
            ("velocity", self.velocity, (t, len(self.state_names)), np.float32),
            ("action", self.action, (t, len(self.action_names)), np.float32),
        ]
        if self.locomotion_command is not None:
            checks.append(("locomotion_command", self.locomotion_command, (t, 4), np.float32))
        for name, arr in self.extras.items():
            k = len(self.extras_names.get(name, []))
            checks.append((f"extras/{name}", arr, (t, k), np.float32))
        for cam, img in self.images.items():
            if img.ndim != 4 or img.shape[0] != t or img.shape[3] != 3:
                raise EpisodeFormatError(f"images/{cam} has shape {img.shape}, expected ({t}, H, W, 3)")
            checks.append((f"images/{cam}", img, img.shape, np.uint8))
        for cam, d in self.depth.items():
            if d.ndim != 3 or d.shape[0] != t:
                raise EpisodeFormatError(f"depth/{cam} has shape {d.shape}, expected ({t}, H, W)")
            checks.append((f"depth/{cam}", d, d.shape, np.uint16))
        for cam, enc in self.encoded.items():
            if enc.encoding not in ("jpeg", "png") or enc.kind not in ("rgb", "depth"):
                raise EpisodeFormatError(f"encoded/{cam}: encoding {enc.encoding!r} / kind {enc.kind!r} "
                                         "(expected jpeg|png and rgb|depth)")
            if cam not in self.source_index:
                raise EpisodeFormatError(f"encoded/{cam} needs source_index/{cam} (which stored frame each frame shows)")
            idx = np.asarray(self.source_index[cam])
            if idx.size and (idx.min() < 0 or idx.max() >= len(enc.frames)):
                raise EpisodeFormatError(f"source_index/{cam} points outside the {len(enc.frames)} stored frames")
        framed = set(self.images) | set(self.depth) | set(self.encoded)
        overlap = (set(self.images) & set(self.depth)) | ((set(self.images) | set(self.depth)) & set(self.encoded))
        if overlap:
            raise EpisodeFormatError(f"camera(s) {sorted(overlap)} given twice (images/depth/encoded)")
        if framed - set(self.skew):
            raise EpisodeFormatError(f"camera(s) {sorted(framed - set(self.skew))} have frames but no skew")
        if require_images and set(self.skew) - framed:
            raise EpisodeFormatError(f"camera(s) {sorted(set(self.skew) - framed)} have no frames")
        for cam in self.skew:
            checks.append((f"skew/{cam}", self.skew[cam], (t,), np.float32))
            if cam in self.source_index:
                checks.append((f"source_index/{cam}", self.source_index[cam], (t,), np.int64))
        unknown = sorted((set(self.source_index) | set(self.source_rate_hz)) - set(self.skew))
        if unknown:
            raise EpisodeFormatError(f"source_index/source_rate_hz name camera(s) {unknown} the episode does not have")
        for name, arr, shape, dtype in checks:
            if arr.shape != shape or arr.dtype != dtype:
                raise EpisodeFormatError(f"{name} is {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}")


@dataclass(frozen=True)
class CameraInfo:
    """How one camera is stored in an episode file.

    ``kind`` ``rgb`` frames decode to (H, W, 3) uint8, ``depth`` to (H, W) uint16 mm; ``encoding`` is
    ``jpeg``/``png`` (format 3) or ``dense`` (format 2); ``num_stored`` N distinct stored frames.
    """

    name: str
    kind: str
    height: int
    width: int
    encoding: str
    source_encoding: str
    num_stored: int
    source_rate_hz: float | None


def _unique_frames(source_index: np.ndarray | None, t: int) -> tuple[np.ndarray, np.ndarray]:
    """(first frame of each distinct source frame, (T,) int64 index of each frame into those)."""
    if source_index is None or len(source_index) != t:
        return np.arange(t), np.arange(t, dtype=np.int64)
    vals, first, inverse = np.unique(np.asarray(source_index), return_index=True, return_inverse=True)
    return first, inverse.astype(np.int64).reshape(-1)


class EpisodeWriter:
    """Write one episode file, cameras streamed frame by frame (bounded memory).

    Usage::

        with EpisodeWriter(path, low_dim_episode) as w:       # low_dim_episode: EpisodeData, no frames
            sink = w.camera("head", kind="rgb", encoding="jpeg", height=480, width=640,
                            source_encoding="jpeg", num_stored=N)
            for data, stamp in frames:                        # N encoded frames, in order
                sink.append(data, stamp)

    The file is written to ``<path>.tmp`` and renamed on a clean exit; an exception (or a camera
    given fewer frames than announced) removes the temporary file, so no half file is visible. The
    low-dimensional episode's ``skew``/``source_index``/``source_rate_hz`` describe every camera
    that will be added.

    Raises:
        EpisodeFormatError: the low-dimensional episode fails validation, a camera is added twice or
            not described, or gets more/fewer frames than announced.
    """

    def __init__(self, path: str | os.PathLike[str], ep: EpisodeData):
        ep.validate(require_images=False)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self._ep = ep
        self._sinks: dict[str, _CameraSink] = {}
        self._f = h5py.File(self.tmp, "w")
        try:
            self._write_low_dim(ep)
        except BaseException:
            self.abort()
            raise

    def _write_low_dim(self, ep: EpisodeData) -> None:
        f = self._f
        f.attrs.update({
            "format_version": FORMAT_VERSION,
            "episode_id": ep.episode_id,
            "robot_id": ep.robot_id,
            "capture_day": ep.capture_day,
            "task": ep.task,
            "fps": float(ep.fps),
            "start_time_ns": int(ep.start_time_ns),
        })
        if ep.profile:
            f.attrs["profile"] = ep.profile
        for k, v in ep.attrs.items():
            f.attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
        f.create_dataset("timestamps", data=ep.timestamps)
        d = f.create_dataset("observation/state", data=ep.state)
        d.attrs["names"] = json.dumps(ep.state_names)
        d = f.create_dataset("observation/velocity", data=ep.velocity)
        d.attrs["names"] = json.dumps(ep.state_names)
        d = f.create_dataset("action", data=ep.action)
        d.attrs["names"] = json.dumps(ep.action_names)
        if ep.locomotion_command is not None:
            f.create_dataset("locomotion_command", data=ep.locomotion_command)
        for name in sorted(ep.extras):
            d = f.create_dataset(f"observation/extras/{name}", data=ep.extras[name])
            d.attrs["names"] = json.dumps(ep.extras_names.get(name, []))
        for cam in ep.skew:
            f.create_dataset(f"alignment/skew/{cam}", data=ep.skew[cam])

    def camera(self, cam: str, *, kind: str, encoding: str, height: int, width: int, num_stored: int,
               source_encoding: str = "", source_index: np.ndarray | None = None) -> "_CameraSink":
        """Start camera ``cam``: ``num_stored`` encoded frames will follow (``append``).

        ``source_index`` (T,) int64 into the stored frames (default: the episode's
        ``source_index[cam]``).

        Raises:
            EpisodeFormatError: unknown camera, added twice, bad kind/encoding or index.
        """
        if cam not in self._ep.skew:
            raise EpisodeFormatError(f"camera {cam!r} has no skew in the episode (cameras: {list(self._ep.skew)})")
        if cam in self._sinks:
            raise EpisodeFormatError(f"camera {cam!r} added twice")
        if kind not in ("rgb", "depth") or encoding not in ("jpeg", "png"):
            raise EpisodeFormatError(f"camera {cam}: kind {kind!r} / encoding {encoding!r} (expected rgb|depth, jpeg|png)")
        if kind == "depth" and encoding != "png":
            raise EpisodeFormatError(f"camera {cam}: depth frames are stored as 16-bit PNG (millimetres), not {encoding}")
        idx = np.asarray(source_index if source_index is not None else self._ep.source_index.get(cam), np.int64)
        if idx.shape != (self._ep.num_frames,):
            raise EpisodeFormatError(f"camera {cam}: source_index must be ({self._ep.num_frames},) int64, got {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= num_stored):
            raise EpisodeFormatError(f"camera {cam}: source_index points outside the {num_stored} stored frames")
        g = self._f.create_group(f"observation/images/{cam}")
        g.attrs.update({"kind": kind, "encoding": encoding, "height": int(height), "width": int(width),
                        "source_encoding": source_encoding or encoding})
        if kind == "depth":
            g.attrs["depth_unit"] = "mm"
        if cam in self._ep.source_rate_hz:
            g.attrs["source_rate_hz"] = float(self._ep.source_rate_hz[cam])
        self._f.create_dataset(f"alignment/source_index/{cam}", data=idx)
        sink = _CameraSink(g, cam, int(num_stored))
        self._sinks[cam] = sink
        return sink

    def close(self) -> Path:
        """Finish: every described camera must be complete; rename into place and return the path.

        Raises:
            EpisodeFormatError: a camera is missing or incomplete (the temporary file is removed).
        """
        try:
            missing = [c for c in self._ep.skew if c not in self._sinks]
            if missing:
                raise EpisodeFormatError(f"camera(s) {missing} were never written")
            for sink in self._sinks.values():
                sink.finish()
            self._f.close()
        except BaseException:
            self.abort()
            raise
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file (no file appears at ``path``)."""
        try:
            self._f.close()
        except Exception:  # already closed or never fully opened: nothing more to release
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _CameraSink:
    """Appends one camera's encoded frames to its ``data``/``offsets``/``stamps_ns`` datasets."""

    def __init__(self, group: h5py.Group, cam: str, num_stored: int):
        self.cam = cam
        self.n = num_stored
        self._data = group.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.uint8,
                                          chunks=(DATA_CHUNK_BYTES,))
        self._group = group
        self._offsets = np.zeros(num_stored + 1, np.int64)
        self._stamps = np.zeros(num_stored, np.int64)
        self._i = 0
        self._buf: list[bytes] = []
        self._buf_bytes = 0

    def append(self, data: bytes, stamp_ns: int = 0) -> None:
        """Add the next stored frame (encoded bytes) and its header stamp (ns).

        Raises:
            EpisodeFormatError: more frames than announced, or an empty frame.
        """
        if self._i >= self.n:
            raise EpisodeFormatError(f"camera {self.cam}: more than the {self.n} announced frames")
        if not data:
            raise EpisodeFormatError(f"camera {self.cam}: stored frame {self._i} is empty")
        self._offsets[self._i + 1] = self._offsets[self._i] + len(data)
        self._stamps[self._i] = int(stamp_ns)
        self._i += 1
        self._buf.append(bytes(data))
        self._buf_bytes += len(data)
        if self._buf_bytes >= 4 * DATA_CHUNK_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        blob = np.frombuffer(b"".join(self._buf), np.uint8)
        start = self._data.shape[0]
        self._data.resize((start + blob.size,))
        self._data[start:] = blob
        self._buf, self._buf_bytes = [], 0

    def finish(self) -> None:
        if self._i != self.n:
            raise EpisodeFormatError(f"camera {self.cam}: {self._i} of {self.n} announced frames were written")
        self._flush()
        self._group.create_dataset("offsets", data=self._offsets)
        self._group.create_dataset("stamps_ns", data=self._stamps)


def write_episode_h5(path: str | os.PathLike[str], ep: EpisodeData) -> Path:
    """Write ``ep`` (frames in memory) to ``path`` via a temporary file + rename.

    Cameras in ``ep.encoded`` are written as given; decoded ``images``/``depth`` are stored as
    lossless PNG, each distinct source frame (``source_index``) once.

    Raises:
        EpisodeFormatError: ``ep`` fails :meth:`EpisodeData.validate`.
    """
    ep.validate()
    t = ep.num_frames
    low = _without_frames(ep)
    plans: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for cam in list(ep.images) + list(ep.depth):
        first, index = _unique_frames(ep.source_index.get(cam), t)
        plans[cam] = (first, index)
        low.source_index[cam] = index
    with EpisodeWriter(path, low) as w:
        for cam in ep.skew:
            if cam in ep.encoded:
                enc = ep.encoded[cam]
                sink = w.camera(cam, kind=enc.kind, encoding=enc.encoding, height=enc.height, width=enc.width,
                                num_stored=len(enc.frames), source_encoding=enc.source_encoding)
                stamps = enc.stamps_ns if len(enc.stamps_ns) == len(enc.frames) else np.zeros(len(enc.frames), np.int64)
                for data, stamp in zip(enc.frames, stamps):
                    sink.append(data, int(stamp))
                continue
            dense = ep.images[cam] if cam in ep.images else ep.depth[cam]
            kind = "rgb" if cam in ep.images else "depth"
            first, _ = plans[cam]
            sink = w.camera(cam, kind=kind, encoding="png", height=dense.shape[1], width=dense.shape[2],
                            num_stored=len(first), source_encoding="png")
            for k in first:
                sink.append(encode_png(dense[k]))
    return Path(path)


def _without_frames(ep: EpisodeData) -> EpisodeData:
    """A shallow copy of ``ep`` without frames (images/depth/encoded)."""
    return EpisodeData(
        episode_id=ep.episode_id, robot_id=ep.robot_id, capture_day=ep.capture_day, task=ep.task, fps=ep.fps,
        timestamps=ep.timestamps, state=ep.state, state_names=list(ep.state_names), velocity=ep.velocity,
        action=ep.action, action_names=list(ep.action_names), locomotion_command=ep.locomotion_command,
        images={}, skew=dict(ep.skew), start_time_ns=ep.start_time_ns, attrs=dict(ep.attrs),
        source_index=dict(ep.source_index), source_rate_hz=dict(ep.source_rate_hz), extras=dict(ep.extras),
        extras_names=dict(ep.extras_names), profile=ep.profile)


class EpisodeReader:
    """Read an episode file (format 2 or 3) frame by frame.

    ``cameras`` describes every camera; :meth:`frame` decodes frame k of a camera, :meth:`iter_frames`
    yields all T frames decoding each stored frame once (bounded memory), :meth:`encoded_frame`
    returns a stored frame's bytes without decoding (format 3). Use as a context manager.

    Raises:
        OSError: not an HDF5 file. KeyError: a required dataset is missing.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._f = h5py.File(self.path, "r")
        try:
            self.format_version = int(self._f.attrs.get("format_version", 1))
            self.num_frames = int(self._f["timestamps"].shape[0])
            self.cameras: dict[str, CameraInfo] = {}
            self._index: dict[str, np.ndarray] = {}
            self._offsets: dict[str, np.ndarray] = {}
            if "observation/images" in self._f:
                for cam in self._f["observation/images"]:
                    self.cameras[cam] = self._camera_info(cam)
        except BaseException:
            self._f.close()
            raise

    def _camera_info(self, cam: str) -> CameraInfo:
        node = self._f[f"observation/images/{cam}"]
        rate = node.attrs.get("source_rate_hz")
        rate = float(rate) if rate is not None else None
        if isinstance(node, h5py.Dataset):  # format 2: dense (T, H, W, 3) uint8
            return CameraInfo(cam, "rgb", int(node.shape[1]), int(node.shape[2]), "dense", "dense",
                              int(node.shape[0]), rate)
        return CameraInfo(cam, str(node.attrs["kind"]), int(node.attrs["height"]), int(node.attrs["width"]),
                          str(node.attrs["encoding"]), str(node.attrs.get("source_encoding", "")),
                          int(node["offsets"].shape[0]) - 1, rate)

    def source_index(self, cam: str) -> np.ndarray:
        """(T,) int64 stored frame each frame shows (frame k itself for a format-2 camera)."""
        if cam not in self._index:
            key = f"alignment/source_index/{cam}"
            info = self.cameras[cam]
            if info.encoding == "dense" or key not in self._f:
                self._index[cam] = np.arange(self.num_frames, dtype=np.int64)
            else:
                self._index[cam] = self._f[key][()]
        return self._index[cam]

    def encoded_frame(self, cam: str, i: int) -> bytes:
        """Stored frame ``i`` of ``cam``, encoded (``cameras[cam].encoding``).

        Raises:
            EpisodeFormatError: a format-2 (dense) camera has no encoded frames.
        """
        info = self.cameras[cam]
        if info.encoding == "dense":
            raise EpisodeFormatError(f"{self.path}: camera {cam} is stored decoded (format 2)")
        if cam not in self._offsets:
            self._offsets[cam] = self._f[f"observation/images/{cam}/offsets"][()]
        off = self._offsets[cam]
        return self._f[f"observation/images/{cam}/data"][int(off[i]):int(off[i + 1])].tobytes()

    def stored_frame(self, cam: str, i: int) -> np.ndarray:
        """Stored frame ``i`` decoded: (H, W, 3) uint8 RGB or (H, W) uint16 mm depth."""
        info = self.cameras[cam]
        if info.encoding == "dense":
            return self._f[f"observation/images/{cam}"][i]
        return decode_frame(self.encoded_frame(cam, i), info.kind)

    def frame(self, cam: str, k: int) -> np.ndarray:
        """Frame ``k`` (0 ≤ k < T) of ``cam``, decoded."""
        return self.stored_frame(cam, int(self.source_index(cam)[k]))

    def iter_frames(self, cam: str, start: int = 0, stop: int | None = None) -> Iterator[np.ndarray]:
        """Frames ``start … stop-1`` of ``cam``, decoded one at a time (a repeated source frame is
        decoded once). The yielded arrays must not be modified (a repeat yields the same array)."""
        idx = self.source_index(cam)
        last_i, last = -1, None
        for k in range(start, self.num_frames if stop is None else stop):
            i = int(idx[k])
            if i != last_i:
                last_i, last = i, self.stored_frame(cam, i)
            yield last

    def frames(self, cam: str) -> np.ndarray:
        """All T frames of ``cam`` decoded: (T, H, W, 3) uint8 or (T, H, W) uint16 (memory grows
        with T: for short episodes; long ones use :meth:`iter_frames`)."""
        info = self.cameras[cam]
        if info.encoding == "dense":
            return self._f[f"observation/images/{cam}"][()]
        idx = self.source_index(cam)
        stored = {int(i): self.stored_frame(cam, int(i)) for i in np.unique(idx)}
        shape = (info.height, info.width, 3) if info.kind == "rgb" else (info.height, info.width)
        out = np.empty((self.num_frames, *shape), np.uint8 if info.kind == "rgb" else np.uint16)
        for k, i in enumerate(idx):
            out[k] = stored[int(i)]
        return out

    def image_bytes(self) -> int:
        """Bytes the file spends on camera frames (encoded data, or dense datasets' storage)."""
        total = 0
        for cam, info in self.cameras.items():
            node = self._f[f"observation/images/{cam}"]
            total += int(node.id.get_storage_size()) if info.encoding == "dense" else int(node["data"].shape[0])
        return total

    def low_dim(self) -> EpisodeData:
        """The episode without frames (``images``/``depth`` empty; skew, source indices, source
        rates, extras and attributes read)."""
        f = self._f
        a = dict(f.attrs)
        skew = {cam: f[f"alignment/skew/{cam}"][()] for cam in self.cameras}
        source_index = {}
        for cam in self.cameras:
            if f"alignment/source_index/{cam}" in f:
                source_index[cam] = f[f"alignment/source_index/{cam}"][()]
        rates = {cam: info.source_rate_hz for cam, info in self.cameras.items() if info.source_rate_hz is not None}
        extras, extras_names = {}, {}
        if "observation/extras" in f:
            for name in f["observation/extras"]:
                d = f[f"observation/extras/{name}"]
                extras[name] = d[()]
                extras_names[name] = json.loads(d.attrs["names"])
        known = set(_ATTR_ORDER) | {"profile"}
        return EpisodeData(
            episode_id=str(a["episode_id"]),
            robot_id=str(a["robot_id"]),
            capture_day=str(a["capture_day"]),
            task=str(a["task"]),
            fps=float(a["fps"]),
            timestamps=f["timestamps"][()],
            state=f["observation/state"][()],
            state_names=json.loads(f["observation/state"].attrs["names"]),
            velocity=f["observation/velocity"][()],
            action=f["action"][()],
            action_names=json.loads(f["action"].attrs["names"]),
            locomotion_command=f["locomotion_command"][()] if "locomotion_command" in f else None,
            images={},
            skew=skew,
            start_time_ns=int(a["start_time_ns"]),
            attrs={k: v for k, v in a.items() if k not in known},
            source_index=source_index,
            source_rate_hz=rates,
            extras=extras,
            extras_names=extras_names,
            profile=str(a.get("profile", "")),
        )

    def close(self) -> None:
        """Close the file."""
        self._f.close()

    def __enter__(self) -> "EpisodeReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_episode_h5(path: str | os.PathLike[str], *, load_images: bool = True) -> EpisodeData:
    """Read an episode written by :func:`write_episode_h5` / :class:`EpisodeWriter` (format 2 or 3).

    Args:
        load_images: if True, every frame is decoded into ``images`` (colour, (T, H, W, 3) uint8) and
            ``depth`` ((T, H, W) uint16 mm) — memory grows with the episode, so long episodes are
            read with :class:`EpisodeReader`; if False both are empty (fast path for low-dimensional
            data).

    Raises:
        OSError: not an HDF5 file. KeyError: a required dataset is missing.
    """
    with EpisodeReader(path) as r:
        ep = r.low_dim()
        if load_images:
            for cam, info in r.cameras.items():
                (ep.images if info.kind == "rgb" else ep.depth)[cam] = r.frames(cam)
        return ep
