"""Small synthetic-but-real episodes for tests and benchmarks.

Builds :class:`~hvla_platform.lib.formats.episode_h5.EpisodeData` with the platform's real joint names
(Unitree G1, 29 DoF state, 14 arm-joint actions) and writes them with the real HDF5 writer.

* joint positions: a Gaussian random walk per joint (step std ``0.01`` rad) around a per-episode
  random offset, clipped to +-2.5 rad; velocities are the finite difference times fps;
* actions: the arm joints' positions one frame ahead plus small noise (a leading target);
* locomotion command: piecewise-constant flags in {-1, 0, 1} and a stance height near 0.75 m;
* images: a textured background with a filled disc and a rectangle of episode-specific colours
  moving along smooth trajectories, so video codecs see real motion; with ``camera_hz`` the cameras
  run at that rate and each frame shows the nearest camera frame (repeats recorded as
  ``source_index``, like the processing stage's synchronisation);
* attributes: ``source_key`` (a raw lake key), ``source_sha256`` and, with ``outcome``, the
  recording's outcome as JSON.
"""

from __future__ import annotations

from pathlib import Path

import json

import numpy as np

from hvla_platform.lib.formats.episode_h5 import EpisodeData, write_episode_h5
from hvla_platform.lib.processing.sync import match_nearest
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_JOINTS

DEFAULT_TASK = "pick up the red cube and place it in the bin"


def make_images(rng: np.random.Generator, t: int, h: int, w: int, *, phase: float = 0.0) -> np.ndarray:
    """(t, h, w, 3) uint8 frames: a gradient background with a moving disc and rectangle."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([
        (xx * 255 // max(w - 1, 1)),
        (yy * 255 // max(h - 1, 1)),
        np.full_like(xx, 96),
    ], axis=-1).astype(np.float32) * 0.5
    disc_col = rng.integers(64, 256, size=3).astype(np.float32)
    rect_col = rng.integers(64, 256, size=3).astype(np.float32)
    r = max(2, min(h, w) // 8)
    out = np.empty((t, h, w, 3), dtype=np.uint8)
    for k in range(t):
        a = phase + 2 * np.pi * k / max(t, 1)
        cy, cx = h / 2 + 0.3 * h * np.sin(a), w / 2 + 0.35 * w * np.cos(a)
        frame = base.copy()
        frame[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = disc_col
        ry, rx = int((k * 2) % max(h - r, 1)), int((w - 2 * r) * (0.5 + 0.4 * np.sin(a * 2)))
        frame[ry:ry + r, rx:rx + 2 * r] = rect_col
        out[k] = frame.astype(np.uint8)
    return out


def make_episode(
    episode_id: str,
    *,
    num_frames: int = 30,
    fps: int = 20,
    cameras: tuple[str, ...] = ("head", "wrist_right"),
    height: int = 48,
    width: int = 64,
    seed: int = 0,
    robot_id: str = "g1-001",
    capture_day: str = "2026-11-10",
    task: str = DEFAULT_TASK,
    state_scale: float = 1.0,
    attrs: dict | None = None,
    camera_hz: float | None = None,
    outcome: dict | None = None,
) -> EpisodeData:
    """One synthetic episode (see module docstring). ``state_scale`` multiplies state and action
    (used to plant outliers in a held-out episode); ``camera_hz`` sets the cameras' own rate (None:
    one camera frame per frame, source indices not recorded); ``outcome`` (``{"success",
    "min_distance_m"}``) is stored as the ``outcome`` attribute."""
    rng = np.random.default_rng(seed)
    d, a_dim = len(G1_JOINTS), len(G1_ARM_JOINTS)
    offset = rng.uniform(-0.5, 0.5, size=d)
    walk = np.cumsum(rng.normal(0.0, 0.01, size=(num_frames + 1, d)), axis=0) + offset
    walk = np.clip(walk, -2.5, 2.5)
    state = (walk[:-1] * state_scale).astype(np.float32)
    velocity = (np.diff(walk, axis=0) * fps).astype(np.float32)
    arm_idx = [G1_JOINTS.index(j) for j in G1_ARM_JOINTS]
    action = ((walk[1:, arm_idx] + rng.normal(0.0, 0.002, size=(num_frames, a_dim))) * state_scale)
    action = action.astype(np.float32)
    assert action.shape == (num_frames, a_dim)
    loco = np.zeros((num_frames, 4), dtype=np.float32)
    seg = max(1, num_frames // 3)
    for s in range(0, num_frames, seg):
        loco[s:s + seg, :3] = rng.integers(-1, 2, size=3)
    loco[:, 3] = 0.75 + rng.normal(0.0, 0.005, size=num_frames)
    images = {c: make_images(rng, num_frames, height, width, phase=i * 1.3) for i, c in enumerate(cameras)}
    skew = {c: np.abs(rng.normal(0, 0.002, size=num_frames)).astype(np.float32) for c in cameras}
    source_index: dict[str, np.ndarray] = {}
    if camera_hz is not None:
        frame_ns = (np.arange(num_frames) * 1e9 / fps).astype(np.int64)
        cam_ns = (np.arange(int(num_frames * camera_hz / fps) + 1) * 1e9 / camera_hz).astype(np.int64)
        for c in cameras:
            idx, sk = match_nearest(cam_ns, frame_ns)
            images[c], skew[c], source_index[c] = images[c][np.minimum(idx, num_frames - 1)], sk, idx
    ep = EpisodeData(
        episode_id=episode_id, robot_id=robot_id, capture_day=capture_day, task=task, fps=float(fps),
        timestamps=np.arange(num_frames, dtype=np.float64) / fps,
        state=state, state_names=list(G1_JOINTS), velocity=velocity,
        action=action, action_names=list(G1_ARM_JOINTS), locomotion_command=loco,
        images=images, skew=skew, start_time_ns=1_700_000_000_000_000_000 + seed,
        attrs=dict(attrs or {"source_key": f"raw-mcap/{capture_day}/{robot_id}/{episode_id}/{episode_id}_0.mcap",
                              "source_sha256": f"{seed:064x}"}),
        source_index=source_index,
        source_rate_hz={c: float(camera_hz) for c in source_index},
    )
    if outcome is not None:
        ep.attrs["outcome"] = json.dumps(outcome)
    ep.validate()
    return ep


def write_episodes(
    out_dir: Path,
    n: int,
    *,
    prefix: str = "ep",
    num_frames: int = 30,
    seed: int = 0,
    **kw,
) -> list[Path]:
    """Write ``n`` episodes ``<prefix>-000..`` as HDF5 under ``out_dir``; returns their paths."""
    paths = []
    for i in range(n):
        ep = make_episode(f"{prefix}-{i:03d}", num_frames=num_frames, seed=seed + i, **kw)
        paths.append(write_episode_h5(Path(out_dir) / f"{ep.episode_id}.h5", ep))
    return paths
