"""The `hvla` command: one module per verb group (see :mod:`.main` for the parser)."""

from hvla_platform.cli.main import main

__all__ = ["main"]
