"""Simulated seed-003 teleop episodes: the UR5e + Robotiq 2F-85 picks a cube, the first grasp fails.

What seed 003's collection system records when an operator drives a UR5e with the HOSAS sticks and
the skill's grasp verification fails ("Correction Flow (After Grasp Failure)"), reproduced on the
``ur5e_robotiq_2f85`` robot profile's MuJoCo scene (builder ``ur5e_grasp``,
:mod:`hvla_platform.lib.sim.ur5e`), and written in seed 003's folder format
(:func:`~hvla_platform.lib.formats.teleop.pkl_episode.write_teleop_episode`) beside the platform's
``metadata.yaml`` (``format: seed003_pkl``):

==============  ==========================================================================================
phase           motion (joint-space minimum-jerk moves between damped-least-squares IK poses,
                :func:`~hvla_platform.lib.sim.task.solve_ik`, tool pointing down)
==============  ==========================================================================================
``teleop``      the operator's approach: home → a via-point → the skill trigger pose, with a small
                hand tremor and two pauses (the arm holds still: no-op frames); the operator triggers
                the skill :data:`TRIGGER_TOO_HIGH_M` too high above the cube
``skill``       the skill's relative waypoints: descend :data:`SKILL_DESCENT_M`, close the gripper
                (command 255) — on nothing, above the cube —, lift 5 cm for verification; the
                gripper reads ≥ :data:`GRASP_THRESHOLD`: grasp failed. Recording pauses
                (:data:`PAUSE_S`, no frames) until the operator moves the stick
``correction``  the operator opens the gripper while moving down around the cube, then closes it on
                the cube (the gripper reads < :data:`GRASP_THRESHOLD`: held)
``skill_resume`` the skill's absolute waypoints: lift the cube :data:`LIFT_M` and carry it aside
==============  ==========================================================================================

Frames are sampled at 30 Hz (seed 003's ``--record-hz``) and stamped with their sample time, so
the recording pause shows as a gap of about :data:`PAUSE_S` between the last ``skill`` frame and the
first ``correction`` frame. ``joint_positions`` are the six arm
joints' encoder readings (radians; no noise: a UR5e's encoders resolve ~1e-5 rad, so a still arm
reads still), ``tcp_pose`` the gripper's pinch point in the robot base frame (metres + UR rotation
vector), ``gripper_pos`` the driver joint as a Robotiq 0–255 position. Cameras (``wrist_rgb``,
``base_rgb``, 256 × 256 RGB as seed 003's ``--image-size``): the profile's ``wrist`` and ``base``
mounts rendered at :data:`RENDER_SIZE` pixels every :data:`RENDER_EVERY` frames, upscaled
(bilinear) and given fresh sensor noise every frame (σ = 2 levels, :class:`~.frames.NoiseBank`);
each image is stamped at its exposure, 8–25 ms before the frame's stamp (camera latency). The cube
is a mocap body: once held it is carried kinematically with the pinch point.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np
import yaml
from PIL import Image

from hvla_platform import __version__
from hvla_platform.lib.formats.recording.profile import RobotProfile, load_profile
from hvla_platform.lib.formats.teleop.episode import CAMERAS, TeleopEpisode
from hvla_platform.lib.formats.teleop.pkl_episode import write_teleop_episode
from hvla_platform.lib.sim.builders import build_profile_scene
from hvla_platform.lib.sim.core import RobotSim
from hvla_platform.lib.sim.frames import CAMERA_NOISE_SIGMA, NoiseBank, add_noise_u8, headroom
from hvla_platform.lib.sim.recorder import default_rights, round_robin_ids
from hvla_platform.lib.sim.scene import CUBE_HALF
from hvla_platform.lib.sim.task import min_jerk, solve_ik
from hvla_platform.lib.sim.ur5e import DRIVER_CLOSED_RAD, GRIPPER_JOINT

#: The robot profile the teleop episodes are recorded on.
TELEOP_PROFILE = "ur5e_robotiq_2f85"
#: The ``metadata.yaml`` ``format`` value of a seed-003 episode folder.
TELEOP_FORMAT = "seed003_pkl"
#: Recording rate, Hz (seed 003's ``--record-hz``).
RECORD_HZ = 30
#: Image size of both cameras, pixels (seed 003's ``--image-size``).
IMAGE_SIZE = 256
#: Side of the low-resolution render that is upscaled to :data:`IMAGE_SIZE`; renders happen every
#: :data:`RENDER_EVERY` frames (5 Hz, as `hvla sim record --frames synthetic`).
RENDER_SIZE, RENDER_EVERY = 64, 6
#: Camera latency: an image is exposed U(8, 25) ms before the frame's stamp.
CAMERA_LATENCY_S = (0.008, 0.025)
#: The operator triggers the skill this far above the correct trigger pose (metres): the skill's
#: relative waypoints then close the gripper above the cube.
TRIGGER_TOO_HIGH_M = 0.07
#: The skill's relative descent from the trigger pose to the grasp, metres; the trigger pose is meant
#: to be this far above the cube's centre.
SKILL_DESCENT_M = 0.10
#: Verification lift after the grasp close (seed 003: 5 cm), metres.
VERIFY_LIFT_M = 0.05
#: Grasp command and verification threshold (Robotiq 0–255): held when the gripper reads below it.
GRASP_COMMAND, GRASP_THRESHOLD = 255, 230
#: Lift of the skill's absolute waypoints with the cube held, metres.
LIFT_M = 0.12
#: Recording pause between the failed verification and the operator's first correction input, s.
PAUSE_S = 0.5
#: Peak joint tremor of the operator's motions, radians.
TREMOR_RAD = 0.004


@dataclass(frozen=True)
class Segment:
    """One scripted move: ``phase`` label, ``duration`` seconds, arm target pose name (``None``:
    hold), gripper target (0–255, ``None``: keep), whether the operator's tremor is added, and
    whether frames are recorded (False for the pause after a failed grasp)."""

    phase: str
    duration: float
    arm_to: str | None
    grip_to: float | None = None
    tremor: bool = False
    record: bool = True


#: The episode's script (durations in seconds; ~4.6 s of frames).
SCRIPT: tuple[Segment, ...] = (
    Segment("teleop", 0.70, "via", tremor=True),
    Segment("teleop", 0.30, None),                   # the operator pauses: no-op frames
    Segment("teleop", 0.60, "trigger", tremor=True),
    Segment("teleop", 0.30, None),                   # settles before pressing the skill button: no-ops
    Segment("skill", 0.45, "skill_grasp"),
    Segment("skill", 0.30, None, grip_to=GRASP_COMMAND),
    Segment("skill", 0.25, "verify"),
    Segment("skill", PAUSE_S, None, record=False),   # grasp failed: recording paused
    Segment("correction", 0.75, "grasp", grip_to=0.0, tremor=True),
    Segment("correction", 0.35, None, grip_to=GRASP_COMMAND),
    Segment("skill_resume", 0.55, "lift"),
    Segment("skill_resume", 0.15, None),
)


def rotvec_from_matrix(r: np.ndarray) -> np.ndarray:
    """(3,) UR rotation vector (axis × angle, radians, angle in [0, π]) of a (3, 3) rotation matrix."""
    q = np.zeros(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(r, np.float64).reshape(9))
    w, v = q[0], q[1:]
    if w < 0:
        w, v = -w, -v
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        return np.zeros(3)
    return v / s * 2.0 * np.arctan2(s, w)


def gripper_reading(sim: RobotSim) -> int:
    """The 2F-85's driver joint as a Robotiq position: 0 (open) … 255 (closed)."""
    q = sim.data.qpos[sim.scene.qpos_idx[sim.scene.joint_names.index(GRIPPER_JOINT)]]
    return int(np.clip(round(float(q) / DRIVER_CLOSED_RAD * 255.0), 0, 255))


def _poses(sim: RobotSim, obj: np.ndarray) -> dict[str, np.ndarray]:
    """Arm poses ((6,) radians, :data:`UR5E_ARM` order inside the full joint vector) of the script."""
    scene = sim.scene
    arm = scene.arms["arm"]
    q = scene.nominal_q.copy()
    targets = {
        "via": obj + np.array([-0.12, 0.06, 0.25]),
        "trigger": obj + np.array([0.0, 0.0, SKILL_DESCENT_M + TRIGGER_TOO_HIGH_M]),
        "skill_grasp": obj + np.array([0.0, 0.0, TRIGGER_TOO_HIGH_M]),
        "verify": obj + np.array([0.0, 0.0, TRIGGER_TOO_HIGH_M + VERIFY_LIFT_M]),
        "grasp": obj.copy(),
        "lift": obj + np.array([0.0, 0.08, LIFT_M]),
    }
    out = {"home": scene.nominal_q[arm.idx].copy()}
    for name, target in targets.items():
        q, _ = solve_ik(scene, "arm", target, q, axis=arm.tip_axis)
        out[name] = q[arm.idx].copy()
    return out


def simulate_pick(seed: int, *, episode_id: str, start_unix: float, sim: RobotSim | None = None,
                  ) -> tuple[TeleopEpisode, dict]:
    """Run the script (:data:`SCRIPT`) once and return the episode and a summary.

    Args:
        seed: seeds the cube's position and colour, the tremor, camera latencies and noise.
        episode_id: the episode's id.
        start_unix: Unix time of the first frame, seconds.
        sim: a rendering simulator of the ``ur5e_robotiq_2f85`` profile to reuse (built if None).

    Returns:
        ``(episode, summary)``: the :class:`TeleopEpisode` (``meta`` holds seed 003's skill fields:
        ``skill_name: pick``, ``skill_outcome``, ``grasp_verified``, ``grasp_commanded``,
        ``grasp_actual``, ``fps``) and ``{"colour", "object_xy", "first_grasp", "final_grasp",
        "held", "instruction"}`` (grasp readings 0–255).
    """
    own = sim is None
    sim = sim or RobotSim(build_profile_scene(load_profile(TELEOP_PROFILE)), render=True, height=RENDER_SIZE,
                          width=RENDER_SIZE)
    try:
        return _simulate(sim, seed, episode_id, start_unix)
    finally:
        if own:
            sim.close()


def _simulate(sim: RobotSim, seed: int, episode_id: str, start_unix: float) -> tuple[TeleopEpisode, dict]:
    scene = sim.scene
    rng = np.random.default_rng(seed)
    colour = str(rng.choice(["red", "green", "blue"]))
    xy = (float(rng.uniform(*scene.region.x_range)), float(rng.uniform(-0.08, 0.08)))
    sim.reset(xy, colour, "cube")
    obj = sim.object_pos.copy()
    poses = _poses(sim, obj)
    arm_idx = scene.arms["arm"].idx
    grip_idx = scene.joint_names.index(GRIPPER_JOINT)
    arm_qpos, arm_dofs = scene.qpos_idx[arm_idx], scene.dof_idx[arm_idx]
    site = scene.hand_site["arm"]
    base_id = sim.model.body("base").id
    banks = {cam: NoiseBank((IMAGE_SIZE, IMAGE_SIZE, 3), CAMERA_NOISE_SIGMA, rng) for cam in CAMERAS}
    mounts = {"wrist_rgb": "wrist", "base_rgb": "base"}
    target = np.array(scene.nominal_q, np.float64)
    q_arm, grip_cmd = poses["home"].copy(), 0.0
    period = 1.0 / RECORD_HZ
    steps_per_s = 1.0 / sim.timestep
    frames: dict[str, list] = {k: [] for k in ("t", "phase", "q", "tcp", "grip", "wrist_rgb", "base_rgb",
                                               "wrist_ts", "base_ts")}
    views: dict[str, np.ndarray] = {}
    held_offset: np.ndarray | None = None
    first_grasp = final_grasp = -1
    clock = 0.0     # simulated time since the episode's start (the pause advances it but records nothing)
    next_frame = 0.0
    for seg in SCRIPT:
        q0, q1 = q_arm, (poses[seg.arm_to] if seg.arm_to else q_arm)
        g0, g1 = grip_cmd, (seg.grip_to if seg.grip_to is not None else grip_cmd)
        phase_w = rng.uniform(0, 2 * np.pi, 6)
        n = int(round(seg.duration * steps_per_s))
        for k in range(n):
            tau = (k + 1) / n
            s = min_jerk(tau)
            q = q0 + (q1 - q0) * s
            if seg.tremor:  # zero at both ends of the move
                q = q + TREMOR_RAD * np.sin(np.pi * tau) * np.sin(2 * np.pi * 3.0 * clock + phase_w)
            target[arm_idx] = q
            target[grip_idx] = (g0 + (g1 - g0) * min_jerk(min(1.0, tau * 1.5))) / 255.0 * DRIVER_CLOSED_RAD
            sim.set_joint_targets(target)
            # the arm follows its targets exactly (a UR5e's servoJ tracks within its encoder
            # resolution); the gripper and the contacts are simulated
            sim.data.qvel[arm_dofs] = (q - sim.data.qpos[arm_qpos]) / sim.timestep
            sim.data.qpos[arm_qpos] = q
            if held_offset is not None:
                sim.data.mocap_pos[scene.object_mocap] = sim.data.site_xpos[site] + held_offset
            sim.step()
            clock += sim.timestep
            if not seg.record:
                next_frame = clock  # the first correction frame follows the operator's input
                continue
            if clock + 1e-9 < next_frame:
                continue
            next_frame += period
            i = len(frames["t"])
            for cam, mount in mounts.items():
                if i % RENDER_EVERY == 0:
                    small = sim.render(mount, RENDER_SIZE, RENDER_SIZE)
                    big = np.asarray(Image.fromarray(small).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR))
                    views[cam] = headroom(big, banks[cam].bound)
                frames[cam].append(add_noise_u8(views[cam], banks[cam]))
            stamp = start_unix + clock  # the frame's sample time
            frames["t"].append(stamp)
            frames["wrist_ts"].append(stamp - rng.uniform(*CAMERA_LATENCY_S))
            frames["base_ts"].append(stamp - rng.uniform(*CAMERA_LATENCY_S))
            frames["phase"].append(seg.phase)
            frames["q"].append(sim.joint_positions()[arm_idx])
            rb, pb = sim.data.xmat[base_id].reshape(3, 3), sim.data.xpos[base_id]
            rs, ps = sim.data.site_xmat[site].reshape(3, 3), sim.data.site_xpos[site]
            frames["tcp"].append(np.concatenate([rb.T @ (ps - pb), rotvec_from_matrix(rb.T @ rs)]))
            frames["grip"].append(gripper_reading(sim))
        q_arm, grip_cmd = q1, g1
        if seg.phase == "skill" and seg.arm_to == "verify":
            first_grasp = gripper_reading(sim)
        if seg.phase == "correction" and seg.grip_to == GRASP_COMMAND:
            final_grasp = gripper_reading(sim)
            if final_grasp < GRASP_THRESHOLD and sim.object_contacts("arm") >= 2:
                held_offset = sim.object_pos - sim.data.site_xpos[site]
    held = held_offset is not None
    lifted = float(sim.data.mocap_pos[scene.object_mocap][2] - (scene.table.top_z + CUBE_HALF))
    outcome = "completed_after_correction" if held and lifted > LIFT_M * 0.8 else "incomplete"
    episode = TeleopEpisode(
        episode_id=episode_id,
        timestamps=np.array(frames["t"], np.float64),
        phases=tuple(frames["phase"]),
        joint_positions=np.array(frames["q"], np.float64),
        tcp_pose=np.array(frames["tcp"], np.float64),
        gripper_pos=np.array(frames["grip"], np.uint8),
        images={cam: np.stack(frames[cam]) for cam in CAMERAS},
        image_timestamps={"wrist_rgb": np.array(frames["wrist_ts"]), "base_rgb": np.array(frames["base_ts"])},
        meta={"skill_name": "pick", "skill_outcome": outcome, "grasp_verified": first_grasp < GRASP_THRESHOLD,
              "grasp_commanded": GRASP_COMMAND, "grasp_actual": first_grasp, "fps": RECORD_HZ},
    )
    summary = {"colour": colour, "object_xy": xy, "first_grasp": first_grasp, "final_grasp": final_grasp,
               "held": held, "lifted_m": round(lifted, 4), "instruction": f"pick up the {colour} cube"}
    return episode, summary


def record_teleop_episode(out_root: str | Path, *, episode_id: str, robot_id: str, capture_day: str, seed: int,
                          operator: str = "op-teleop-01", site: str = "sim-lab", customer: str = "internal",
                          rights: dict | None = None, sim: RobotSim | None = None) -> Path:
    """Simulate one teleop pick (:func:`simulate_pick`) and write it as a seed-003 episode folder
    ``<out_root>/<capture_day>/<robot_id>/<episode_id>/``: ``frame_NNNN.pkl`` … and
    ``episode_meta.json`` (seed 003), plus the platform's ``metadata.yaml`` (``format:
    seed003_pkl``, ``robot.profile: ur5e_robotiq_2f85``, the rights block — default
    :func:`~hvla_platform.lib.sim.recorder.default_rights`) and ``operator_notes.md``.

    The first frame is stamped on the capture day at 10:00 UTC plus an offset from the episode id.
    ``saved_at`` in ``episode_meta.json`` is the last frame's time (UTC, no zone, as the seed writes
    local time). About 2–4 s of CPU.

    Raises:
        ValueError: a malformed ``capture_day``.
        FileExistsError: the folder already holds an episode.
    """
    day = dt.date.fromisoformat(capture_day)
    start = dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=dt.timezone.utc).timestamp()
    start += zlib.crc32(episode_id.encode()) % 21_600
    episode, summary = simulate_pick(seed, episode_id=episode_id, start_unix=start, sim=sim)
    saved = dt.datetime.fromtimestamp(float(episode.timestamps[-1]), dt.timezone.utc).replace(tzinfo=None)
    episode.meta["saved_at"] = saved.isoformat(timespec="seconds")
    folder = Path(out_root) / capture_day / robot_id / episode_id
    write_teleop_episode(folder, episode)
    prof: RobotProfile = load_profile(TELEOP_PROFILE)
    meta = {
        "episode_id": episode_id,
        "robot": {"id": robot_id, "model": prof.robot.model, "profile": prof.profile},
        "capture_date": capture_day,
        "format": TELEOP_FORMAT,
        "operator": operator,
        "site": site,
        "customer": customer,
        "task": summary["instruction"],
        "source": "simulation",
        "recorder": {"name": "hvla-sim-teleop", "version": __version__, "simulator": f"mujoco {mujoco.__version__}",
                     "seed": int(seed), "task_family": "teleop_pick", "frames": "synthetic"},
        "scene": {"object": {"colour": summary["colour"], "shape": "cube",
                             "position_m": [round(v, 4) for v in summary["object_xy"]]}},
        "duration_s": round(float(episode.timestamps[-1] - episode.timestamps[0]) + 1.0 / RECORD_HZ, 3),
        "outcome": {"success": episode.meta["skill_outcome"] == "completed_after_correction"},
        "rights": rights or default_rights(capture_day),
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    counts = {p: episode.phases.count(p) for p in dict.fromkeys(episode.phases)}
    (folder / "operator_notes.md").write_text(
        f"# {episode_id}\n\n- operator: {operator} (scripted teleop in simulation)\n- robot: {robot_id} "
        f"({prof.robot.model}, profile {prof.profile}), site {site}\n- task: {summary['instruction']}\n"
        f"- first grasp: gripper read {summary['first_grasp']} (threshold {GRASP_THRESHOLD}): failed, "
        "corrected by hand; "
        f"final grasp read {summary['final_grasp']}, cube lifted {summary['lifted_m'] * 100:.1f} cm\n"
        f"- frames: {episode.num_frames} at {RECORD_HZ} Hz {counts}\n")
    return folder


def record_teleop_episodes(out_root: str | Path, *, episodes: int, seed: int, robot_ids: list[str] | None = None,
                           capture_days: list[str] | None = None) -> list[Path]:
    """Record ``episodes`` teleop picks round-robin over ``capture_days`` × ``robot_ids`` (default
    ``ur5e-001`` and ``2026-11-10``); ids ``tp-<YYYYMMDD>-<robot>-<NNN>``, episode ``i`` seeded
    ``seed * 1000 + i``; one simulator for all.

    Raises:
        ValueError: ``episodes`` < 1 or an empty id list.
    """
    plan = round_robin_ids("tp", episodes, capture_days or ["2026-11-10"], robot_ids or ["ur5e-001"])
    sim = RobotSim(build_profile_scene(load_profile(TELEOP_PROFILE)), render=True, height=RENDER_SIZE,
                   width=RENDER_SIZE)
    out = []
    try:
        for i, (day, robot, ep) in enumerate(plan):
            out.append(record_teleop_episode(out_root, episode_id=ep, robot_id=robot, capture_day=day,
                                             seed=seed * 1000 + i, site=f"sim-lab-{robot}", sim=sim))
    finally:
        sim.close()
    return out
