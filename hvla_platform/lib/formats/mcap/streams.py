"""Decode the contract streams of one raw recording (ROS 2 CDR in MCAP) into arrays.

The contract topics are read with :func:`~hvla_platform.lib.formats.mcap.records.iter_indexed_messages`
(the indexed reader the MCAP conformance suite checks: chunk index, only the chunks holding these
topics, log-time order; a linear scan when the file has no chunk index; strict framing with CRCs,
truncation offsets and the record-size limit). Conversion runs only on episodes whose raw checks,
a full strict linear scan by :func:`~hvla_platform.lib.formats.mcap.index.index_mcap`, passed. Messages
are decoded with ``mcap_ros2.decoder.DecoderFactory`` (mcap-ros2-support). Times are the messages'
``header.stamp`` (the sample time on the robot), in ns since the Unix epoch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import struct
from typing import Any, Callable

import numpy as np
from mcap.exceptions import McapError
from mcap.records import Channel, Schema
from mcap_ros2.decoder import DecoderFactory

from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.records import iter_indexed_messages, iter_records
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    G1_ARM_JOINTS,
    G1_JOINTS,
    REQUIRED_TOPICS,
    TOPIC_ARM_COMMAND,
    TOPIC_JOINT_STATES,
    TOPIC_LOCOMOTION_COMMAND,
    TOPIC_TASK,
)


@dataclass
class JointStream:
    """A JointState-like stream.

    Attributes:
        stamps_ns: (N,) int64 header stamps, ns.
        log_ns: (N,) int64 MCAP log times (when the recorder received each message), ns; empty when
            the stream was not read from a file.
        position: (N, J) float64 radians, columns in ``names`` order.
        velocity: (N, J) float64 rad/s (zeros if the messages carry no velocity).
        names: J joint names.
    """

    stamps_ns: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    names: list[str]
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class ImageStream:
    """A CompressedImage stream: (N,) int64 header stamps (ns), N encoded frames (``format``) and
    (N,) int64 MCAP log times ``log_ns`` (ns; empty when not read from a file)."""

    stamps_ns: np.ndarray
    frames: list[bytes]
    formats: list[str]
    log_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class EpisodeStreams:
    """All contract streams of one recording, decoded but not yet synchronised."""

    joint_states: JointStream
    arm_command: JointStream
    locomotion_stamps_ns: np.ndarray
    locomotion: np.ndarray  # (N, 4) float64: forward, lateral, yaw flags; stance height (m)
    task: str
    cameras: dict[str, ImageStream] = field(default_factory=dict)


def _joint_stream(path: Path, topic: str, msgs: list, expected: list[str], log_ns: list[int]) -> JointStream:
    names = list(msgs[0].name)
    missing = [j for j in expected if j not in names]
    if missing:
        raise RawLogError(path, "bad_joint_names", f"{topic} lacks joint(s) {missing[:5]}{'...' if len(missing) > 5 else ''}")
    cols = [names.index(j) for j in expected]
    n, j = len(msgs), len(expected)
    pos = np.empty((n, j), np.float64)
    vel = np.zeros((n, j), np.float64)
    stamps = np.empty(n, np.int64)
    for i, m in enumerate(msgs):
        if list(m.name) != names:
            raise RawLogError(path, "bad_joint_names", f"{topic} message {i} changes the joint name order")
        p = np.asarray(m.position, np.float64)
        if p.shape[0] != len(names):
            raise RawLogError(path, "bad_message", f"{topic} message {i} has {p.shape[0]} positions for {len(names)} names")
        pos[i] = p[cols]
        if len(m.velocity) == len(names):
            vel[i] = np.asarray(m.velocity, np.float64)[cols]
        stamps[i] = m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
    return JointStream(stamps_ns=stamps, position=pos, velocity=vel, names=list(expected),
                       log_ns=np.asarray(log_ns, np.int64))


def _add_channel_types(path: Path, seen_types: dict[str, str]) -> None:
    """Add the schema names of required topics whose channel is defined but carries no message.

    Only on the error path (a required topic without messages): one linear read of the
    definitions, wherever the file keeps them (summary, data section or chunks).
    """
    schemas: dict[int, Schema] = {}
    for record in iter_records(path):
        if isinstance(record, Schema):
            schemas.setdefault(record.id, record)
        elif isinstance(record, Channel) and record.topic in REQUIRED_TOPICS and record.topic not in seen_types:
            sch = schemas.get(record.schema_id)
            seen_types[record.topic] = sch.name if sch else ""


def read_episode_streams(path: str | os.PathLike[str]) -> EpisodeStreams:
    """Decode the contract topics (:data:`REQUIRED_TOPICS`) of the MCAP at ``path``.

    Other topics are not read (chunks holding only other topics are skipped). Messages are taken
    in log-time order (file order among equal log times).

    Raises:
        RawLogError: ``unreadable`` / ``too_large`` (the file cannot be read, see
            :func:`~hvla_platform.lib.formats.mcap.records.iter_indexed_messages`), ``undecodable`` (a
            required message does not decode), ``missing_topic`` (a required topic is absent),
            ``empty_topic`` (its channel is registered but carries no message), ``wrong_type`` (a
            required topic has another message type), ``bad_joint_names`` / ``bad_message``,
            ``empty_task``.
    """
    path = Path(path)
    msgs: dict[str, list[Any]] = {t: [] for t in REQUIRED_TOPICS}
    logs: dict[str, list[int]] = {t: [] for t in REQUIRED_TOPICS}
    seen_types: dict[str, str] = {}
    decoders: dict[int, Callable[[bytes], Any]] = {}
    factory = DecoderFactory()
    for schema, channel, message in iter_indexed_messages(path, topics=list(REQUIRED_TOPICS)):
        topic = channel.topic
        seen_types.setdefault(topic, schema.name if schema else "")
        if seen_types[topic] != REQUIRED_TOPICS[topic]:
            continue
        try:
            decode = decoders.get(channel.id)
            if decode is None:
                decode = factory.decoder_for(channel.message_encoding, schema)
                if decode is None:
                    raise RawLogError(path, "undecodable", f"topic {topic}: no decoder for message encoding "
                                                           f"{channel.message_encoding!r}")
                decoders[channel.id] = decode
            decoded = decode(message.data)
        except (McapError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
            raise RawLogError(path, "undecodable", f"topic {topic} message {len(msgs[topic])} "
                                                   f"(log time {message.log_time}): {type(exc).__name__}: {exc}") from exc
        msgs[topic].append(decoded)
        logs[topic].append(int(message.log_time))
    if len(seen_types) < len(REQUIRED_TOPICS):  # registered channels without messages count as present
        _add_channel_types(path, seen_types)

    for topic, typ in REQUIRED_TOPICS.items():
        if topic not in seen_types:
            raise RawLogError(path, "missing_topic", f"required topic {topic} ({typ}) is not in the file")
        if seen_types[topic] != typ:
            raise RawLogError(path, "wrong_type", f"topic {topic} has type {seen_types[topic]!r}, expected {typ!r}")
        if not msgs[topic]:
            raise RawLogError(path, "empty_topic", f"required topic {topic} has no messages")

    joints = _joint_stream(path, TOPIC_JOINT_STATES, msgs[TOPIC_JOINT_STATES], G1_JOINTS, logs[TOPIC_JOINT_STATES])
    arm = _joint_stream(path, TOPIC_ARM_COMMAND, msgs[TOPIC_ARM_COMMAND], G1_ARM_JOINTS, logs[TOPIC_ARM_COMMAND])
    loco_msgs = msgs[TOPIC_LOCOMOTION_COMMAND]
    loco = np.array([[m.forward_flag, m.lateral_flag, m.yaw_flag, m.stance_height] for m in loco_msgs], np.float64)
    loco_t = np.array([m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in loco_msgs], np.int64)
    tasks = [m.data for m in msgs[TOPIC_TASK] if m.data.strip()]
    if not tasks:
        raise RawLogError(path, "empty_task", f"{TOPIC_TASK} carries only empty strings")
    cams: dict[str, ImageStream] = {}
    for cam, topic in CAMERA_TOPICS.items():
        frames = msgs[topic]
        cams[cam] = ImageStream(
            stamps_ns=np.array([m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in frames], np.int64),
            frames=[bytes(m.data) for m in frames],
            formats=[str(m.format) for m in frames],
            log_ns=np.asarray(logs[topic], np.int64),
        )
    return EpisodeStreams(joint_states=joints, arm_command=arm, locomotion_stamps_ns=loco_t, locomotion=loco,
                          task=tasks[0], cameras=cams)
