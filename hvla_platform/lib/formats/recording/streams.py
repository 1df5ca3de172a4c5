"""Decode the streams a robot profile names from one raw recording, in bounded memory.

A recording's bag (any layout :func:`~hvla_platform.lib.formats.bags.bag.open_bag` reads: MCAP
files, rosbag2 MCAP or sqlite3 directories, ROS 1 ``.bag``) is read through any object with the
:class:`MessageSource` methods — ``topics()`` and ``messages(topics)`` in log-time order — and
decoded the way its :class:`~hvla_platform.lib.formats.recording.profile.RobotProfile` says:

=====================  ===============================================================================
stream                 what :func:`read_recording_streams` keeps
=====================  ===============================================================================
``joint_state``        :class:`JointStream`: positions (rad) and velocities (rad/s) in the profile's
                       joint order, matched **by name** (a driver publishing another order lines up)
``commands.<name>``    :class:`JointStream`: ``JointState`` by name; ``Float64MultiArray`` ``data`` in
                       the profile's joint order (its length checked); ``Float64`` one value
``locomotion``         (N, 4) forward/lateral/yaw flags and stance height (m), when the profile has it
``task``               the first non-empty instruction
``cameras.<name>``     :class:`CameraStream`: **stamps and formats only** — every frame is handed to
                       ``on_frame`` (to be judged and dropped), never kept (``keep_frames`` keeps
                       compressed bytes for small legacy callers)
``extras.<name>``      :class:`ExtraStream`: ``Imu`` → 10 columns, ``WrenchStamped`` → 6
                       (:data:`~hvla_platform.lib.formats.recording.profile.EXTRA_COLUMNS`); optional
=====================  ===============================================================================

Times are the messages' ``header.stamp`` (the sample time on the robot), ns since the Unix epoch;
``Float64MultiArray`` and ``Float64`` have no header, so their time is the log time (when the
recorder received them). Camera pixels are decoded by :func:`camera_frame_pixels` (RGB uint8, or
depth in millimetres, REP 118) and re-encoded for the episode file by :func:`camera_frame_for_storage`
(JPEG/PNG bytes unchanged, raw images as lossless PNG). A second read of the camera topics alone
(:func:`iter_camera_messages`) hands the frames over again for writing, so no pass ever holds an
episode's frames.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from hvla_platform.lib.formats.episode_h5 import encode_png
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.profile import (
    EXTRA_COLUMNS,
    MSG_COMPRESSED_IMAGE,
    MSG_FLOAT64_MULTI_ARRAY,
    MSG_IMAGE,
    MSG_IMU,
    MSG_JOINT_STATE,
    Camera,
    JointStream as JointStreamSpec,
    RobotProfile,
)

#: Bytes per pixel of the raw ``sensor_msgs/Image`` encodings a profile may name.
RAW_BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "mono8": 1, "16UC1": 2, "32FC1": 4}

_SHOW_CLOSEST = 3


class FrameError(ValueError):
    """One camera frame cannot be decoded as the profile says (the message says why)."""


# ------------------------------------------------------------------------------------------------
# what the reader hands out


@dataclass
class JointStream:
    """A stream of joint values (joint state or one command stream).

    Attributes:
        stamps_ns: (N,) int64 sample times, ns (header stamps; log times for headerless types).
        position: (N, J) float64, radians (metres for prismatic joints), columns in ``names`` order.
        velocity: (N, J) float64 rad/s (zeros when the messages carry none, e.g. commands).
        names: J joint names (the profile's order).
        log_ns: (N,) int64 log times (when the recorder received each message), ns; empty when the
            stream was not read from a file.
    """

    stamps_ns: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    names: list[str]
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class CameraStream:
    """One camera's frames as read in pass 1: times and formats, no pixels.

    Attributes:
        stamps_ns: (N,) int64 header stamps, ns.
        formats: N strings, the ``CompressedImage.format`` or ``Image.encoding`` of each frame.
        log_ns: (N,) int64 log times, ns (empty when not read from a file).
        frames: the N compressed frames' bytes, only when read with ``keep_frames=True`` (small
            recordings, legacy callers); None otherwise.
        camera: the profile's camera entry (None for streams built by hand).
    """

    stamps_ns: np.ndarray
    formats: list[str]
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frames: list[bytes] | None = None
    camera: Camera | None = None


#: The name :mod:`hvla_platform.lib.formats.mcap.streams` used before robot profiles.
ImageStream = CameraStream


@dataclass
class ExtraStream:
    """An optional sensor stream: (N,) int64 ``stamps_ns``, (N, K) float64 ``values`` with K
    ``names`` (:data:`~hvla_platform.lib.formats.recording.profile.EXTRA_COLUMNS` of ``msgtype``;
    IMU orientation as a quaternion, angular velocity rad/s, linear acceleration m/s²; wrench in
    N and N·m) and (N,) int64 ``log_ns``."""

    stamps_ns: np.ndarray
    values: np.ndarray
    names: list[str]
    msgtype: str
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class RecordingStreams:
    """Every stream a profile names, decoded but not yet synchronised (pass 1).

    Attributes:
        profile: the robot profile the recording was read with.
        joint_state: the measured joints (``profile.state_names``).
        commands: command stream name → :class:`JointStream` (every ``commands`` entry).
        locomotion_stamps_ns / locomotion: (N,) int64 and (N, 4) float64 (forward, lateral, yaw
            flags; stance height, m), or None when the profile has no locomotion.
        task: the task instruction.
        cameras: camera name → :class:`CameraStream` (every profile camera).
        extras: extra name → :class:`ExtraStream` (only those the recording carries).
        path: what error messages name (the bag).
    """

    profile: RobotProfile
    joint_state: JointStream
    commands: dict[str, JointStream]
    locomotion_stamps_ns: np.ndarray | None
    locomotion: np.ndarray | None
    task: str
    cameras: dict[str, CameraStream] = field(default_factory=dict)
    extras: dict[str, ExtraStream] = field(default_factory=dict)
    path: str = ""

    @property
    def joint_states(self) -> JointStream:
        """:attr:`joint_state` (the name before profiles)."""
        return self.joint_state

    @property
    def action_commands(self) -> list[tuple[str, JointStream]]:
        """``(name, stream)`` of the ``features.action`` command streams, in action order."""
        return [(name, self.commands[name]) for name in self.profile.features.action]

    @property
    def arm_command(self) -> JointStream:
        """The one ``features.action`` command stream (the G1's arm command: the name before
        profiles).

        Raises:
            AttributeError: the profile forms its action from several command streams (use
                :attr:`action_commands`).
        """
        streams = self.action_commands
        if len(streams) != 1:
            raise AttributeError(f"profile {self.profile.key} forms its action from {len(streams)} command streams "
                                 f"({[n for n, _ in streams]}): use action_commands")
        return streams[0][1]


#: The name :mod:`hvla_platform.lib.formats.mcap.streams` used before robot profiles.
EpisodeStreams = RecordingStreams


class SourceMessage(Protocol):
    """One decoded message (:class:`~hvla_platform.lib.formats.bags.messages.BagMessage`)."""

    topic: str
    msgtype: str
    log_ns: int
    msg: Any


class TopicFacts(Protocol):
    """Per-topic facts (:class:`~hvla_platform.lib.formats.bags.messages.TopicInfo`)."""

    msgtype: str
    message_count: int


class MessageSource(Protocol):
    """What the reader needs of a bag (:class:`~hvla_platform.lib.formats.bags.bag.Bag` has it).

    ``topics()``: topic → facts of every topic registered in the recording (empty ones included).
    ``messages(topics)``: the decoded messages on ``topics`` in log-time order (a topic's messages
    always in the same order, so two reads agree).
    """

    def topics(self) -> dict[str, TopicFacts]: ...

    def messages(self, topics: Iterable[str]) -> Iterator[SourceMessage]: ...


# ------------------------------------------------------------------------------------------------
# camera frames


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    return np.asarray(data, dtype=np.uint8).tobytes()


def _as_u8(data: Any) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, np.uint8)
    return np.asarray(data, dtype=np.uint8).reshape(-1)


def camera_kind(cam: Camera) -> str:
    """``depth`` for ``16UC1``/``32FC1`` cameras, else ``rgb`` (what the episode file calls them)."""
    return "depth" if cam.is_depth else "rgb"


def storage_encoding(cam: Camera) -> str:
    """How the episode file stores the camera: ``jpeg``/``png`` for a ``CompressedImage`` camera
    (its bytes unchanged), ``png`` for a raw ``Image`` camera (lossless)."""
    return cam.encoding if cam.type == MSG_COMPRESSED_IMAGE else "png"


def depth_m_to_mm(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) float depth in metres → (H, W) uint16 millimetres (REP 118): rounded to the nearest
    mm, non-finite or ≤ 0 (no reading) → 0, beyond 65.535 m → 65535."""
    m = np.asarray(depth_m, dtype=np.float64)
    ok = np.isfinite(m) & (m > 0)
    mm = np.rint(np.where(ok, m, 0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def compressed_frame_image(msg: Any, cam: Camera) -> Image.Image:
    """Decode one ``sensor_msgs/CompressedImage`` frame of a ``CompressedImage`` camera into a loaded
    Pillow image, without the copies :func:`camera_frame_pixels` makes: mode ``RGB`` or ``L`` as
    decoded (a grey JPEG stays ``L``), any other mode converted to ``RGB``. Pixel statistics taken
    on it in C (``histogram``, ``ImageChops``) equal those of :func:`camera_frame_pixels`' RGB array
    (an ``L`` frame's RGB form repeats its value in the three channels).

    Raises:
        FrameError: the bytes are not an image of the profile's encoding, or do not decode (a
            truncated or corrupt file: Pillow's strict loading, never a partly decoded frame).
    """
    data = _as_bytes(msg.data)
    try:
        im = Image.open(io.BytesIO(data))
        fmt = (im.format or "").lower()
        if fmt != cam.encoding:
            raise FrameError(f"is {fmt.upper() or 'not an image'}, the profile says {cam.encoding}")
        im.load()
        return im if im.mode in ("RGB", "L") else im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if isinstance(exc, FrameError):
            raise
        raise FrameError(f"{cam.encoding} does not decode: {exc}") from exc


def camera_frame_pixels(msg: Any, cam: Camera) -> np.ndarray:
    """Decode one camera message as the profile's camera entry says.

    Args:
        msg: a decoded ``sensor_msgs/CompressedImage`` (``format``, ``data``) or
            ``sensor_msgs/Image`` (``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``,
            ``data``) message.
        cam: the profile's camera.

    Returns:
        ``jpeg``/``png``/``rgb8``/``bgr8``: (H, W, 3) uint8 RGB (``bgr8`` converted); ``mono8``:
        (H, W) uint8 grey; ``16UC1``: (H, W) uint16 mm; ``32FC1``: (H, W) uint16 mm
        (:func:`depth_m_to_mm`).

    Raises:
        FrameError: the bytes are not an image of the profile's encoding (a PNG where the profile
            says JPEG, a raw image of another encoding, too few bytes for its size).
    """
    if cam.type == MSG_COMPRESSED_IMAGE:
        return np.asarray(compressed_frame_image(msg, cam).convert("RGB"), dtype=np.uint8)
    enc = str(msg.encoding)
    if enc != cam.encoding:
        raise FrameError(f"encoding {enc!r}, the profile says {cam.encoding!r}")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    bpp = RAW_BYTES_PER_PIXEL[enc]
    buf = _as_u8(msg.data)
    if h <= 0 or w <= 0:
        raise FrameError(f"size {h}x{w}")
    if step < w * bpp or buf.size < step * h:
        raise FrameError(f"{buf.size} bytes with step {step} for {h}x{w} {enc} (needs step >= {w * bpp} "
                         f"and {step * h} bytes)")
    rows = buf[: step * h].reshape(h, step)[:, : w * bpp]
    if enc in ("rgb8", "bgr8"):
        px = rows.reshape(h, w, 3)
        return np.ascontiguousarray(px[..., ::-1] if enc == "bgr8" else px)
    if enc == "mono8":
        return np.ascontiguousarray(rows)
    order = ">" if int(getattr(msg, "is_bigendian", 0) or 0) else "<"
    if enc == "16UC1":
        return np.ascontiguousarray(rows).view(f"{order}u2").reshape(h, w).astype(np.uint16)
    return depth_m_to_mm(np.ascontiguousarray(rows).view(f"{order}f4").reshape(h, w))


def camera_frame_for_storage(msg: Any, cam: Camera) -> bytes:
    """The bytes the episode file stores for one frame (:func:`storage_encoding`): a
    ``CompressedImage``'s own bytes, unchanged; a raw ``Image`` as lossless PNG (RGB, grey, or
    16-bit depth in mm).

    Raises:
        FrameError: a raw image does not decode (:func:`camera_frame_pixels`).
    """
    if cam.type == MSG_COMPRESSED_IMAGE:
        return _as_bytes(msg.data)
    return encode_png(camera_frame_pixels(msg, cam))


# ------------------------------------------------------------------------------------------------
# topic checks


def _family(msgtype: str) -> str:
    return "image" if msgtype in (MSG_COMPRESSED_IMAGE, MSG_IMAGE) else msgtype


def closest_topics(topic: str, msgtype: str, found: dict[str, Any], profile: RobotProfile) -> list[str]:
    """Up to 3 topics of ``found`` (topic → facts with ``msgtype``) closest to ``topic``: topics of
    the same message type (any camera type for a camera) no other stream of the profile names,
    most similar name first, then similar names (:mod:`difflib`)."""
    named = set(profile.required_topics) | set(profile.optional_topics)
    free = [t for t in found if t != topic and t not in named]
    same = [t for t in free if _family(found[t].msgtype) == _family(msgtype)]
    same.sort(key=lambda t: (-difflib.SequenceMatcher(None, topic, t).ratio(), t))
    similar = difflib.get_close_matches(topic, free, n=_SHOW_CLOSEST, cutoff=0.5)
    return list(dict.fromkeys(same + similar))[:_SHOW_CLOSEST]


def _closest_text(topic: str, msgtype: str, found: dict[str, Any], profile: RobotProfile) -> str:
    close = closest_topics(topic, msgtype, found, profile)
    if not close:
        return "no topic of the recording is close to it"
    return "closest topics present: " + ", ".join(f"{t} ({found[t].msgtype})" for t in close)


def _stream_topics(profile: RobotProfile) -> list[tuple[str, str, str, bool]]:
    """``(stream, topic, type, required)`` in read order: joint state, commands, locomotion, task,
    cameras, extras (the order :func:`read_recording_streams` asks the source for)."""
    out = [("joint_state", profile.joint_state.topic, profile.joint_state.type, True)]
    out += [(f"commands.{k}", c.topic, c.type, True) for k, c in profile.commands.items()]
    if profile.locomotion is not None:
        out.append(("locomotion", profile.locomotion.topic, profile.locomotion.type, True))
    out.append(("task", profile.task.topic, profile.task.type, True))
    out += [(f"cameras.{k}", c.topic, c.type, True) for k, c in profile.cameras.items()]
    out += [(f"extras.{k}", e.topic, e.type, False) for k, e in profile.extras.items()]
    return out


def check_topics(source: MessageSource, profile: RobotProfile, *, path: str | Path = "") -> list[str]:
    """Check the recording carries every required topic of ``profile`` with its type and some
    messages; return the topics to read (required ones, and the extras present with messages).

    Raises:
        RawLogError: ``missing_topic`` (naming the profile ``name@version`` and the closest topics
            present), ``wrong_type`` (likewise), ``empty_topic`` (channel registered, no message);
            the first problem in read order. Also what ``source.topics()`` raises (``unreadable``).
    """
    found = source.topics()
    read: list[str] = []
    for stream, topic, typ, required in _stream_topics(profile):
        info = found.get(topic)
        if info is None:
            if required:
                raise RawLogError(path, "missing_topic", (
                    f"required topic {topic} ({typ}) is not in the file (robot profile {profile.key}, {stream}; "
                    f"{_closest_text(topic, typ, found, profile)})"))
            continue
        if info.msgtype != typ:
            raise RawLogError(path, "wrong_type", (
                f"topic {topic} has type {info.msgtype!r}, expected {typ!r} (robot profile {profile.key}, {stream}; "
                f"{_closest_text(topic, typ, found, profile)})"))
        if info.message_count == 0:
            if required:
                raise RawLogError(path, "empty_topic", f"required topic {topic} has no messages "
                                                       f"(robot profile {profile.key}, {stream})")
            continue
        read.append(topic)
    return read


# ------------------------------------------------------------------------------------------------
# pass 1


def _stamp(msg: Any) -> int:
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


class RowBuffer:
    """An append-only (N, K) numpy array (or (N,) with ``width`` None) growing by doubling: the
    compact way to collect a long low-dimensional stream (8 bytes per value, not a Python object
    per sample).

    Args:
        width: K values per row, or None for scalars.
        dtype: e.g. ``np.float64`` or ``np.int64``.
    """

    def __init__(self, width: int | None, dtype: Any = np.float64):
        self._shape = () if width is None else (int(width),)
        self._a = np.empty((256, *self._shape), dtype)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def append(self, row: Any) -> None:
        """Add one row (``width`` values, or one scalar)."""
        if self.n == len(self._a):
            grown = np.empty((2 * len(self._a), *self._shape), self._a.dtype)
            grown[: self.n] = self._a
            self._a = grown
        self._a[self.n] = row
        self.n += 1

    def array(self) -> np.ndarray:
        """The rows so far: (N, K) or (N,), a copy."""
        return self._a[: self.n].copy()


class _JointAcc:
    """Accumulates one joint stream (JointState by name, Float64MultiArray, Float64)."""

    def __init__(self, spec: JointStreamSpec, profile: RobotProfile, path: str):
        self.spec, self.profile, self.path = spec, profile, path
        self.expected = list(spec.joints)
        self.names: list[str] | None = None
        self.cols = np.zeros(0, np.intp)  # column of each profile joint in the messages' name order
        self.stamps = RowBuffer(None, np.int64)
        self.logs = RowBuffer(None, np.int64)
        self.pos = RowBuffer(len(self.expected))
        self.vel = RowBuffer(len(self.expected))

    def add(self, m: SourceMessage) -> None:
        msg, topic, i = m.msg, self.spec.topic, len(self.stamps)
        if self.spec.type == MSG_JOINT_STATE:
            names = list(msg.name)
            if self.names is None:
                missing = [j for j in self.expected if j not in names]
                if missing:
                    raise RawLogError(self.path, "bad_joint_names", (
                        f"{topic} lacks joint(s) {missing[:5]}{'...' if len(missing) > 5 else ''} "
                        f"(robot profile {self.profile.key} lists {len(self.expected)} joints)"))
                self.names, self.cols = names, np.asarray([names.index(j) for j in self.expected], np.intp)
            elif names != self.names:
                raise RawLogError(self.path, "bad_joint_names", f"{topic} message {i} changes the joint name order")
            p = np.asarray(msg.position, np.float64).reshape(-1)
            if p.shape[0] != len(names):
                raise RawLogError(self.path, "bad_message",
                                  f"{topic} message {i} has {p.shape[0]} positions for {len(names)} names")
            v = np.asarray(msg.velocity, np.float64).reshape(-1)
            self.pos.append(p[self.cols])
            self.vel.append(v[self.cols] if v.shape[0] == len(names) else 0.0)
            self.stamps.append(_stamp(msg))
        elif self.spec.type == MSG_FLOAT64_MULTI_ARRAY:
            d = np.asarray(msg.data, np.float64).reshape(-1)
            if d.shape[0] != len(self.expected):
                raise RawLogError(self.path, "bad_message", (
                    f"{topic} message {i} carries {d.shape[0]} values; robot profile {self.profile.key} lists "
                    f"{len(self.expected)} joints for it"))
            self.pos.append(d)
            self.vel.append(0.0)
            self.stamps.append(int(m.log_ns))
        else:  # MSG_FLOAT64
            self.pos.append(float(msg.data))
            self.vel.append(0.0)
            self.stamps.append(int(m.log_ns))
        self.logs.append(int(m.log_ns))

    def stream(self) -> JointStream:
        return JointStream(stamps_ns=self.stamps.array(), position=self.pos.array(), velocity=self.vel.array(),
                           names=list(self.expected), log_ns=self.logs.array())


def _extra_values(msg: Any, msgtype: str) -> list[float]:
    if msgtype == MSG_IMU:
        o, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
        return [o.x, o.y, o.z, o.w, w.x, w.y, w.z, a.x, a.y, a.z]
    f, t = msg.wrench.force, msg.wrench.torque
    return [f.x, f.y, f.z, t.x, t.y, t.z]


#: ``on_frame(camera, index, stamp_ns, msg)``: called by :func:`read_recording_streams` for each camera
#: message (``index`` counts the camera's messages from 0; ``stamp_ns`` its header stamp, ns).
FrameCallback = Callable[[str, int, int, Any], None]


def read_recording_streams(source: MessageSource, profile: RobotProfile, *, path: str | Path = "",
                           on_frame: FrameCallback | None = None, keep_frames: bool = False) -> RecordingStreams:
    """Pass 1: read and decode every stream ``profile`` names (see the module docstring).

    Args:
        source: the recording's bag (:func:`~hvla_platform.lib.formats.bags.bag.open_bag`).
        profile: the robot profile it follows.
        path: what error messages name (default: ``source.layout.display`` when it has one).
        on_frame: called as ``on_frame(camera, index, stamp_ns, msg)`` for every camera message in
            stream order (``index`` counts that camera's messages from 0); the message is dropped
            afterwards. Errors it raises propagate.
        keep_frames: also keep every compressed frame's bytes in ``CameraStream.frames`` (memory
            grows with the episode: small recordings only).

    Raises:
        RawLogError: ``missing_topic`` / ``wrong_type`` / ``empty_topic`` (:func:`check_topics`),
            ``bad_joint_names`` (a joint of the profile missing from a ``JointState``, or its
            order changing), ``bad_message`` (a ``JointState`` with fewer positions than names, a
            ``Float64MultiArray`` of another length), ``empty_task`` (only empty instructions), and
            what the source raises (``unreadable``, ``too_large``, ``undecodable``).
    """
    if not path:
        layout = getattr(source, "layout", None)
        path = str(getattr(layout, "display", "")) if layout is not None else ""
    path = str(path)
    topics = check_topics(source, profile, path=path)
    joint = _JointAcc(profile.joint_state, profile, path)
    cmds = {name: _JointAcc(spec, profile, path) for name, spec in profile.commands.items()}
    by_topic: dict[str, tuple[str, Any]] = {profile.joint_state.topic: ("joint", joint)}
    by_topic.update({spec.topic: ("command", cmds[name]) for name, spec in profile.commands.items()})
    loco_t = RowBuffer(None, np.int64)
    loco = RowBuffer(4)
    if profile.locomotion is not None:
        by_topic[profile.locomotion.topic] = ("locomotion", None)
    by_topic[profile.task.topic] = ("task", None)
    cams: dict[str, dict[str, Any]] = {}
    for name, cam in profile.cameras.items():
        by_topic[cam.topic] = ("camera", name)
        cams[name] = {"t": RowBuffer(None, np.int64), "log": RowBuffer(None, np.int64), "fmt": [], "frames": []}
    extras: dict[str, dict[str, Any]] = {}
    for name, extra in profile.extras.items():
        by_topic[extra.topic] = ("extra", name)
        extras[name] = {"t": RowBuffer(None, np.int64), "log": RowBuffer(None, np.int64),
                        "v": RowBuffer(len(EXTRA_COLUMNS[extra.type]))}
    formats: dict[str, str] = {}  # one string object per distinct format, however many frames
    task: str | None = None  # the first non-empty instruction
    expected = {t: typ for _, t, typ, _ in _stream_topics(profile)}
    for m in source.messages(topics):
        role, what = by_topic[m.topic]
        if m.msgtype != expected[m.topic]:  # a second connection of another type on the topic
            raise RawLogError(path, "wrong_type", f"topic {m.topic} has a message of type {m.msgtype!r}, expected "
                                                  f"{expected[m.topic]!r} (robot profile {profile.key})")
        msg = m.msg
        if role in ("joint", "command"):
            what.add(m)
        elif role == "camera":
            c = cams[what]
            stamp = _stamp(msg)
            fmt = str(msg.format) if profile.cameras[what].type == MSG_COMPRESSED_IMAGE else str(msg.encoding)
            if on_frame is not None:
                on_frame(what, len(c["t"]), stamp, msg)
            c["t"].append(stamp)
            c["log"].append(int(m.log_ns))
            c["fmt"].append(formats.setdefault(fmt, fmt))
            if keep_frames:
                c["frames"].append(_as_bytes(msg.data))
        elif role == "locomotion":
            loco_t.append(_stamp(msg))
            loco.append([float(msg.forward_flag), float(msg.lateral_flag), float(msg.yaw_flag),
                         float(msg.stance_height)])
        elif role == "task":
            if task is None and str(msg.data).strip():
                task = str(msg.data)
        else:
            e = extras[what]
            e["t"].append(_stamp(msg))
            e["log"].append(int(m.log_ns))
            e["v"].append(_extra_values(msg, m.msgtype))
    for name, acc in [("joint_state", joint)] + [(f"commands.{k}", a) for k, a in cmds.items()]:
        if not len(acc.stamps):
            raise RawLogError(path, "empty_topic", f"required topic {acc.spec.topic} has no messages "
                                                   f"(robot profile {profile.key}, {name})")
    if task is None:
        raise RawLogError(path, "empty_task", f"{profile.task.topic} carries only empty strings")
    for name, c in cams.items():
        if not len(c["t"]):
            raise RawLogError(path, "empty_topic", f"required topic {profile.cameras[name].topic} has no messages "
                                                   f"(robot profile {profile.key}, cameras.{name})")
    if profile.locomotion is not None and not len(loco_t):
        raise RawLogError(path, "empty_topic", f"required topic {profile.locomotion.topic} has no messages "
                                               f"(robot profile {profile.key}, locomotion)")
    return RecordingStreams(
        profile=profile,
        joint_state=joint.stream(),
        commands={k: a.stream() for k, a in cmds.items()},
        locomotion_stamps_ns=loco_t.array() if profile.locomotion is not None else None,
        locomotion=loco.array() if profile.locomotion is not None else None,
        task=task,
        cameras={name: CameraStream(stamps_ns=c["t"].array(), formats=c["fmt"], log_ns=c["log"].array(),
                                    frames=c["frames"] if keep_frames else None, camera=profile.cameras[name])
                 for name, c in cams.items()},
        extras={name: ExtraStream(stamps_ns=e["t"].array(), values=e["v"].array(),
                                  names=list(EXTRA_COLUMNS[profile.extras[name].type]),
                                  msgtype=profile.extras[name].type, log_ns=e["log"].array())
                for name, e in extras.items() if len(e["t"])},
        path=path,
    )


# ------------------------------------------------------------------------------------------------
# pass 2


def iter_camera_messages(source: MessageSource, profile: RobotProfile, cameras: Sequence[str] | None = None, *,
                         path: str | Path = "") -> Iterator[tuple[str, int, int, Any]]:
    """Pass 2: ``(camera, index, stamp_ns, msg)`` for every message of the profile's camera topics
    (or of ``cameras`` only), in log-time order; ``index`` counts each camera's messages from 0, in
    the order pass 1 saw them.

    Raises:
        RawLogError: ``wrong_type`` (a camera topic carries another type), and what the source
            raises (``unreadable``, ``undecodable``).
    """
    names = list(profile.cameras) if cameras is None else list(cameras)
    by_topic = {profile.cameras[n].topic: n for n in names}
    counts = {n: 0 for n in names}
    for m in source.messages(list(by_topic)):
        name = by_topic[m.topic]
        if m.msgtype != profile.cameras[name].type:
            raise RawLogError(path, "wrong_type", f"topic {m.topic} has a message of type {m.msgtype!r}, expected "
                                                  f"{profile.cameras[name].type!r} (robot profile {profile.key})")
        i = counts[name]
        counts[name] = i + 1
        yield name, i, _stamp(m.msg), m.msg
