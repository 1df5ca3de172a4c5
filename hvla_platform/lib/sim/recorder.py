"""Record simulated robot episodes the way ``ros2 bag record`` does on a real robot, for any robot
profile with a ``simulation`` section.

Each episode is a folder ``<out_root>/<YYYY-MM-DD>/<robot_id>/<episode_id>/`` holding
``<episode_id>_0.mcap`` (ROS 2 profile, CDR, zstd chunks, with summary and indexes),
``metadata.yaml`` (identity, capture, outcome and the rights block; ``robot.profile`` names the
profile when one was asked for) and ``operator_notes.md``.

Every stream of the profile is written at its own nominal rate, on its own topic and message type
(see docs/simulation.md). Without a profile the default G1 (``unitree_g1_29dof``) is recorded,
exactly as before profiles existed (``metadata.yaml`` then names no profile). Streams and their
realism:

==============================  =====================================================================
stream                          stamps / log times
==============================  =====================================================================
``joint_state``                 stamp = sample time; encoder noise σ = 0.2 mrad; velocity (rad/s) and
                                actuator effort (N·m); log time = stamp + U(0.5, 3) ms
``commands.*``                  the expert's joint targets (rad) at the stream's rate, as
                                ``JointState`` / ``Float64MultiArray`` / ``Float64``; stamp = command
                                time (the MCAP publish time for header-less types); log = stamp +
                                U(0.2, 1) ms; the servos track the latest command of each stream
``cameras.*``                   start 30 ms late; stamp = exposure time + N(0, 1 ms) driver jitter;
                                colour sensor noise σ = 2 levels, JPEG q = 85 / PNG / raw; depth from
                                the depth buffer, 16UC1 mm or 32FC1 m with σ(z) = 1 mm + 2 mm·z²;
                                log = stamp + U(5, 20) ms (``--frames synthetic``: see :mod:`.frames`)
``extras.*`` (Imu)              orientation, gyro (+ N(0, 0.003 rad/s)), accelerometer (+ N(0, 0.03
                                m/s²)) at the IMU site; log = stamp + U(0.2, 1) ms
``extras.*`` (WrenchStamped)    flange force (+ N(0, 0.3 N)) and torque (+ N(0, 0.01 N·m)), raw
``locomotion``                  constant (pelvis fixed): 0, 0, 0, stance height; log = stamp + U(0.3,
                                1.5) ms
``task``                        the instruction string; log = sample time + 0.2 ms
==============================  =====================================================================

Messages are flushed to the MCAP every half second of simulated time (log-time order within a
100 ms watermark), so memory stays bounded whatever the episode length.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path
from typing import Callable

import mujoco
import numpy as np
import yaml

from hvla_platform import __version__
from hvla_platform.lib.formats.recording.mcap_writer import RecordingWriter
from hvla_platform.lib.formats.recording.profile import (
    DEFAULT_PROFILE,
    MSG_COMPRESSED_IMAGE,
    MSG_IMU,
    RobotProfile,
    load_profile,
)
from hvla_platform.lib.sim.builders import build_profile_scene
from hvla_platform.lib.sim.core import G1Sim, RobotSim
from hvla_platform.lib.sim.frames import CAMERA_NOISE_SIGMA, JPEG_QUALITY, CameraFrames, FrameMode  # noqa: F401
from hvla_platform.lib.sim.task import plan_expert, sample_scene_task

JOINT_RATE_HZ, COMMAND_RATE_HZ, CAMERA_RATE_HZ, LOCO_RATE_HZ = 100.0, 50.0, 15.0, 10.0  # the default G1's
ENCODER_NOISE_RAD = 2e-4
CAMERA_START_DELAY_S = 0.03
DEFAULT_DURATION_S = 4.5
GYRO_NOISE_RAD_S, ACCEL_NOISE_M_S2 = 0.003, 0.03
FORCE_NOISE_N, TORQUE_NOISE_NM = 0.3, 0.01
#: Messages older than this behind the current sample time are written out (flush watermark).
_FLUSH_LAG_S, _FLUSH_EVERY_S = 0.1, 0.5


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


def resolve_profile(profile: str | RobotProfile | None) -> RobotProfile:
    """The profile object for a name (``<name>`` or ``<name>@<version>``), a profile, or None (the
    default G1).

    Raises:
        ProfileError: unknown or invalid profile.
    """
    if isinstance(profile, RobotProfile):
        return profile
    return load_profile(profile or DEFAULT_PROFILE)


def make_sim(profile: str | RobotProfile | None = None) -> RobotSim:
    """A rendering simulator for ``profile`` (None: the default G1, :class:`G1Sim`).

    Raises:
        ProfileError: unknown profile. SceneBuildError: the profile cannot be simulated.
    """
    if profile is None:
        return G1Sim()
    prof = resolve_profile(profile)
    cam = next(iter(prof.cameras.values()))
    return RobotSim(build_profile_scene(prof), render=True, height=cam.height, width=cam.width)


def default_robot_ids(profile: str | RobotProfile | None = None) -> list[str]:
    """Two robot ids for a profile's robot model: ``g1-001, g1-002`` for the default G1, else
    ``<model>-001, <model>-002`` (``unitree_`` dropped, ``_`` → ``-``; e.g. ``h1-001``)."""
    if profile is None:
        return ["g1-001", "g1-002"]
    short = resolve_profile(profile).robot.model.removeprefix("unitree_").replace("_", "-")
    return [f"{short}-001", f"{short}-002"]


def record_episode(out_root: Path, *, episode_id: str, robot_id: str, capture_day: str, seed: int,
                   task: str | None = None, operator: str = "op-sim-01", site: str = "sim-lab",
                   customer: str = "internal", rights: dict | None = None, duration_s: float | None = None,
                   sim: RobotSim | None = None, profile: str | RobotProfile | None = None,
                   frames: FrameMode = "rendered") -> Path:
    """Simulate and record one episode; return its folder.

    Args:
        out_root: recordings root; the episode goes to ``<out_root>/<capture_day>/<robot_id>/<episode_id>/``.
        seed: seeds the task sample (object, colour, arm), sensor noise and timing jitter.
        task: task family (``reach_touch`` / ``reach_grasp``; default: the scene's).
        duration_s: episode length in seconds (default 4.5).
        sim: a simulator of the same profile to reuse (saves ~0.2–0.6 s of model building).
        profile: robot profile name or object; None records the default G1 without naming a
            profile in ``metadata.yaml`` (what ``hvla sim record`` without ``--profile`` does).
        frames: ``rendered`` (every frame rendered) or ``synthetic`` (low-resolution renders at
            5 Hz, upscaled, fresh sensor noise per frame; see :mod:`.frames`).

    Raises:
        ValueError: unknown ``task`` or ``frames``, a malformed ``capture_day``, a non-positive
            duration, or a ``sim`` of another robot.
        ProfileError: unknown profile. SceneBuildError: the profile cannot be simulated.
    """
    duration_s = float(duration_s or DEFAULT_DURATION_S)
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    prof = resolve_profile(profile)
    own_sim = sim is None
    sim = sim or make_sim(profile)
    if sim.scene.joint_names != prof.state_names:
        raise ValueError(f"the simulator given is not a {prof.profile} robot")
    try:
        return _record(Path(out_root), prof, sim, named=profile is not None, episode_id=episode_id,
                       robot_id=robot_id, capture_day=capture_day, seed=seed, task=task, operator=operator,
                       site=site, customer=customer, rights=rights, duration_s=duration_s, frames=frames)
    finally:
        if own_sim:
            sim.close()


def _record(out_root: Path, prof: RobotProfile, sim: RobotSim, *, named: bool, episode_id: str, robot_id: str,
            capture_day: str, seed: int, task: str | None, operator: str, site: str, customer: str,
            rights: dict | None, duration_s: float, frames: FrameMode) -> Path:
    scene = sim.scene
    rng = np.random.default_rng(seed)
    spec = sample_scene_task(rng, scene, task)
    plan = plan_expert(scene, spec)
    sim.reset(spec.object_xy, spec.colour, spec.shape)
    cams = CameraFrames(sim, prof.cameras, rng, mode=frames)

    day = dt.date.fromisoformat(capture_day)
    start = dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=dt.timezone.utc)
    offset_s = (zlib.crc32(episode_id.encode()) % 28_800)  # spread episodes over the working day
    t0_ns = int((start.timestamp() + offset_s) * 1e9)
    folder = out_root / capture_day / robot_id / episode_id
    folder.mkdir(parents=True, exist_ok=True)
    w = RecordingWriter(folder / f"{episode_id}_0.mcap")

    def ns(t: float) -> int:
        return t0_ns + int(round(t * 1e9))

    js = prof.joint_state
    commands = [(c, scene.joint_index(c.joints)) for c in prof.commands.values()]
    n_joints = len(scene.joint_names)
    stance = float(scene.stance_height or 0.0)
    nxt = {"joint": 0.0, "loco": 0.0, "task": 0.0, "flush": _FLUSH_EVERY_S}
    nxt.update({f"cmd:{c.topic}": 0.0 for c, _ in commands})
    nxt.update({f"cam:{k}": CAMERA_START_DELAY_S for k in prof.cameras})
    nxt.update({f"extra:{k}": 0.0 for k in prof.extras})
    dt_phys = sim.timestep
    n_steps = int(round(duration_s / dt_phys))
    min_dist = np.inf

    def due(key: str, t: float, rate: float) -> bool:
        if t + 1e-9 >= nxt[key]:
            nxt[key] += 1.0 / rate
            return True
        return False

    for step in range(n_steps + 1):
        t = step * dt_phys
        if commands:
            q_target = None
            for c, idx in commands:
                if due(f"cmd:{c.topic}", t, c.rate_hz):
                    q_target = plan.joint_targets(t) if q_target is None else q_target
                    values = q_target[idx]
                    sim.set_joint_targets(values, idx)
                    w.joint_targets(c.type, c.topic, ns(t), ns(t) + int(rng.uniform(0.2e6, 1e6)), c.joints, values)
        if due("joint", t, js.rate_hz):
            q = sim.joint_positions() + rng.normal(0.0, ENCODER_NOISE_RAD, n_joints)
            w.joint_state(ns(t), ns(t) + int(rng.uniform(0.5e6, 3e6)), js.joints, q, sim.joint_velocities(),
                          sim.joint_efforts(), topic=js.topic)
        for name, cam in prof.cameras.items():
            if due(f"cam:{name}", t, cam.rate_hz):
                stamp = ns(t) + int(rng.normal(0.0, 1e6))
                log = stamp + int(rng.uniform(5e6, 20e6))
                payload = cams.payload(name, t)
                if cam.type == MSG_COMPRESSED_IMAGE:
                    w.image(name, stamp, log, payload, cam.encoding, topic=cam.topic,
                            frame_id=f"{name}_camera_optical_frame")
                else:
                    w.raw_image(cam.topic, stamp, log, payload, cam.encoding, frame_id=f"{name}_camera_optical_frame")
        for name, extra in prof.extras.items():
            if due(f"extra:{name}", t, extra.rate_hz):
                log = ns(t) + int(rng.uniform(0.2e6, 1e6))
                if extra.type == MSG_IMU:
                    quat, gyro, acc = sim.imu(name)
                    w.imu(extra.topic, ns(t), log, quat, gyro + rng.normal(0.0, GYRO_NOISE_RAD_S, 3),
                          acc + rng.normal(0.0, ACCEL_NOISE_M_S2, 3), orientation_covariance=1e-4,
                          angular_velocity_covariance=GYRO_NOISE_RAD_S ** 2,
                          linear_acceleration_covariance=ACCEL_NOISE_M_S2 ** 2, frame_id=f"{scene.imus[name].site}_link")
                else:
                    force, torque = sim.wrench(name)
                    w.wrench(extra.topic, ns(t), log, force + rng.normal(0.0, FORCE_NOISE_N, 3),
                             torque + rng.normal(0.0, TORQUE_NOISE_NM, 3), frame_id=scene.wrenches[name].site)
        if prof.locomotion is not None and due("loco", t, prof.locomotion.rate_hz):
            w.locomotion(ns(t), ns(t) + int(rng.uniform(0.3e6, 1.5e6)), 0, 0, 0, stance, topic=prof.locomotion.topic)
        if due("task", t, prof.task.rate_hz):
            w.task(ns(t) + 200_000, spec.instruction, topic=prof.task.topic)
        if due("flush", t, 1.0 / _FLUSH_EVERY_S):
            w.flush(ns(t - _FLUSH_LAG_S))
        min_dist = min(min_dist, sim.hand_object_distance(spec.side))
        if step < n_steps:
            sim.step()
    arm = scene.arms[spec.side]
    touched = bool(min_dist < scene.success_distance)
    contacts = sim.object_contacts(spec.side)
    if spec.task == "reach_grasp":
        success = touched and contacts >= (2 if arm.tip_axis is not None else 1)
    else:
        success = touched
    w.close(metadata={"hvla_sim": {"profile": prof.key, "frames": frames, "builder": scene.builder,
                                   "seed": str(int(seed))}})

    robot = {"id": robot_id, "model": prof.robot.model}
    if named:
        robot["profile"] = prof.profile
    scene_info: dict = {"object": {"colour": spec.colour, "shape": spec.shape,
                                   "position_m": [round(v, 4) for v in spec.object_xy]}}
    if len(scene.arms) > 1:
        scene_info["hand"] = spec.side
    meta = {
        "episode_id": episode_id,
        "robot": robot,
        "capture_date": capture_day,
        "operator": operator,
        "site": site,
        "customer": customer,
        "task": spec.instruction,
        "source": "simulation",
        "recorder": {"name": "hvla-sim-record", "version": __version__, "simulator": f"mujoco {mujoco.__version__}",
                     "seed": int(seed), "task_family": spec.task,
                     **({} if frames == "rendered" else {"frames": frames})},
        "scene": scene_info,
        "topics": sorted({**prof.required_topics, **prof.optional_topics}),
        "duration_s": duration_s,
        "outcome": {"success": success, "min_distance_m": round(float(min_dist), 4)},
        "rights": rights or default_rights(capture_day),
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    verb = "touched" if spec.task == "reach_touch" else "grasped"
    body = ("pelvis fixed to the world; locomotion command constant." if scene.stance_height is not None
            else "arm mounted on the table; the object is fixed in place.")
    extra_note = "" if frames == "rendered" else (" Camera frames synthesised (low-resolution renders at 5 Hz, "
                                                  "upscaled, fresh sensor noise per frame).")
    (folder / "operator_notes.md").write_text(
        f"# {episode_id}\n\n- operator: {operator} (scripted expert in simulation)\n- robot: {robot_id} ({prof.robot.model}"
        f"{', profile ' + prof.profile if named else ''}), site {site}\n- task: {spec.instruction}\n- outcome: "
        f"{verb if success else 'missed'} (closest fingertip distance {min_dist * 100:.1f} cm)\n- notes: {body}{extra_note}\n")
    return folder


def round_robin_ids(kind: str, episodes: int, capture_days: list[str], robot_ids: list[str],
                    ) -> list[tuple[str, str, str]]:
    """``(capture_day, robot_id, episode_id)`` of episodes ``0 … episodes-1`` spread round-robin
    over the partitions ``capture_days`` × ``robot_ids`` (day-major); ids are
    ``<kind>-<YYYYMMDD>-<robot_id>-<NNN>`` with a counter per partition starting at 001. Episode
    ``i`` of the list is the one the simulators seed ``seed * 1000 + i``.

    Raises:
        ValueError: ``episodes`` < 1 or an empty id list.
    """
    if episodes < 1 or not robot_ids or not capture_days:
        raise ValueError("need episodes >= 1 and at least one robot id and capture day")
    parts = [(d, r) for d in capture_days for r in robot_ids]
    counters: dict[tuple[str, str], int] = {}
    out = []
    for i in range(episodes):
        day, robot = parts[i % len(parts)]
        counters[(day, robot)] = counters.get((day, robot), 0) + 1
        out.append((day, robot, f"{kind}-{day.replace('-', '')}-{robot}-{counters[(day, robot)]:03d}"))
    return out


def record_episodes(out_root: Path, *, episodes: int, seed: int, task: str | None = None,
                    robot_ids: list[str] | None = None, capture_days: list[str] | None = None,
                    progress: Callable[[str], None] | None = None, profile: str | RobotProfile | None = None,
                    frames: FrameMode = "rendered", duration_s: float | None = None) -> list[Path]:
    """Record ``episodes`` episodes spread round-robin over ``capture_days`` × ``robot_ids``.

    Episode ids are ``ep-<YYYYMMDD>-<robot_id>-<NNN>`` (per partition counter); episode ``i`` uses
    seed ``seed * 1000 + i``. Each robot gets its own site (``sim-lab-<robot_id>``) and operator
    (``op-sim-<NN>``, with consent record ``consent-2026-<40 + NN>``). ``profile``, ``frames`` and
    ``duration_s`` as in :func:`record_episode`; ``robot_ids`` default to
    :func:`default_robot_ids`.

    Raises:
        ValueError: ``episodes`` < 1 or empty id lists (and as :func:`record_episode`).
    """
    robot_ids = robot_ids or default_robot_ids(profile)
    plan = round_robin_ids("ep", episodes, capture_days or ["2026-11-10", "2026-11-11"], robot_ids)
    sim = make_sim(profile)
    out = []
    try:
        for i, (day, robot, ep) in enumerate(plan):
            k = robot_ids.index(robot) + 1
            folder = record_episode(Path(out_root), episode_id=ep, robot_id=robot, capture_day=day,
                                    seed=seed * 1000 + i, task=task, site=f"sim-lab-{robot}", sim=sim,
                                    operator=f"op-sim-{k:02d}", profile=profile, frames=frames,
                                    duration_s=duration_s,
                                    rights=default_rights(day, consent_ref=f"consent-2026-{40 + k:04d}"))
            out.append(folder)
            if progress:
                meta = yaml.safe_load((folder / "metadata.yaml").read_text())
                progress(f"  {ep}: {meta['task']} — {'success' if meta['outcome']['success'] else 'miss'}")
    finally:
        sim.close()
    return out
