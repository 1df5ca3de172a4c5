"""``hvla release register SPEC.yaml`` / ``hvla release build NAME``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hvla_platform.cli.common import EXIT_OK, echo, open_env_lake
from hvla_platform.cli.known import require_release
from hvla_platform.lib.dataset.releases import register_release


def register_release_file(spec_path: Path) -> str:
    """Store a release spec in the lake and register its partition."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import add_partitions, instance  # noqa: PLC0415

    spec = register_release(open_env_lake(), spec_path.read_text(encoding="utf-8"), source=str(spec_path))
    add_partitions(instance(), "release", [spec.name])
    return spec.name


def cmd_release(args: argparse.Namespace) -> int:
    """`hvla release register SPEC` / `hvla release build NAME`."""
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
    return run_and_report("release", load_defs(), inst, "release_job", spec.name)[1]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``release`` to the ``hvla`` command."""
    rel = sub.add_parser("release", help="dataset releases")
    rel.add_argument("action", choices=["register", "build"])
    rel.add_argument("target", help="spec YAML path (register) or release name (build)")
    rel.set_defaults(func=cmd_release)
