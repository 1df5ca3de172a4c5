"""Temporary build directories under the platform's home, swept when their owner is gone.

A builder killed with SIGKILL cannot clean up after itself, and a system ``/tmp`` directory of a
dead build is never looked at again. Every temporary directory the platform makes is therefore
named after its owning process (``<kind>-<random>@<owner token>``, see
:func:`~hvla_platform.lib.core.locking.owner_token`) and lives in a known place (the local lake's
``.hvla-tmp`` or ``$HVLA_HOME/tmp``); making one sweeps the entries there whose owner is no longer
running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Iterator

from hvla_platform.lib.core import settings
from hvla_platform.lib.core.locking import owner_alive, owner_token

#: Entries of a scratch root that were not named by :func:`scratch_name` are swept after this long.
UNNAMED_MAX_AGE_S = 24 * 3600


def scratch_root() -> Path:
    """``$HVLA_HOME/tmp``: where temporary build directories live when the lake is not local."""
    return settings.hvla_home() / "tmp"


def scratch_name(kind: str) -> str:
    """A fresh entry name owned by this process: ``<kind>-<random>@<host:pid:start>``."""
    return f"{kind}-{uuid.uuid4().hex[:16]}@{owner_token()}"


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def sweep(root: str | os.PathLike[str], *, keep: frozenset[str] = frozenset()) -> list[str]:
    """Remove the entries of ``root`` whose owning process is gone; the names removed.

    Entries owned by a process on another host are kept; entries without an owner are removed once
    older than :data:`UNNAMED_MAX_AGE_S`. Names in ``keep`` are never touched."""
    root = Path(root)
    removed = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    now = time.time()
    for p in entries:
        if p.name in keep:
            continue
        if "@" in p.name:
            if owner_alive(p.name.rsplit("@", 1)[1]) is not False:
                continue
        else:
            try:
                if now - p.lstat().st_mtime < UNNAMED_MAX_AGE_S:
                    continue
            except FileNotFoundError:
                continue
        _remove(p)
        removed.append(p.name)
    return removed


@contextlib.contextmanager
def scratch_dir(kind: str, root: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A new empty directory under ``root`` (default :func:`scratch_root`), removed on exit; dead
    owners' entries in ``root`` are swept first."""
    root = Path(root) if root is not None else scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    sweep(root, keep=frozenset({"locks"}))
    d = root / scratch_name(kind)
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
