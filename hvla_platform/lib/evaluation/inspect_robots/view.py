"""The HTML view of an EvalLog, rendered by inspect-robots' own command (``inspect-robots view``).

The command runs as a child process of this interpreter (``python -m inspect_robots.cli``) in the
log's directory, so it reads no ``.env`` file of the caller's working directory (inspect-robots'
CLI loads ``./.env`` into its environment) and the page is exactly what a user gets by running the
command on the saved log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_inspect_robots(args: list[str], *, cwd: Path,
                       timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    """Run ``inspect-robots <args>`` with this interpreter; return the finished process (text output).

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout_s`` seconds.
    """
    return subprocess.run([sys.executable, "-m", "inspect_robots.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def write_html_view(log_path: Path) -> Path:
    """Render ``log_path`` (an EvalLog JSON file) to ``<same name>.html`` next to it; return that path.

    The page is self-contained (no camera frames: the evaluation does not store them).

    Raises:
        RuntimeError: ``inspect-robots view`` failed (its output is in the message).
    """
    log_path = Path(log_path).resolve()
    out = log_path.with_suffix(".html")
    proc = run_inspect_robots(["view", log_path.name, "-o", out.name, "--no-frames", "--no-video"],
                              cwd=log_path.parent)
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"inspect-robots view {log_path.name} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    return out
