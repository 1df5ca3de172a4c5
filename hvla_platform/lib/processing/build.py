"""Convert the ingested raw episodes of one partition into synchronised HDF5 episodes.

The partition's HDF5 files are published together as one artifact,
``episodes-hdf5/<day>/<robot>/`` (``<episode_id>.h5`` files + manifest). Re-running with the same
raw inputs and config is a no-op (``status: cached``). A new version (an episode landed or withdrawn)
converts only the episodes the previous version does not already hold with the same raw sha256,
profile, config and platform version (:mod:`hvla_platform.lib.processing.reuse`); the others are
carried over, and the new ones are converted in parallel (:mod:`hvla_platform.lib.processing.pool`).

Processing checks (names used by the Dagster asset checks):

``camera_coverage``   per camera, the fraction of frames with an image within the skew bound is
                      at least ``min_camera_coverage``
``alignment_skew``    the largest |image stamp - frame time| over covered frames is ≤ the bound
``no_nan``            state, velocity, action, locomotion command (profiles with one) and extras
                      are finite

Each raw episode is read the way its robot profile says (``robot.profile`` of its
``metadata.yaml``; :mod:`hvla_platform.lib.formats.recording.profile`), in two passes whose memory
does not grow with the episode (:mod:`hvla_platform.lib.processing.convert`); its HDF5 file records
the profile as ``profile`` (``name@version``).

What the recording says about itself travels with the episode: the ``outcome`` of its
``metadata.yaml`` (``success``, ``min_distance_m``) is read from the raw layer and stored in the
HDF5 file's ``outcome`` attribute and in the episode's QA results row (``conversions[i].outcome``).
The HDF5 files and the QA report name the raw MCAP by its lake key (``source_key``), never by a
filesystem path or URI, so the artifact's bytes do not depend on where the lake is mounted.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from hvla_platform.lib.core.keys import episodes_prefix, quarantine_prefix, raw_prefix
from hvla_platform.lib.core.lake import Lake, LocalLake, sha256_file
from hvla_platform.lib.core.manifest import (Content, EpisodesManifest, InputRef, known_links, load_manifest,
                                            publish_if_changed)
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.core.yaml_io import safe_load_yaml
from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.bags.layout import read_rosbag2_metadata
from hvla_platform.lib.formats.episode_h5 import FORMAT_VERSION
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.metadata import (
    RecordingMetadata,
    RecordingMetadataError,
    parse_recording_metadata,
)
from hvla_platform.lib.formats.recording.profile import ProfileError, RobotProfile, load_profile
from hvla_platform.lib.ingest.landing import METADATA
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.processing.convert import (
    SyncConfig,
    plan_cameras,
    scan_recording,
    synchronise,
    to_episode,
    write_episode_file,
)
from hvla_platform.lib.processing.pool import ordered_map
from hvla_platform.lib.processing.qa.duplicates import LakeEpisodeIndex, apply_lake_checks
from hvla_platform.lib.processing.qa.metrics import QA_CHECKS, assess_signals, assess_streams
from hvla_platform.lib.processing.qa.report import save_thumbnails, thumbnail_frames, write_qa_report
from hvla_platform.lib.processing.qa.robot_limits import joint_limits
from hvla_platform.lib.processing.qa.score import quality_score
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.processing.reuse import Candidate, carry_files, episode_files, reusable_episodes
from hvla_platform.lib.processing.sync import coverage

PROCESSING_CHECKS = ("camera_coverage", "alignment_skew", "no_nan")


@dataclass
class EpisodeConversion:
    """Outcome of converting one raw episode.

    ``status``: ``converted`` or ``failed`` (then ``reason`` says why and the episode is
    quarantined). ``coverage``/``max_skew_s`` are per camera; ``nan_count`` counts non-finite
    values over the low-dimensional streams. ``outcome`` is the recording's own
    ``{"success": bool, "min_distance_m": float | None}`` (``metadata.yaml``), ``None`` when it
    states none. ``profile`` is the robot profile the recording was read with (``name@version``;
    empty when it could not be determined).
    """

    episode_id: str
    status: str
    reason: str = ""
    num_frames: int = 0
    duration_s: float = 0.0
    coverage: dict[str, float] = field(default_factory=dict)
    max_skew_s: dict[str, float] = field(default_factory=dict)
    nan_count: int = 0
    file: str = ""
    sha256: str = ""
    task: str = ""
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    qa_checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    qa_metrics: dict[str, Any] = field(default_factory=dict)
    quality_score: float | None = None
    quality_components: dict[str, float] = field(default_factory=dict)
    thumbnails: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] | None = None
    profile: str = ""


@dataclass
class PartitionConversion:
    """Outcome of :func:`convert_partition`."""

    capture_day: str
    robot_id: str
    status: str  # "materialized" or "cached"
    uri: str
    episodes: list[EpisodeConversion]
    skipped: list[dict[str, Any]]
    rights: Rights
    manifest: EpisodesManifest
    reused: list[str] = field(default_factory=list)  # episodes carried over from the previous version

    @property
    def manifest_prefix(self) -> str:
        """Lake prefix of the partition's HDF5 artifact."""
        return episodes_prefix(self.capture_day, self.robot_id)

    @property
    def converted(self) -> list[EpisodeConversion]:
        """Episodes written to HDF5 (in this run or carried over from the previous version)."""
        return [e for e in self.episodes if e.status == "converted"]

    @property
    def attempted(self) -> list[str]:
        """Episodes this run converted (read their raw MCAP), not carried over; empty when cached."""
        return [] if self.status == "cached" else [e.episode_id for e in self.episodes if e.episode_id not in self.reused]

    def failing(self, check: str) -> list[str]:
        """Episode ids that failed ``check`` (among those that reached conversion)."""
        return [e.episode_id for e in self.episodes if not e.checks.get(check, {}).get("passed", False)]


def _episode_checks(conv: EpisodeConversion, cfg: SyncConfig) -> dict[str, dict[str, Any]]:
    if conv.status != "converted" and not conv.coverage:
        na = {"passed": False, "detail": f"not converted: {conv.reason}"}
        return {c: dict(na) for c in PROCESSING_CHECKS}
    low = {c: v for c, v in conv.coverage.items() if v < cfg.min_camera_coverage}
    skew_bad = {c: v for c, v in conv.max_skew_s.items() if v > cfg.max_camera_skew_s}
    return {
        "camera_coverage": {"passed": not low, "detail": ", ".join(f"{c} {v:.1%}" for c, v in conv.coverage.items())},
        "alignment_skew": {"passed": not skew_bad,
                           "detail": ", ".join(f"{c} {v * 1e3:.1f} ms" for c, v in conv.max_skew_s.items())},
        "no_nan": {"passed": conv.nan_count == 0, "detail": f"{conv.nan_count} non-finite value(s)"},
    }


def recording_profile(recording: str | os.PathLike[str]) -> RobotProfile:
    """The robot profile a local recording follows: ``robot.profile`` of the recording folder's
    ``metadata.yaml`` (the folder itself, or the folder holding the bag file given), the default
    profile when the file names none or the recording has no ``metadata.yaml`` (a bare bag).

    Raises:
        RecordingMetadataError: the ``metadata.yaml`` breaks its contract.
        ProfileError: it names an unknown profile (or another version than the one installed).
    """
    recording = Path(recording)
    folder = recording if recording.is_dir() else recording.parent
    meta = folder / METADATA
    if not meta.is_file() or read_rosbag2_metadata(folder) is not None:  # a rosbag2 directory's own file
        return load_profile(None)
    try:
        doc = safe_load_yaml(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RecordingMetadataError(f"{meta.name}: cannot be read: {exc}") from exc
    return load_profile(parse_recording_metadata(doc, source=meta.name).profile_name)


def _failed(episode_id: str, reason: str, cfg: SyncConfig, outcome: dict[str, Any] | None,
            profile: str = "") -> EpisodeConversion:
    conv = EpisodeConversion(episode_id=episode_id, status="failed", reason=reason, outcome=outcome, profile=profile)
    conv.checks = _episode_checks(conv, cfg)
    return conv


def convert_episode(recording: str | os.PathLike[str], out_dir: Path, *, day: str, robot: str, episode_id: str,
                    cfg: SyncConfig = SyncConfig(), attrs: dict[str, Any], qa: QAThresholds = QAThresholds(),
                    outcome: dict[str, Any] | None = None,
                    profile: RobotProfile | str | None = None) -> EpisodeConversion:
    """Decode, QA and synchronise one local recording; write ``out_dir/<episode_id>.h5`` if it
    passes the processing checks (the QA checks only flag: quarantine by score happens at release
    time). Memory does not grow with the episode's length (two passes,
    :mod:`hvla_platform.lib.processing.convert`).

    Args:
        recording: the recording folder (its bag in any layout
            :func:`~hvla_platform.lib.formats.bags.bag.open_bag` reads, and its ``metadata.yaml``),
            or a bag file (``.mcap``, ``.bag``, ``.db3``) or rosbag2 directory. Read, never modified.
        cfg: synchronisation settings (``fps`` None: the profile's).
        attrs: HDF5 file attributes (:mod:`~hvla_platform.lib.formats.episode_h5`: lake keys, never
            local paths).
        outcome: see :func:`recording_outcome`; stored as the ``outcome`` attribute and on the
            returned conversion.
        profile: the robot profile (or its name); None reads it from the recording's
            ``metadata.yaml`` (:func:`recording_profile`).

    Never raises for bad input (a broken recording, an unknown or inconsistent profile); returns
    ``status="failed"`` with the reason instead.
    """
    attrs = {**attrs, "outcome": outcome}
    recording = Path(recording)
    try:
        prof = profile if isinstance(profile, RobotProfile) else (
            load_profile(profile) if profile is not None else recording_profile(recording))
    except (ProfileError, RecordingMetadataError) as exc:
        return _failed(episode_id, f"bad_profile: {exc}", cfg, outcome)
    try:
        bag = open_bag(recording)
        where = str(bag.layout.display)
        streams, scans = scan_recording(bag, prof, path=where, saturated_level=qa.saturated_level)
    except RawLogError as exc:
        return _failed(episode_id, f"{exc.reason}: {exc.detail}", cfg, outcome, prof.key)
    try:
        synced = synchronise(streams, cfg, path=where, cameras=scans)
        ep = to_episode(streams, synced, episode_id=episode_id, robot_id=robot, capture_day=day, attrs=attrs)
    except RawLogError as exc:
        conv = _failed(episode_id, f"{exc.reason}: {exc.detail}", cfg, outcome, prof.key)
        conv.qa_checks, conv.qa_metrics = assess_streams(streams, scans, None, qa)
        return conv
    try:
        qa_checks, qa_metrics = assess_streams(streams, scans, ep, qa)
        sig_checks, sig_metrics = assess_signals(streams, ep, qa)
    except ProfileError as exc:
        return _failed(episode_id, f"bad_profile: {exc}", cfg, outcome, prof.key)
    qa_checks.update(sig_checks)
    qa_metrics.update(sig_metrics)
    score, components = quality_score(qa_checks, qa_metrics, qa)
    low = [ep.state, ep.velocity, ep.action] + ([ep.locomotion_command] if ep.locomotion_command is not None else [])
    low += list(ep.extras.values())
    conv = EpisodeConversion(
        episode_id=episode_id, status="converted", num_frames=ep.num_frames,
        duration_s=float(ep.timestamps[-1]) if ep.num_frames else 0.0,
        coverage={c: coverage(s, cfg.max_camera_skew_s) for c, s in ep.skew.items()},
        max_skew_s={c: float(s[s <= cfg.max_camera_skew_s].max(initial=0.0)) for c, s in ep.skew.items()},
        nan_count=int(sum((~np.isfinite(a)).sum() for a in low)), task=ep.task,
        qa_checks={k: qa_checks[k] for k in QA_CHECKS}, qa_metrics=qa_metrics, quality_score=score,
        quality_components=components, outcome=outcome, profile=prof.key,
    )
    conv.checks = _episode_checks(conv, cfg)
    flagged = {**conv.checks, **conv.qa_checks}
    plans = plan_cameras(prof, scans, synced)
    frames = thumbnail_frames(flagged)
    want = {(cam, plan.message_of_frame(f)) for cam, plan in plans.items() for f in frames if 0 <= f < ep.num_frames}
    failed = [f"{n}: {c['detail']}" for n, c in conv.checks.items() if not c["passed"]]
    out_path = None if failed else out_dir / f"{episode_id}.h5"
    try:
        written, pixels = write_episode_file(bag, prof, ep, plans, out_path, path=where, want=want)
    except RawLogError as exc:
        conv.status, conv.reason = "failed", f"{exc.reason}: {exc.detail}"
        conv.file = conv.sha256 = ""
        return conv
    images = {cam: {f: pixels[(cam, plan.message_of_frame(f))] for f in frames
                    if 0 <= f < ep.num_frames and (cam, plan.message_of_frame(f)) in pixels}
              for cam, plan in plans.items()}
    conv.thumbnails = save_thumbnails(out_dir, episode_id, flagged, images)
    if failed:
        conv.status, conv.reason = "failed", "; ".join(failed)
        return conv
    assert written is not None
    conv.file, conv.sha256 = written.name, sha256_file(written)
    return conv


def _recording_metadata(lake: Lake, day: str, robot: str, episode_id: str) -> RecordingMetadata | None:
    """The raw episode's validated ``metadata.yaml`` (None when it has none).

    Raises:
        RecordingMetadataError: the file no longer keeps its contract (ingest published it valid).
    """
    key = f"{raw_prefix(day, robot, episode_id)}/{METADATA}"
    if not lake.exists(key):
        return None
    return parse_recording_metadata(safe_load_yaml(lake.read_bytes(key)), source=lake.uri(key))


def _outcome_of(meta: RecordingMetadata | None) -> dict[str, Any] | None:
    if meta is None or meta.outcome is None:
        return None
    return {"success": bool(meta.outcome.success),
            "min_distance_m": None if meta.outcome.min_distance_m is None else float(meta.outcome.min_distance_m)}


def recording_outcome(lake: Lake, day: str, robot: str, episode_id: str) -> dict[str, Any] | None:
    """The ``outcome`` block of a raw episode's ``metadata.yaml``
    (``raw-mcap/<day>/<robot>/<episode>/metadata.yaml``, validated by
    :func:`~hvla_platform.lib.formats.recording.metadata.parse_recording_metadata`) as
    ``{"success": bool, "min_distance_m": float | None}`` (distance in metres), or ``None`` when
    the file states no outcome or the raw episode has no ``metadata.yaml``.

    Raises:
        RecordingMetadataError: the file no longer keeps its contract (ingest published it valid).
    """
    return _outcome_of(_recording_metadata(lake, day, robot, episode_id))


def local_recording(lake: Lake, day: str, robot: str, episode_id: str, scratch: Path) -> tuple[Path, bool]:
    """A local folder holding every file of the raw episode ``raw-mcap/<day>/<robot>/<episode>/``:
    the lake's own folder for a local lake (read in place, never modified), else a copy of every
    object under the episode's prefix (relative paths kept) in ``scratch/<episode>/``.

    Returns:
        ``(folder, copied)``: ``copied`` tells whether the caller should remove it.

    Raises:
        FileNotFoundError: the raw episode holds no file.
    """
    prefix = raw_prefix(day, robot, episode_id)
    if isinstance(lake, LocalLake):
        folder = lake.path(prefix)
        if not folder.is_dir():
            raise FileNotFoundError(f"no raw episode at {lake.uri(prefix)}")
        return folder, False
    keys = lake.list_keys(prefix + "/")
    if not keys:
        raise FileNotFoundError(f"no raw episode at {lake.uri(prefix)}")
    folder = scratch / episode_id
    for key in keys:
        lake.get_file(key, folder / key[len(prefix) + 1:])
    return folder, True


@dataclass(frozen=True)
class EpisodeJob:
    """One raw episode to convert (picklable: what a pool worker gets, :func:`convert_job`).

    ``recording`` is the local folder (or bag) to read; the other fields are
    :func:`convert_episode`'s arguments.
    """

    recording: str
    out_dir: str
    day: str
    robot: str
    episode_id: str
    cfg: SyncConfig
    qa: QAThresholds
    outcome: dict[str, Any] | None
    profile: RobotProfile
    attrs: dict[str, Any]


def convert_job(job: EpisodeJob) -> EpisodeConversion:
    """:func:`convert_episode` of one :class:`EpisodeJob` (the pool workers' entry point)."""
    return convert_episode(job.recording, Path(job.out_dir), day=job.day, robot=job.robot,
                           episode_id=job.episode_id, cfg=job.cfg, qa=job.qa, outcome=job.outcome,
                           profile=job.profile, attrs=job.attrs)


def convert_partition(lake: Lake, day: str, robot: str, cfg: SyncConfig = SyncConfig(), *,
                      qa: QAThresholds = QAThresholds(),
                      progress: Callable[[str], None] | None = None,
                      workers: int | None = None) -> PartitionConversion:
    """Convert the convertible raw episodes of a partition and publish the HDF5 artifact,
    **incrementally**: episodes the previously published version already holds with the same raw
    MCAP (sha256), robot profile, config and platform version are carried over (HDF5 file, QA
    thumbnails, ``conversions`` row; :mod:`hvla_platform.lib.processing.reuse`), the others are
    converted, in parallel on ``workers`` processes (default
    :func:`~hvla_platform.lib.processing.pool.default_workers`: ``$HVLA_CONVERT_WORKERS`` or
    ``min(2, CPUs)``; results in partition order, the same bytes as one process).

    Raises:
        FileNotFoundError: the raw partition was never ingested.
        ValueError: no episode of the partition is convertible.
        TableError: the partition index read, or the QA results written/re-read, do not match their
            schemas (:mod:`hvla_platform.lib.core.tables`).
        RecordingMetadataError: a raw episode's ``metadata.yaml`` breaks its contract
            (:func:`recording_outcome`).
        hvla_platform.lib.processing.pool.WorkerDied: a conversion worker process died (nothing is
            published).

    Each episode is converted with the robot profile its ``metadata.yaml`` names (an unknown profile
    fails that episode with reason ``bad_profile``), at ``cfg.fps`` or, when None, the profile's
    fps; a failed episode is quarantined with its reason, the others are published. The lake-wide
    QA checks (duplicates, truncated recordings) and the QA report are redone over every episode,
    reused or new. On an S3 lake every file of a raw episode to convert is first copied to a local
    scratch folder (removed once it is converted); a local lake's raw folder is read in place.
    Withdrawn (revoked) episodes leave the artifact.
    """
    index = read_partition_index(lake, day, robot)
    revoked = revoked_episodes(lake)
    usable = [e for e in index["episodes"] if e["convertible"] and e["episode_id"] not in revoked]
    skipped = [{"episode_id": e["episode_id"], "reasons": e["reasons"]} for e in index["episodes"] if not e["convertible"]]
    skipped += [{"episode_id": e["episode_id"], "reasons": [revoked[e["episode_id"]]]} for e in index["episodes"]
                if e["convertible"] and e["episode_id"] in revoked]
    if not usable:
        raise ValueError(f"partition {day}|{robot} has no convertible raw episode; see {lake.uri(raw_prefix(day, robot))}")
    metas = {e["episode_id"]: _recording_metadata(lake, day, robot, e["episode_id"]) for e in usable}
    profiles: dict[str, RobotProfile | str] = {}  # episode -> its profile, or why it has none
    for ep_id, meta in metas.items():
        try:
            profiles[ep_id] = load_profile(meta.profile_name if meta is not None else None)
        except ProfileError as exc:
            profiles[ep_id] = f"bad_profile: {exc}"
    # the profiles' name@version take part in the fingerprint: a new profile version rebuilds
    config = {"fps": cfg.fps, "max_camera_skew_s": cfg.max_camera_skew_s, "min_camera_coverage": cfg.min_camera_coverage,
              "qa": qa.to_dict(), "hdf5_format_version": FORMAT_VERSION,
              "profiles": sorted({p.key if isinstance(p, RobotProfile) else "(unknown)" for p in profiles.values()})}
    inputs = [InputRef(key=e["mcap_key"], sha256=e["sha256"], kind="raw_mcap", episode_ids=[e["episode_id"]])
              for e in usable]
    prefix = episodes_prefix(day, robot)
    where = f"{lake.uri(lake.manifest_key(prefix))} (conversions)"
    conversions: list[EpisodeConversion] = []
    reused_ids: list[str] = []
    known_files: dict[str, dict[str, Any]] = {}  # hard links to the replaced version: hashes known

    def write(out: Path) -> Content:
        work = out.parent / "in"
        previous = load_manifest(lake, prefix, EpisodesManifest)  # under the build lock: the version we replace
        candidates = [Candidate(e["episode_id"], e["mcap_key"], e["sha256"], p.key) for e in usable
                      if isinstance(p := profiles[e["episode_id"]], RobotProfile)]
        prev_files = {f.path: f for f in (previous.files or [])} if previous is not None else {}
        sizes = {rel: f.bytes for rel, f in prev_files.items()}
        done: dict[str, EpisodeConversion] = {}
        for ep, row in reusable_episodes(previous, config, candidates).items():
            if carry_files(lake, prefix, row, out, sizes=sizes):
                done[ep] = EpisodeConversion(**copy.deepcopy(row))
                reused_ids.append(ep)
                if isinstance(lake, LocalLake):  # hard links to the published version: hashes known
                    known_files.update(known_links(out, lake.path(prefix), list(prev_files.values()),
                                                   episode_files(row)))
        jobs: list[EpisodeJob] = []
        for e in usable:
            ep = e["episode_id"]
            prof = profiles[ep]
            if ep in done:
                continue
            if isinstance(prof, str):  # the recording names a profile this installation cannot load
                done[ep] = _failed(ep, prof, cfg, _outcome_of(metas[ep]))
                continue
            mcap_key = e["mcap_key"].split(raw_prefix(day, robot, ep), 1)[-1].lstrip("/")
            jobs.append(EpisodeJob(
                recording="", out_dir=str(out), day=day, robot=robot, episode_id=ep, cfg=cfg, qa=qa,
                outcome=_outcome_of(metas[ep]), profile=prof, attrs={
                    "source_key": f"{raw_prefix(day, robot, ep)}/{mcap_key}", "source_sha256": e["sha256"],
                    "rights": e["rights"], "operator": e["metadata"].get("operator") or "",
                    "site": e["metadata"].get("site") or ""}))
        if progress and reused_ids:
            progress(f"reusing {len(reused_ids)} episode(s) of {day}|{robot} converted before")
        copies: dict[str, Path] = {}

        def fetch(job: EpisodeJob) -> EpisodeJob:  # runs here, just before a worker gets the job
            if progress:
                progress(f"converting {day}|{robot}|{job.episode_id}")
            local, copied = local_recording(lake, day, robot, job.episode_id, work)
            if copied:
                copies[job.episode_id] = local
            return replace(job, recording=str(local))

        def release(job: EpisodeJob) -> None:
            local = copies.pop(job.episode_id, None)
            if local is not None:
                shutil.rmtree(local, ignore_errors=True)

        if len(jobs) > 1:  # load once here what every worker needs: forked workers inherit it
            for prof in {j.profile.key: j.profile for j in jobs}.values():
                try:
                    joint_limits(prof)
                except ProfileError:
                    pass  # each episode's conversion fails with this error and its reason (assess_signals)
        for job, conv in zip(jobs, ordered_map(convert_job, jobs, workers=workers, before=fetch, after=release,
                                               describe=lambda j: f"{day}|{robot}|{j.episode_id}")):
            done[job.episode_id] = conv
        known = LakeEpisodeIndex.from_lake(lake)  # lake-wide QA: duplicates (processing/qa/duplicates.py)
        for e in usable:  # in partition order, reused or new: the same results as converting all again
            ep = e["episode_id"]
            conv = done[ep]
            meta = metas[ep]
            apply_lake_checks(conv, lake=lake, day=day, robot=robot, sha256=e["sha256"], index=known, qa=qa,
                              stated_s=None if meta is None or meta.duration_s is None else float(meta.duration_s))
            conversions.append(conv)
            if conv.status != "converted":
                lake.write_json(f"{quarantine_prefix(day, robot, ep)}/reason.json", {
                    "episode_id": ep, "capture_day": day, "robot_id": robot, "stage": "episodes_hdf5",
                    "reasons": [conv.reason], "sha256": e["sha256"], "raw_key": e["mcap_key"]})
        conv_dicts = [asdict(c) for c in conversions]
        write_qa_report(out, partition=f"{day}|{robot}", conversions=conv_dicts, skipped=skipped,
                        thresholds=qa.to_dict(), thumbnails={c.episode_id: c.thumbnails for c in conversions})
        ok = [c for c in conversions if c.status == "converted"]
        if not ok:
            raise ValueError(f"partition {day}|{robot}: no episode converted: "
                             + "; ".join(f"{c.episode_id}: {c.reason}" for c in conversions))
        ok_ids = {c.episode_id for c in ok}
        rights = combine_rights(Rights.from_dict(e["rights"]) for e in usable if e["episode_id"] in ok_ids)
        rows = check_qa_results(conv_dicts, where=where)
        return Content(rights=rights, episode_ids=[c.episode_id for c in ok], known_files=known_files,
                       extra={"capture_day": day, "robot_id": robot, "conversions": rows, "skipped": skipped})

    published = publish_if_changed(lake, prefix, artifact_type="episodes_hdf5", inputs=inputs, config=config,
                                   write=write)
    manifest = published.manifest
    if published.status == "cached":
        conversions = [EpisodeConversion(**e) for e in check_qa_results(manifest.conversions, where=where)]
    return PartitionConversion(day, robot, published.status, published.uri, conversions, skipped, published.rights,
                               manifest, reused=list(reused_ids))
