"""One teleoperation episode of seed 003's unified phase-labelled format, held in memory.

Seed 003 (the UR5e + Robotiq 2F-85 GELLO collection system) records one continuous frame stream
per episode, a folder of ``frame_NNNN.pkl`` files plus ``episode_meta.json``; each frame carries a
``phase`` label (``teleop`` | ``skill`` | ``correction`` | ``skill_resume``). The reader
(:mod:`hvla_platform.lib.formats.teleop.pkl_episode`) turns such a folder into a
:class:`TeleopEpisode`; the training targets (``e2e``, ``planner``, ``correction``) are derived
from it by :mod:`hvla_platform.lib.dataset.teleop_targets`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The phase labels of seed 003, in the order they occur in an episode.
PHASES: tuple[str, ...] = ("teleop", "skill", "correction", "skill_resume")

#: The two RGB cameras of seed 003's frame format, ``(256, 256, 3) uint8`` each at capture.
CAMERAS: tuple[str, ...] = ("base_rgb", "wrist_rgb")

#: The Robotiq 2F-85 position range of seed 003 (0 = open, 255 = closed).
GRIPPER_MAX = 255


@dataclass(frozen=True)
class TeleopEpisode:
    """One seed-003 episode, frame-aligned arrays of length ``T``.

    Attributes:
        episode_id: the episode's id (the folder name, e.g. ``episode_cpu_0218_143000``).
        timestamps: ``(T,) float64`` Unix seconds of each frame (the ``timestamp`` field).
        phases: ``(T,)`` tuple of phase labels, each one of :data:`PHASES`.
        joint_positions: ``(T, 6) float64`` UR5e joint angles, radians.
        tcp_pose: ``(T, 6) float64`` TCP pose ``[x, y, z, rx, ry, rz]`` in the base frame: metres and
            a UR rotation vector (radians).
        gripper_pos: ``(T,) uint8`` Robotiq position, 0 (open) … 255 (closed).
        images: camera name (:data:`CAMERAS`) → ``(T, H, W, 3) uint8`` RGB frames.
        image_timestamps: camera name → ``(T,) float64`` Unix seconds of each image (the
            ``<camera>_timestamp`` fields; they differ from ``timestamps`` by the camera's latency).
        meta: the parsed ``episode_meta.json`` (``skill_name``, ``skill_outcome``, ``phase_counts``,
            ``phase_segments``, ``num_frames``, ``fps``, ...), as written.

    Raises:
        ValueError: from ``__post_init__`` when the arrays disagree on ``T`` or shape, or a phase is
            not one of :data:`PHASES`.
    """

    episode_id: str
    timestamps: np.ndarray
    phases: tuple[str, ...]
    joint_positions: np.ndarray
    tcp_pose: np.ndarray
    gripper_pos: np.ndarray
    images: dict[str, np.ndarray]
    image_timestamps: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if len(self.phases) != n:
            raise ValueError(f"{self.episode_id}: {len(self.phases)} phase labels for {n} frames")
        unknown = sorted(set(self.phases) - set(PHASES))
        if unknown:
            raise ValueError(f"{self.episode_id}: unknown phase label(s) {unknown}; expected one of {list(PHASES)}")
        for name, arr, shape in (
            ("joint_positions", self.joint_positions, (n, 6)),
            ("tcp_pose", self.tcp_pose, (n, 6)),
            ("gripper_pos", self.gripper_pos, (n,)),
        ):
            if tuple(arr.shape) != shape:
                raise ValueError(f"{self.episode_id}: {name} has shape {tuple(arr.shape)}, expected {shape}")
        for cam, frames in self.images.items():
            if frames.ndim != 4 or frames.shape[0] != n or frames.shape[3] != 3 or frames.dtype != np.uint8:
                raise ValueError(
                    f"{self.episode_id}: camera {cam!r} frames {frames.shape} {frames.dtype}, expected ({n}, H, W, 3) uint8"
                )
            stamps = self.image_timestamps.get(cam)
            if stamps is None or len(stamps) != n:
                raise ValueError(f"{self.episode_id}: camera {cam!r} needs {n} image timestamps")

    @property
    def num_frames(self) -> int:
        """``T``, the number of recorded frames."""
        return len(self.timestamps)

    @property
    def fps(self) -> float:
        """The recording rate in Hz: ``episode_meta.json``'s ``fps``, else from the median frame interval."""
        if "fps" in self.meta:
            return float(self.meta["fps"])
        if self.num_frames < 2:
            raise ValueError(f"{self.episode_id}: one frame and no fps in episode_meta.json")
        return float(1.0 / np.median(np.diff(self.timestamps)))
