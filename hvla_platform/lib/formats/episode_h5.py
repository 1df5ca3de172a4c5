"""The processed-episode HDF5 format: one file per episode, streams synchronised at a fixed fps.

Layout of ``episodes-hdf5/<YYYY-MM-DD>/<robot_id>/<episode_id>.h5`` (T frames at ``fps`` Hz):

==================================  =====================  ============================================
dataset                             shape / dtype          meaning
==================================  =====================  ============================================
``timestamps``                      (T,) float64           seconds since the first frame (k / fps)
``observation/state``               (T, 29) float32        G1 joint positions, radians (attr ``names``)
``observation/velocity``            (T, 29) float32        G1 joint velocities, rad/s (attr ``names``)
``action``                          (T, 14) float32        commanded arm joint targets, radians (``names``)
``locomotion_command``              (T, 4) float32         forward/lateral/yaw flags, stance height (m)
``observation/images/<camera>``     (T, H, W, 3) uint8     RGB frame matched to each frame time; attr
                                                           ``source_rate_hz`` (float): the camera's own
                                                           mean rate (format version ≥ 2)
``alignment/skew/<camera>``         (T,) float32           |frame stamp - frame time|, seconds
``alignment/source_index/<camera>`` (T,) int64             index of the source frame shown (among the
                                                           camera's decodable frames); equal neighbours
                                                           are a repeated frame (format version ≥ 2)
==================================  =====================  ============================================

File attributes: ``episode_id``, ``robot_id``, ``capture_day``, ``task``, ``fps``, ``start_time_ns``
(ROS time of frame 0), ``format_version`` and what the processing stage adds: ``source_key`` (lake
key of the raw MCAP, ``raw-mcap/<day>/<robot>/<episode>/<file>.mcap``: a key relative to the lake
root, never a filesystem path or URI), ``source_sha256``, ``rights`` (JSON), ``operator``,
``site`` and ``outcome`` (JSON ``{"success": bool, "min_distance_m": float | null}`` from the
recording's ``metadata.yaml``, ``null`` when the recording states none).

Files are byte-reproducible: the same :class:`EpisodeData` always gives the same bytes (h5py does
not record object times by default; attributes are written in a fixed order).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: 2: ``alignment/source_index/<camera>``, ``source_rate_hz``, ``source_key`` (was ``source_uri``), ``outcome``.
FORMAT_VERSION = 2


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
        action: (T, A) float32 commanded joint targets, radians; ``action_names`` has A entries.
        locomotion_command: (T, 4) float32.
        images: camera name → (T, H, W, 3) uint8 RGB.
        skew: camera name → (T,) float32 seconds.
        start_time_ns: ROS time (ns) of frame 0.
        attrs: extra attributes (source key, sha256, rights JSON, outcome JSON...).
        source_index: camera name → (T,) int64 index of the source frame each frame shows (empty
            when unknown, e.g. a format-version-1 file).
        source_rate_hz: camera name → the camera's own mean frame rate, Hz (empty when unknown).
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
    locomotion_command: np.ndarray
    images: dict[str, np.ndarray]
    skew: dict[str, np.ndarray]
    start_time_ns: int = 0
    attrs: dict[str, Any] = field(default_factory=dict)
    source_index: dict[str, np.ndarray] = field(default_factory=dict)
    source_rate_hz: dict[str, float] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.timestamps.shape[0])

    def validate(self) -> None:
        """Check shapes and dtypes agree with the format.

        Raises:
            ValueError: naming the first inconsistent field.
        """
        t = self.num_frames
        checks = [
            ("timestamps", self.timestamps, (t,), np.float64),
            ("state", self.state, (t, len(self.state_names)), np.float32),
            ("velocity", self.velocity, (t, len(self.state_names)), np.float32),
            ("action", self.action, (t, len(self.action_names)), np.float32),
            ("locomotion_command", self.locomotion_command, (t, 4), np.float32),
        ]
        for cam, img in self.images.items():
            if img.ndim != 4 or img.shape[0] != t or img.shape[3] != 3:
                raise ValueError(f"images/{cam} has shape {img.shape}, expected ({t}, H, W, 3)")
            checks.append((f"images/{cam}", img, img.shape, np.uint8))
            checks.append((f"skew/{cam}", self.skew[cam], (t,), np.float32))
            if cam in self.source_index:
                checks.append((f"source_index/{cam}", self.source_index[cam], (t,), np.int64))
        unknown = sorted((set(self.source_index) | set(self.source_rate_hz)) - set(self.skew))
        if unknown:
            raise ValueError(f"source_index/source_rate_hz name camera(s) {unknown} the episode does not have")
        for name, arr, shape, dtype in checks:
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"{name} is {arr.shape} {arr.dtype}, expected {shape} {np.dtype(dtype)}")


def write_episode_h5(path: str | os.PathLike[str], ep: EpisodeData) -> Path:
    """Write ``ep`` to ``path`` (via a temporary file + rename, so no half file is left behind).

    Images are stored chunked per frame with gzip level 4 (lossless).

    Raises:
        ValueError: ``ep`` fails :meth:`EpisodeData.validate`.
    """
    ep.validate()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs.update({
            "format_version": FORMAT_VERSION,
            "episode_id": ep.episode_id,
            "robot_id": ep.robot_id,
            "capture_day": ep.capture_day,
            "task": ep.task,
            "fps": float(ep.fps),
            "start_time_ns": int(ep.start_time_ns),
        })
        for k, v in ep.attrs.items():
            f.attrs[k] = v if isinstance(v, (str, int, float, bool)) else json.dumps(v, default=str)
        f.create_dataset("timestamps", data=ep.timestamps)
        d = f.create_dataset("observation/state", data=ep.state)
        d.attrs["names"] = json.dumps(ep.state_names)
        d = f.create_dataset("observation/velocity", data=ep.velocity)
        d.attrs["names"] = json.dumps(ep.state_names)
        d = f.create_dataset("action", data=ep.action)
        d.attrs["names"] = json.dumps(ep.action_names)
        f.create_dataset("locomotion_command", data=ep.locomotion_command)
        for cam, img in ep.images.items():
            d = f.create_dataset(f"observation/images/{cam}", data=img, chunks=(1, *img.shape[1:]),
                                 compression="gzip", compression_opts=4)
            if cam in ep.source_rate_hz:
                d.attrs["source_rate_hz"] = float(ep.source_rate_hz[cam])
            f.create_dataset(f"alignment/skew/{cam}", data=ep.skew[cam])
            if cam in ep.source_index:
                f.create_dataset(f"alignment/source_index/{cam}", data=np.asarray(ep.source_index[cam], np.int64))
    os.replace(tmp, path)
    return path


def read_episode_h5(path: str | os.PathLike[str], *, load_images: bool = True) -> EpisodeData:
    """Read an episode written by :func:`write_episode_h5`.

    Args:
        load_images: if False, ``images`` is empty (fast path for low-dimensional data); skew,
            source indices and source rates are read either way.

    Raises:
        OSError: not an HDF5 file. KeyError: a required dataset is missing.
    """
    with h5py.File(path, "r") as f:
        a = dict(f.attrs)
        images: dict[str, np.ndarray] = {}
        skew: dict[str, np.ndarray] = {}
        source_index: dict[str, np.ndarray] = {}
        source_rate: dict[str, float] = {}
        if "observation/images" in f:
            for cam in f["observation/images"]:
                d = f[f"observation/images/{cam}"]
                if load_images:
                    images[cam] = d[()]
                if "source_rate_hz" in d.attrs:
                    source_rate[cam] = float(d.attrs["source_rate_hz"])
                skew[cam] = f[f"alignment/skew/{cam}"][()]
                if f"alignment/source_index/{cam}" in f:
                    source_index[cam] = f[f"alignment/source_index/{cam}"][()]
        known = {"format_version", "episode_id", "robot_id", "capture_day", "task", "fps", "start_time_ns"}
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
            locomotion_command=f["locomotion_command"][()],
            images=images,
            skew=skew,
            start_time_ns=int(a["start_time_ns"]),
            attrs={k: v for k, v in a.items() if k not in known},
            source_index=source_index,
            source_rate_hz=source_rate,
        )
