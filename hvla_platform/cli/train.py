"""``hvla train --exp NAME --release REL``: register the experiment partition and run
``training_job`` (checkpoint + eval_report)."""

from __future__ import annotations

import argparse
import sys

from hvla_platform.cli.common import open_env_lake
from hvla_platform.cli.known import check_can_train, newer_versions
from hvla_platform.lib.core.keys import check_id


#: ``hvla train --backend lerobot``'s learning rate when ``--learning-rate`` is not given: the JAX
#: policy's 1e-3 makes ACT's loss jump ~7× on its second step (measured on a demo-sized release:
#: 74.6 → 510.5, batch 32), 1e-4 falls from the first step (74.6 → 36.8 → 25.0).
LEROBOT_LEARNING_RATE = 1e-4


def training_run_config(release: str, steps: int, seed: int, trials: int, config_name: str, *,
                        backend: str = "jax", lerobot_policy: str = "act",
                        learning_rate: float | None = None) -> dict:
    """Run config of ``training_job`` (checkpoint + eval_report).

    ``seed`` seeds training only; the closed-loop trials keep their own seeds (``EvalReportConfig.seed``,
    1000 + i), disjoint from the recordings' seeds, so no trial replays a training scene.
    ``backend`` (``jax`` | ``lerobot``) and ``lerobot_policy`` (``act`` | ``diffusion``) choose the
    trainer (docs/training.md, "LeRobot's trainer"); ``learning_rate`` None: the ``checkpoint``
    asset's default for ``jax``, :data:`LEROBOT_LEARNING_RATE` for ``lerobot``."""
    ckpt = {"release": release, "steps": steps, "seed": seed, "config_name": config_name,
            "backend": backend, "lerobot_policy": lerobot_policy}
    if learning_rate is None and backend == "lerobot":
        learning_rate = LEROBOT_LEARNING_RATE
    if learning_rate is not None:
        ckpt["learning_rate"] = float(learning_rate)
    return {"ops": {
        "checkpoint": {"config": ckpt},
        "eval_report": {"config": {"closed_loop_trials": trials}},
    }}


def resolve_backend(backend: str, policy: str | None) -> tuple[str, str]:
    """``(backend, lerobot_policy)`` of ``hvla train``'s ``--backend`` / ``--policy``: ``--policy``
    only with ``--backend lerobot`` (default ``act`` there).

    Raises:
        BackendError: an unknown backend or policy (with the closest), or ``--policy`` without
            ``--backend lerobot`` (a refusal: ``hvla train`` prints one line and exits 2).
    """
    # deferred: the lib.training package imports jax (seconds); `hvla --help` skips it
    from hvla_platform.lib.training.lerobot_backend import LEROBOT_BACKEND, BackendError, check_backend  # noqa: PLC0415

    check_backend(backend, policy)
    if policy is not None and backend != LEROBOT_BACKEND:
        raise BackendError(f"--policy {policy} chooses a LeRobot policy; it needs --backend lerobot "
                         f"(the {backend} backend trains its own policy)")
    return backend, policy or "act"


def cmd_train(args: argparse.Namespace) -> int:
    """`hvla train`: register the experiment partition and run training_job (checkpoint + eval_report)."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance, load_defs  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

    check_id(args.exp, "experiment name")
    backend, lerobot_policy = resolve_backend(args.backend, args.policy)
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
                                                         args.config_name, backend=backend,
                                                         lerobot_policy=lerobot_policy,
                                                         learning_rate=args.learning_rate))[1]


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
    t.add_argument("--backend", default="jax",
                   help="trainer: jax (the reference policy, default) or lerobot (LeRobot's own lerobot-train)")
    t.add_argument("--policy", default=None,
                   help="with --backend lerobot: LeRobot policy type, act (default) or diffusion")
    t.add_argument("--learning-rate", type=float, default=None,
                   help=f"optimizer learning rate (default: 1e-3 for jax, {LEROBOT_LEARNING_RATE:g} for lerobot)")
    t.set_defaults(func=cmd_train)
