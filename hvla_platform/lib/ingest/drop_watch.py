"""One pass of the landing sensor over the drop area, as plain Python (no Dagster).

:func:`watch_drop_area` scans the drop area, skips every folder whose fingerprint it has already
handled (``seen``, the sensor's cursor), waits for incomplete or unsettled folders, and lands each
new or changed complete folder with :func:`~hvla_platform.lib.ingest.landing.land_recording`
(write-once). A changed re-upload of an episode that already landed is a ``conflict``: it is not
landed, the new files are kept as evidence under
``quarantine/_conflicts/<day>/<robot>/<episode>/<digest>/`` with a ``reason.json`` naming both
versions' sha256 (:func:`record_conflict`), and the caller reports it. The drop area is only read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from hvla_platform.lib.ingest.drop_area import DropArea, DropFolder
from hvla_platform.lib.core.withdrawals import Withdrawals
from hvla_platform.lib.ingest.landing import LandingResult, land_recording
from hvla_platform.lib.core.keys import CONFLICTS, landing_prefix
from hvla_platform.lib.core.lake import Lake, ObjectExistsError, sha256_file



@dataclass
class LandedFolder:
    """A drop folder that was landed (or tried): its result and, for a conflict, the record's key."""

    folder: str
    uri: str
    result: LandingResult
    conflict_record: str = ""


@dataclass
class DropPass:
    """Outcome of :func:`watch_drop_area`.

    ``handled``: folders landed this pass (every status: landed, already_landed, conflict, rejected,
    withdrawn). ``waiting``: URIs of folders with an ``.mcap`` but no ``metadata.yaml`` yet
    (partial uploads, ignored until complete). ``settling``: URIs of complete folders whose files
    changed less than ``settle_seconds`` ago. ``deferred``: URIs left for the next pass because the
    time budget ran out. ``seen``: the new ``{folder key: fingerprint}`` state (folders gone from the
    drop area are dropped from it).
    """

    handled: list[LandedFolder] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)

    def with_status(self, *statuses: str) -> list[LandedFolder]:
        """Handled folders whose landing status is one of ``statuses``."""
        return [h for h in self.handled if h.result.status in statuses]

    def partitions(self, *statuses: str) -> list[tuple[str, str]]:
        """(capture_day, robot_id) of the handled folders with one of ``statuses`` (default: those
        now in the landing area, ``landed`` and ``already_landed``)."""
        return sorted({(h.result.capture_day, h.result.robot_id)
                       for h in self.with_status(*(statuses or ("landed", "already_landed")))})


def watch_drop_area(lake: Lake, drop: DropArea, seen: dict[str, str], *, now: float | None = None,
                    settle_seconds: float = 10.0, budget_seconds: float = 30.0) -> DropPass:
    """Land every new or changed complete, settled folder of ``drop`` (see the module docstring).

    ``now`` is the current time in Unix seconds (default: the clock). ``budget_seconds`` bounds the
    time spent landing in one pass (a sensor evaluation has a deadline); at least one folder is landed
per pass, the rest is ``deferred`` once the budget is spent.
    A folder is recorded in ``seen`` once landed with any status, so the same upload is handled
    once; an incomplete, unsettled or deferred folder is not, so it is looked at again.

    Raises:
        FileNotFoundError: the drop area does not exist.
        OSError: the lake or the drop area cannot be read or written.
    """
    now = time.time() if now is None else now
    out = DropPass()
    withdrawals: Withdrawals | None = None
    started = time.monotonic()
    for folder in drop.scan():
        if seen.get(folder.key) == folder.fingerprint:
            out.seen[folder.key] = folder.fingerprint
            continue
        if not folder.complete:
            out.waiting.append(drop.uri(folder.key))
            continue
        if not folder.settled(now, settle_seconds):
            out.settling.append(drop.uri(folder.key))
            continue
        if out.handled and time.monotonic() - started > budget_seconds:
            out.deferred.append(drop.uri(folder.key))
            continue
        withdrawals = withdrawals or Withdrawals.load(lake)
        out.handled.append(_land(lake, drop, folder, withdrawals))
        out.seen[folder.key] = folder.fingerprint
    return out


def _land(lake: Lake, drop: DropArea, folder: DropFolder, withdrawals: Withdrawals) -> LandedFolder:
    uri = drop.uri(folder.key)
    with drop.local_copy(folder) as local:
        result = land_recording(lake, local, source=uri, withdrawals=withdrawals)
        landed = LandedFolder(folder.key, uri, result)
        if result.status == "conflict":
            landed.conflict_record = record_conflict(lake, result, local)
    return landed


def record_conflict(lake: Lake, result: LandingResult, local: Path) -> str:
    """Keep the files of a conflicting re-upload as evidence; return the ``reason.json`` key.

    Writes ``quarantine/_conflicts/<day>/<robot>/<episode>/<digest>/files/<path>`` (path relative to the
    recording folder, so a rosbag2 bag subfolder keeps its layout) and
    ``reason.json`` (the sha256 of each new file and of the landed file it differs from), all
    write-once: recording the same conflicting upload again changes nothing. ``<digest>`` is the
    first 16 hex digits of the sha256 over the new files' names and hashes.

    Raises:
        ValueError: ``result`` is not a conflict.
    """
    if result.status != "conflict":
        raise ValueError(f"not a conflict: {result.status}")
    files = sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink()
                   and not any(part.startswith(".") for part in p.relative_to(local).parts))
    names = {p: p.relative_to(local).as_posix() for p in files}  # a rosbag2 bag subfolder keeps its path
    hashes = {names[p]: sha256_file(p) for p in files}
    digest = hashlib.sha256("".join(f"{n}\0{h}\n" for n, h in sorted(hashes.items())).encode()).hexdigest()[:16]
    prefix = f"{CONFLICTS}/{result.capture_day}/{result.robot_id}/{result.episode_id}/{digest}"
    reason_key = f"{prefix}/reason.json"
    if lake.exists(reason_key):
        return reason_key
    landed = landing_prefix(result.capture_day, result.robot_id, result.episode_id)
    differing = {}
    for name, h in hashes.items():
        key = f"{landed}/{name}"
        if lake.exists(key):
            old = lake.sha256(key)
            if old != h:
                differing[name] = {"landed_key": key, "landed_sha256": old, "new_sha256": h}
        else:
            differing[name] = {"landed_key": None, "landed_sha256": None, "new_sha256": h}
    for p in files:
        try:
            lake.put_file(p, f"{prefix}/files/{names[p]}", write_once=True)
        except ObjectExistsError:
            pass
    try:
        lake.write_json(reason_key, {
            "stage": "landing", "status": "conflict", "source": result.source, "reason": result.reason,
            "capture_day": result.capture_day, "robot_id": result.robot_id, "episode_id": result.episode_id,
            "landing_key": landed, "differing_files": differing, "new_files": hashes,
            "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }, write_once=True)
    except ObjectExistsError:
        pass
    return reason_key
