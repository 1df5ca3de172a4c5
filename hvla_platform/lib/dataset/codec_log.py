"""Codec chatter goes to a log file, not the terminal.

LeRobot encodes videos with PyAV, and after each video it restores FFmpeg's default log callback
(``av.logging.restore_default_callback()``), which writes libav/libx264 statistics straight to file
descriptor 2 from C: about 350 lines per release build. :func:`codec_output_to` points file
descriptor 2 at a log file while the codecs run, and keeps Python's ``sys.stderr`` (the Dagster
console logger, the per-episode progress lines) on the terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Iterator

from hvla_platform.lib.core import settings


def codec_log_path(name: str) -> Path:
    """``$HVLA_HOME/logs/codec/<name>.log``: where a release build's codec output goes."""
    return settings.hvla_home() / "logs" / "codec" / f"{name}.log"


def _python_stderr_fd() -> int | None:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


@contextlib.contextmanager
def codec_output_to(log_path: Path) -> Iterator[Path]:
    """While the block runs, what C code writes to file descriptor 2 (FFmpeg, libx264) is appended
    to ``log_path``; Python's ``sys.stderr`` keeps writing where it wrote before. Yields the path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    keep_python = _python_stderr_fd() == 2
    py_stderr = sys.stderr
    try:
        with open(log_path, "ab") as log:
            os.dup2(log.fileno(), 2)
        if keep_python:  # Python's own stderr stays on the terminal (progress, Dagster's log lines)
            sys.stderr = open(os.dup(saved), "w", buffering=1, encoding=getattr(py_stderr, "encoding", None) or "utf-8",
                              errors="backslashreplace")
        yield log_path
    finally:
        if keep_python and sys.stderr is not py_stderr:
            with contextlib.suppress(Exception):
                sys.stderr.close()
            sys.stderr = py_stderr
        os.dup2(saved, 2)
        os.close(saved)
