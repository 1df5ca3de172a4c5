"""Seed-003 teleop episode folders into the lake: landing, write-once raw publication, raw checks.

A **teleop episode folder** (docs/teleop.md) holds seed 003's ``frame_NNNN.pkl`` files and
``episode_meta.json`` (:mod:`hvla_platform.lib.formats.teleop.pkl_episode`), the platform's
``metadata.yaml`` declaring ``format: seed003_pkl`` (identity, ``robot.profile``, the rights block:
:mod:`hvla_platform.lib.formats.recording.metadata`) and optionally ``operator_notes.md``. It is
partitioned like a robot recording, by capture day × robot:

==========================================================  =====================================
``landing/_teleop/<day>/<robot>/<episode>/…``               :func:`land_teleop_episode`: the
                                                            folder's files byte for byte,
                                                            write-once, ``metadata.yaml`` last
``raw-teleop/<day>/<robot>/<episode>/…`` + manifest         :func:`ingest_teleop_partition`: the
                                                            same files (WORM until the rights'
                                                            retention date where the store
                                                            enforces it) and a
                                                            ``raw_teleop_episode`` manifest
                                                            (``RawTeleopEpisodeManifest``)
``raw-teleop/<day>/<robot>/_partition.json``                the last ingest's outcome per episode
``quarantine/_teleop/<day>/<robot>/<episode>/reason.json``  why an episode is not usable (files
                                                            copied under ``files/`` when they were
                                                            not published)
``quarantine/_rejected/<digest>/``                          folders refused at landing (as for
                                                            robot recordings)
==========================================================  =====================================

The landing copy is never modified or deleted; raw objects are never replaced (a different content
under a published episode id is a ``conflict``). Raw checks (:data:`TELEOP_CHECKS`; the Dagster
asset ``raw_teleop`` reports each):

``readable``       every frame loads with the restricted unpickler (a refused global such as
                   ``os.system`` is named with its file), has exactly the seed's keys, types and
                   shapes; ``episode_meta.json`` keeps its contract
``frames_complete`` frames ``0 … N-1`` without gaps or duplicates; ``num_frames``,
                   ``phase_counts`` and ``phase_segments`` agree with the frames
``phases``         every label is one of seed 003's four, the first is ``teleop``, the labels never go
                   back in the order teleop → skill → correction → skill_resume, and a phase occurs
                   only after its predecessor (correction after a skill, skill_resume after a correction)
``monotonic``      frame stamps strictly increase; each camera's stamps strictly increase
``frame_rate``     the median frame interval is within :data:`FRAME_RATE_TOLERANCE` of ``1 / fps``
``camera_skew``    every image stamp is within :data:`MAX_CAMERA_SKEW_S` of its frame's stamp
``image_shapes``   both cameras' images are ``(256, 256, 3) uint8`` (:data:`IMAGE_SHAPE`)
``gripper_range``  every ``gripper_pos`` is within 0–255
``rights``         ``metadata.yaml`` keeps its contract, declares ``format: seed003_pkl``, has a valid
                   rights block, and names the ids the episode landed under

An episode is published to raw when it is readable and its rights are valid (raw is evidence); it
is usable downstream (:func:`load_raw_teleop_episodes`) only when every check passed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hvla_platform.lib.core.keys import (
    TELEOP_LANDING,
    UnsafeIdError,
    check_day,
    check_id,
    raw_teleop_prefix,
    teleop_landing_prefix,
    teleop_quarantine_prefix,
)
from hvla_platform.lib.core.lake import Lake, sha256_file
from hvla_platform.lib.core.manifest import InputRef, RawTeleopEpisodeManifest, build_manifest, load_manifest
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.core.withdrawals import Withdrawals
from hvla_platform.lib.formats.teleop.episode import CAMERAS, GRIPPER_MAX, PHASES, TeleopEpisode
from hvla_platform.lib.formats.teleop.meta import META_NAME, TeleopFormatError, meta_problems
from hvla_platform.lib.formats.teleop.pkl_episode import (
    CAMERA_STAMPS,
    FRAME_RE,
    list_folder,
    load_frame,
    read_meta,
    read_teleop_episode,
)
from hvla_platform.lib.ingest.landing import (METADATA, NOTES, LandingResult, complete_partitions,
    complete_units, keep_files, land_files, read_identity, read_landing_metadata, reject, start_landing)
from hvla_platform.lib.ingest.raw import (CheckedOutcome, PartitionIngestResult, check_rights,
    commit_manifest, ingest_landed_partition, publish_retained)

#: The ``metadata.yaml`` ``format`` of a teleop episode folder.
TELEOP_FORMAT = "seed003_pkl"
#: Raw check names, in the order they are reported.
TELEOP_CHECKS: tuple[str, ...] = ("readable", "frames_complete", "phases", "monotonic", "frame_rate", "camera_skew",
                                  "image_shapes", "gripper_range", "rights")
#: Largest allowed |image stamp − frame stamp|, seconds (1.5 frame periods at seed 003's 30 Hz).
MAX_CAMERA_SKEW_S = 0.050
#: Largest allowed relative difference between the median frame interval and ``1 / fps``.
FRAME_RATE_TOLERANCE = 0.20
#: The image shape of both cameras (seed 003, "Frame Format": ``(256, 256, 3) uint8``).
IMAGE_SHAPE = (256, 256, 3)
#: Artifact type of a raw teleop episode's manifest; input kind under which consumers name it.
RAW_TELEOP_TYPE, RAW_TELEOP_KIND = "raw_teleop_episode", "raw_teleop"


# ---- landing -------------------------------------------------------------------------------------

def find_teleop_episodes(src: str | Path) -> list[Path]:
    """Folders under ``src`` (recursively, ``src`` included) holding a ``frame_NNNN.pkl`` or an
    ``episode_meta.json``: candidate teleop episode folders (a folder with frames but no
    ``metadata.yaml`` is included so :func:`land_teleop_episode` rejects it with a reason)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(Path(src), followlinks=False):
        dirnames.sort()
        if META_NAME in filenames or any(FRAME_RE.fullmatch(n) for n in filenames):
            out.append(Path(dirpath))
    return sorted(out)


def _folder_problem(folder: Path, shown: str) -> str:
    """Why ``folder`` is not a teleop episode folder by its names alone ("" when it looks like one)."""
    links = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    if links:
        return f"{shown}: {links} are symbolic links; an episode folder must consist of regular files"
    listing = list_folder(folder)
    if not listing.frames:
        return f"{shown}: no frame_NNNN.pkl files (a seed-003 episode folder holds its frames and {META_NAME})"
    stray = [n for n in listing.others if n not in (METADATA, NOTES)]
    if stray:
        return (f"{shown}: unexpected {stray}; a seed-003 episode folder holds only frame_NNNN.pkl, {META_NAME}, "
                f"{METADATA} and {NOTES}")
    return ""


def land_teleop_episode(lake: Lake, folder: str | Path, *, source: str | None = None,
                        withdrawals: Withdrawals | None = None) -> LandingResult:
    """Copy one teleop episode folder to ``landing/_teleop/<day>/<robot>/<episode>/`` (write-once;
    ``metadata.yaml`` last, so an episode is landed once its metadata is there).

    Never raises for bad input: a folder without ``metadata.yaml``, with unreadable or unsafe ids,
    whose ``metadata.yaml`` does not declare ``format: seed003_pkl``, without frames, with other
    files or symbolic links is ``rejected`` (one-line reason naming the file; a copy and
    ``reason.json`` under ``quarantine/_rejected/``, as for robot recordings). A withdrawn
    episode or consent gives ``withdrawn`` (nothing copied); a different file already landed under
    the same key gives ``conflict`` (nothing replaced). The source folder is only read.

    Raises:
        OSError: ``folder`` is not a readable folder, or the lake cannot be written.
    """
    folder = Path(folder)
    shown = source or str(folder)
    meta_path = folder / METADATA
    if not meta_path.is_file() or meta_path.is_symlink():
        problem = _folder_problem(folder, shown)
        return reject(lake, folder, problem or f"{shown}: no {METADATA}; a teleop episode folder needs one "
                                               "(episode_id, robot.id, capture_date, format: seed003_pkl, rights)",
                      source)
    read = read_landing_metadata(lake, folder, meta_path, shown, source)
    if isinstance(read, LandingResult):
        return read
    metadata, (day, robot, episode) = read
    if metadata.get("format") != TELEOP_FORMAT:
        return reject(lake, folder, f"{shown}/{METADATA}: format is {metadata.get('format')!r}; a teleop episode "
                                    f"folder declares format: {TELEOP_FORMAT}", source, metadata)
    problem = _folder_problem(folder, shown)
    if problem:
        return reject(lake, folder, problem, source, metadata)
    result = start_landing(lake, shown, (day, robot, episode), metadata, withdrawals)
    if result.status == "withdrawn":
        return result
    listing = list_folder(folder)
    files = [p for _, p in listing.frames] + ([listing.meta] if listing.meta else []) \
        + ([folder / NOTES] if (folder / NOTES).is_file() else []) + [meta_path]
    # metadata.yaml last: it marks the episode complete
    result.status, result.reason = land_files(lake, teleop_landing_prefix(day, robot, episode),
                                              [(p, p.name) for p in files], shown)
    return result


def list_teleop_landing_partitions(lake: Lake) -> list[tuple[str, str]]:
    """``(capture_day, robot_id)`` pairs with at least one completely landed teleop episode."""
    return complete_partitions(lake, TELEOP_LANDING)


def list_landed_teleop_episodes(lake: Lake, day: str, robot: str) -> list[str]:
    """Episode ids of a partition landed completely (``metadata.yaml`` present), sorted."""
    return complete_units(lake, teleop_landing_prefix(day, robot))


# ---- raw checks ----------------------------------------------------------------------------------

def _ok(detail: str) -> dict[str, Any]:
    return {"passed": True, "detail": detail}


def _fail(detail: str) -> dict[str, Any]:
    return {"passed": False, "detail": detail}


def check_phase_order(phases: list[str] | tuple[str, ...]) -> tuple[bool, str]:
    """The ``phases`` check on a frame-ordered list of labels (see the module docstring)."""
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        first = next(i for i, p in enumerate(phases) if p in unknown)
        return False, f"unknown phase label(s) {unknown} (first at frame {first}); expected one of {list(PHASES)}"
    if not phases:
        return False, "no frames"
    if phases[0] != "teleop":
        return False, f"the first frame is {phases[0]!r}; recording starts with teleop (seed 003)"
    rank = [PHASES.index(p) for p in phases]
    for i in range(1, len(rank)):
        if rank[i] < rank[i - 1]:
            return False, (f"frame {i} goes back from {phases[i - 1]!r} to {phases[i]!r} (expected order "
                           f"{' -> '.join(PHASES)})")
    present = sorted(set(rank))
    gaps = [PHASES[r] for r in present if r > 0 and r - 1 not in present]
    if gaps:
        return False, f"{gaps} without the phase before it ({' -> '.join(PHASES)})"
    counts = {p: phases.count(p) for p in PHASES if p in phases}
    return True, f"phases in order: {counts}"


@dataclass
class _FrameSummary:
    """What the checks need from the frames, without their images."""

    names: list[str] = field(default_factory=list)
    stamps: list[float] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    grippers: list[int] = field(default_factory=list)
    cam_stamps: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in CAMERAS})
    shapes: dict[str, set[tuple[int, ...]]] = field(default_factory=lambda: {c: set() for c in CAMERAS})


def evaluate_teleop_folder(folder: Path, metadata_path: Path, *, metadata_source: str | None = None,
                           expected_ids: tuple[str, str, str] | None = None,
                           ) -> tuple[dict[str, dict[str, Any]], dict[str, Any], Rights | None, dict]:
    """Run the raw checks (:data:`TELEOP_CHECKS`) on a local teleop episode folder.

    Frames are loaded one at a time (restricted unpickler), so memory stays at one frame.
    ``expected_ids``: ``(day, robot, episode)`` the episode landed under; ``metadata.yaml`` must
    name them.

    Returns:
        ``(checks, info, rights or None, metadata mapping)``; ``info`` has ``num_frames``, ``fps``,
        ``phase_counts``, ``skill_outcome`` (when readable). Never raises for bad input: every
        failed check's detail names the file or frame at fault.
    """
    checks: dict[str, dict[str, Any]] = {}

    def teleop_contract(metadata: dict) -> None:
        if metadata.get("format") != TELEOP_FORMAT:
            raise RightsError(f"format is {metadata.get('format')!r}, expected {TELEOP_FORMAT}")
        try:
            ident = read_identity(metadata)
        except UnsafeIdError as exc:
            raise RightsError(str(exc)) from exc
        if expected_ids is not None and ident != expected_ids:
            raise RightsError(f"it names {ident}, but the episode landed as {expected_ids}")

    source = metadata_source or metadata_path.name
    checks["rights"], rights, metadata = check_rights(metadata_path, source, shown=source, contract=teleop_contract)
    info: dict[str, Any] = {}
    listing = list_folder(folder)
    summary = _FrameSummary()
    meta = None
    try:
        if listing.meta is None:
            raise TeleopFormatError(f"{META_NAME} missing")
        meta = read_meta(listing.meta)
        if not listing.frames:
            raise TeleopFormatError("no frame_NNNN.pkl files")
        for _, p in listing.frames:
            f = load_frame(p)
            summary.names.append(p.name)
            summary.stamps.append(f["timestamp"])
            summary.phases.append(f["phase"])
            summary.grippers.append(f["gripper_pos"])
            for cam in CAMERAS:
                summary.cam_stamps[cam].append(f[CAMERA_STAMPS[cam]])
                summary.shapes[cam].add(tuple(f[cam].shape))
        checks["readable"] = _ok(f"{len(listing.frames)} frames and {META_NAME} read (restricted unpickler)")
    except TeleopFormatError as exc:
        checks["readable"] = _fail(str(exc))
    if not checks["readable"]["passed"] or meta is None:
        for name in TELEOP_CHECKS:
            checks.setdefault(name, _fail("not checked: the episode is unreadable"))
        return {n: checks[n] for n in TELEOP_CHECKS}, info, rights, metadata
    info = {"num_frames": len(summary.names), "fps": float(meta.fps),
            "phase_counts": {p: summary.phases.count(p) for p in PHASES if p in summary.phases},
            "skill_outcome": meta.skill_outcome}
    problems = []
    if listing.missing_indices:
        gone = listing.missing_indices
        problems.append(f"missing frame(s) {[f'frame_{i:04d}.pkl' for i in gone[:10]]}"
                        + (f" and {len(gone) - 10} more" if len(gone) > 10 else ""))
    if listing.duplicate_indices:
        problems.append(f"frame index(es) {listing.duplicate_indices[:10]} named by two files")
    problems += [f"{META_NAME}: {p}" for p in meta_problems(meta, summary.phases)]
    checks["frames_complete"] = _fail("; ".join(problems)) if problems else _ok(
        f"frames 0..{len(summary.names) - 1} present; {META_NAME} agrees")
    checks["phases"] = dict(zip(("passed", "detail"), check_phase_order(summary.phases)))
    bad = []
    for what, stamps in [("frame", summary.stamps)] + [(c, summary.cam_stamps[c]) for c in CAMERAS]:
        steps = np.diff(np.asarray(stamps))
        back = np.flatnonzero(steps <= 0)
        if back.size:
            bad.append(f"{what} stamps do not increase at {summary.names[int(back[0]) + 1]} "
                       f"({back.size} step(s) <= 0)")
    checks["monotonic"] = _fail("; ".join(bad)) if bad else _ok("frame and camera stamps strictly increasing")
    if len(summary.stamps) < 2:
        checks["frame_rate"] = _fail("fewer than 2 frames: no rate to measure")
    else:
        median = float(np.median(np.diff(summary.stamps)))
        want = 1.0 / float(meta.fps)
        off = abs(median - want) / want
        detail = f"median frame interval {median * 1e3:.1f} ms, {META_NAME} fps {meta.fps:g} ({want * 1e3:.1f} ms)"
        checks["frame_rate"] = _ok(detail) if off <= FRAME_RATE_TOLERANCE else _fail(
            f"{detail}: {off:.0%} off (> {FRAME_RATE_TOLERANCE:.0%})")
    skews = {c: np.abs(np.asarray(summary.cam_stamps[c]) - np.asarray(summary.stamps)) for c in CAMERAS}
    worst = {c: (float(s.max()), summary.names[int(s.argmax())]) for c, s in skews.items()}
    over = [f"{c} {v * 1e3:.1f} ms at {n}" for c, (v, n) in worst.items() if v > MAX_CAMERA_SKEW_S]
    checks["camera_skew"] = _fail(f"image stamp off its frame's by more than {MAX_CAMERA_SKEW_S * 1e3:.0f} ms: "
                                  + "; ".join(over)) if over else _ok(
        "max |image - frame stamp|: " + ", ".join(f"{c} {v * 1e3:.1f} ms" for c, (v, _) in worst.items()))
    wrong = {c: sorted(s) for c, s in summary.shapes.items() if s != {IMAGE_SHAPE}}
    checks["image_shapes"] = _fail(f"expected {IMAGE_SHAPE} uint8 images, found {wrong}") if wrong else _ok(
        f"every image {IMAGE_SHAPE} uint8")
    g = np.asarray(summary.grippers)
    out = np.flatnonzero((g < 0) | (g > GRIPPER_MAX))
    checks["gripper_range"] = _fail(f"gripper_pos {int(g[out[0]])} at {summary.names[int(out[0])]} outside "
                                    f"0-{GRIPPER_MAX} ({out.size} frame(s))") if out.size else _ok(
        f"gripper_pos within {int(g.min())}..{int(g.max())}")
    return {n: checks[n] for n in TELEOP_CHECKS}, info, rights, metadata


# ---- raw publication -----------------------------------------------------------------------------

@dataclass
class TeleopOutcome(CheckedOutcome):
    """What ingest concluded about one landed teleop episode.

    ``status``: ``published`` (newly in raw), ``cached`` (already in raw, same content),
    ``quarantined`` (not publishable: unreadable or no valid rights), ``conflict`` (raw holds other
    content under this id; nothing replaced). ``checks`` maps :data:`TELEOP_CHECKS` to ``{"passed",
    "detail"}``; ``raw_key`` is the raw episode's prefix when published; ``sha256`` the episode's
    content digest (:func:`episode_digest`). :attr:`usable` (in raw with every check passed: it
    may enter training targets), ``reasons`` and ``to_dict`` (with ``usable`` and ``reasons``) come
    from :class:`~hvla_platform.lib.ingest.raw.CheckedOutcome`.
    """

    episode_id: str
    status: str
    sha256: str = ""
    raw_key: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    rights: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def episode_digest(entries: list[tuple[str, str]]) -> str:
    """sha256 of the lines ``<relative path>\\0<sha256>\\n`` of ``entries`` (the frames in index
    order, then ``episode_meta.json``): the content digest of a teleop episode."""
    return hashlib.sha256("".join(f"{p}\0{s}\n" for p, s in entries).encode()).hexdigest()


def _quarantine(lake: Lake, day: str, robot: str, outcome: TeleopOutcome, files: list[Path], copy: bool) -> None:
    prefix = teleop_quarantine_prefix(day, robot, outcome.episode_id)
    if copy:
        keep_files(lake, f"{prefix}/files", [(p, p.name) for p in files])  # may be kept by an earlier run
    lake.write_json(f"{prefix}/reason.json", {
        "episode_id": outcome.episode_id, "capture_day": day, "robot_id": robot, "stage": "raw_teleop",
        "status": outcome.status, "reason": "; ".join(outcome.reasons) or outcome.status,
        "reasons": outcome.reasons, "sha256": outcome.sha256,
        "landing_key": teleop_landing_prefix(day, robot, outcome.episode_id),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })


def _publish(lake: Lake, day: str, robot: str, ep: str, rec: Path, files: list[Path], outcome: TeleopOutcome,
             rights: Rights) -> str:
    prefix = raw_teleop_prefix(day, robot, ep)
    existing = load_manifest(lake, prefix, RawTeleopEpisodeManifest)
    if existing is not None:
        return "cached" if existing.episode_sha256 == outcome.sha256 else "conflict"
    if publish_retained(lake, prefix, [(p, p.name) for p in files], rights):
        return "conflict"
    md = outcome.metadata
    manifest = build_manifest(
        artifact_type=RAW_TELEOP_TYPE, artifact_key=prefix,
        inputs=[InputRef(key=teleop_landing_prefix(day, robot, ep), sha256=outcome.sha256, kind="landing_teleop",
                         episode_ids=[ep])],
        config={}, rights=rights, local_dir=rec, episode_ids=[ep],
        extra={"episode_sha256": outcome.sha256, "capture_day": day, "robot_id": robot,
               "num_frames": outcome.info["num_frames"], "fps": outcome.info["fps"],
               "phase_counts": outcome.info["phase_counts"], "skill_outcome": outcome.info["skill_outcome"],
               "checks": outcome.checks, **{k: md.get(k) for k in ("operator", "site", "customer", "task")}})
    return commit_manifest(lake, prefix, manifest)


def ingest_teleop_episode(lake: Lake, day: str, robot: str, ep: str) -> TeleopOutcome:
    """Check one landed teleop episode, publish it to ``raw-teleop/`` when readable with valid
    rights, and quarantine it (``reason.json``) when any check failed (module docstring).

    Raises:
        UnsafeIdError: ``day``, ``robot`` or ``ep`` is not a safe id.
        OSError: the lake cannot be read or written.
    """
    check_day(day), check_id(robot, "robot id"), check_id(ep, "episode id")
    lp = teleop_landing_prefix(day, robot, ep)
    with scratch_dir("hvla-ingest-teleop", lake.scratch_root()) as tmpd:
        rec = tmpd / ep
        rec.mkdir()
        for key in lake.list_keys(lp):
            name = key[len(lp) + 1:]
            check_id(name, "landed file name")  # landing wrote flat, checked names; never trust a key as a path
            lake.get_file(key, rec / name)
        checks, info, rights, metadata = evaluate_teleop_folder(
            rec, rec / METADATA, metadata_source=f"{lp}/{METADATA}", expected_ids=(day, robot, ep))
        listing = list_folder(rec)
        data_files = [p for _, p in listing.frames] + ([listing.meta] if listing.meta else [])
        files = data_files + sorted(rec / n for n in listing.others)
        outcome = TeleopOutcome(episode_id=ep, status="quarantined", checks=checks, info=info,
                                rights=rights.to_dict() if rights else None,
                                metadata={k: metadata.get(k) for k in ("operator", "site", "customer", "task",
                                                                       "capture_date")},
                                sha256=episode_digest([(p.name, sha256_file(p)) for p in data_files]))
        publishable = checks["readable"]["passed"] and checks["rights"]["passed"] and rights is not None
        if publishable:
            assert rights is not None
            outcome.status = _publish(lake, day, robot, ep, rec, files, outcome, rights)
            if outcome.status in ("published", "cached"):
                outcome.raw_key = raw_teleop_prefix(day, robot, ep)
            else:
                outcome.checks["readable"] = _fail("raw-teleop already holds different content for this episode id; "
                                                   "nothing replaced")
        if not outcome.usable:
            _quarantine(lake, day, robot, outcome, files, copy=not publishable)
        return outcome


@dataclass
class TeleopPartitionResult(PartitionIngestResult):
    """Outcome of :func:`ingest_teleop_partition` for one (capture_day, robot_id) partition;
    ``to_dict`` is the JSON form of ``raw-teleop/<day>/<robot>/_partition.json`` (``capture_day``,
    ``robot_id``, ``episodes``: each :meth:`TeleopOutcome.to_dict`)."""

    episodes: list[TeleopOutcome]  # type: ignore[assignment]  # the teleop outcomes


def ingest_teleop_partition(lake: Lake, day: str, robot: str) -> TeleopPartitionResult:
    """Ingest every completely landed teleop episode of a partition and write its
    ``_partition.json``.

    Raises:
        UnsafeIdError: ``day`` or ``robot`` is not a safe id.
        ValueError: no teleop episode landed for the partition (the message names where they were
            expected).
    """
    check_day(day), check_id(robot, "robot id")
    return ingest_landed_partition(lake, day, robot, landing=teleop_landing_prefix, raw=raw_teleop_prefix,
                                   landed=list_landed_teleop_episodes, ingest_one=ingest_teleop_episode,
                                   result=TeleopPartitionResult, what="teleop episodes", unit="episode")


# ---- reading raw episodes back ---------------------------------------------------------------------

def _partition_pair(p: str | tuple[str, str]) -> tuple[str, str]:
    if isinstance(p, str):
        day, sep, robot = p.partition("|")
        if not sep:
            raise ValueError(f"partition {p!r} is not <capture day>|<robot id>")
        return check_day(day), check_id(robot, "robot id")
    return check_day(p[0]), check_id(p[1], "robot id")


def load_raw_teleop_episodes(lake: Lake, partitions: Iterable[str | tuple[str, str]],
                             ) -> list[tuple[InputRef, TeleopEpisode]]:
    """The usable raw teleop episodes of ``partitions`` (``"day|robot"`` keys or ``(day, robot)``
    pairs), read into memory, in partition then episode order.

    An episode is usable when its raw manifest records every check passed and neither it nor a
    consent it declares was withdrawn. Each file is fetched from ``raw-teleop/`` and its sha256
    compared with the manifest before the folder is read (:func:`read_teleop_episode`).

    Returns:
        ``[(input, episode)]``: ``input`` is the :class:`InputRef` a derived artifact records
        (``key`` = ``raw-teleop/<day>/<robot>/<episode>``, ``sha256`` = the raw manifest's sha256,
        ``kind`` = ``raw_teleop``, ``episode_ids`` = ``[episode]``); ``episode`` holds the frames
        (``images[cam]`` ``(T, 256, 256, 3) uint8``: ~0.4 MB per frame in memory).

    Raises:
        FileNotFoundError: a partition has no raw teleop episode at all.
        ValueError: a malformed partition.
        TeleopFormatError: a raw file no longer matches its manifest, or cannot be read.
    """
    out: list[tuple[InputRef, TeleopEpisode]] = []
    withdrawals = Withdrawals.load(lake)
    for part in partitions:
        day, robot = _partition_pair(part)
        prefixes = [p for p in lake.list_artifacts(raw_teleop_prefix(day, robot)) if p.count("/") == 3]
        if not prefixes:
            raise FileNotFoundError(f"no raw teleop episodes in partition {day}|{robot} "
                                    f"({lake.uri(raw_teleop_prefix(day, robot))}); run the raw_teleop asset")
        for prefix in prefixes:
            m = load_manifest(lake, prefix, RawTeleopEpisodeManifest)
            if m is None or not all(c.get("passed") for c in m.checks.values()):
                continue
            ep = m.episode_ids[0]
            if withdrawals.reason(ep, {"rights": {"consent_refs": m.rights.get("consent_refs", [])}}):
                continue
            with scratch_dir("hvla-raw-teleop", lake.scratch_root()) as tmpd:
                folder = tmpd / ep
                for f in m.files or []:
                    if f.path == METADATA or f.path == NOTES:
                        continue
                    local = lake.get_file(f"{prefix}/{f.path}", folder / f.path)
                    if sha256_file(local) != f.sha256:
                        raise TeleopFormatError(f"{prefix}/{f.path}: sha256 differs from the raw manifest's")
                episode = read_teleop_episode(folder, episode_id=ep)
            out.append((InputRef(key=prefix, sha256=m.sha256(), kind=RAW_TELEOP_KIND, episode_ids=[ep]), episode))
    return out
