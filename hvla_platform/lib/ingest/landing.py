"""The landing area: where finished recordings are dropped before ingest.

A recording is a folder holding hvla's ``metadata.yaml``, optionally ``operator_notes.md``, and
exactly one bag (docs/recordings.md): ``*.mcap`` files (``<episode_id>_0.mcap`` as ``hvla sim
record`` writes it, or the parts ``<name>_0.mcap, <name>_1.mcap, ...`` of a split bag), one rosbag2
bag directory (MCAP or sqlite3 storage, possibly split), or one ROS 1 ``.bag``. Landing copies the
bag's files, the notes and the metadata, unchanged, to ``landing/<capture_date>/<robot_id>/<episode_id>/``
(a rosbag2 directory keeps its name: ``.../<episode_id>/<bag dir>/<file>``) with write-once objects;
``metadata.yaml`` is written **last**, so an episode counts as landed (complete) only when its
metadata is there. A recording whose ids are unsafe or whose metadata cannot be parsed is copied to
``quarantine/_rejected/<sha256 prefix>/`` with a ``reason.json``; so is a folder holding a bag but
no ``metadata.yaml``, a folder that does not hold exactly one bag (two bags, MCAP files that are not
the consecutive parts of one split bag, a rosbag2 storage other than mcap/sqlite3), or a symbolic
link instead of a regular file. An episode whose id or consent was withdrawn (``hvla rights
revoke``) is not landed again. The source folder is never touched, and nothing outside it is ever
read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from hvla_platform.lib.core.withdrawals import Withdrawals
from hvla_platform.lib.core.keys import (
    LANDING,
    RAW,
    REJECTED,
    UnsafeIdError,
    check_day,
    check_id,
    landing_prefix,
)
from hvla_platform.lib.core.lake import Lake, ObjectExistsError, sha256_file
from hvla_platform.lib.formats.bags.layout import BagLayout, is_rosbag2_dir, locate_bag
from hvla_platform.lib.formats.bags.mcap_source import check_split_parts
from hvla_platform.lib.formats.mcap.errors import RawLogError

METADATA = "metadata.yaml"
NOTES = "operator_notes.md"


@dataclass
class LandingResult:
    """Outcome of landing one recording folder.

    ``status`` is ``landed``, ``already_landed`` (same content was there), ``conflict`` (different
    content already landed under the same key: reported, not replaced), ``rejected`` (quarantined)
    or ``withdrawn`` (the episode, or a consent it declares, was withdrawn: nothing is copied).
    A rejection carries the ids its metadata named safely (if any) and ``evidence``, the
    ``quarantine/_rejected/<digest>`` prefix of the kept files and ``reason.json``.
    """

    source: str
    status: str
    capture_day: str | None = None
    robot_id: str | None = None
    episode_id: str | None = None
    reason: str = ""
    evidence: str = ""


#: File suffixes that make a folder a candidate recording (``.db3`` outside a rosbag2 directory is
#: included so that landing rejects it with a reason instead of skipping it).
BAG_SUFFIXES = (".mcap", ".bag", ".db3")


def _rosbag2_dir(path: Path) -> bool:
    """True if ``path`` is a rosbag2 bag directory (a broken rosbag2 ``metadata.yaml`` counts too:
    landing rejects the recording with the reason)."""
    try:
        return is_rosbag2_dir(path)
    except RawLogError:
        return True


def find_recordings(src: str | Path) -> list[Path]:
    """Folders under ``src`` (recursively, ``src`` included) that hold a bag: a ``.mcap``, ``.bag``
    or ``.db3`` file, or a rosbag2 bag directory (which is part of its recording folder and is not
    itself returned or searched).

    A folder with a bag but no ``metadata.yaml`` is included on purpose: :func:`land_recording`
    rejects it with a reason instead of it being skipped silently.
    """
    src = Path(src)
    out: list[Path] = []
    if not src.is_dir() or _rosbag2_dir(src):
        return out
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        bag_dirs = [d for d in dirnames if _rosbag2_dir(here / d)]
        dirnames[:] = sorted(d for d in dirnames if d not in bag_dirs)
        if bag_dirs or any(n.endswith(BAG_SUFFIXES) and (here / n).is_file() for n in filenames):
            out.append(here)
    return sorted(out)


def recording_files(rec: Path) -> list[Path]:
    """The regular files of a recording folder: its own, and those of rosbag2 bag directories in
    it (symbolic links excluded: one could point anywhere on the host)."""
    out = []
    for p in sorted(rec.iterdir()):
        if p.is_symlink():
            continue
        if p.is_file():
            out.append(p)
        elif p.is_dir() and _rosbag2_dir(p):
            out += sorted(q for q in p.iterdir() if q.is_file() and not q.is_symlink())
    return out


def symlinks(rec: Path) -> list[str]:
    """Paths (relative to ``rec``, POSIX, sorted) of the symbolic links in a recording folder: its
    own entries and those of rosbag2 bag directories in it. A source whose folder has any is
    refused (:func:`reject`): a link could point anywhere on the host."""
    links = [p.relative_to(rec).as_posix() for p in sorted(rec.iterdir()) if p.is_symlink()]
    for d in sorted(rec.iterdir()):
        if d.is_dir() and not d.is_symlink() and _rosbag2_dir(d):
            links += [p.relative_to(rec).as_posix() for p in sorted(d.iterdir()) if p.is_symlink()]
    return links


def _bag_problem(rec: Path, shown: str) -> tuple[BagLayout | None, str]:
    """The recording's bag, or why it is not exactly one readable-looking bag (a one-line reason).

    MCAP files that are not the consecutive parts of one split bag (e.g. a copy of the first
    part) are refused here, from their summaries, with the reason landing always gave for them."""
    entries = sorted(rec.iterdir())
    mcaps = [p.name for p in entries if p.suffix == ".mcap"]
    only_mcaps = bool(mcaps) and not any(p.suffix == ".bag" or (p.is_dir() and _rosbag2_dir(p)) for p in entries)
    try:
        layout = locate_bag(rec)
        if layout.kind == "mcap" and len(layout.files) > 1:
            try:
                check_split_parts(list(layout.files))
            except RawLogError as exc:
                if exc.reason == "several_bags":
                    raise
                # a damaged part: landed as it is; raw ingest's strict read quarantines it with the reason
        return layout, ""
    except RawLogError as exc:
        if only_mcaps and exc.reason in ("several_bags", "incomplete_bag"):
            return None, (f"{shown}: expected exactly one .mcap file (or the consecutive parts of one split bag), "
                          f"found {mcaps}: {exc.detail}")
        where = Path(exc.path)
        shown_path = f"{shown}/{where.relative_to(rec).as_posix()}" if where != rec and rec in where.parents else shown
        return None, f"{shown_path}: {exc.reason}: {exc.detail}"


def read_identity(metadata: dict) -> tuple[str, str, str]:
    """(capture_day, robot_id, episode_id) from a parsed ``metadata.yaml``, validated.

    Raises:
        UnsafeIdError: a field is missing or unsafe for use in a key.
    """
    if not isinstance(metadata, dict):
        raise UnsafeIdError(f"metadata.yaml must be a mapping, it holds a {type(metadata).__name__}")
    robot = metadata.get("robot")
    robot_id = robot.get("id") if isinstance(robot, dict) else metadata.get("robot_id")
    return (check_day(metadata.get("capture_date")), check_id(robot_id, "robot id"),
            check_id(metadata.get("episode_id"), "episode id"))


def _identity_hint(metadata: object) -> dict[str, str]:
    """Whichever of capture_day / robot_id / episode_id the metadata names safely (a rejection
    keeps them so that it can be shown on the raw partition it was meant for)."""
    if not isinstance(metadata, dict):
        return {}
    robot = metadata.get("robot")
    fields = {"capture_day": (check_day, metadata.get("capture_date")),
              "robot_id": (lambda v: check_id(v, "robot id"),
                           robot.get("id") if isinstance(robot, dict) else metadata.get("robot_id")),
              "episode_id": (lambda v: check_id(v, "episode id"), metadata.get("episode_id"))}
    out = {}
    for name, (check, value) in fields.items():
        try:
            out[name] = check(value)
        except UnsafeIdError:
            pass
    return out


def keep_files(lake: Lake, prefix: str, files: list[tuple[Path, str]]) -> None:
    """Copy ``files`` — ``(local path, path relative to the source folder)`` — to
    ``<prefix>/<relative path>`` with write-once objects, keeping an object already there (the same
    file kept by an earlier run): how rejected and quarantined sources keep their evidence.

    Raises:
        OSError: a file cannot be read or the lake cannot be written.
    """
    for p, rel in files:
        try:
            lake.put_file(p, f"{prefix}/{rel}", write_once=True)
        except ObjectExistsError:
            pass  # the same file was kept by an earlier run


def reject(lake: Lake, rec: Path, reason: str, source: str | None = None,
           metadata: object = None) -> LandingResult:
    """Refuse a source folder at landing: copy its regular files (symbolic links never followed)
    to ``quarantine/_rejected/<digest>/files/`` and write ``reason.json`` there (``source``,
    ``stage: landing``, the one-line ``reason``, ``at`` UTC, the ``files`` kept, and whichever of
    ``capture_day`` / ``robot_id`` / ``episode_id`` the parsed ``metadata`` names safely).

    ``<digest>`` is the first 16 hex digits of the sha256 over each file's relative path and
    sha256, so the same folder refused twice is kept once. Used for robot recordings, teleop
    episode folders and human video clips alike.

    Returns:
        A ``rejected`` :class:`LandingResult` whose ``evidence`` is the
        ``quarantine/_rejected/<digest>`` prefix.

    Raises:
        OSError: a file cannot be read or the lake cannot be written.
    """
    h = hashlib.sha256()
    # regular files only: a symbolic link could point anywhere on the host
    files = [(p, p.relative_to(rec).as_posix()) for p in recording_files(rec)]
    for p, rel in files:
        h.update(rel.encode())
        h.update(sha256_file(p).encode())
    prefix = f"{REJECTED}/{h.hexdigest()[:16]}"
    keep_files(lake, f"{prefix}/files", files)  # an identical rejected folder may already be kept
    hint = _identity_hint(metadata)
    lake.write_json(f"{prefix}/reason.json", {
        "source": source or str(rec), "stage": "landing", "reason": reason,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": [rel for _, rel in files], **hint,
    })
    return LandingResult(source=source or str(rec), status="rejected", reason=reason,
                         capture_day=hint.get("capture_day"), robot_id=hint.get("robot_id"),
                         episode_id=hint.get("episode_id"), evidence=prefix)


def read_landing_metadata(lake: Lake, rec: Path, meta_path: Path, shown: str, source: str | None, *,
                          identify: Callable[[Any], tuple[str, str, str]] = read_identity,
                          hint: bool = True) -> tuple[Any, tuple[str, str, str]] | LandingResult:
    """Parse a source folder's ``metadata.yaml`` (``meta_path``) and the ids it lands under.

    ``identify`` turns the parsed YAML into ``(capture_day, partition id, unit id)``
    (:func:`read_identity` for robot recordings and teleop episodes) or raises
    :class:`~hvla_platform.lib.core.keys.UnsafeIdError`. ``hint``: a rejection for unsafe ids keeps
    the ids the metadata names safely in robot-recording form (:func:`reject`'s ``metadata``).

    Returns:
        ``(metadata, ids)``, or the ``rejected`` :class:`LandingResult` (:func:`reject`: the file
        cannot be read or parsed — ``<shown>/<file>: cannot read metadata.yaml: <error>`` — or an
        id is missing or unsafe).

    Raises:
        OSError: the lake cannot be written.
    """
    try:
        metadata = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
        return metadata, identify(metadata)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return reject(lake, rec, f"{shown}/{meta_path.name}: cannot read metadata.yaml: {type(exc).__name__}: {exc}",
                      source)
    except UnsafeIdError as exc:
        return reject(lake, rec, f"{shown}/{meta_path.name}: {exc}", source, metadata if hint else None)


def start_landing(lake: Lake, shown: str, ids: tuple[str, str, str], metadata: Any,
                  withdrawals: Withdrawals | None, noun: str = "episode") -> LandingResult:
    """The :class:`LandingResult` of a source folder whose metadata names ``ids`` =
    ``(capture_day, partition id, unit id)``: ``withdrawn`` (with the reason ``<shown>: <noun>
    <id> was not landed: <why>``) when the unit, or a consent its metadata declares, was withdrawn
    (``withdrawals``, read from the lake when None), else ``already_landed`` until
    :func:`land_files` says otherwise."""
    day, part, unit = ids
    result = LandingResult(source=shown, status="already_landed", capture_day=day, robot_id=part, episode_id=unit)
    withdrawn = (withdrawals or Withdrawals.load(lake)).reason(unit, metadata)
    if withdrawn:
        result.status = "withdrawn"
        result.reason = f"{shown}: {noun} {unit} was not landed: {withdrawn}"
    return result


def land_recording(lake: Lake, rec: str | Path, *, source: str | None = None,
                   withdrawals: Withdrawals | None = None) -> LandingResult:
    """Copy one recording folder into the landing area (see module docstring).

    ``source`` names the recording in results and reasons when ``rec`` is a local copy (e.g. of an
    S3 upload); by default ``rec`` itself. ``withdrawals`` (read from the lake when not given):
    an episode whose id, or one of whose consents, was withdrawn is not landed again
    (``status="withdrawn"``; nothing is copied).

    Never raises for bad input: a bad recording gives ``status="rejected"`` with a reason that
    names the offending file (missing or unparsable ``metadata.yaml``, unsafe ids or file names,
    not exactly one bag — docs/recordings.md —, a symbolic link), and a copy under
    ``quarantine/_rejected/``.

    Raises:
        OSError: ``rec`` is not a readable folder, or the lake cannot be written.
    """
    rec = Path(rec)
    shown = source or str(rec)
    meta_path = rec / METADATA
    links = symlinks(rec)
    if links:
        return reject(lake, rec, f"{shown}: {links} are symbolic links; a recording must consist of regular files",
                      source)
    if not meta_path.is_file():
        bag_names = [p.relative_to(rec).as_posix() for p in recording_files(rec) if p.name != NOTES]
        return reject(lake, rec, f"{shown}: no metadata.yaml beside {bag_names}; a recording needs one "
                                 "(episode_id, robot.id, capture_date and the rights block)", source)
    read = read_landing_metadata(lake, rec, meta_path, shown, source)
    if isinstance(read, LandingResult):
        return read
    metadata, (day, robot, episode) = read
    layout, problem = _bag_problem(rec, shown)
    if layout is None:
        return reject(lake, rec, problem, source, metadata)
    result = start_landing(lake, shown, (day, robot, episode), metadata, withdrawals)
    if result.status == "withdrawn":
        return result
    files = layout.all_files + ([rec / NOTES] if (rec / NOTES).is_file() else []) + [meta_path]
    pairs = [(p, p.relative_to(rec).as_posix()) for p in files]
    problem = unsafe_file_name(pairs, shown)  # check every name before copying anything
    if problem:
        return reject(lake, rec, problem, source, metadata)
    result.status, result.reason = land_files(lake, landing_prefix(day, robot, episode), pairs, shown)
    return result


def unsafe_file_name(files: list[tuple[Path, str]], shown: str) -> str:
    """``<shown>/<relative path>: <why>`` for the first of ``files`` — ``(local path, path relative
    to the source folder)`` — with a path segment that is not a safe id
    (:func:`~hvla_platform.lib.core.keys.check_id`), ``""`` when every name is safe."""
    for _, rel in files:
        try:
            for part in rel.split("/"):
                check_id(part, "file name")
        except UnsafeIdError as exc:
            return f"{shown}/{rel}: {exc}"
    return ""


def land_files(lake: Lake, prefix: str, files: list[tuple[Path, str]], shown: str) -> tuple[str, str]:
    """The write-once landing copy of one source folder: each of ``files`` — ``(local path, path
    relative to the folder)``, in order, the completion marker (``metadata.yaml``) **last** — to
    ``<prefix>/<relative path>``.

    An object already there with the same sha256 is kept; one with other content stops the copy
    (nothing is replaced: landing is write-once). ``shown`` names the folder in the reason.

    Returns:
        ``(status, reason)``: ``("landed", "")`` when at least one file was copied,
        ``("already_landed", "")`` when every file was there already, or ``("conflict", "<key>
        already landed with different content; ...")``.

    Raises:
        OSError: a file cannot be read or the lake cannot be written.
    """
    status = "already_landed"
    for p, rel in files:
        key = f"{prefix}/{rel}"
        try:
            lake.put_file(p, key, write_once=True)
            status = "landed"
        except ObjectExistsError:
            if lake.sha256(key) != sha256_file(p):
                return "conflict", (f"{key} already landed with different content; the new file "
                                    f"{shown}/{rel} was not copied (landing is write-once)")
    return status, ""


def complete_landings(lake: Lake, root: str, marker: str = METADATA) -> list[tuple[str, str, str]]:
    """``(capture_day, partition id, unit id)`` of every unit landed completely under ``root``:
    keys ``<root>/<day>/<partition id>/<unit id>/<marker>`` (the marker, ``metadata.yaml``, is
    written last by :func:`land_files`), in key order. Deeper or shallower keys are ignored (so
    ``landing/_teleop/...`` is not a robot recording of ``landing/``)."""
    out = []
    for key in lake.list_keys(root):
        segs = key[len(root) + 1:].split("/")
        if len(segs) == 4 and segs[3] == marker:
            out.append((segs[0], segs[1], segs[2]))
    return out


def complete_partitions(lake: Lake, root: str, marker: str = METADATA) -> list[tuple[str, str]]:
    """Sorted ``(capture_day, partition id)`` pairs under ``root`` with at least one unit landed
    completely (:func:`complete_landings`)."""
    return sorted({(day, part) for day, part, _ in complete_landings(lake, root, marker)})


def complete_units(lake: Lake, prefix: str, marker: str = METADATA) -> list[str]:
    """Sorted ids of the units landed completely directly under ``prefix`` (one partition:
    ``<prefix>/<unit id>/<marker>`` present)."""
    return sorted({rest[0] for key in lake.list_keys(prefix)
                   if len(rest := key[len(prefix) + 1:].split("/")) == 2 and rest[1] == marker})


def list_landing_partitions(lake: Lake) -> list[tuple[str, str]]:
    """(capture_day, robot_id) pairs that have at least one complete landed episode."""
    return complete_partitions(lake, LANDING)


def list_landed_episodes(lake: Lake, day: str, robot: str) -> list[str]:
    """Episode ids landed completely (``metadata.yaml`` present) in a partition, sorted."""
    return complete_units(lake, landing_prefix(day, robot))


def landed_episodes(lake: Lake) -> dict[str, tuple[str, str]]:
    """``{episode_id: (capture_day, robot_id)}`` of every episode landed completely (its
    ``metadata.yaml`` present) anywhere in the landing area: the episodes the lake knows."""
    out: dict[str, tuple[str, str]] = {}
    for day, robot, episode in complete_landings(lake, LANDING):
        out.setdefault(episode, (day, robot))
    return out


def known_episode_ids(lake: Lake) -> set[str]:
    """Episode ids the lake knows: landed (:func:`landed_episodes`) or published to the raw layer
    (``raw-mcap/<day>/<robot>/<episode>/…``; a raw episode outlives its landing copy only if the
    landing area was cleaned by hand)."""
    ids = set(landed_episodes(lake))
    for key in lake.list_keys(RAW):
        segs = key.split("/")
        if len(segs) == 5:
            ids.add(segs[3])
    return ids
