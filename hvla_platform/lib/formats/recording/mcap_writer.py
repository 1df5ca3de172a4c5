"""Write a robot recording as a ROS 2 MCAP (CDR, chunked, zstd), the way ``ros2 bag record`` does.

Used by the simulated recorder and by tests that need real recordings with planted defects.
Messages are buffered and written in log-time order when the writer is closed (what a recorder
receiving several topics does); ``keep_order=True`` writes them in call order instead, which is how
tests plant timestamps that go backwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mcap.writer import CompressionType
from mcap_ros2.writer import Writer

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
from hvla_platform.lib.formats.recording.ros2_msgs import SCHEMAS


def _time(ns: int) -> dict[str, int]:
    return {"sec": int(ns // 1_000_000_000), "nanosec": int(ns % 1_000_000_000)}


def _header(stamp_ns: int, frame_id: str) -> dict[str, Any]:
    return {"stamp": _time(stamp_ns), "frame_id": frame_id}


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

    def add(self, topic: str, datatype: str, message: dict[str, Any], log_ns: int, publish_ns: int | None = None) -> None:
        """Queue one message of ``datatype`` (a key of the schemas) on ``topic``."""
        if datatype not in self.schemas:
            raise KeyError(f"no schema for {datatype!r}")
        self._pending.append(_Pending(int(log_ns), len(self._pending), topic, datatype, message,
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

    def image(self, camera: str, stamp_ns: int, log_ns: int, data: bytes, fmt: str = "jpeg", *,
              topic: str | None = None) -> None:
        """``sensor_msgs/msg/CompressedImage`` of ``camera`` (a key of :data:`CAMERA_TOPICS`)."""
        self.add(topic or CAMERA_TOPICS[camera], MSG_COMPRESSED_IMAGE, {
            "header": _header(stamp_ns, f"{camera}_camera_optical_frame"), "format": fmt, "data": bytes(data)}, log_ns)

    def locomotion(self, stamp_ns: int, log_ns: int, forward: int, lateral: int, yaw: int, stance_height_m: float) -> None:
        """``hvla_msgs/msg/LocomotionCommand`` (flags in {-1, 0, 1}, stance height in metres)."""
        self.add(TOPIC_LOCOMOTION_COMMAND, MSG_LOCOMOTION_COMMAND, {
            "header": _header(stamp_ns, "pelvis"), "forward_flag": int(forward), "lateral_flag": int(lateral),
            "yaw_flag": int(yaw), "stance_height": float(stance_height_m)}, log_ns)

    def task(self, log_ns: int, text: str) -> None:
        """``std_msgs/msg/String`` task instruction on :data:`TOPIC_TASK`."""
        self.add(TOPIC_TASK, MSG_STRING, {"data": text}, log_ns)

    def close(self, metadata: dict[str, dict[str, str]] | None = None) -> Path:
        """Write the file (summary, chunk and message indexes included) and return its path."""
        msgs = self._pending if self.keep_order else sorted(self._pending, key=lambda m: (m.log_ns, m.seq))
        tmp = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            w = Writer(f, chunk_size=self.chunk_size, compression=self.compression)
            schemas = {}
            seqs: dict[str, int] = {}
            for m in msgs:
                if m.datatype not in schemas:
                    schemas[m.datatype] = w.register_msgdef(m.datatype, self.schemas[m.datatype])
                seqs[m.topic] = seqs.get(m.topic, 0) + 1
                w.write_message(m.topic, schemas[m.datatype], m.message, log_time=m.log_ns,
                                publish_time=m.publish_ns, sequence=seqs[m.topic])
            for name, data in (metadata or {}).items():
                w.add_metadata(name, data)
            w.finish()
        os.replace(tmp, self.path)
        self._pending.clear()
        return self.path
