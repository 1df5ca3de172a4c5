"""``hvla sim record``: record simulated Unitree G1 episodes as ROS 2 MCAP + metadata.yaml."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hvla_platform.cli.common import echo


def cmd_sim_record(args: argparse.Namespace) -> int:
    """`hvla sim record`: record simulated G1 episodes as MCAP + metadata.yaml."""
    # deferred: the simulator imports mujoco and loads the G1 model
    from hvla_platform.lib.sim.recorder import record_episodes  # noqa: PLC0415

    out = Path(args.out)
    t0 = time.perf_counter()
    paths = record_episodes(out, episodes=args.episodes, seed=args.seed, task=args.task,
                            robot_ids=args.robot_ids.split(","), capture_days=args.capture_days.split(","),
                            progress=echo)
    echo(f"recorded {len(paths)} episode(s) into {out} in {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``sim record`` to the ``hvla`` command."""
    s = sub.add_parser("sim", help="simulation").add_subparsers(dest="sim_cmd", required=True)
    r = s.add_parser("record", help="record simulated Unitree G1 episodes as MCAP + metadata.yaml")
    r.add_argument("--out", required=True)
    r.add_argument("--episodes", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--task", default="reach_touch")
    r.add_argument("--robot-ids", default="g1-001,g1-002")
    r.add_argument("--capture-days", default="2026-11-10,2026-11-11")
    r.set_defaults(func=cmd_sim_record)
