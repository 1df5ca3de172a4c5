"""The ``hvla`` command: one parser, one module per verb group (demo, sim, ingest, release, train,
qa, rights, lineage, serve/deploy, ui). Exit codes: :mod:`hvla_platform.cli.common`."""

from __future__ import annotations

import argparse
import sys

from hvla_platform.cli import demo, ingest, lineage, mixture, profile, qa, release, rights, serving, sim, train, ui, web
from hvla_platform.cli import demo_sources
from hvla_platform.cli.common import run_command


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hvla`` command."""
    p = argparse.ArgumentParser(prog="hvla", description="hvla-platform: humanoid VLA data platform")
    sub = p.add_subparsers(dest="command", required=True)
    for module in (demo, demo_sources, sim, ingest, release, mixture, train, qa, rights, profile):
        module.add_parser(sub)
    lineage.add_lineage_parser(sub)
    serving.add_serving_parsers(sub)
    ui.add_parser(sub)
    web.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hvla`` console script; returns the exit code (0 everything asked for
    succeeded, 1 a run failed, 2 refused: :mod:`hvla_platform.cli.common`)."""
    return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
