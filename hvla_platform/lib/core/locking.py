"""Cross-process coordination on one machine: file locks and the liveness of a process that owns
something (a run, a temporary directory).

Locks are ``fcntl.flock`` locks on a lock file: the kernel releases them when the holder dies, so a
crashed process never leaves a lock behind. An *owner token* (``host:pid:start-time``) names a
process unambiguously (a recycled pid has another start time), so "is the process that started
this still running?" can be answered after a crash.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, timeout: float = 600.0, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if absent) for the ``with`` block.

    Raises:
        TimeoutError: another process held it for more than ``timeout`` seconds.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{what or path}: still locked by another process after {timeout:.0f} s "
                                       f"({path})") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # a zombie has exited already


def owner_token(pid: int | None = None) -> str:
    """``host:pid:start`` naming this process (or ``pid``) unambiguously on this machine."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def owner_alive(token: str) -> bool | None:
    """Whether the process named by an :func:`owner_token` is still running: ``None`` when it ran on
    another host (unknowable here), ``False`` when its pid is gone or now belongs to another process."""
    try:
        host, pid_s, start = token.rsplit(":", 2)
        pid = int(pid_s)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    now = _start_time(pid)
    if now is None:
        return False
    return start in ("?", now)
