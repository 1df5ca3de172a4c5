"""Convert the ingested raw episodes of one partition into synchronised HDF5 episodes.

The partition's HDF5 files are published together as one artifact,
``episodes-hdf5/<day>/<robot>/`` (``<episode_id>.h5`` files + manifest). Re-running with the same
raw inputs and config is a no-op (``status: cached``).

Processing checks (names used by the Dagster asset checks):

``camera_coverage``   per camera, the fraction of frames with an image within the skew bound is
                      at least ``min_camera_coverage``
``alignment_skew``    the largest |image stamp - frame time| over covered frames is ≤ the bound
``no_nan``            state, velocity, action and locomotion command are finite

What the recording says about itself travels with the episode: the ``outcome`` of its
``metadata.yaml`` (``success``, ``min_distance_m``) is read from the raw layer and stored in the
HDF5 file's ``outcome`` attribute and in the episode's QA results row (``conversions[i].outcome``).
The HDF5 files and the QA report name the raw MCAP by its lake key (``source_key``), never by a
filesystem path or URI, so the artifact's bytes do not depend on where the lake is mounted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml

from hvla_platform.lib.processing.convert import SyncConfig, decode_cameras, synchronise, to_episode
from hvla_platform.lib.processing.qa.duplicates import LakeEpisodeIndex, apply_lake_checks
from hvla_platform.lib.processing.qa.metrics import QA_CHECKS, assess_signals, assess_streams
from hvla_platform.lib.processing.qa.report import save_thumbnails, write_qa_report
from hvla_platform.lib.processing.qa.score import quality_score
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform.lib.formats.episode_h5 import FORMAT_VERSION, write_episode_h5
from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata
from hvla_platform.lib.ingest.landing import METADATA
from hvla_platform.lib.core.keys import episodes_prefix, quarantine_prefix, raw_prefix
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.core.manifest import Content, EpisodesManifest, InputRef, publish_if_changed
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.core.lake import Lake, sha256_file
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.processing.sync import coverage

PROCESSING_CHECKS = ("camera_coverage", "alignment_skew", "no_nan")


@dataclass
class EpisodeConversion:
    """Outcome of converting one raw episode.

    ``status``: ``converted`` or ``failed`` (then ``reason`` says why and the episode is
    quarantined). ``coverage``/``max_skew_s`` are per camera; ``nan_count`` counts non-finite
    values over the low-dimensional streams. ``outcome`` is the recording's own
    ``{"success": bool, "min_distance_m": float | None}`` (``metadata.yaml``), ``None`` when it
    states none.
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

    @property
    def manifest_prefix(self) -> str:
        """Lake prefix of the partition's HDF5 artifact."""
        return episodes_prefix(self.capture_day, self.robot_id)

    @property
    def converted(self) -> list[EpisodeConversion]:
        """Episodes written to HDF5."""
        return [e for e in self.episodes if e.status == "converted"]

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


def convert_episode(mcap_path: Path, out_dir: Path, *, day: str, robot: str, episode_id: str, cfg: SyncConfig,
                    attrs: dict[str, Any], qa: QAThresholds = QAThresholds(),
                    outcome: dict[str, Any] | None = None) -> EpisodeConversion:
    """Decode, QA and synchronise one local MCAP; write ``out_dir/<episode_id>.h5`` if it passes
    the processing checks (the QA checks only flag: quarantine by score happens at release time).

    ``attrs`` become HDF5 file attributes (:mod:`~hvla_platform.lib.formats.episode_h5`: lake keys,
    never local paths); ``outcome`` (see :func:`recording_outcome`) is stored as the ``outcome``
    attribute and on the returned conversion.

    Never raises for bad input; returns ``status="failed"`` with the reason instead.
    """
    attrs = {**attrs, "outcome": outcome}
    try:
        streams = read_episode_streams(mcap_path)
        cams = decode_cameras(streams, path=mcap_path)
    except RawLogError as exc:
        conv = EpisodeConversion(episode_id=episode_id, status="failed", reason=f"{exc.reason}: {exc.detail}",
                                 outcome=outcome)
        conv.checks = _episode_checks(conv, cfg)
        return conv
    try:
        synced = synchronise(streams, cfg, path=mcap_path, cameras=cams)
        ep = to_episode(streams, synced, episode_id=episode_id, robot_id=robot, capture_day=day, fps=cfg.fps,
                        attrs=attrs)
    except RawLogError as exc:
        conv = EpisodeConversion(episode_id=episode_id, status="failed", reason=f"{exc.reason}: {exc.detail}",
                                 outcome=outcome)
        conv.checks = _episode_checks(conv, cfg)
        conv.qa_checks, conv.qa_metrics = assess_streams(streams, cams, None, qa)
        return conv
    qa_checks, qa_metrics = assess_streams(streams, cams, ep, qa)
    sig_checks, sig_metrics = assess_signals(streams, ep, qa)
    qa_checks.update(sig_checks)
    qa_metrics.update(sig_metrics)
    score, components = quality_score(qa_checks, qa_metrics, qa)
    low = np.concatenate([ep.state.ravel(), ep.velocity.ravel(), ep.action.ravel(), ep.locomotion_command.ravel()])
    conv = EpisodeConversion(
        episode_id=episode_id, status="converted", num_frames=ep.num_frames,
        duration_s=float(ep.timestamps[-1]) if ep.num_frames else 0.0,
        coverage={c: coverage(s, cfg.max_camera_skew_s) for c, s in ep.skew.items()},
        max_skew_s={c: float(s[s <= cfg.max_camera_skew_s].max(initial=0.0)) for c, s in ep.skew.items()},
        nan_count=int((~np.isfinite(low)).sum()), task=ep.task,
        qa_checks={k: qa_checks[k] for k in QA_CHECKS}, qa_metrics=qa_metrics, quality_score=score,
        quality_components=components, outcome=outcome,
    )
    conv.checks = _episode_checks(conv, cfg)
    conv.thumbnails = save_thumbnails(out_dir, episode_id, {**conv.checks, **conv.qa_checks}, ep.images)
    failed = [f"{n}: {c['detail']}" for n, c in conv.checks.items() if not c["passed"]]
    if failed:
        conv.status, conv.reason = "failed", "; ".join(failed)
        return conv
    path = write_episode_h5(out_dir / f"{episode_id}.h5", ep)
    conv.file, conv.sha256 = path.name, sha256_file(path)
    return conv


def recording_outcome(lake: Lake, day: str, robot: str, episode_id: str) -> dict[str, Any] | None:
    """The ``outcome`` block of a raw episode's ``metadata.yaml``
    (``raw-mcap/<day>/<robot>/<episode>/metadata.yaml``, validated by
    :func:`~hvla_platform.lib.formats.recording.metadata.parse_recording_metadata`) as
    ``{"success": bool, "min_distance_m": float | None}`` (distance in metres), or ``None`` when
    the file states no outcome or the raw episode has no ``metadata.yaml``.

    Raises:
        RecordingMetadataError: the file no longer keeps its contract (ingest published it valid).
    """
    key = f"{raw_prefix(day, robot, episode_id)}/{METADATA}"
    if not lake.exists(key):
        return None
    meta = parse_recording_metadata(yaml.safe_load(lake.read_bytes(key)), source=lake.uri(key))
    if meta.outcome is None:
        return None
    return {"success": bool(meta.outcome.success),
            "min_distance_m": None if meta.outcome.min_distance_m is None else float(meta.outcome.min_distance_m)}


def convert_partition(lake: Lake, day: str, robot: str, cfg: SyncConfig = SyncConfig(), *,
                      qa: QAThresholds = QAThresholds(),
                      progress: Callable[[str], None] | None = None) -> PartitionConversion:
    """Convert every convertible raw episode of a partition and publish the HDF5 artifact.

    Raises:
        FileNotFoundError: the raw partition was never ingested.
        ValueError: no episode of the partition is convertible.
        TableError: the partition index read, or the QA results written/re-read, do not match their
            schemas (:mod:`hvla_platform.lib.core.tables`).
        RecordingMetadataError: a raw episode's ``metadata.yaml`` breaks its contract
            (:func:`recording_outcome`).
    """
    index = read_partition_index(lake, day, robot)
    revoked = revoked_episodes(lake)
    usable = [e for e in index["episodes"] if e["convertible"] and e["episode_id"] not in revoked]
    skipped = [{"episode_id": e["episode_id"], "reasons": e["reasons"]} for e in index["episodes"] if not e["convertible"]]
    skipped += [{"episode_id": e["episode_id"], "reasons": [revoked[e["episode_id"]]]} for e in index["episodes"]
                if e["convertible"] and e["episode_id"] in revoked]
    if not usable:
        raise ValueError(f"partition {day}|{robot} has no convertible raw episode; see {lake.uri(raw_prefix(day, robot))}")
    config = {"fps": cfg.fps, "max_camera_skew_s": cfg.max_camera_skew_s, "min_camera_coverage": cfg.min_camera_coverage,
              "qa": qa.to_dict(), "hdf5_format_version": FORMAT_VERSION}
    inputs = [InputRef(key=e["mcap_key"], sha256=e["sha256"], kind="raw_mcap", episode_ids=[e["episode_id"]])
              for e in usable]
    prefix = episodes_prefix(day, robot)
    where = f"{lake.uri(lake.manifest_key(prefix))} (conversions)"
    conversions: list[EpisodeConversion] = []

    def write(out: Path) -> Content:
        work = out.parent / "in"
        known = LakeEpisodeIndex.from_lake(lake)  # lake-wide QA: duplicates (processing/qa/duplicates.py)
        for e in usable:
            ep = e["episode_id"]
            if progress:
                progress(f"converting {day}|{robot}|{ep}")
            mcap_key = e["mcap_key"].split(raw_prefix(day, robot, ep), 1)[-1].lstrip("/")
            source_key = f"{raw_prefix(day, robot, ep)}/{mcap_key}"
            local = lake.get_file(source_key, work / f"{ep}.mcap")
            conv = convert_episode(local, out, day=day, robot=robot, episode_id=ep, cfg=cfg, qa=qa,
                                   outcome=recording_outcome(lake, day, robot, ep), attrs={
                "source_key": source_key, "source_sha256": e["sha256"], "rights": e["rights"],
                "operator": e["metadata"].get("operator") or "", "site": e["metadata"].get("site") or "",
            })
            apply_lake_checks(conv, lake=lake, day=day, robot=robot, sha256=e["sha256"], index=known, qa=qa)
            conversions.append(conv)
            local.unlink()
            if conv.status != "converted":
                lake.write_json(f"{quarantine_prefix(day, robot, ep)}/reason.json", {
                    "episode_id": ep, "capture_day": day, "robot_id": robot, "stage": "episodes_hdf5",
                    "reasons": [conv.reason], "sha256": e["sha256"], "raw_key": e["mcap_key"]})
        write_qa_report(out, partition=f"{day}|{robot}", conversions=[asdict(c) for c in conversions], skipped=skipped,
                        thresholds=qa.to_dict(), thumbnails={c.episode_id: c.thumbnails for c in conversions})
        ok = [c for c in conversions if c.status == "converted"]
        if not ok:
            raise ValueError(f"partition {day}|{robot}: no episode converted: "
                             + "; ".join(f"{c.episode_id}: {c.reason}" for c in conversions))
        ok_ids = {c.episode_id for c in ok}
        rights = combine_rights(Rights.from_dict(e["rights"]) for e in usable if e["episode_id"] in ok_ids)
        rows = check_qa_results([asdict(c) for c in conversions], where=where)
        return Content(rights=rights, episode_ids=[c.episode_id for c in ok],
                       extra={"capture_day": day, "robot_id": robot, "conversions": rows, "skipped": skipped})

    published = publish_if_changed(lake, prefix, artifact_type="episodes_hdf5", inputs=inputs, config=config,
                                   write=write)
    manifest = published.manifest
    if published.status == "cached":
        conversions = [EpisodeConversion(**e) for e in check_qa_results(manifest.conversions, where=where)]
    return PartitionConversion(day, robot, published.status, published.uri, conversions, skipped, published.rights,
                               manifest)
