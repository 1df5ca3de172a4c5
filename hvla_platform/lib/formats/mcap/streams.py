"""Decode the contract streams of one raw MCAP recording (compatibility wrapper).

The streams are read the way the recording's robot profile says, by
:mod:`hvla_platform.lib.formats.recording.streams` (which conversion uses directly, in two
bounded-memory passes). This module keeps the names used before robot profiles:
:func:`read_episode_streams` reads one MCAP file (or any bag
:func:`~hvla_platform.lib.formats.bags.bag.open_bag` opens) with the default profile, the simulated
lab G1 (:data:`~hvla_platform.lib.formats.recording.profile.DEFAULT_PROFILE`), and **keeps every
camera frame's bytes** (``ImageStream.frames``): for small recordings and tests, never for
conversion. The MCAP data is read with the strict indexed reader
(:func:`~hvla_platform.lib.formats.mcap.records.iter_indexed_messages`, through
:mod:`hvla_platform.lib.formats.bags.mcap_source`) and decoded with ``mcap_ros2``'s
``DecoderFactory``. Times are the messages' ``header.stamp``, ns since the Unix epoch.
"""

from __future__ import annotations

import os
from pathlib import Path

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.recording.profile import RobotProfile, load_profile
from hvla_platform.lib.formats.recording.streams import (
    CameraStream,
    EpisodeStreams,
    ExtraStream,
    ImageStream,
    JointStream,
    RecordingStreams,
    read_recording_streams,
)

__all__ = ["CameraStream", "EpisodeStreams", "ExtraStream", "ImageStream", "JointStream", "RecordingStreams",
           "read_episode_streams"]


def read_episode_streams(path: str | os.PathLike[str], profile: RobotProfile | None = None) -> EpisodeStreams:
    """Decode the streams of ``profile`` (default: the default profile) from the bag at ``path``
    (an ``.mcap`` file, or a recording folder), keeping every camera frame's bytes in memory.

    Other topics are not read (chunks holding only other topics are skipped). Messages are taken
    in log-time order (file order among equal log times).

    Raises:
        RawLogError: ``unreadable`` / ``too_large`` (the file cannot be read, see
            :func:`~hvla_platform.lib.formats.mcap.records.iter_indexed_messages`), ``undecodable`` (a
            required message does not decode), ``missing_topic`` (a required topic is absent; the
            message names the profile and the closest topics present), ``empty_topic`` (its
            channel is registered but carries no message), ``wrong_type`` (a required topic has
            another message type), ``bad_joint_names`` / ``bad_message``, ``empty_task``; and
            ``no_bag`` / ``several_bags`` / ... for a folder that holds no single bag.
    """
    path = Path(path)
    return read_recording_streams(open_bag(path), profile or load_profile(), path=path, keep_frames=True)
