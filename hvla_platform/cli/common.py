"""What every ``hvla`` verb shares: printing, the lake, the exit codes.

Exit codes (README, "The `hvla` command"): 0 everything asked for succeeded; 1 a run or step
failed; 2 the request was refused (bad input, rights, unknown id); 3 the robot stopped on an
emergency stop; 4 the robot stopped on a fault; 5 partly done: some inputs were rejected,
quarantined, withdrawn or in conflict (``hvla ingest``; the summary table names each and why).
"""

from __future__ import annotations

import argparse
import sys

from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.lake_config import open_lake

EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_ESTOP, EXIT_FAULT, EXIT_PARTIAL = 0, 1, 2, 3, 4, 5


def echo(msg: str) -> None:
    """Print one line to stdout, flushed (progress reaches a pipe or log at once)."""
    print(msg, flush=True)


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` means "the request was refused" (bad input, rights, unknown id, missing
    artifact or file) rather than a bug: an exception class defined by the platform's library
    (``ReleaseSpecError``, ``RightsError``, ``ContractError``, ``ManifestError``, ``LineageError``…),
    or a missing file the user named. Anything else keeps its traceback."""
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return True
    return any(c.__module__.startswith("hvla_platform.lib.") for c in type(exc).__mro__)


def refuse(command: str, exc: BaseException) -> int:
    """Print ``hvla <command>: <reason>`` on stderr (one line) and return :data:`EXIT_REFUSED`."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    print(f"hvla {command}: {reason}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed ``hvla`` command (``args.func(args)``) and return its exit code; a refusal
    (:func:`is_refusal`) is printed in one line (:func:`refuse`) and returns :data:`EXIT_REFUSED`,
    anything else raises with its traceback."""
    try:
        return int(args.func(args) or 0)
    except Exception as exc:
        if is_refusal(exc):
            return refuse(args.command, exc)
        raise


def open_env_lake() -> Lake:
    """The lake the environment configures (:func:`hvla_platform.lib.core.lake_config.open_lake`)."""
    return open_lake()
