"""A machine-wide readers–writer lock between test processes: the Dagster UI tests run alone.

A UI test runs a Dagster webserver, a daemon, their two code servers, a run worker and headless
Chromium: about ten busy processes that must answer a browser within its waits. On the 2-core CI
machine another pytest-xdist worker running a heavy test beside it (an S3 drop-to-release with
SeaweedFS, video encoding and conversion workers) starved it for minutes: the asset graph did not
render in 60 s, not even a screenshot could be taken, while the other test took 6× its usual time.
So the modules under ``hvla_platform_tests/ui/`` hold the lock **exclusively**, every other module
holds it **shared** (``hvla_platform_tests/conftest.py``): other tests run in parallel as before, and
a UI module waits until the other worker's current module is done, then runs alone.

The locks are POSIX record locks (``fcntl.lockf``), not ``flock``: a process forked by a test (the
conversion pool forks its workers and keeps them for reuse) would inherit a ``flock`` and hold the
lock after the module ends, so that a UI module waited for it until pytest-timeout; record locks
belong to the process that took them and are not inherited across ``fork``. They have no writer
preference, so a waiting writer first takes an *intent* lock that new readers pass through: once a
writer waits, no new reader starts (no starvation of the UI tests, whose wait counts against
pytest-timeout). Within one process the lock is reentrant, so ``DagsterUI`` (which takes it
exclusively itself, for use by hand) works inside a UI module. (A record lock is released when the
process closes any descriptor of the file: nothing but this module opens these files.)
"""

from __future__ import annotations

import fcntl
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

#: The lock every test process of this machine shares (a UI module holds it exclusively).
LOCK_FILE = Path(tempfile.gettempdir()) / "hvla-platform-tests.lock"
#: Taken exclusively by a writer while it waits for :data:`LOCK_FILE`, shared by readers in passing.
INTENT_FILE = Path(tempfile.gettempdir()) / "hvla-platform-tests.intent.lock"

#: This process's hold: its mode ("shared" | "exclusive"), nesting depth and open lock file.
_held: dict = {"mode": None, "depth": 0, "file": None}


def _acquire(exclusive: bool) -> IO:
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    intent = open(INTENT_FILE, "a+")  # noqa: SIM115 - closed below (read+write: shared and exclusive locks)
    try:
        fcntl.lockf(intent, mode)  # a reader waits here while a writer waits for the lock
        lock = open(LOCK_FILE, "a+")  # noqa: SIM115 - held until release
        fcntl.lockf(lock, mode)
        return lock
    finally:
        intent.close()  # releases the intent lock


@contextmanager
def hold(exclusive: bool) -> Iterator[None]:
    """Hold the machine lock (``exclusive`` or shared) for the block, waiting as long as it takes
    (pytest-timeout bounds a test's wait).

    Reentrant in one process: inside an exclusive hold any hold is a no-op; inside a shared hold a
    shared one is.

    Raises:
        RuntimeError: an exclusive hold asked for inside a shared one of this process (it would
            wait for itself).
    """
    if _held["depth"]:
        if exclusive and _held["mode"] == "shared":
            raise RuntimeError("the machine test lock is held shared by this process; an exclusive hold "
                               "inside it would wait for itself (run this test in hvla_platform_tests/ui/)")
        _held["depth"] += 1
        try:
            yield
        finally:
            _held["depth"] -= 1
        return
    lock = _acquire(exclusive)
    _held.update(mode="exclusive" if exclusive else "shared", depth=1, file=lock)
    try:
        yield
    finally:
        _held.update(mode=None, depth=0, file=None)
        lock.close()  # releases the record lock
