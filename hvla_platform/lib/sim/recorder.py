"""Record simulated G1 episodes the way ``ros2 bag record`` does on a real robot.

Each episode is a folder ``<out_root>/<YYYY-MM-DD>/<robot_id>/<episode_id>/`` holding
``<episode_id>_0.mcap`` (ROS 2 profile, CDR, zstd chunks, with summary and indexes),
``metadata.yaml`` (identity, capture, outcome and the rights block) and ``operator_notes.md``.

Streams and their realism (see docs/simulation.md):

=============================  =======  =====================================================
topic                          rate     stamps / log times
=============================  =======  =====================================================
``/joint_states``              100 Hz   stamp = sample time; encoder noise σ = 0.2 mrad;
                                        log time = stamp + U(0.5, 3) ms
``/arm_controller/joint_command`` 50 Hz stamp = command time; log = stamp + U(0.2, 1) ms
``/camera/*/image_raw/compressed`` 15 Hz stamp = exposure time + N(0, 1 ms) driver jitter, sensor
                                        noise σ = 2 levels, JPEG q=85; log = stamp + U(5, 20) ms;
                                        cameras start 30 ms late
``/locomotion/command``        10 Hz    constant (pelvis fixed): 0, 0, 0, stance height
``/task/instruction``          1 Hz     the instruction string
=============================  =======  =====================================================
"""

from __future__ import annotations

import datetime as dt
import io
import zlib
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np
import yaml
from PIL import Image

from hvla_platform import __version__
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_HEIGHT,
    CAMERA_TOPICS,
    CAMERA_WIDTH,
    G1_ARM_JOINTS,
    G1_JOINTS,
    ROBOT_MODEL_G1,
)
from hvla_platform.lib.formats.recording.mcap_writer import RecordingWriter
from hvla_platform.lib.sim.core import G1Sim
from hvla_platform.lib.sim.task import SUCCESS_DISTANCE, plan_expert, sample_task

JOINT_RATE_HZ, COMMAND_RATE_HZ, CAMERA_RATE_HZ, LOCO_RATE_HZ = 100.0, 50.0, 15.0, 10.0
ENCODER_NOISE_RAD = 2e-4
CAMERA_START_DELAY_S = 0.03
DEFAULT_DURATION_S = 4.5
JPEG_QUALITY = 85
#: Image sensor noise, σ in 8-bit intensity levels (read + shot noise of a small CMOS camera; a
#: real camera never delivers two bit-identical frames, which is what the frozen-camera check uses).
CAMERA_NOISE_SIGMA = 2.0


def default_rights(capture_day: str, consent_ref: str = "consent-2026-0042") -> dict:
    """Rights block of a simulated recording: internal training and lab/staging deployment, no
    human video, kept five years after capture; ``consent_ref`` is the operator's consent record."""
    day = dt.date.fromisoformat(capture_day)
    return {
        "data_owner": "hvla-lab",
        "license": "proprietary",
        "consent_refs": [consent_ref],
        "allowed_uses": ["internal_training", "lab_robot", "staging_demo"],
        "retention_until": day.replace(year=day.year + 5).isoformat(),
        "contains_human_video": False,
        "contains_customer_environment": False,
    }


def _jpeg(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def record_episode(out_root: Path, *, episode_id: str, robot_id: str, capture_day: str, seed: int,
                   task: str = "reach_touch", operator: str = "op-sim-01", site: str = "sim-lab",
                   customer: str = "internal", rights: dict | None = None, duration_s: float | None = None,
                   sim: G1Sim | None = None) -> Path:
    """Simulate and record one episode; return its folder.

    Args:
        out_root: recordings root; the episode goes to ``<out_root>/<capture_day>/<robot_id>/<episode_id>/``.
        seed: seeds the task sample (object, colour, side), sensor noise and timing jitter.
        duration_s: episode length in seconds (default 4.5).
        sim: a :class:`G1Sim` to reuse (saves ~0.2 s of model building per episode).

    Raises:
        ValueError: unknown ``task`` or a malformed ``capture_day``.
    """
    duration_s = float(duration_s or DEFAULT_DURATION_S)
    rng = np.random.default_rng(seed)
    spec = sample_task(rng, task)
    own_sim = sim is None
    sim = sim or G1Sim()
    plan = plan_expert(sim.scene, spec)
    sim.reset(spec.object_xy, spec.colour, spec.shape)

    day = dt.date.fromisoformat(capture_day)
    start = dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=dt.timezone.utc)
    offset_s = (zlib.crc32(episode_id.encode()) % 28_800)  # spread episodes over the working day
    t0_ns = int((start.timestamp() + offset_s) * 1e9)
    folder = Path(out_root) / capture_day / robot_id / episode_id
    folder.mkdir(parents=True, exist_ok=True)
    w = RecordingWriter(folder / f"{episode_id}_0.mcap")

    def ns(t: float) -> int:
        return t0_ns + int(round(t * 1e9))

    dt_phys = sim.timestep
    n_steps = int(round(duration_s / dt_phys))
    next_joint = next_cmd = next_loco = next_task = 0.0
    next_cam = CAMERA_START_DELAY_S
    min_dist = np.inf
    stance = float(sim.scene.stance_height)
    for step in range(n_steps + 1):
        t = step * dt_phys
        if t + 1e-9 >= next_cmd:
            targets = plan.targets(t)
            sim.set_arm_targets(targets)
            w.arm_command(ns(t), ns(t) + int(rng.uniform(0.2e6, 1e6)), G1_ARM_JOINTS, targets)
            next_cmd += 1.0 / COMMAND_RATE_HZ
        if t + 1e-9 >= next_joint:
            q = sim.joint_positions() + rng.normal(0.0, ENCODER_NOISE_RAD, len(G1_JOINTS))
            w.joint_state(ns(t), ns(t) + int(rng.uniform(0.5e6, 3e6)), G1_JOINTS, q, sim.joint_velocities(),
                          sim.data.actuator_force[sim.scene.act_idx])
            next_joint += 1.0 / JOINT_RATE_HZ
        if t + 1e-9 >= next_cam:
            for cam in CAMERA_TOPICS:
                stamp = ns(t) + int(rng.normal(0.0, 1e6))
                img = sim.render(cam).astype(np.float32) + rng.normal(0.0, CAMERA_NOISE_SIGMA, (CAMERA_HEIGHT, CAMERA_WIDTH, 3))
                w.image(cam, stamp, stamp + int(rng.uniform(5e6, 20e6)), _jpeg(np.clip(np.rint(img), 0, 255).astype(np.uint8)))
            next_cam += 1.0 / CAMERA_RATE_HZ
        if t + 1e-9 >= next_loco:
            w.locomotion(ns(t), ns(t) + int(rng.uniform(0.3e6, 1.5e6)), 0, 0, 0, stance)
            next_loco += 1.0 / LOCO_RATE_HZ
        if t + 1e-9 >= next_task:
            w.task(ns(t) + 200_000, spec.instruction)
            next_task += 1.0
        min_dist = min(min_dist, sim.hand_object_distance(spec.side))
        if step < n_steps:
            sim.step()
    w.close()
    success = bool(min_dist < SUCCESS_DISTANCE)
    meta = {
        "episode_id": episode_id,
        "robot": {"id": robot_id, "model": ROBOT_MODEL_G1},
        "capture_date": capture_day,
        "operator": operator,
        "site": site,
        "customer": customer,
        "task": spec.instruction,
        "source": "simulation",
        "recorder": {"name": "hvla-sim-record", "version": __version__, "simulator": f"mujoco {mujoco.__version__}",
                     "seed": int(seed), "task_family": task},
        "scene": {"object": {"colour": spec.colour, "shape": spec.shape,
                             "position_m": [round(v, 4) for v in spec.object_xy]}, "hand": spec.side},
        "topics": sorted({"/joint_states", "/arm_controller/joint_command", "/locomotion/command",
                          "/task/instruction", *CAMERA_TOPICS.values()}),
        "duration_s": duration_s,
        "outcome": {"success": success, "min_distance_m": round(float(min_dist), 4)},
        "rights": rights or default_rights(capture_day),
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (folder / "operator_notes.md").write_text(
        f"# {episode_id}\n\n- operator: {operator} (scripted expert in simulation)\n- robot: {robot_id} ({ROBOT_MODEL_G1}), "
        f"site {site}\n- task: {spec.instruction}\n- outcome: {'touched' if success else 'missed'} "
        f"(closest fingertip distance {min_dist * 100:.1f} cm)\n- notes: pelvis fixed to the world; locomotion command "
        "constant.\n")
    if own_sim:
        sim.close()
    return folder


def record_episodes(out_root: Path, *, episodes: int, seed: int, task: str = "reach_touch",
                    robot_ids: list[str] | None = None, capture_days: list[str] | None = None,
                    progress: Callable[[str], None] | None = None) -> list[Path]:
    """Record ``episodes`` episodes spread round-robin over ``capture_days`` × ``robot_ids``.

    Episode ids are ``ep-<YYYYMMDD>-<robot_id>-<NNN>`` (per partition counter); episode ``i`` uses
    seed ``seed * 1000 + i``. Each robot gets its own site (``sim-lab-<robot_id>``) and operator
    (``op-sim-<NN>``, with consent record ``consent-2026-<40 + NN>``).

    Raises:
        ValueError: ``episodes`` < 1 or empty id lists.
    """
    robot_ids = robot_ids or ["g1-001", "g1-002"]
    capture_days = capture_days or ["2026-11-10", "2026-11-11"]
    if episodes < 1 or not robot_ids or not capture_days:
        raise ValueError("need episodes >= 1 and at least one robot id and capture day")
    parts = [(d, r) for d in capture_days for r in robot_ids]
    counters: dict[tuple[str, str], int] = {}
    sim = G1Sim()
    out = []
    try:
        for i in range(episodes):
            day, robot = parts[i % len(parts)]
            counters[(day, robot)] = counters.get((day, robot), 0) + 1
            ep = f"ep-{day.replace('-', '')}-{robot}-{counters[(day, robot)]:03d}"
            k = robot_ids.index(robot) + 1
            folder = record_episode(Path(out_root), episode_id=ep, robot_id=robot, capture_day=day,
                                    seed=seed * 1000 + i, task=task, site=f"sim-lab-{robot}", sim=sim,
                                    operator=f"op-sim-{k:02d}",
                                    rights=default_rights(day, consent_ref=f"consent-2026-{40 + k:04d}"))
            out.append(folder)
            if progress:
                meta = yaml.safe_load((folder / "metadata.yaml").read_text())
                progress(f"  {ep}: {meta['task']} — {'success' if meta['outcome']['success'] else 'miss'}")
    finally:
        sim.close()
    return out
