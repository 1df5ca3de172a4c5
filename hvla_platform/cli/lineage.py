"""``hvla lineage upstream|downstream TARGET [--json]``: lineage queries from the lake's manifests.

The main parser (:func:`hvla_platform.cli.main.build_parser`) only needs ``add_lineage_parser(sub)``;
the subcommand sets ``func`` to :func:`cmd_lineage`, which returns the process exit code
(0 found, 2 when the target names nothing in the lake, with the reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hvla_platform.cli.common import open_env_lake
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.lineage.standing import annotate_hits, annotate_tree

USAGE_TARGETS = ("upstream: an artifact prefix or URI (checkpoints/<config>/<exp>/<step>, eval-reports/<exp>/<step>, "
                 "robodm-cache/<release>, norm-stats/<release>, lerobot/<org>/<name>/<release>, ...); "
                 "downstream: a raw episode id, its raw-mcap/ prefix or URI, consent:<id>, customer:<name> or "
                 "checkpoint:<key> (the rollouts that checkpoint produced)")


def add_lineage_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``lineage`` to an ``argparse`` sub-parsers object and return its parser.

    Args:
        subparsers: what ``ArgumentParser.add_subparsers()`` returned.
    """
    p = subparsers.add_parser("lineage", help="lineage queries from the artifacts' manifests",
                              description=USAGE_TARGETS)
    p.add_argument("direction", choices=["upstream", "downstream"])
    p.add_argument("target", help=USAGE_TARGETS)
    p.add_argument("--json", action="store_true", help="print JSON instead of the human-readable answer")
    p.add_argument("--max-children", type=int, default=None,
                   help="upstream, human output: show at most N inputs per node")
    p.add_argument("--no-config", action="store_true", help="upstream, human output: omit the config lines")
    p.add_argument("--no-raw", action="store_true", help="downstream: do not list the matching raw episodes")
    p.set_defaults(func=cmd_lineage)
    return p


def cmd_lineage(args: argparse.Namespace, lake: Any = None) -> int:
    """Run one lineage query and print the answer on stdout.

    JSON shapes: upstream ``{"query", "direction": "upstream", "tree": <LineageNode dict>,
    "raw_episodes": [<raw leaf dicts without children>], "summary": <UpstreamSummary dict>}``;
    downstream ``{"query", "direction": "downstream", "artifacts": [<DownstreamHit dict>]}``. Every
    node and hit carries its consent-withdrawal ``flag`` (or ``null``); the summary counts every
    episode the artifact was built from, the withdrawn ones included and listed
    (:mod:`hvla_platform.lib.lineage.standing`).
    """
    lake = lake if lake is not None else open_env_lake()
    try:
        index = lin.load_index(lake)
        if args.direction == "upstream":
            tree = lin.upstream(lake, args.target, index=index)
            summary = annotate_tree(lake, tree)
            if args.json:
                raws = []
                for n in tree.raw_episodes():
                    d = n.to_dict()
                    d.pop("children")
                    raws.append(d)
                print(lin.to_json({"query": args.target, "direction": "upstream", "tree": tree, "raw_episodes": raws,
                                   "summary": summary}))
            else:
                print(lin.render_tree(tree, max_children=args.max_children, show_config=not args.no_config,
                                      summary=summary))
        else:
            hits = lin.downstream(lake, args.target, index=index, include_raw=not args.no_raw)
            annotate_hits(lake, hits)
            if args.json:
                print(lin.to_json({"query": args.target, "direction": "downstream", "artifacts": hits}))
            else:
                print(lin.render_hits(args.target, hits))
    except lin.LineageError as exc:
        print(f"hvla lineage: {exc}", file=sys.stderr)
        return 2
    return 0
