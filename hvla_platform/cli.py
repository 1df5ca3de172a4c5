"""The ``hvla`` command: demo, simulated recording, ingest, releases, training, serving, UI."""

import argparse
import os
import sys
import time
from pathlib import Path

from hvla_platform.lib import settings

DEFAULT_RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "recordings"
DEFAULT_RELEASE_SPEC = Path(__file__).resolve().parents[1] / "releases" / "g1-reach-v1.yaml"


def _echo(msg: str) -> None:
    print(msg, flush=True)


def _lake():
    from hvla_platform.defs.resources import lake_from_env

    return lake_from_env().get_lake()


# ---- ingest -------------------------------------------------------------------------------
def land_folder(folder: Path) -> list[tuple[str, str]]:
    """Land every recording under ``folder``; register their partitions; return them."""
    from hvla_platform.lib.ingest.landing import find_recordings, land_recording
    from hvla_platform.orchestration import add_partitions, instance

    lake = _lake()
    recs = find_recordings(folder)
    if not recs:
        raise SystemExit(f"no recordings (folders with metadata.yaml and an .mcap) under {folder}")
    parts = set()
    for rec in recs:
        r = land_recording(lake, rec)
        _echo(f"  {r.status:>14}  {rec.relative_to(folder) if rec != folder else rec.name}"
              + (f"  ({r.reason})" if r.reason else ""))
        if r.capture_day and r.status in ("landed", "already_landed", "conflict"):
            parts.add((r.capture_day, r.robot_id))
    inst = instance()
    add_partitions(inst, "capture_day", sorted({d for d, _ in parts}))
    add_partitions(inst, "robot", sorted({r for _, r in parts}))
    return sorted(parts)


def cmd_ingest(args: argparse.Namespace) -> int:
    """`hvla ingest DIR [--materialize]`: land recordings, register partitions, optionally run ingest_job."""
    from hvla_platform.orchestration import instance, load_defs, print_outcome, run_job
    import dagster as dg

    _echo(f"landing recordings from {args.folder} into {_lake().uri('landing')}")
    parts = land_folder(Path(args.folder))
    ok = True
    if args.materialize:
        defs, inst = load_defs(), instance()
        for day, robot in parts:
            _echo(f"materializing raw_mcap + episodes_hdf5 for {day}|{robot}")
            o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": day, "robot": robot}))
            print_outcome(o, _echo)
            ok &= o.success
    return 0 if ok else 1


# ---- releases -------------------------------------------------------------------------------
def register_release_file(spec_path: Path) -> str:
    """Store a release spec in the lake and register its partition."""
    from hvla_platform.lib.releases import register_release
    from hvla_platform.orchestration import add_partitions, instance

    spec = register_release(_lake(), spec_path.read_text(encoding="utf-8"))
    add_partitions(instance(), "release", [spec.name])
    return spec.name


def cmd_release(args: argparse.Namespace) -> int:
    """`hvla release register SPEC` / `hvla release build NAME`."""
    from hvla_platform.orchestration import instance, load_defs, print_outcome, run_job

    if args.action == "register":
        name = register_release_file(Path(args.target))
        _echo(f"registered release {name}")
        return 0
    o = run_job(load_defs(), instance(), "release_job", args.target)
    print_outcome(o, _echo)
    return 0 if o.success else 1


# ---- training -------------------------------------------------------------------------------
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
    from hvla_platform.orchestration import add_partitions, instance, load_defs, print_outcome, run_job

    inst = instance()
    add_partitions(inst, "experiment", [args.exp])
    o = run_job(load_defs(), inst, "training_job", args.exp,
                run_config=training_run_config(args.release, args.steps, args.seed, args.trials, args.config_name),
                tags={"hvla/stage": "training"})
    print_outcome(o, _echo)
    return 0 if o.success else 1


# ---- QA decisions -------------------------------------------------------------------------------
def cmd_qa(args: argparse.Namespace) -> int:
    """`hvla qa approve|reject EPISODE --reason R [--by WHO]` and `hvla qa list`."""
    from hvla_platform.lib.qa.decisions import latest_decisions, record_decision

    lake = _lake()
    if args.action in ("approve", "reject"):
        if not args.episode:
            raise SystemExit("give the episode id")
        rec = record_decision(lake, args.episode, args.action, args.reason or "", by=args.by)
        _echo(f"recorded: {rec['decision']} {rec['episode_id']} by {rec['by']} at {rec['at']}: {rec['reason']}")
        _echo("releases built from now on honour it (rebuild with `hvla release build NAME`)")
        return 0
    decisions = latest_decisions(lake)
    for prefix in lake.list_artifacts("episodes-hdf5"):
        for c in lake.read_manifest(prefix).get("conversions", []):
            failed = [k for k, v in c.get("qa_checks", {}).items() if not v["passed"]]
            d = decisions.get(c["episode_id"])
            _echo(f"{c['episode_id']:<32} score {c.get('quality_score')!s:<7} {c['status']:<10} "
                  f"failed: {', '.join(failed) or '-'}" + (f"  [{d['decision']} by {d['by']}: {d['reason']}]" if d else ""))
    return 0


# ---- rights -------------------------------------------------------------------------------
def cmd_rights(args: argparse.Namespace) -> int:
    """`hvla rights revoke --consent ID --reason R [--raw-policy restrict|delete|keep] [--no-rebuild]`."""
    import dagster as dg

    from hvla_platform.lib.revocation import revoke_consent
    from hvla_platform.orchestration import add_partitions, instance, load_defs, print_outcome, run_job

    defs, inst = load_defs(), instance()

    def rebuild_partition(day: str, robot: str) -> None:
        o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": day, "robot": robot}))
        print_outcome(o, _echo)
        if not o.success:
            raise SystemExit(f"rebuilding partition {day}|{robot} failed; the revocation is recorded, rerun the job")

    def rebuild_release(name: str) -> None:
        add_partitions(inst, "release", [name])
        o = run_job(defs, inst, "release_job", name)
        print_outcome(o, _echo)
        if not o.success:
            raise SystemExit(f"rebuilding release {name} failed; the revocation is recorded, rerun release_job")

    res = revoke_consent(_lake(), args.consent, reason=args.reason, by=args.by, raw_policy=args.raw_policy,
                         rebuild=not args.no_rebuild, progress=_echo, rebuild_partition=rebuild_partition,
                         rebuild_release=rebuild_release)
    _echo(f"episodes under consent {res.consent}: {', '.join(res.episodes)}")
    for key, status in res.flagged.items():
        _echo(f"  flagged {status:<16} {key}")
    for old, new in res.rebuilt_releases.items():
        _echo(f"  release {old} rebuilt as {new}")
    for ep, keys in res.raw_handled.items():
        _echo(f"  raw {args.raw_policy}: {ep} ({len(keys)} object(s))")
    _echo(f"recorded at {res.record_key}; every step is in the audit log (audit/)")
    return 0


# ---- simulation -------------------------------------------------------------------------------
def cmd_sim_record(args: argparse.Namespace) -> int:
    """`hvla sim record`: record simulated G1 episodes as MCAP + metadata.yaml."""
    from hvla_platform.lib.sim.recorder import record_episodes

    out = Path(args.out)
    t0 = time.perf_counter()
    paths = record_episodes(out, episodes=args.episodes, seed=args.seed, task=args.task,
                            robot_ids=args.robot_ids.split(","), capture_days=args.capture_days.split(","),
                            progress=_echo)
    _echo(f"recorded {len(paths)} episode(s) into {out} in {time.perf_counter() - t0:.1f} s")
    return 0


# ---- demo -------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """The main job end to end on the embedded default."""
    import dagster as dg

    from hvla_platform.orchestration import add_partitions, ensure_dagster_home, instance, load_defs, print_outcome, run_job

    t_start = time.perf_counter()
    home = ensure_dagster_home()
    lake = _lake()
    _echo(f"hvla demo — lake {lake.root_uri()}, Dagster instance {home}, MLflow {settings.mlflow_tracking_uri()}")
    defs, inst = load_defs(), instance()
    failures = []

    _echo(f"\n[1/4] landing the committed recordings from {args.recordings}")
    parts = land_folder(Path(args.recordings))

    _echo(f"\n[2/4] ingest: raw_mcap → episodes_hdf5 for {len(parts)} capture-day × robot partition(s)")
    for day, robot in parts:
        t0 = time.perf_counter()
        o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": day, "robot": robot}))
        print_outcome(o, _echo)
        _echo(f"    ({time.perf_counter() - t0:.1f} s)")
        if not o.success:
            failures.append(o)

    _echo(f"\n[3/4] dataset release from {args.release_spec}: lerobot_dataset → norm_stats, robodm_cache")
    release = register_release_file(Path(args.release_spec))
    t0 = time.perf_counter()
    o = run_job(defs, inst, "release_job", release)
    print_outcome(o, _echo)
    _echo(f"    ({time.perf_counter() - t0:.1f} s)")
    if not o.success:
        failures.append(o)

    _echo(f"\n[4/4] training experiment {args.exp}: checkpoint → eval_report")
    add_partitions(inst, "experiment", [args.exp])
    t0 = time.perf_counter()
    o = run_job(defs, inst, "training_job", args.exp,
                run_config=training_run_config(release, args.steps, args.seed, args.trials, args.config_name),
                tags={"hvla/stage": "training"})
    print_outcome(o, _echo)
    _echo(f"    ({time.perf_counter() - t0:.1f} s)")
    if not o.success:
        failures.append(o)

    _echo(f"\nartifacts (lake {lake.root_uri()}):")
    for prefix in ("raw-mcap", "episodes-hdf5", "lerobot", "norm-stats", "robodm-cache", "checkpoints", "eval-reports",
                   "quarantine"):
        arts = lake.list_artifacts(prefix) if prefix != "quarantine" else sorted(
            {k.rsplit("/", 1)[0] for k in lake.list_keys(prefix) if k.endswith("reason.json")})
        _echo(f"  {prefix:<14} {len(arts):>3} artifact(s)" + (f"  e.g. {lake.uri(arts[-1])}" if arts else ""))
    report = [k for k in lake.list_keys("eval-reports") if k.endswith("report.html")]
    if report:
        _echo(f"\neval report: {lake.uri(report[-1])}")
    ckpts = lake.list_artifacts("checkpoints")
    if ckpts:
        _echo(f"serve it:    .venv/bin/hvla serve --checkpoint {ckpts[-1]}   (openpi protocol, port 8000)")
        _echo("robot:       .venv/bin/hvla deploy --port 8000   (the simulated G1 driven by the server)")
    _echo(f"MLflow:      {settings.mlflow_tracking_uri()}  (mlflow ui --backend-store-uri {settings.mlflow_tracking_uri()})")
    _echo(f"Dagster UI:  .venv/bin/hvla ui   (then open http://127.0.0.1:3000 — asset graph, partitions, "
          "owners, rights metadata and check results of this demo)")
    _echo(f"\ndemo {'finished' if not failures else 'FAILED'} in {time.perf_counter() - t_start:.0f} s")
    return 0 if not failures else 1


def cmd_ui(args: argparse.Namespace) -> int:
    """Start ``dagster dev`` on the demo's instance."""
    from hvla_platform.orchestration import REPO_ROOT, ensure_dagster_home

    ensure_dagster_home()
    exe = Path(sys.executable).with_name("dagster")
    argv = [str(exe), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    os.chdir(REPO_ROOT)
    os.execv(argv[0], argv)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hvla`` command."""
    p = argparse.ArgumentParser(prog="hvla", description="hvla-platform: humanoid VLA data platform")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the whole lifecycle end to end on the committed recordings")
    d.add_argument("--recordings", default=str(DEFAULT_RECORDINGS))
    d.add_argument("--release-spec", default=str(DEFAULT_RELEASE_SPEC))
    d.add_argument("--exp", default="demo-exp")
    d.add_argument("--config-name", default="hvla_g1_reach_small")
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--trials", type=int, default=4, help="closed-loop trials in the simulator")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("sim", help="simulation").add_subparsers(dest="sim_cmd", required=True)
    r = s.add_parser("record", help="record simulated Unitree G1 episodes as MCAP + metadata.yaml")
    r.add_argument("--out", required=True)
    r.add_argument("--episodes", type=int, default=4)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--task", default="reach_touch")
    r.add_argument("--robot-ids", default="g1-001,g1-002")
    r.add_argument("--capture-days", default="2026-11-10,2026-11-11")
    r.set_defaults(func=cmd_sim_record)

    i = sub.add_parser("ingest", help="land a folder of recordings into the landing area")
    i.add_argument("folder")
    i.add_argument("--materialize", action="store_true", help="also run raw_mcap + episodes_hdf5 for their partitions")
    i.set_defaults(func=cmd_ingest)

    rel = sub.add_parser("release", help="dataset releases")
    rel.add_argument("action", choices=["register", "build"])
    rel.add_argument("target", help="spec YAML path (register) or release name (build)")
    rel.set_defaults(func=cmd_release)

    t = sub.add_parser("train", help="train and evaluate an experiment on a release")
    t.add_argument("--exp", required=True)
    t.add_argument("--release", required=True)
    t.add_argument("--config-name", default="hvla_g1_reach_small")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--trials", type=int, default=4)
    t.set_defaults(func=cmd_train)

    q = sub.add_parser("qa", help="supervisor decisions on episodes; list QA results")
    q.add_argument("action", choices=["approve", "reject", "list"])
    q.add_argument("episode", nargs="?")
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None, help="who decides (default: the OS user)")
    q.set_defaults(func=cmd_qa)

    rg = sub.add_parser("rights", help="consent withdrawal and deletion requests")
    rg.add_argument("action", choices=["revoke"])
    rg.add_argument("--consent", required=True)
    rg.add_argument("--reason", required=True)
    rg.add_argument("--by", default=None)
    rg.add_argument("--raw-policy", default="restrict", choices=["restrict", "delete", "keep"])
    rg.add_argument("--no-rebuild", action="store_true", help="do not rebuild the impacted releases now")
    rg.set_defaults(func=cmd_rights)

    from hvla_platform.lineage_cli import add_lineage_parser

    add_lineage_parser(sub)

    from hvla_platform.serving_cli import add_serving_parsers

    add_serving_parsers(sub)

    u = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the local instance")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(func=cmd_ui)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hvla`` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
