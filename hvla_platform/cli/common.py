"""What every ``hvla`` verb shares: printing, the lake, the exit codes.

Exit codes (README, "The `hvla` command"): 0 everything asked for succeeded; 1 a run or step
failed; 2 the request was refused (bad input, rights, unknown id); 3 the robot stopped on an
emergency stop; 4 the robot stopped on a fault.
"""

from __future__ import annotations

from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.lake_config import open_lake

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_ESTOP, EXIT_FAULT = 0, 1, 2, 3, 4


def echo(msg: str) -> None:
    """Print one line to stdout, flushed (progress reaches a pipe or log at once)."""
    print(msg, flush=True)


def open_env_lake() -> Lake:
    """The lake the environment configures (:func:`hvla_platform.lib.core.lake_config.open_lake`)."""
    return open_lake()
