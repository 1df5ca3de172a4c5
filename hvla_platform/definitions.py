"""Entry point of the Dagster code location: every object under ``hvla_platform/defs/``."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Load the defs folder (``[tool.dg.project]`` in pyproject.toml)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
