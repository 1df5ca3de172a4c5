"""``hvla ui``: ``dagster dev`` on the embedded default's instance."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hvla_platform.lib.core.settings import REPO_ROOT


def cmd_ui(args: argparse.Namespace) -> int:
    """Start ``dagster dev`` on the demo's instance."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import ensure_dagster_home  # noqa: PLC0415

    ensure_dagster_home()
    exe = Path(sys.executable).with_name("dagster")
    argv = [str(exe), "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)]
    os.chdir(REPO_ROOT)
    os.execv(argv[0], argv)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``ui`` to the ``hvla`` command."""
    u = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the local instance")
    u.add_argument("--host", default="127.0.0.1")
    u.add_argument("--port", type=int, default=3000)
    u.set_defaults(func=cmd_ui)
