"""Simulated action-free egocentric clips (seed 004's two LAM buckets) for tests and the demo.

The G1 table scene (:func:`~hvla_platform.lib.sim.model.build_scene`) seen through its ``head``
camera, recorded as an MP4 (H.264 through PyAV) plus the clip ``metadata.yaml`` an operator would
write (:mod:`hvla_platform.lib.formats.human_video`). **No command, joint state or action is
recorded**: only the frames, as with a head-mounted camera on a person.

* ``manipulation``: the head camera holds still (up to a small natural sway) while the scripted
  expert (:func:`~hvla_platform.lib.sim.task.plan_expert`) reaches for the object: the changes in
  the view are the arm and hand.
* ``locomotion``: the camera, raised to a person's eye height, moves through the scene: a walk
  (forward and back, with a
  1.8 Hz step bob of 1.5 cm) and a turn of the head/body by up to 40° to each side, so the whole
  view moves (the camera is moved in the torso's frame through ``model.cam_pos`` / ``cam_quat``).

Frames get σ = 2 levels of sensor noise (:class:`~hvla_platform.lib.sim.frames.NoiseBank`), like the
robot recorder's, so no two frames are bit-identical. Cost: a 3 s, 10 fps, 96 × 128 clip renders
30 frames (about 2–3 s of CPU with OSMesa) and encodes in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mujoco
import numpy as np
import yaml

from hvla_platform import __version__
from hvla_platform.lib.core.rights import IDENTIFIABLE_PEOPLE_USE
from hvla_platform.lib.core.keys import check_day, check_id
from hvla_platform.lib.formats.human_video import CLIP_METADATA, write_mp4
from hvla_platform.lib.sim.core import G1Sim
from hvla_platform.lib.sim.frames import CAMERA_NOISE_SIGMA, NoiseBank, add_noise_u8, headroom
from hvla_platform.lib.sim.task import plan_expert, sample_scene_task

Role = Literal["manipulation", "locomotion"]
#: Step frequency of the walk, Hz, and its vertical bob amplitude, metres (a typical human gait
#: cadence of ~108 steps/min; head bob of 1–2 cm).
STEP_HZ, BOB_M = 1.8, 0.015
#: Largest head yaw of the locomotion clip, radians (40°), and its walk amplitude, metres.
TURN_RAD, WALK_M = np.deg2rad(40.0), 0.12
#: The locomotion clip's camera is this much above the robot's head camera (a person's eye height), m.
EYE_RAISE_M = 0.3
#: ... and looks this much further up (towards the horizon), radians.
LOOK_UP_RAD = 0.3


@dataclass(frozen=True)
class SimClip:
    """A recorded clip folder: ``folder/<clip_id>.mp4`` and ``folder/metadata.yaml``.

    Attributes:
        folder: the clip's folder (what ingest lands).
        video: the MP4's path.
        metadata: the metadata written (the parsed ``metadata.yaml``).
        frames: (T, H, W, 3) uint8 RGB frames as encoded (before compression).
    """

    folder: Path
    video: Path
    metadata: dict[str, Any]
    frames: np.ndarray


def _yaw_quat(angle: float) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a rotation by ``angle`` radians about the body's z axis."""
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def render_clip_frames(role: Role, *, seed: int = 0, duration_s: float = 3.0, fps: float = 10.0,
                       height: int = 96, width: int = 128) -> tuple[np.ndarray, str]:
    """Render a clip's head-camera frames.

    Returns:
        ``(frames, task)``: (T, H, W, 3) uint8 RGB with T = round(duration_s × fps), and the task
        string (the scripted expert's instruction for ``manipulation``; a walking instruction for
        ``locomotion``).

    Raises:
        ValueError: unknown ``role``, non-positive duration or fps, or odd ``height``/``width``.
    """
    if role not in ("manipulation", "locomotion"):
        raise ValueError(f"role must be 'manipulation' or 'locomotion', got {role!r}")
    if duration_s <= 0 or fps <= 0 or height % 2 or width % 2:
        raise ValueError(f"need duration_s > 0, fps > 0 and even height/width, got {duration_s}, {fps}, {height}x{width}")
    rng = np.random.default_rng(seed)
    sim = G1Sim(height=height, width=width)
    try:
        scene = sim.scene
        task = sample_scene_task(rng, scene)
        sim.reset(task.object_xy, task.colour, task.shape)
        plan = plan_expert(scene, task)
        cam = mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, scene.cameras["head"])
        pos0, quat0 = sim.model.cam_pos[cam].copy(), sim.model.cam_quat[cam].copy()
        noise = NoiseBank((height, width, 3), CAMERA_NOISE_SIGMA, rng)
        n = max(1, round(duration_s * fps))
        frames = np.empty((n, height, width, 3), np.uint8)
        phase = rng.uniform(0, 2 * np.pi)
        for k in range(n):
            t = k / fps
            if role == "manipulation":
                # the expert's whole reach within the clip; a person's head sways by a few millimetres
                sim.set_joint_targets(plan.joint_targets(t * plan.duration_s / duration_s))
                sim.step(max(1, round(1.0 / fps / sim.timestep)))
                offset = np.array([0.0, 0.002 * np.sin(2 * np.pi * 0.3 * t + phase), 0.0])
                yaw = 0.0
            else:
                s = t / duration_s
                # a person's eyes above the robot's head (out of its body), walking forward and back
                offset = np.array([WALK_M * np.sin(np.pi * s), 0.03 * np.sin(2 * np.pi * s),
                                   EYE_RAISE_M + BOB_M * np.sin(2 * np.pi * STEP_HZ * t + phase)])
                yaw = TURN_RAD * np.sin(2 * np.pi * s)
            sim.model.cam_pos[cam] = pos0 + offset
            q, q2 = np.empty(4), np.empty(4)
            mujoco.mju_mulQuat(q, _yaw_quat(yaw), quat0)
            # walking, the eyes look further ahead: tilt up about the camera's own x axis
            tilt = LOOK_UP_RAD if role == "locomotion" else 0.0
            mujoco.mju_mulQuat(q2, q, np.array([np.cos(tilt / 2), np.sin(tilt / 2), 0.0, 0.0]))
            sim.model.cam_quat[cam] = q2
            mujoco.mj_forward(sim.model, sim.data)  # camera poses (data.cam_xpos) follow the model's
            img = sim.render("head")
            frames[k] = add_noise_u8(headroom(img, noise.bound), noise)
        instruction = task.instruction if role == "manipulation" else \
            "walk forward, turn left and right, and step back towards the table"
        return frames, instruction
    finally:
        sim.close()


def clip_metadata(*, clip_id: str, device_id: str, capture_date: str, role: Role, task: str, seed: int,
                  identifiable_people: bool = False, consent_ref: str = "consent-hv-sim-001",
                  site: str = "sim-lab-headcam") -> dict[str, Any]:
    """The clip ``metadata.yaml`` mapping the simulated recorder writes (the contract of
    :class:`~hvla_platform.lib.formats.human_video.ClipMetadata`): rights with
    ``contains_human_video: true``, the demonstrator's consent, and ``identifiable_people_training``
    among the allowed uses only when ``identifiable_people``."""
    day = dt.date.fromisoformat(capture_date)
    uses = ["internal_training"] + ([IDENTIFIABLE_PEOPLE_USE] if identifiable_people else [])
    return {
        "clip_id": clip_id,
        "device": {"id": device_id, "model": "sim-g1-head-camera"},
        "capture_date": capture_date,
        "site": site,
        "customer": "internal",
        "task": task,
        "learning_role": role,
        "demonstrator": {"id": "demo-sim-01", "consent_ref": consent_ref},
        "recorder": {"name": "hvla-sim-human-video", "version": __version__,
                     "simulator": f"mujoco {mujoco.__version__}", "seed": seed},
        "rights": {"data_owner": "hvla-lab", "license": "proprietary", "consent_refs": [consent_ref],
                   "allowed_uses": uses, "retention_until": day.replace(year=day.year + 5).isoformat(),
                   "contains_human_video": True, "contains_customer_environment": False},
    }


def write_clip(out_dir: str | Path, frames: np.ndarray, metadata: dict[str, Any], fps: float, *,
               pts_s: list[float] | np.ndarray | None = None) -> SimClip:
    """Write ``frames`` ((T, H, W, 3) uint8) as ``<out_dir>/<clip_id>/<clip_id>.mp4`` (H.264) and the
    ``metadata.yaml`` beside it; ``pts_s`` as in :func:`~hvla_platform.lib.formats.human_video.write_mp4`.

    Raises:
        UnsafeIdError: the metadata's clip id or capture date is unsafe in a path.
        FileExistsError: the clip folder exists already.
    """
    clip_id = check_id(metadata.get("clip_id"), "clip id")
    check_day(metadata.get("capture_date"))
    folder = Path(out_dir) / clip_id
    folder.mkdir(parents=True, exist_ok=False)
    video = write_mp4(folder / f"{clip_id}.mp4", list(frames), fps, pts_s=pts_s)
    (folder / CLIP_METADATA).write_text(yaml.safe_dump(metadata, sort_keys=False), encoding="utf-8")
    return SimClip(folder=folder, video=video, metadata=metadata, frames=np.asarray(frames))


def record_human_video_clip(out_dir: str | Path, role: Role, *, clip_id: str | None = None,
                            device_id: str = "headcam-sim-01", capture_date: str = "2026-11-10", seed: int = 0,
                            duration_s: float = 3.0, fps: float = 10.0, height: int = 96, width: int = 128,
                            identifiable_people: bool = False) -> SimClip:
    """Render and write one simulated clip (:func:`render_clip_frames`, :func:`clip_metadata`,
    :func:`write_clip`); the clip id defaults to ``hv-<day without dashes>-<role>-<seed:03d>``.

    Raises:
        ValueError, UnsafeIdError, FileExistsError: see the functions above.
    """
    frames, task = render_clip_frames(role, seed=seed, duration_s=duration_s, fps=fps, height=height, width=width)
    clip_id = clip_id or f"hv-{capture_date.replace('-', '')}-{role[:4]}-{seed:03d}"
    meta = clip_metadata(clip_id=clip_id, device_id=device_id, capture_date=capture_date, role=role, task=task,
                         seed=seed, identifiable_people=identifiable_people)
    return write_clip(out_dir, frames, meta, fps)
