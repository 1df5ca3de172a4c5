"""Starting and stopping real subprocesses in tests: each in its own process group, always stopped
(SIGTERM to the group, SIGKILL after a grace period), with bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from hvla_platform_tests.paths import REPO_ROOT


def spawn(argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None,
          cwd: Path = REPO_ROOT) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group), output to ``log`` (or a pipe)."""
    out = open(log, "wb") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        if log is not None:
            out.close()


def python(code: str, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """Start ``python -c code args...`` with the running interpreter (see :func:`spawn`)."""
    return spawn([sys.executable, "-c", code, *args], env=env, log=log)


def group_members(pgid: int, *, session: bool = False) -> list[int]:
    """Pids of the live processes (zombies excluded: they have exited) in process group ``pgid``
    (with ``session``: in the session ``pgid``, whatever process groups its members made)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(fields[3 if session else 2]) == pgid and fields[0] not in ("Z", "X"):
            out.append(int(d.name))
    return out


def group_alive(pgid: int) -> bool:
    """Whether a live process of process group ``pgid`` still exists."""
    return bool(group_members(pgid))


def stop(p: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM ``p``'s process group, SIGKILL it after ``grace`` seconds, reap ``p``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM and group_alive(p.pid):  # the leader exited, a child did not
            continue
        break
    wait_group_gone(p.pid, 5.0)
    if p.stdout is not None:
        p.stdout.close()


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait (at most ``timeout`` s) until no live process is left in group ``pgid``, sending SIGKILL
    to the group meanwhile (a signal is delivered asynchronously); whether it is gone."""
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        time.sleep(0.05)
    return True


@contextmanager
def running(procs: list[subprocess.Popen], grace: float = 10.0) -> Iterator[list[subprocess.Popen]]:
    """Stop every process in ``procs`` (also those appended inside the block) whatever the outcome."""
    try:
        yield procs
    finally:
        for p in procs:
            stop(p, grace)


def wait_all(procs: list[subprocess.Popen], timeout: float) -> list[int]:
    """Wait for every process (``timeout`` seconds in total); their return codes. Raises
    ``TimeoutError`` naming how many are still running."""
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            left = sum(q.poll() is None for q in procs)
            raise TimeoutError(f"{left} of {len(procs)} processes still running after {timeout:.0f} s") from None
    return [p.returncode for p in procs]


def wait_for_file(path: Path, timeout: float, procs: Sequence[subprocess.Popen] = ()) -> None:
    """Wait until ``path`` exists; raise early if one of ``procs`` exited, or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"process {dead[0].args!r} exited with {dead[0].returncode} before {path} appeared")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout:.0f} s")
        time.sleep(0.1)
