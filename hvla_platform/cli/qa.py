"""``hvla qa approve|reject EPISODE --reason …`` and ``hvla qa list [--json]``: supervisor decisions
that releases honour, and where every episode stands (landed, rejected, in conflict, quarantined,
withdrawn, converted with its QA results)."""

from __future__ import annotations

import argparse
import json

from hvla_platform.cli.common import EXIT_OK, echo, open_env_lake
from hvla_platform.lib.processing.qa.decisions import DecisionError, record_decision
from hvla_platform.lib.processing.qa.states import EpisodeState, episode_states


def state_line(s: EpisodeState) -> str:
    """One row of ``hvla qa list``: episode, partition, status, score, failed checks, decision, why."""
    score = "-" if s.quality_score is None else f"{s.quality_score:.3f}"
    line = (f"{s.episode_id or '?':<28} {s.partition or '-':<20} {s.status:<11} {score:<6} "
            f"{', '.join(s.failed_checks) or '-'}")
    if s.decision:
        line += f"  [{s.decision['decision']} by {s.decision['by']}: {s.decision['reason']}]"
    if s.why:
        line += f"  ({s.why}; {s.where})" if s.status in ("rejected", "conflict", "quarantined") else f"  ({s.why})"
    return line


def cmd_qa(args: argparse.Namespace) -> int:
    """`hvla qa approve|reject EPISODE --reason R [--by WHO]` and `hvla qa list [--json]`."""
    lake = open_env_lake()
    if args.action in ("approve", "reject"):
        if not args.episode:
            raise DecisionError(f"give the episode id: hvla qa {args.action} EPISODE --reason \"…\"")
        rec = record_decision(lake, args.episode, args.action, args.reason or "", by=args.by)
        echo(f"recorded: {rec['decision']} {rec['episode_id']} by {rec['by']} at {rec['at']}: {rec['reason']}")
        echo("releases built from now on honour it (rebuild with `hvla release build NAME`)")
        return EXIT_OK
    states = episode_states(lake)
    if args.json:
        print(json.dumps({"episodes": [s.to_dict() for s in states]}, indent=2), flush=True)
        return EXIT_OK
    echo(f"{'episode':<28} {'partition':<20} {'status':<11} {'score':<6} failed checks  [decision]  (why; evidence)")
    for s in states:
        echo(state_line(s))
    counts: dict[str, int] = {}
    for s in states:
        counts[s.status] = counts.get(s.status, 0) + 1
    echo(f"= {len(states)} row(s): " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``qa`` to the ``hvla`` command."""
    q = sub.add_parser("qa", help="supervisor decisions on episodes; where every episode stands")
    q.add_argument("action", choices=["approve", "reject", "list"])
    q.add_argument("episode", nargs="?")
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None, help="who decides (default: the OS user)")
    q.add_argument("--json", action="store_true", help="list: print JSON ({\"episodes\": [...]}) instead of the table")
    q.set_defaults(func=cmd_qa)
