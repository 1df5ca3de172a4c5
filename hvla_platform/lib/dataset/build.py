"""Build a dataset release (LeRobot v3.0) from the lake and publish it, idempotently."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from hvla_platform.lib.core.keys import LEROBOT, episodes_prefix
from hvla_platform.lib.dataset.lerobot_extend import extend_lerobot_dataset
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.lerobot_release import (
    STATS_FILE, EpisodeQA, build_lerobot_dataset, dataset_card, feature_schema, load_and_probe, read_hvla_episodes,
    read_info)
from hvla_platform.lib.dataset.release_qa import (
    JOINT_FEATURES, PreviousVersion, ReleaseQA, ReleaseQAThresholds, run_release_checks)
from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, Published, fingerprint, known_links, load_manifest,
    publish_if_changed)
from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import Selection, lerobot_prefix, select_episodes
from hvla_platform.lib.dataset.versions import adopt_unversioned, next_version, reserve_version
from hvla_platform.lib.core.rights import combine_rights
from hvla_platform.lib.core.lake import Lake, LocalLake


@dataclass
class ReleaseBuild(Published):
    """:class:`~hvla_platform.lib.core.manifest.Published` plus the episode selection the release
    was built from (what the ``episode_count`` check compares the written dataset with) and the
    spec of the version built or found (``spec.name`` is its version id)."""

    selection: Selection
    spec: ReleaseSpec
    how: str = ""  # "incremental" (the base version's episodes reused), "full", or "" (cached)
    base: str = ""  # the version an incremental build reused, or the one a full build could not reuse
    reason: str = ""  # why the build was full (no previous version, or why it could not be reused)

    @property
    def release_qa(self) -> ReleaseQA | None:
        """The release checks' findings recorded in the manifest (``None`` for a version built
        before release checks existed)."""
        found = getattr(self.manifest, "release_checks", None)
        return ReleaseQA.from_dict(found) if found else None


_SNAPSHOT = re.compile(r"-\d{8}$")


def previous_line_release(lake: Lake, spec: ReleaseSpec) -> LeRobotDatasetManifest | None:
    """The most recently published release of ``spec``'s line — any version of its spec, and for a
    nightly snapshot ``<name>-<YYYYMMDD>`` any version of ``<name>`` and of its other snapshots —
    other than ``spec.name`` itself; ``None`` when there is none. It is the base an incremental
    build tries to reuse (:mod:`~hvla_platform.lib.dataset.lerobot_extend`)."""
    base = _SNAPSHOT.sub("", spec.spec_name)
    line = re.compile(rf"^{re.escape(base)}(-\d{{8}})?(\.\d+)?$")
    best = None
    for prefix in lake.list_artifacts(f"{LEROBOT}/{spec.repo_id}"):
        m = load_manifest(lake, prefix, LeRobotDatasetManifest)
        if m and m.release != spec.name and line.match(m.release) and (
                best is None or (m.created_at, m.version, m.release) > (best.created_at, best.version, best.release)):
            best = m  # version, then name (snapshot dates) break ties within one created_at second
    return best


def _inputs(lake: Lake, sel: Selection) -> list[InputRef]:
    """One input per selected episode; its ``extra.profile`` is the robot profile key the episode's
    HDF5 names (``<name>@<version>``), so the manifest records the exact profile version of every
    episode (the fingerprint reads only keys and hashes, so it is unchanged by this record)."""
    return [InputRef(key=e.hdf5_key, sha256=e.hdf5_sha256, kind="episodes_hdf5", episode_ids=[e.episode_id],
                     extra={"raw_mcap_key": e.raw_mcap_key, "raw_sha256": e.raw_sha256, "capture_day": e.capture_day,
                            "robot_id": e.robot_id, "operator": e.operator, "site": e.site, "profile": e.profile})
            for e in sel.episodes]


def episode_qa_metrics(sel: Selection) -> dict[str, dict]:
    """Each selected episode's ``qa_metrics`` as its conversion recorded them (read once, by
    :func:`~hvla_platform.lib.dataset.releases.select_episodes`); an episode whose row has none maps
    to ``{}`` (the release checks then report its camera statistics as not measured)."""
    return {e.episode_id: e.qa_metrics for e in sel.episodes}


def _joint_names(feats: dict) -> dict[str, list[str]]:
    """Dimension names of the joint features (:data:`~hvla_platform.lib.dataset.release_qa.JOINT_FEATURES`)
    of a ``features`` block (``meta/info.json`` or a manifest's feature schema)."""
    return {k: list(feats[k].get("names") or []) for k in JOINT_FEATURES if k in feats}


def previous_version_stats(lake: Lake, previous: LeRobotDatasetManifest | None) -> PreviousVersion | None:
    """What the drift check needs of the previous version of the release line: its
    ``meta/stats.json`` (``None`` when it has none) and dimension names (its manifest's feature
    schema); ``None`` without a previous version."""
    if previous is None:
        return None
    key = f"{previous.artifact_key}/{STATS_FILE}"
    stats = json.loads(lake.read_bytes(key)) if lake.exists(key) else None
    return PreviousVersion(release=previous.release, stats=stats,
                           feature_names=_joint_names(previous.feature_schema.get("features", {})))


def release_checks_of(root: Path, spec: ReleaseSpec, previous: PreviousVersion | None,
                      qa_metrics: dict[str, dict]) -> ReleaseQA:
    """The release checks (:func:`~hvla_platform.lib.dataset.release_qa.run_release_checks`) of
    the LeRobot dataset written at ``root`` with ``spec``, with the thresholds of ``spec.qa``."""
    stats_path = root / STATS_FILE
    return run_release_checks(
        read_hvla_episodes(root), stats=json.loads(stats_path.read_text()) if stats_path.exists() else None,
        feature_names=_joint_names(read_info(root)["features"]),
        previous=previous, qa_metrics=qa_metrics, cameras=list(spec.cameras),
        thresholds=ReleaseQAThresholds.with_overrides(spec.qa))


def episode_qa(sel: Selection) -> dict[str, EpisodeQA]:
    """Each selected episode's QA as the release records it: ``approved`` when it failed
    ``min_quality`` or a QA gate and a supervisor approved it (the note says why and who), else
    ``passed``; with its quality score."""
    return {e.episode_id: EpisodeQA(status="approved" if e.episode_id in sel.approved else "passed",
                                    quality_score=e.quality_score, note=sel.approved.get(e.episode_id, ""))
            for e in sel.episodes}


def build_release(lake: Lake, spec: ReleaseSpec, *, progress: Callable[[str], None] | None = None) -> ReleaseBuild:
    """Select the spec's episodes, write the LeRobot dataset with LeRobot's writer, reload it with
    LeRobot (decoding a video frame) and publish it as a **new immutable version** of the release
    under ``lerobot/<repo_id>/<version id>/`` — unless the release's latest version has the same
    fingerprint (same episodes and their HDF5 content, decisions, spec and platform version), which
    is returned ``cached``. A published version is never rewritten (lib/dataset/versions.py).
    The release holds episodes of the spec's robot profile only: the others are listed in the
    manifest's ``excluded`` with a reason starting ``other_profile``
    (:func:`~hvla_platform.lib.dataset.releases.select_episodes`); each input records its episode's
    profile key (``inputs[].extra.profile``) and the dataset card the release's.
    The codecs' own output goes to :func:`~hvla_platform.lib.dataset.codec_log.codec_log_path`
    (``$HVLA_HOME/logs/codec/<release>.log``); ``progress`` gets one line per episode.

    **Incremental**: when the release line has a published version (:func:`previous_line_release`:
    the spec's latest version, or for a nightly snapshot the line's latest snapshot), the new
    version reuses its encoded episodes and writes only the new ones
    (:func:`~hvla_platform.lib.dataset.lerobot_extend.extend_lerobot_dataset`); when it cannot
    (an episode withdrawn, rejected or re-converted, a split, codec or feature change, a version
    predating incremental builds) the build is full. ``progress`` gets a line saying which and
    why; the result's ``how``/``base``/``reason`` say it too. Either way the version holds the
    same episodes, frames and statistics (the order of episodes within a split can differ:
    lerobot_extend.py).

    **Release checks** (:mod:`~hvla_platform.lib.dataset.release_qa`, warnings that never block
    nor exclude an episode) are computed on the written dataset, against the previous version of
    the line (:func:`previous_version_stats`) and with the episodes' QA metrics
    (:func:`episode_qa_metrics`); the findings are recorded in the manifest's ``release_checks``
    and on the dataset card (rewritten here: "Coverage and balance", "Release checks"), and
    ``progress`` gets one line per check that did not pass.

    ``spec`` is the registered spec (version 0's name); the returned manifest's ``release`` is the
    version id built or found.

    Raises:
        FileNotFoundError, ValueError: see :func:`~hvla_platform.lib.dataset.releases.select_episodes`.
        LeRobotReleaseError: see :func:`~hvla_platform.lib.dataset.lerobot_release.build_lerobot_dataset`.
        ImmutableArtifactError: another build published the version being built meanwhile.
    """
    spec = spec.with_version(0)
    sel = select_episodes(lake, spec)
    config = {"spec": spec.to_dict(), "spec_sha256": spec.digest(),
              "excluded": sel.excluded, "approved": sel.approved}  # decisions change the fingerprint
    inputs = _inputs(lake, sel)
    adopt_unversioned(lake, spec)
    plan = next_version(lake, spec, fingerprint([i.to_dict() for i in inputs], config))
    if plan.cached is not None:
        record, m = plan.cached
        return ReleaseBuild("cached", record.prefix, lake.uri(record.prefix), m, selection=sel,
                            spec=record.release_spec())
    if not plan.reserved:
        reserve_version(lake, spec, plan.version)
    spec = spec.with_version(plan.version)
    by_key = {e.hdf5_key: e for e in sel.episodes}
    say = progress or (lambda _m: None)
    log = codec_log_path(spec.name)

    previous = previous_line_release(lake, spec)
    how: dict[str, str] = {"how": "full", "base": "", "reason": "no previous version of this release line"}

    def write(root: Path) -> Content:
        rights = combine_rights(e.rights for e in sel.episodes)
        with contextlib.ExitStack() as stack:
            local_paths: list[Path] = []
            source_uris: dict[str, str] = {}
            dirs: dict[str, Path] = {}
            for e in sel.episodes:
                part = episodes_prefix(e.capture_day, e.robot_id)
                if part not in dirs:
                    dirs[part] = stack.enter_context(lake.local_artifact(part))
                p = dirs[part] / e.hdf5_key[len(part) + 1:]
                local_paths.append(p)
                source_uris[str(p)] = e.hdf5_key  # the lake key, never this lake's URI (relocatable)
            dataset = root / "dataset"  # LeRobot's writer wants to create its root itself
            # ffmpeg/libx264 statistics (~350 lines) go to the log; the progress line per episode stays
            say(f"writing {len(sel.episodes)} episode(s) with LeRobot; codec output → {log}")
            with codec_output_to(log):
                if previous is None:
                    say("full build: no previous version of this release line")
                    result = build_lerobot_dataset(spec, local_paths, dataset, rights=rights.to_dict(),
                                                   progress=progress, hdf5_keys=source_uris, episode_qa=episode_qa(sel))
                else:
                    prev_root = stack.enter_context(lake.local_artifact(previous.artifact_key))
                    ext = extend_lerobot_dataset(
                        spec, prev_root, local_paths, dataset, rights=rights.to_dict(), progress=say,
                        hdf5_keys=source_uris, episode_qa=episode_qa(sel),
                        episode_ids={str(p): e.episode_id for p, e in zip(local_paths, sel.episodes)},
                        hdf5_sha256={e.episode_id: e.hdf5_sha256 for e in sel.episodes})
                    result = ext.result
                    how.update(how=ext.how, base=previous.release, reason=ext.reason)
                    say(f"{ext.how} build from {previous.release}: {ext.reused} episode(s) reused, {ext.new} written"
                        + (f" (previous version not reusable: {ext.reason})" if ext.reason else ""))
        with codec_output_to(log):
            probe = load_and_probe(dataset, spec.repo_id)
        ts = check_lerobot_timestamps(dataset)
        info = read_info(dataset)
        # release checks: the card (rewritten here) and the manifest carry the same findings
        result.release_checks = release_checks_of(dataset, spec, previous_version_stats(lake, previous),
                                                  episode_qa_metrics(sel))
        card = dataset / "README.md"
        card.unlink()  # a new file, never written through a link to the previous version's
        card.write_text(dataset_card(spec, result, read_hvla_episodes(dataset), rights.to_dict()))
        for c in result.release_checks.checks:
            if c.status != "passed":
                say(f"release check {c.check}: {c.status.replace('_', ' ')} — {c.detail}")
        for child in dataset.iterdir():
            child.rename(root / child.name)
        dataset.rmdir()
        # files hard-linked from the previous version (its videos, train data): their hashes are known
        known = (known_links(root, lake.path(previous.artifact_key), previous.files)
                 if previous is not None and isinstance(lake, LocalLake) else {})
        return Content(rights=rights, episode_ids=result.episode_ids, known_files=known, extra={
            "release": spec.name, "spec_name": spec.spec_name, "version": spec.version,
            "repo_id": spec.repo_id, "codebase_version": info.get("codebase_version"),
            "num_episodes": result.num_episodes, "num_frames": result.num_frames, "fps": result.fps,
            "episode_index": {ep: i for i, ep in enumerate(result.episode_ids)},
            "train_episode_ids": result.train_episode_ids, "heldout_episode_ids": result.heldout_episode_ids,
            "train_episode_indices": result.train_episode_indices,
            "heldout_episode_indices": result.heldout_episode_indices,
            "excluded": sel.excluded, "approved": sel.approved,
            "quality_scores": {e.episode_id: e.quality_score for e in sel.episodes},
            "partitions": [f"{d}|{r}" for d, r in sel.partitions],
            "feature_schema": feature_schema(info), "tasks": sorted({by_key[k].task for k in by_key}),
            "probe": probe, "video_codec": result.video_codec,
            "timestamp_problems": {str(i): r["detail"] for i, r in ts.items() if not r["passed"]},
            "partition_inputs": sel.inputs,
            "profile": result.profile, "robot_type": result.robot_type,
            "release_checks": result.release_checks.to_dict(),
        })

    published = publish_if_changed(lake, lerobot_prefix(spec), artifact_type="lerobot_dataset",
                                   inputs=inputs, config=config, write=write, immutable=True)
    if published.status == "cached":
        return ReleaseBuild(**vars(published), selection=sel, spec=spec)
    return ReleaseBuild(**vars(published), selection=sel, spec=spec, **how)
