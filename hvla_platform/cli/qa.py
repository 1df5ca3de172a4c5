"""``hvla qa approve|reject EPISODE --reason …`` and ``hvla qa list``: supervisor decisions that
releases honour, and the QA results per episode."""

from __future__ import annotations

import argparse

from hvla_platform.cli.common import echo, open_env_lake
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.processing.qa.decisions import latest_decisions, record_decision


def cmd_qa(args: argparse.Namespace) -> int:
    """`hvla qa approve|reject EPISODE --reason R [--by WHO]` and `hvla qa list`."""
    lake = open_env_lake()
    if args.action in ("approve", "reject"):
        if not args.episode:
            raise SystemExit("give the episode id")
        rec = record_decision(lake, args.episode, args.action, args.reason or "", by=args.by)
        echo(f"recorded: {rec['decision']} {rec['episode_id']} by {rec['by']} at {rec['at']}: {rec['reason']}")
        echo("releases built from now on honour it (rebuild with `hvla release build NAME`)")
        return 0
    decisions = latest_decisions(lake)
    for prefix in lake.list_artifacts("episodes-hdf5"):
        rows = check_qa_results(lake.read_manifest(prefix).get("conversions", []),
                                where=f"{lake.uri(lake.manifest_key(prefix))} (conversions)")
        for c in rows:
            failed = [k for k, v in c.get("qa_checks", {}).items() if not v["passed"]]
            d = decisions.get(c["episode_id"])
            echo(f"{c['episode_id']:<32} score {c.get('quality_score')!s:<7} {c['status']:<10} "
                  f"failed: {', '.join(failed) or '-'}" + (f"  [{d['decision']} by {d['by']}: {d['reason']}]" if d else ""))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``qa`` to the ``hvla`` command."""
    q = sub.add_parser("qa", help="supervisor decisions on episodes; list QA results")
    q.add_argument("action", choices=["approve", "reject", "list"])
    q.add_argument("episode", nargs="?")
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None, help="who decides (default: the OS user)")
    q.set_defaults(func=cmd_qa)
