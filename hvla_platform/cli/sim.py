"""``hvla sim record``: record simulated robot episodes (any robot profile with a ``simulation``
section) as ROS 2 MCAP + metadata.yaml."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hvla_platform.cli.common import echo, refuse


def cmd_sim_record(args: argparse.Namespace) -> int:
    """`hvla sim record`: record simulated episodes as MCAP + metadata.yaml.

    Without ``--profile`` it records the default G1 exactly as before robot profiles existed
    (``metadata.yaml`` names no profile); with ``--profile NAME`` that profile's robot, topics,
    message types, rates and cameras (``metadata.yaml`` names the profile).
    """
    if getattr(args, "source", "robot") == "teleop":
        return _record_teleop(args)
    # deferred: the simulator imports mujoco and loads the robot model
    from hvla_platform.lib.sim.recorder import record_episodes  # noqa: PLC0415

    out = Path(args.out)
    t0 = time.perf_counter()
    paths = record_episodes(out, episodes=args.episodes, seed=args.seed, task=args.task,
                            robot_ids=args.robot_ids.split(",") if args.robot_ids else None,
                            capture_days=args.capture_days.split(","), progress=echo, profile=args.profile,
                            frames=args.frames, duration_s=args.duration)
    what = f"{args.profile} " if args.profile else ""
    echo(f"recorded {len(paths)} {what}episode(s) into {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _record_teleop(args: argparse.Namespace) -> int:
    """``hvla sim record --source teleop``: seed-003 teleop episode folders (UR5e + 2F-85 pick with a
    failed first grasp and a correction; frame_NNNN.pkl + episode_meta.json + metadata.yaml).
    ``--profile``, ``--task``, ``--frames`` and ``--duration`` do not apply: refused (exit 2)."""
    given = [f"--{n}" for n, default in (("profile", None), ("task", None), ("frames", "rendered"), ("duration", None))
             if getattr(args, n) != default]
    if given:
        return refuse("sim record", ValueError(f"{', '.join(given)} do(es) not apply to --source teleop (the teleop "
                                               "pick is the ur5e_robotiq_2f85 profile's scripted episode)"))
    # deferred: the simulator imports mujoco and loads the robot model
    from hvla_platform.lib.sim.teleop_pick import record_teleop_episodes  # noqa: PLC0415

    out = Path(args.out)
    t0 = time.perf_counter()
    paths = record_teleop_episodes(out, episodes=args.episodes, seed=args.seed,
                                   robot_ids=args.robot_ids.split(",") if args.robot_ids else None,
                                   capture_days=args.capture_days.split(","))
    for p in paths:
        echo(f"  {p.name}: {sum(1 for _ in p.glob('frame_*.pkl'))} frames")
    echo(f"recorded {len(paths)} seed-003 teleop episode(s) into {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``sim record`` to the ``hvla`` command."""
    s = sub.add_parser("sim", help="simulation").add_subparsers(dest="sim_cmd", required=True)
    r = s.add_parser("record", help="record simulated robot episodes as MCAP + metadata.yaml "
                                    "(the default G1, or --profile NAME)")
    r.add_argument("--out", required=True)
    r.add_argument("--episodes", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", default=None, metavar="NAME",
                   help="robot profile to record (hvla_platform/profiles/<NAME>.yaml or $HVLA_HOME/profiles; it needs "
                        "a 'simulation' section), e.g. unitree_g1_29dof_hands, unitree_h1_3cam, ur5e_robotiq_2f85; "
                        "default: the G1 as before profiles (metadata.yaml names no profile)")
    r.add_argument("--task", default=None, choices=["reach_touch", "reach_grasp"],
                   help="task family (default: the profile's; the G1's is reach_touch)")
    r.add_argument("--frames", default="rendered", choices=["rendered", "synthetic"],
                   help="rendered: every camera frame rendered (default); synthetic: low-resolution renders at 5 Hz, "
                        "upscaled, fresh sensor noise per frame (fast, for long 480p episodes)")
    r.add_argument("--duration", type=_positive, default=None, metavar="SECONDS",
                   help="episode length in seconds (default 4.5)")
    r.add_argument("--robot-ids", default=None,
                   help="comma-separated robot ids (default g1-001,g1-002; with --profile <model>-001,<model>-002)")
    r.add_argument("--capture-days", default="2026-11-10,2026-11-11")
    r.add_argument("--source", default="robot", choices=["robot", "teleop"],
                   help="robot: ROS 2 MCAP recordings of a profile (default); teleop: seed-003 teleop episode folders "
                        "(frame_NNNN.pkl + episode_meta.json + metadata.yaml) of the UR5e + 2F-85 picking a cube with a "
                        "failed first grasp and a correction (docs/teleop.md; robot ids default to ur5e-001)")
    r.set_defaults(func=cmd_sim_record)
