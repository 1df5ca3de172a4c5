"""``hvla ingest DIR [--materialize]``: land recordings (write-once), register their partitions,
optionally run ``ingest_job`` for them."""

from __future__ import annotations

import argparse
from pathlib import Path

from hvla_platform.cli.common import echo, open_env_lake
from hvla_platform.lib.ingest.landing import find_recordings, land_recording


def land_folder(folder: Path) -> list[tuple[str, str]]:
    """Land every recording under ``folder``; register their partitions; return them."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance  # noqa: PLC0415

    lake = open_env_lake()
    recs = find_recordings(folder)
    if not recs:
        raise SystemExit(f"no recordings (folders with metadata.yaml and an .mcap) under {folder}")
    parts = set()
    for rec in recs:
        r = land_recording(lake, rec)
        echo(f"  {r.status:>14}  {rec.relative_to(folder) if rec != folder else rec.name}"
              + (f"  ({r.reason})" if r.reason else ""))
        if r.capture_day and r.status in ("landed", "already_landed", "conflict"):
            parts.add((r.capture_day, r.robot_id))
    inst = instance()
    add_partitions(inst, "capture_day", sorted({d for d, _ in parts}))
    add_partitions(inst, "robot", sorted({r for _, r in parts}))
    return sorted(parts)


def cmd_ingest(args: argparse.Namespace) -> int:
    """`hvla ingest DIR [--materialize]`: land recordings, register partitions, optionally run ingest_job."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    import dagster as dg  # noqa: PLC0415

    from hvla_platform.cli.orchestration import instance, load_defs, print_outcome, run_job  # noqa: PLC0415

    echo(f"landing recordings from {args.folder} into {open_env_lake().uri('landing')}")
    parts = land_folder(Path(args.folder))
    ok = True
    if args.materialize:
        defs, inst = load_defs(), instance()
        for day, robot in parts:
            echo(f"materializing raw_mcap + episodes_hdf5 for {day}|{robot}")
            o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": day, "robot": robot}))
            print_outcome(o, echo)
            ok &= o.success
    return 0 if ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``ingest`` to the ``hvla`` command."""
    i = sub.add_parser("ingest", help="land a folder of recordings into the landing area")
    i.add_argument("folder")
    i.add_argument("--materialize", action="store_true", help="also run raw_mcap + episodes_hdf5 for their partitions")
    i.set_defaults(func=cmd_ingest)
