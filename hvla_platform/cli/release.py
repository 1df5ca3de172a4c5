"""``hvla release register SPEC.yaml`` / ``hvla release build NAME`` / ``hvla release versions NAME``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hvla_platform.cli.common import EXIT_OK, echo, open_env_lake
from hvla_platform.cli.known import require_release
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.dataset.version_report import version_rows


def register_release_file(spec_path: Path) -> str:
    """Store a release spec in the lake and register its partition."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance  # noqa: PLC0415

    spec = register_release(open_env_lake(), spec_path.read_text(encoding="utf-8"), source=str(spec_path))
    add_partitions(instance(), "release", [spec.name])
    return spec.name


def show_versions(name: str, *, as_json: bool) -> int:
    """`hvla release versions NAME`: every version of the release, what it holds and what uses it."""
    lake = open_env_lake()
    require_release(lake, name)
    rows = version_rows(lake, name)
    if as_json:
        echo(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        echo(f"release {name} has no version yet; `hvla release build {name}` builds version {name}")
        return EXIT_OK
    echo(f"{'version':<28} {'status':<11} {'episodes':>8} {'created (UTC)':<20} used by")
    for r in rows:
        created = (r["created_at"] or "")[:19].replace("T", " ")
        used = ", ".join(r["used_by"]) or "-"
        echo(f"{r['release']:<28} {r['status']:<11} {r['num_episodes'] if r['num_episodes'] is not None else '-':>8} "
             f"{created:<20} {used}")
    return EXIT_OK


def cmd_release(args: argparse.Namespace) -> int:
    """`hvla release register SPEC` / `hvla release build NAME` / `hvla release versions NAME`."""
    if args.action == "versions":
        return show_versions(args.target, as_json=args.json)
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance, load_defs  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

    if args.action == "register":
        name = register_release_file(Path(args.target))
        echo(f"registered release {name}")
        return EXIT_OK
    spec = require_release(open_env_lake(), args.target)  # unknown release: refused before any run
    inst = instance()
    add_partitions(inst, "release", [spec.name])
    outcome, code = run_and_report("release", load_defs(), inst, "release_job", spec.name)
    built = outcome.materializations.get("lerobot_dataset", {})
    if built.get("hvla/release"):
        what = "unchanged, cached" if built.get("status") == "cached" else "new immutable version"
        echo(f"release {spec.name} → {built['hvla/release']} ({what}; `hvla release versions {spec.name}` lists all)")
    return code


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``release`` to the ``hvla`` command."""
    rel = sub.add_parser("release", help="dataset releases")
    rel.add_argument("action", choices=["register", "build", "versions"])
    rel.add_argument("target", help="spec YAML path (register) or release name (build, versions)")
    rel.add_argument("--json", action="store_true", help="versions: print JSON")
    rel.set_defaults(func=cmd_release)
