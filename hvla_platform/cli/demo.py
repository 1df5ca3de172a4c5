"""``hvla demo``: the whole lifecycle end to end on the committed recordings (embedded default)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hvla_platform.cli.common import echo, open_env_lake
from hvla_platform.cli.ingest import land_folder
from hvla_platform.cli.release import register_release_file
from hvla_platform.cli.train import training_run_config
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.settings import REPO_ROOT

DEFAULT_RECORDINGS = REPO_ROOT / "data" / "recordings"
DEFAULT_RELEASE_SPEC = REPO_ROOT / "releases" / "g1-reach-v1.yaml"


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job end to end on the embedded default."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.defs.partitions import raw_partition_key  # noqa: PLC0415
    from hvla_platform.cli.orchestration import (  # noqa: PLC0415
        add_partitions, ensure_dagster_home, instance, load_defs, print_outcome, run_job)

    t_start = time.perf_counter()
    home = ensure_dagster_home()
    lake = open_env_lake()
    echo(f"hvla demo — lake {lake.root_uri()}, Dagster instance {home}, MLflow {settings.mlflow_tracking_uri()}")
    defs, inst = load_defs(), instance()
    failures = []

    echo(f"\n[1/4] landing the committed recordings from {args.recordings}")
    parts = land_folder(Path(args.recordings))

    echo(f"\n[2/4] ingest: raw_mcap → episodes_hdf5 for {len(parts)} capture-day × robot partition(s)")
    for day, robot in parts:
        t0 = time.perf_counter()
        o = run_job(defs, inst, "ingest_job", raw_partition_key(day, robot))
        print_outcome(o, echo)
        echo(f"    ({time.perf_counter() - t0:.1f} s)")
        if not o.success:
            failures.append(o)

    echo(f"\n[3/4] dataset release from {args.release_spec}: lerobot_dataset → norm_stats, robodm_cache, openpi_export")
    release = register_release_file(Path(args.release_spec))
    t0 = time.perf_counter()
    o = run_job(defs, inst, "release_job", release)
    print_outcome(o, echo)
    echo(f"    ({time.perf_counter() - t0:.1f} s)")
    if not o.success:
        failures.append(o)

    echo(f"\n[4/4] training experiment {args.exp}: checkpoint → eval_report")
    add_partitions(inst, "experiment", [args.exp])
    t0 = time.perf_counter()
    o = run_job(defs, inst, "training_job", args.exp,
                run_config=training_run_config(release, args.steps, args.seed, args.trials, args.config_name))
    print_outcome(o, echo)
    echo(f"    ({time.perf_counter() - t0:.1f} s)")
    if not o.success:
        failures.append(o)

    echo(f"\nartifacts (lake {lake.root_uri()}):")
    for prefix in ("raw-mcap", "episodes-hdf5", "lerobot", "norm-stats", "robodm-cache", "openpi-exports", "checkpoints",
                   "eval-reports", "quarantine"):
        arts = lake.list_artifacts(prefix) if prefix != "quarantine" else sorted(
            {k.rsplit("/", 1)[0] for k in lake.list_keys(prefix) if k.endswith("reason.json")})
        echo(f"  {prefix:<14} {len(arts):>3} artifact(s)" + (f"  e.g. {lake.uri(arts[-1])}" if arts else ""))
    report = [k for k in lake.list_keys("eval-reports") if k.endswith("report.html")]
    if report:
        echo(f"\neval report: {lake.uri(report[-1])}")
    ckpts = lake.list_artifacts("checkpoints")
    if ckpts:
        echo(f"serve it:    .venv/bin/hvla serve --checkpoint {ckpts[-1]}   (openpi protocol, port 8000)")
        echo("robot:       .venv/bin/hvla deploy --port 8000   (the simulated G1 driven by the server)")
    echo(f"MLflow:      {settings.mlflow_tracking_uri()}")
    echo("Dagster UI:  .venv/bin/hvla ui   (then open http://127.0.0.1:3000 — asset graph, partitions, "
          "owners, rights metadata and check results of this demo; it also starts the MLflow UI on :5000 "
          "and the episode review pages on http://127.0.0.1:3001/review/)")
    echo(f"\ndemo {'finished' if not failures else 'FAILED'} in {time.perf_counter() - t_start:.0f} s")
    return 0 if not failures else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``demo`` to the ``hvla`` command."""
    d = sub.add_parser("demo", help="run the whole lifecycle end to end on the committed recordings")
    d.add_argument("--recordings", default=str(DEFAULT_RECORDINGS))
    d.add_argument("--release-spec", default=str(DEFAULT_RELEASE_SPEC))
    d.add_argument("--exp", default="demo-exp")
    d.add_argument("--config-name", default="hvla_g1_reach_small")
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--trials", type=int, default=8,
                   help="closed-loop trials in the simulator, half on training tasks, half on others")
    d.set_defaults(func=cmd_demo)
