"""``hvla train --exp NAME --release REL``: register the experiment partition and run
``training_job`` (checkpoint + eval_report)."""

from __future__ import annotations

import argparse
import sys

from hvla_platform.cli.common import open_env_lake
from hvla_platform.cli.known import check_can_train, newer_versions
from hvla_platform.lib.core.keys import check_id


def training_run_config(release: str, steps: int, seed: int, trials: int, config_name: str) -> dict:
    """Run config of ``training_job`` (checkpoint + eval_report).

    ``seed`` seeds training only; the closed-loop trials keep their own seeds (``EvalReportConfig.seed``,
    1000 + i), disjoint from the recordings' seeds, so no trial replays a training scene."""
    return {"ops": {
        "checkpoint": {"config": {"release": release, "steps": steps, "seed": seed, "config_name": config_name}},
        "eval_report": {"config": {"closed_loop_trials": trials}},
    }}


def cmd_train(args: argparse.Namespace) -> int:
    """`hvla train`: register the experiment partition and run training_job (checkpoint + eval_report)."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance, load_defs  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

    check_id(args.exp, "experiment name")
    # what the checkpoint asset would refuse (unknown release, not built, flagged, rights) is
    # refused here, before a run exists
    lake = open_env_lake()
    check_can_train(lake, args.release)
    newer = newer_versions(lake, args.release)
    if newer:  # allowed: a version never changes; but the user may have meant the newest data
        print(f"note: training on release version {args.release}; newer version(s) of its release exist: "
              f"{', '.join(newer)}", file=sys.stderr, flush=True)
    inst = instance()
    add_partitions(inst, "experiment", [args.exp])
    return run_and_report("train", load_defs(), inst, "training_job", args.exp,
                          run_config=training_run_config(args.release, args.steps, args.seed, args.trials,
                                                         args.config_name),
                          tags={"hvla/stage": "training"})[1]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``train`` to the ``hvla`` command."""
    t = sub.add_parser("train", help="train and evaluate an experiment on a release")
    t.add_argument("--exp", required=True)
    t.add_argument("--release", required=True,
                   help="exact release version: <name> (version 0) or <name>.<n> (`hvla release versions <name>`)")
    t.add_argument("--config-name", default="hvla_g1_reach_small")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--trials", type=int, default=8, help="closed-loop trials: half in-distribution, half not")
    t.set_defaults(func=cmd_train)
