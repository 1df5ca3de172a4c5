"""Write a robot recording as a ROS 2 MCAP (CDR, chunked, zstd), the way ``ros2 bag record`` does.

Used by the simulated recorder and by tests that need real recordings with planted defects.
Messages are buffered and written in log-time order (what a recorder receiving several topics
does): all of them when the writer is closed, or, to keep memory bounded on long recordings, those
up to a watermark whenever :meth:`RecordingWriter.flush` is called (a message whose log time is
before an already flushed one is then refused). ``keep_order=True`` writes them in call order
instead, which is how tests plant timestamps that go backwards.

Any robot profile's streams can be written (see :mod:`.ros2_msgs` for the message definitions):
``JointState``, ``Float64MultiArray``, ``Float64`` (:meth:`RecordingWriter.joint_targets` picks by
type), ``CompressedImage`` and raw ``Image``, ``Imu``, ``WrenchStamped``, ``String`` and
``hvla_msgs/LocomotionCommand``. Messages without a header (``Float64MultiArray``, ``Float64``,
``String``) carry their sample time as the MCAP ``publish_time``.

Messages are encoded to CDR (XCDR1, little endian, as ``rosbag2`` writes it) by ``mcap_ros2``'s
encoder for the schema text (:data:`~.ros2_msgs.SCHEMAS`, or ``extra_schemas``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from mcap.well_known import MessageEncoding, SchemaEncoding
from mcap.writer import LIBRARY_IDENTIFIER, CompressionType
from mcap.writer import Writer as McapWriter
from mcap_ros2 import __version__ as _MCAP_ROS2_VERSION
from mcap_ros2._dynamic import serialize_dynamic

from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    MSG_COMPRESSED_IMAGE,
    MSG_JOINT_STATE,
    MSG_LOCOMOTION_COMMAND,
    MSG_STRING,
    TOPIC_ARM_COMMAND,
    TOPIC_JOINT_STATES,
    TOPIC_LOCOMOTION_COMMAND,
    TOPIC_TASK,
)
from hvla_platform.lib.formats.recording.ros2_msgs import (
    MSG_FLOAT64,
    MSG_FLOAT64_MULTI_ARRAY,
    MSG_IMAGE,
    MSG_IMU,
    MSG_WRENCH_STAMPED,
    SCHEMAS,
)

#: Raw ``sensor_msgs/msg/Image`` encodings: (channels, numpy dtype, bytes per channel) (REP 118).
RAW_IMAGE_LAYOUT: dict[str, tuple[int, str, int]] = {
    "rgb8": (3, "uint8", 1), "bgr8": (3, "uint8", 1), "mono8": (1, "uint8", 1),
    "16UC1": (1, "uint16", 2), "32FC1": (1, "float32", 4),
}


def _time(ns: int) -> dict[str, int]:
    return {"sec": int(ns // 1_000_000_000), "nanosec": int(ns % 1_000_000_000)}


def _header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    return {"stamp": _time(stamp_ns), "frame_id": frame_id}


def _xyz(v: Sequence[float]) -> dict[str, float]:
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def _cov9(c: Sequence[float] | float | None) -> list[float]:
    """A row-major 3×3 covariance: 9 values, a scalar (the diagonal) or None (unknown, all zero)."""
    if c is None:
        return [0.0] * 9
    if np.isscalar(c):
        return [float(c), 0.0, 0.0, 0.0, float(c), 0.0, 0.0, 0.0, float(c)]
    vals = [float(x) for x in c]  # type: ignore[union-attr]
    if len(vals) != 9:
        raise ValueError(f"a covariance has 9 values (row-major 3x3), got {len(vals)}")
    return vals


@dataclass
class _Pending:
    log_ns: int
    seq: int
    topic: str
    datatype: str
    message: dict[str, Any]
    publish_ns: int


class RecordingWriter:
    """Collects contract messages and writes them to ``path`` on :meth:`close`.

    All times are ROS time in ns since the Unix epoch: ``stamp_ns`` is the sample time written in
    the message header, ``log_ns`` the time the recorder received it (MCAP ``log_time``).

    Args:
        path: output ``.mcap`` path (written via a temporary file + rename).
        compression: ``"zstd"`` (rosbag2's default for MCAP), ``"lz4"`` or ``"none"``.
        chunk_size: MCAP chunk size in bytes.
        keep_order: write messages in call order instead of sorting by log time.
        extra_schemas: additional ``datatype → ros2msg text`` (e.g. to record an unknown topic).

    Raises (from the writing methods):
        KeyError: no schema for a datatype. ValueError: a malformed message (wrong image shape or
        dtype for its encoding, a covariance without 9 values), or a message older than what
        :meth:`flush` already wrote.
    """

    def __init__(self, path: str | os.PathLike[str], *, compression: str = "zstd", chunk_size: int = 1 << 20,
                 keep_order: bool = False, extra_schemas: dict[str, str] | None = None):
        self.path = Path(path)
        self.compression = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                            "none": CompressionType.NONE}[compression]
        self.chunk_size = chunk_size
        self.keep_order = keep_order
        self.schemas = {**SCHEMAS, **(extra_schemas or {})}
        self._pending: list[_Pending] = []
        self._seq = 0
        self._flushed_ns = -1  # log time of the last message written by flush()
        self._file = None
        self._writer: McapWriter | None = None
        self._schema_ids: dict[str, int] = {}
        self._encoders: dict[str, Callable[[dict[str, Any]], bytes]] = {}
        self._channels: dict[str, int] = {}
        self._topic_seq: dict[str, int] = {}

    def add(self, topic: str, datatype: str, message: dict[str, Any], log_ns: int, publish_ns: int | None = None) -> None:
        """Queue one message of ``datatype`` (a key of the schemas) on ``topic``."""
        if datatype not in self.schemas:
            raise KeyError(f"no schema for {datatype!r}")
        if not self.keep_order and int(log_ns) < self._flushed_ns:
            raise ValueError(f"{topic}: log time {int(log_ns)} ns is before messages already flushed "
                             f"(up to {self._flushed_ns} ns); flush with a lower watermark")
        self._seq += 1
        self._pending.append(_Pending(int(log_ns), self._seq, topic, datatype, message,
                                      int(publish_ns if publish_ns is not None else log_ns)))

    def joint_state(self, stamp_ns: int, log_ns: int, names: Sequence[str], position: Sequence[float],
                    velocity: Sequence[float] = (), effort: Sequence[float] = (), *,
                    topic: str = TOPIC_JOINT_STATES, frame_id: str = "") -> None:
        """``sensor_msgs/msg/JointState`` (positions in radians, velocities in rad/s)."""
        self.add(topic, MSG_JOINT_STATE, {
            "header": _header(stamp_ns, frame_id), "name": list(names), "position": [float(x) for x in position],
            "velocity": [float(x) for x in velocity], "effort": [float(x) for x in effort]}, log_ns)

    def arm_command(self, stamp_ns: int, log_ns: int, names: Sequence[str], targets: Sequence[float]) -> None:
        """Commanded arm joint targets (radians) as a JointState on :data:`TOPIC_ARM_COMMAND`."""
        self.joint_state(stamp_ns, log_ns, names, targets, topic=TOPIC_ARM_COMMAND)

    def float64_multi_array(self, topic: str, stamp_ns: int, log_ns: int, values: Sequence[float], *,
                            label: str = "joints") -> None:
        """``std_msgs/msg/Float64MultiArray``: ``values`` (e.g. joint targets in radians) with a
        one-dimension layout (``label``, size = stride = len(values)); ``stamp_ns`` becomes the
        MCAP publish time (the message has no header)."""
        data = [float(x) for x in values]
        self.add(topic, MSG_FLOAT64_MULTI_ARRAY, {
            "layout": {"dim": [{"label": label, "size": len(data), "stride": len(data)}], "data_offset": 0},
            "data": data}, log_ns, publish_ns=stamp_ns)

    def float64(self, topic: str, stamp_ns: int, log_ns: int, value: float) -> None:
        """``std_msgs/msg/Float64`` (e.g. one joint's target in radians); ``stamp_ns`` becomes the
        MCAP publish time (the message has no header)."""
        self.add(topic, MSG_FLOAT64, {"data": float(value)}, log_ns, publish_ns=stamp_ns)

    def joint_targets(self, datatype: str, topic: str, stamp_ns: int, log_ns: int, names: Sequence[str],
                      values: Sequence[float]) -> None:
        """A joint stream of any profile type: ``sensor_msgs/msg/JointState`` (``names`` +
        positions), ``std_msgs/msg/Float64MultiArray`` (``values`` in ``names`` order) or
        ``std_msgs/msg/Float64`` (one joint). Values in radians (metres for prismatic joints).

        Raises:
            ValueError: ``values`` and ``names`` differ in length, several values for a Float64,
                or an unknown ``datatype``.
        """
        if len(values) != len(names):
            raise ValueError(f"{topic}: {len(values)} values for {len(names)} joints")
        if datatype == MSG_JOINT_STATE:
            self.joint_state(stamp_ns, log_ns, names, values, topic=topic)
        elif datatype == MSG_FLOAT64_MULTI_ARRAY:
            self.float64_multi_array(topic, stamp_ns, log_ns, values)
        elif datatype == MSG_FLOAT64:
            if len(values) != 1:
                raise ValueError(f"{topic}: a {MSG_FLOAT64} carries one joint, got {len(values)}")
            self.float64(topic, stamp_ns, log_ns, values[0])
        else:
            raise ValueError(f"{topic}: {datatype!r} is not a joint stream type")

    def image(self, camera: str, stamp_ns: int, log_ns: int, data: bytes, fmt: str = "jpeg", *,
              topic: str | None = None, frame_id: str | None = None) -> None:
        """``sensor_msgs/msg/CompressedImage`` of ``camera`` (a key of :data:`CAMERA_TOPICS` unless
        ``topic`` is given); ``data`` is the encoded image (``fmt`` ``jpeg``/``png``)."""
        self.add(topic or CAMERA_TOPICS[camera], MSG_COMPRESSED_IMAGE, {
            "header": _header(stamp_ns, frame_id or f"{camera}_camera_optical_frame"), "format": fmt,
            "data": bytes(data)}, log_ns)

    def raw_image(self, topic: str, stamp_ns: int, log_ns: int, pixels: np.ndarray, encoding: str, *,
                  frame_id: str = "") -> None:
        """``sensor_msgs/msg/Image`` (little-endian, rows packed: ``step = width × channels × bytes``).

        Args:
            pixels: (H, W, 3) uint8 for ``rgb8``/``bgr8``; (H, W) uint8 for ``mono8``; (H, W) uint16
                depth in millimetres for ``16UC1`` (0 = no reading); (H, W) float32 depth in metres
                for ``32FC1`` (NaN = no reading) — REP 118.
            encoding: one of :data:`RAW_IMAGE_LAYOUT`.

        Raises:
            ValueError: unknown encoding, or ``pixels`` of the wrong shape or dtype for it.
        """
        if encoding not in RAW_IMAGE_LAYOUT:
            raise ValueError(f"{topic}: unknown raw image encoding {encoding!r}; known: {list(RAW_IMAGE_LAYOUT)}")
        channels, dtype, size = RAW_IMAGE_LAYOUT[encoding]
        arr = np.asarray(pixels)
        shape_ok = arr.ndim == 3 and arr.shape[2] == 3 if channels == 3 else arr.ndim == 2
        if not shape_ok or arr.dtype != np.dtype(dtype):
            raise ValueError(f"{topic}: {encoding} needs {'(H, W, 3)' if channels == 3 else '(H, W)'} {dtype}, "
                             f"got {arr.shape} {arr.dtype}")
        arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
        self.add(topic, MSG_IMAGE, {
            "header": _header(stamp_ns, frame_id), "height": int(arr.shape[0]), "width": int(arr.shape[1]),
            "encoding": encoding, "is_bigendian": 0, "step": int(arr.shape[1] * channels * size),
            "data": arr.tobytes()}, log_ns)

    def imu(self, topic: str, stamp_ns: int, log_ns: int, orientation_xyzw: Sequence[float],
            angular_velocity: Sequence[float], linear_acceleration: Sequence[float], *,
            orientation_covariance: Sequence[float] | float | None = None,
            angular_velocity_covariance: Sequence[float] | float | None = None,
            linear_acceleration_covariance: Sequence[float] | float | None = None, frame_id: str = "imu_link") -> None:
        """``sensor_msgs/msg/Imu``: orientation as a unit quaternion (x, y, z, w), angular velocity
        (3,) rad/s and linear acceleration (3,) m/s² (gravity included, an accelerometer at rest
        reads +9.81 up) in the IMU frame; covariances are 9 row-major values, a scalar diagonal, or
        None (unknown: all zero).

        Raises:
            ValueError: a covariance without 9 values.
        """
        q = [float(x) for x in orientation_xyzw]
        self.add(topic, MSG_IMU, {
            "header": _header(stamp_ns, frame_id),
            "orientation": {"x": q[0], "y": q[1], "z": q[2], "w": q[3]},
            "orientation_covariance": _cov9(orientation_covariance),
            "angular_velocity": _xyz(angular_velocity), "angular_velocity_covariance": _cov9(angular_velocity_covariance),
            "linear_acceleration": _xyz(linear_acceleration),
            "linear_acceleration_covariance": _cov9(linear_acceleration_covariance)}, log_ns)

    def wrench(self, topic: str, stamp_ns: int, log_ns: int, force: Sequence[float], torque: Sequence[float], *,
               frame_id: str = "") -> None:
        """``geometry_msgs/msg/WrenchStamped``: force (3,) N and torque (3,) N·m in ``frame_id``."""
        self.add(topic, MSG_WRENCH_STAMPED, {
            "header": _header(stamp_ns, frame_id), "wrench": {"force": _xyz(force), "torque": _xyz(torque)}}, log_ns)

    def locomotion(self, stamp_ns: int, log_ns: int, forward: int, lateral: int, yaw: int, stance_height_m: float, *,
                   topic: str = TOPIC_LOCOMOTION_COMMAND, frame_id: str = "pelvis") -> None:
        """``hvla_msgs/msg/LocomotionCommand`` (flags in {-1, 0, 1}, stance height in metres)."""
        self.add(topic, MSG_LOCOMOTION_COMMAND, {
            "header": _header(stamp_ns, frame_id), "forward_flag": int(forward), "lateral_flag": int(lateral),
            "yaw_flag": int(yaw), "stance_height": float(stance_height_m)}, log_ns)

    def task(self, log_ns: int, text: str, *, topic: str = TOPIC_TASK) -> None:
        """``std_msgs/msg/String`` task instruction (on :data:`TOPIC_TASK` unless ``topic`` is given)."""
        self.add(topic, MSG_STRING, {"data": text}, log_ns)

    @property
    def pending(self) -> int:
        """Number of messages queued and not yet written."""
        return len(self._pending)

    def _open(self) -> McapWriter:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path.with_name(self.path.name + ".part"), "wb")
            self._writer = McapWriter(self._file, chunk_size=self.chunk_size, compression=self.compression)
            # the library string mcap_ros2's own writer records
            self._writer.start(profile="ros2", library=f"{LIBRARY_IDENTIFIER} mcap-ros2-support/{_MCAP_ROS2_VERSION}")
        return self._writer

    def _encoder(self, datatype: str) -> Callable[[dict[str, Any]], bytes]:
        enc = self._encoders.get(datatype)
        if enc is None:
            enc = serialize_dynamic(datatype, self.schemas[datatype])[datatype]
            self._encoders[datatype] = enc
        return enc

    def _write(self, msgs: list[_Pending]) -> None:
        w = self._open()
        for m in msgs:
            if m.datatype not in self._schema_ids:
                self._schema_ids[m.datatype] = w.register_schema(m.datatype, SchemaEncoding.ROS2,
                                                                 self.schemas[m.datatype].encode())
            if m.topic not in self._channels:
                self._channels[m.topic] = w.register_channel(m.topic, MessageEncoding.CDR, self._schema_ids[m.datatype])
            self._topic_seq[m.topic] = self._topic_seq.get(m.topic, 0) + 1
            w.add_message(self._channels[m.topic], log_time=m.log_ns, data=self._encoder(m.datatype)(m.message),
                          publish_time=m.publish_ns, sequence=self._topic_seq[m.topic])

    def flush(self, until_log_ns: int) -> int:
        """Write the queued messages with log time ≤ ``until_log_ns`` (all of them, in call order,
        with ``keep_order``) and forget them; return how many were written. Afterwards a message
        logged before the last one written is refused, so call it with a watermark no later
        message can precede (e.g. the current sample time minus the largest latency).
        """
        if self.keep_order:
            out, self._pending = self._pending, []
        else:
            self._pending.sort(key=lambda m: (m.log_ns, m.seq))
            k = 0
            while k < len(self._pending) and self._pending[k].log_ns <= until_log_ns:
                k += 1
            out, self._pending = self._pending[:k], self._pending[k:]
        if out:
            self._write(out)
            if not self.keep_order:
                self._flushed_ns = max(self._flushed_ns, out[-1].log_ns)
        return len(out)

    def close(self, metadata: dict[str, dict[str, str]] | None = None) -> Path:
        """Write the remaining messages, the metadata records, the summary, chunk and message
        indexes, then move the file into place (from ``<name>.part``) and return its path."""
        msgs = self._pending if self.keep_order else sorted(self._pending, key=lambda m: (m.log_ns, m.seq))
        self._pending = []
        self._write(msgs)
        w = self._open()
        for name, data in (metadata or {}).items():
            w.add_metadata(name, data)
        w.finish()
        assert self._file is not None
        self._file.close()
        os.replace(self._file.name, self.path)
        self._writer, self._file = None, None
        self._schema_ids.clear()
        self._channels.clear()
        self._topic_seq.clear()
        self._flushed_ns = -1
        return self.path
