"""``hvla rights revoke --consent ID --reason …``: consent withdrawal (docs/rights.md)."""

from __future__ import annotations

import argparse

from hvla_platform.cli.common import echo, open_env_lake
from hvla_platform.lib.ops.revocation import RevocationPlan, plan_revocation, revoke_consent


def print_plan(plan: RevocationPlan) -> None:
    """Print what a withdrawal would change (``--dry-run``), one line per item, grouped."""
    echo(f"dry run: withdrawing consent {plan.consent} ({plan.reason}) would change the following; nothing was changed")
    echo(f"episodes ({len(plan.episodes)}): {', '.join(plan.episodes)}")
    verb = {"restrict": "moved to restricted/", "delete": "deleted", "keep": "kept (legal hold)"}[plan.raw_policy]
    for part, eps in sorted(plan.raw_partitions.items()):
        echo(f"  raw partition {part}: {len(eps)} episode(s) withdrawn ({', '.join(eps)}); raw policy "
             f"{plan.raw_policy}: their objects {verb}")
    for ep, keys in plan.raw_objects.items():
        echo(f"  raw {plan.raw_policy}: {ep} ({len(keys)} object(s) {verb})")
    for key, (kind, status) in plan.flags.items():
        echo(f"  flag {status:<16} {kind:<16} {key}")
    for key, action in sorted(plan.partitions.items()):
        echo(f"  {action} {key}" + (" (every episode withdrawn)" if action == "remove" else " without the episodes"))
    for old, new in plan.releases.items():
        echo(f"  rebuild release {old} as {new}")
    if not plan.partitions and not plan.releases:
        echo("  no rebuild (--no-rebuild)" if plan.flags else "  nothing to rebuild")
    echo("run again without --dry-run to carry it out")


def cmd_rights(args: argparse.Namespace) -> int:
    """`hvla rights revoke --consent ID --reason R [--raw-policy restrict|delete|keep] [--no-rebuild] [--dry-run]`.

    ``--dry-run`` prints :func:`plan_revocation` (episodes, raw partitions with the raw policy,
    artifacts to flag with which flag, HDF5 partitions and releases to rebuild), writes nothing and
    exits 0. After a real withdrawal the flags are reported to Dagster on the affected asset
    partitions (:func:`hvla_platform.defs.automation.rights_flags.report_revocation`).
    """
    if args.dry_run:
        print_plan(plan_revocation(open_env_lake(), args.consent, reason=args.reason, by=args.by,
                                   raw_policy=args.raw_policy, rebuild=not args.no_rebuild, persist_index=False))
        return 0
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    import dagster as dg  # noqa: PLC0415

    from hvla_platform.cli.orchestration import add_partitions, instance, load_defs  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415
    from hvla_platform.defs.automation.rights_flags import report_revocation  # noqa: PLC0415
    from hvla_platform.defs.partitions import raw_partition_key  # noqa: PLC0415

    loaded: dict[str, object] = {}

    def defs_and_instance() -> tuple:
        # the code location loads only when a rebuild runs: a refused request (unknown consent) is refused at once
        if not loaded:
            loaded.update(defs=load_defs(), inst=instance())
        return loaded["defs"], loaded["inst"]

    def rebuild_partition(day: str, robot: str) -> None:
        defs, inst = defs_and_instance()
        o, _ = run_and_report("rights", defs, inst, "ingest_job", raw_partition_key(day, robot))
        if not o.success:
            raise SystemExit(f"rebuilding partition {day}|{robot} failed; the revocation is recorded, rerun the job")

    def rebuild_release(name: str) -> None:
        defs, inst = defs_and_instance()
        add_partitions(inst, "release", [name])
        o, _ = run_and_report("rights", defs, inst, "release_job", name)
        if not o.success:
            raise SystemExit(f"rebuilding release {name} failed; the revocation is recorded, rerun release_job")

    lake = open_env_lake()
    res = revoke_consent(lake, args.consent, reason=args.reason, by=args.by, raw_policy=args.raw_policy,
                         rebuild=not args.no_rebuild, progress=echo, rebuild_partition=rebuild_partition,
                         rebuild_release=rebuild_release)
    events = report_revocation(defs_and_instance()[1] if loaded else instance(), lake, list(res.flagged), res.episodes)
    failed = sum(1 for e in events if isinstance(e, dg.AssetCheckEvaluation))
    echo(f"Dagster: {len(events) - failed} observation(s) and {failed} failed rights_standing check(s) recorded "
         "on the affected asset partitions")
    echo(f"episodes under consent {res.consent}: {', '.join(res.episodes)}")
    for key, status in res.flagged.items():
        echo(f"  flagged {status:<16} {key}")
    for old, new in res.rebuilt_releases.items():
        echo(f"  release {old} rebuilt as {new}")
    for ep, keys in res.raw_handled.items():
        echo(f"  raw {args.raw_policy}: {ep} ({len(keys)} object(s))")
    for ep, held in res.raw_held.items():
        until = max(held.values())
        echo(f"  raw {ep}: {len(held)} object(s) are under the store's object lock (COMPLIANCE) until {until}: "
             "hidden now, but the store keeps their data until that date and nothing can erase it sooner")
    echo(f"recorded at {res.record_key}; every step is in the audit log (audit/)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``rights`` to the ``hvla`` command."""
    rg = sub.add_parser("rights", help="consent withdrawal and deletion requests")
    rg.add_argument("action", choices=["revoke"])
    rg.add_argument("--consent", required=True)
    rg.add_argument("--reason", required=True)
    rg.add_argument("--by", default=None)
    rg.add_argument("--raw-policy", default="restrict", choices=["restrict", "delete", "keep"])
    rg.add_argument("--no-rebuild", action="store_true", help="do not rebuild the impacted releases now")
    rg.add_argument("--dry-run", action="store_true",
                    help="list what the withdrawal would change (episodes, raw partitions, flags, rebuilds); change nothing")
    rg.set_defaults(func=cmd_rights)
