"""What a bag reader hands out: per-topic facts and messages (decoded or raw)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any


def ros2_msgtype(name: str) -> str:
    """A message type in ROS 2 form ``pkg/msg/Type`` (``pkg/Type`` → ``pkg/msg/Type``; names that
    already have a middle part — ``msg``, ``srv``, ``action`` — are kept)."""
    path = PurePosixPath(name)
    if len(path.parts) == 2:
        return f"{path.parts[0]}/msg/{path.parts[1]}"
    return name


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag.

    Attributes:
        topic: topic name.
        msgtype: message type in ROS 2 form (``sensor_msgs/msg/JointState``); when the topic carries
            several types (several connections), they are joined with ``" | "``.
        message_count: messages on the topic, over all files of the bag (0: registered, empty).
        first_log_ns / last_log_ns: earliest / latest log time (when the recorder received the
            message), ns since the Unix epoch; None when not known without reading the data.
    """

    topic: str
    msgtype: str
    message_count: int
    first_log_ns: int | None = None
    last_log_ns: int | None = None


@dataclass(frozen=True)
class RawMessage:
    """One message as stored: ``data`` is CDR (ROS 2 bags, MCAP) or ROS 1 serialisation (``.bag``),
    ``log_ns`` its log time (ns since the Unix epoch), ``file_index`` the data file it came from."""

    topic: str
    msgtype: str
    log_ns: int
    data: bytes
    file_index: int


@dataclass(frozen=True)
class BagMessage:
    """One decoded message.

    ``msg`` gives attribute access to the fields of the ROS 2 message (``header.stamp.sec`` /
    ``header.stamp.nanosec``, ``name``, ``position``, ``data``, ``format``, ``encoding``, ``height``,
    ``width``, ``step`` ...). Sequence fields are lists or numpy arrays depending on the reader
    (``np.asarray(m.position)``, ``bytes(m.data)`` read both). A ROS 1 ``std_msgs/Header`` also has
    ``seq``. ``log_ns`` is the log time, ns since the Unix epoch.
    """

    topic: str
    msgtype: str
    log_ns: int
    msg: Any

    @property
    def stamp_ns(self) -> int | None:
        """``header.stamp`` in ns since the Unix epoch, or None when the message has no header."""
        return header_stamp_of(self.msg)


def header_stamp_of(msg: Any) -> int | None:
    """``msg.header.stamp`` as ns since the Unix epoch (``sec`` * 1e9 + ``nanosec``); None when the
    message has no ``header.stamp``."""
    header = getattr(msg, "header", None)
    stamp = getattr(header, "stamp", None)
    if stamp is None:
        return None
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
