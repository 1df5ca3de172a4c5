"""Land action-free human video clips and publish them to the write-once raw layer.

The same life as a robot recording (:mod:`hvla_platform.lib.ingest.landing`,
:mod:`hvla_platform.lib.ingest.raw`), partitioned by capture day × device:

* **landing** (:func:`land_clip`): a clip folder (exactly one ``.mp4``, the operator's
  ``metadata.yaml``, optionally ``operator_notes.md``) is copied unchanged to
  ``landing-human-video/<day>/<device>/<clip>/`` with write-once objects, ``metadata.yaml`` last (it
  marks the clip complete). A folder whose metadata is missing or unreadable, whose ids are unsafe,
  that holds other files or a symbolic link, is refused and kept under ``quarantine/_rejected/``
  with a ``reason.json`` (the robot landing's :func:`~hvla_platform.lib.ingest.landing.reject`);
  a clip whose id or consent was withdrawn is not landed again. The source folder is only read.
* **raw** (:func:`ingest_clip_partition`): each landed clip is checked — ``rights``: the metadata
  keeps its contract (:func:`~hvla_platform.lib.formats.human_video.parse_clip_metadata`: strict
  keys, ``contains_human_video: true``, the demonstrator's consent among the consent refs, a valid
  rights block) and names the partition it landed in; ``readable``: every frame of the MP4 decodes
  (:func:`~hvla_platform.lib.formats.human_video.probe_mp4`) — then published under
  ``raw-human-video/<day>/<device>/<clip>/`` (the MP4, ``metadata.yaml``, the notes, byte for byte,
  under the rights' retention where the store enforces it, and last the
  :class:`~hvla_platform.lib.core.manifest.RawHumanVideoManifest`). A clip failing a check gets
  ``quarantine/_human_video/<day>/<device>/<clip>/reason.json`` (one line per failed check) and a
  copy of its files. The landing copy is never modified or deleted. The partition's outcome is
  written to ``raw-human-video/<day>/<device>/_partition.json``.

Clips carry no actions: they become episodes with images and a task only (the video QA is
:mod:`hvla_platform.lib.processing.qa.video_qa`, the releases :mod:`hvla_platform.lib.dataset.video_release`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hvla_platform.lib.core.keys import (
    HUMAN_VIDEO_LANDING,
    HUMAN_VIDEO_RAW,
    UnsafeIdError,
    check_day,
    check_id,
    human_video_landing_prefix,
    human_video_quarantine_prefix,
    human_video_raw_prefix,
)
from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake, sha256_file
from hvla_platform.lib.core.manifest import RawHumanVideoManifest, build_manifest, load_manifest
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.core.withdrawals import Withdrawals
from hvla_platform.lib.formats.human_video import (
    CLIP_METADATA,
    VIDEO_SUFFIX,
    HumanVideoError,
    parse_clip_metadata,
    probe_mp4,
    read_clip_identity,
)
from hvla_platform.lib.ingest.landing import (NOTES, LandingResult, complete_partitions, complete_units,
    keep_files, land_files, read_landing_metadata, reject, start_landing, symlinks, unsafe_file_name)
from hvla_platform.lib.ingest.raw import (CheckedOutcome, commit_manifest, ingest_landed_partition,
    publish_retained)

RAW_CLIP_CHECKS = ("rights", "readable")


def find_clips(src: str | Path) -> list[Path]:
    """Folders under ``src`` (recursively, ``src`` included) holding at least one ``.mp4`` file."""
    src = Path(src)
    if not src.is_dir():
        return []
    return sorted({p.parent for p in src.rglob(f"*{VIDEO_SUFFIX}") if p.is_file() and not p.is_symlink()})


def land_clip(lake: Lake, folder: str | Path, *, source: str | None = None,
              withdrawals: Withdrawals | None = None) -> LandingResult:
    """Copy one clip folder into the landing area (module docstring).

    Returns a :class:`~hvla_platform.lib.ingest.landing.LandingResult` (``robot_id`` holds the
    device id, ``episode_id`` the clip id): ``landed``, ``already_landed``, ``conflict`` (another
    content is landed under the key; nothing replaced), ``rejected`` (kept under
    ``quarantine/_rejected/`` with the one-line reason) or ``withdrawn``.

    Raises:
        OSError: ``folder`` is not a readable folder, or the lake cannot be written.
    """
    rec = Path(folder)
    shown = source or str(rec)
    links = symlinks(rec)
    if links:
        return reject(lake, rec, f"{shown}: {links} are symbolic links; a clip must consist of regular files", source)
    meta_path = rec / CLIP_METADATA
    videos = sorted(p.name for p in rec.iterdir() if p.is_file() and p.suffix.lower() == VIDEO_SUFFIX)
    if not meta_path.is_file():
        return reject(lake, rec, f"{shown}: no metadata.yaml beside {videos}; a clip needs one (clip_id, device.id, "
                                 "capture_date, learning_role, demonstrator consent and the rights block)", source)
    read = read_landing_metadata(lake, rec, meta_path, shown, source, identify=read_clip_identity, hint=False)
    if isinstance(read, LandingResult):
        return read
    metadata, (day, device, clip) = read
    others = sorted(p.name for p in rec.iterdir() if p.name not in (CLIP_METADATA, NOTES) and p.name not in videos)
    if len(videos) != 1 or others:
        return reject(lake, rec, f"{shown}: a clip is exactly one .mp4 with metadata.yaml (and optionally "
                                 f"{NOTES}); found videos {videos}, other entries {others}", source)
    result = start_landing(lake, shown, (day, device, clip), metadata, withdrawals, noun="clip")
    if result.status == "withdrawn":
        return result
    files = [rec / videos[0]] + ([rec / NOTES] if (rec / NOTES).is_file() else []) + [meta_path]
    pairs = [(p, p.name) for p in files]
    problem = unsafe_file_name(pairs, shown)
    if problem:
        return reject(lake, rec, problem, source)
    # metadata.yaml last: it marks the clip complete
    prefix = human_video_landing_prefix(day, device, clip)
    result.status, result.reason = land_files(lake, prefix, pairs, shown)
    return result


def list_clip_partitions(lake: Lake) -> list[tuple[str, str]]:
    """(capture_day, device_id) pairs with at least one completely landed clip."""
    return complete_partitions(lake, HUMAN_VIDEO_LANDING, CLIP_METADATA)


def list_landed_clips(lake: Lake, day: str, device: str) -> list[str]:
    """Clip ids landed completely (``metadata.yaml`` present) in a partition, sorted."""
    return complete_units(lake, human_video_landing_prefix(day, device), CLIP_METADATA)


@dataclass
class ClipOutcome(CheckedOutcome):
    """What ingest concluded about one landed clip.

    ``status``: ``published``, ``cached`` (already in raw with the same MP4), ``quarantined`` or
    ``conflict`` (raw holds another MP4 under this clip id; nothing replaced). ``checks`` maps each
    of :data:`RAW_CLIP_CHECKS` to ``{"passed", "detail"}``; ``video_key`` is the raw MP4's lake key
    (empty when not published); ``probe`` the :class:`~hvla_platform.lib.formats.human_video.VideoProbe`
    dict; ``learning_role`` / ``task`` from the metadata (None when it did not parse).
    :attr:`usable` (published or cached with every raw check passed), ``reasons`` (one line per
    failed check) and ``to_dict`` (with ``usable`` and ``reasons``) come from
    :class:`~hvla_platform.lib.ingest.raw.CheckedOutcome`.
    """

    clip_id: str
    status: str
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    video_key: str = ""
    video_sha256: str = ""
    probe: dict[str, Any] | None = None
    rights: dict[str, Any] | None = None
    learning_role: str | None = None
    task: str | None = None


def _quarantine(lake: Lake, day: str, device: str, outcome: ClipOutcome, files: list[tuple[Path, str]]) -> None:
    prefix = human_video_quarantine_prefix(day, device, outcome.clip_id)
    keep_files(lake, f"{prefix}/files", files)  # the same landed files may be kept by an earlier run
    lake.write_json(f"{prefix}/reason.json", {
        "clip_id": outcome.clip_id, "capture_day": day, "device_id": device, "stage": "raw_human_video",
        "status": outcome.status, "reasons": outcome.reasons,
        "landing_key": human_video_landing_prefix(day, device, outcome.clip_id),
        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })


def ingest_clip(lake: Lake, day: str, device: str, clip: str) -> ClipOutcome:
    """Check one landed clip and publish it to raw, or quarantine it (module docstring).

    Never raises for bad input (the outcome's checks say what is wrong); the landing copy is only read.

    Raises:
        UnsafeIdError: ``day``, ``device`` or ``clip`` is not a safe id.
        OSError: the lake cannot be read or written.
    """
    check_day(day), check_id(device, "device id"), check_id(clip, "clip id")
    lp = human_video_landing_prefix(day, device, clip)
    outcome = ClipOutcome(clip_id=clip, status="quarantined")
    with scratch_dir("hvla-human-video", lake.scratch_root()) as tmp:
        local: dict[str, Path] = {}
        for key in lake.list_keys(lp):
            rel = key[len(lp) + 1:]
            check_id(rel, "landed file name")  # landing checked it; a key is never trusted to be a path
            local[rel] = lake.get_file(key, tmp / rel)
        source = f"{lp}/{CLIP_METADATA}"
        rights = meta = None
        try:
            raw_meta = yaml.safe_load(local[CLIP_METADATA].read_text(encoding="utf-8"))
            meta, rights = parse_clip_metadata(raw_meta, source=source)
            ident = read_clip_identity(raw_meta)
            if ident != (day, device, clip):
                outcome.checks["rights"] = {"passed": False, "detail": f"{source} names {ident}, but the clip landed "
                                                                       f"as {(day, device, clip)}"}
                rights = None
            else:
                outcome.checks["rights"] = {"passed": True, "detail": f"allowed uses: {sorted(rights.allowed_uses)}; "
                                                                      f"consent {meta.demonstrator.consent_ref}"}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            outcome.checks["rights"] = {"passed": False, "detail": f"{source}: cannot read: {type(exc).__name__}: {exc}"}
        except (HumanVideoError, UnsafeIdError) as exc:
            outcome.checks["rights"] = {"passed": False, "detail": str(exc)}
        videos = sorted(r for r in local if r.lower().endswith(VIDEO_SUFFIX))
        probe = None
        if len(videos) != 1:
            outcome.checks["readable"] = {"passed": False, "detail": f"{lp}: expected one .mp4, found {videos}"}
        else:
            try:
                probe = probe_mp4(local[videos[0]])
                outcome.checks["readable"] = {"passed": True, "detail": (
                    f"{probe.codec} {probe.width}x{probe.height}, {probe.num_frames} frames, {probe.duration_s:.2f} s")}
                outcome.probe = probe.to_dict()
            except HumanVideoError as exc:
                outcome.checks["readable"] = {"passed": False, "detail": f"{lp}/{exc}"}
        if meta is not None:
            outcome.learning_role, outcome.task = meta.learning_role, meta.task
        outcome.rights = rights.to_dict() if rights is not None else None
        files = [(local[r], r) for r in videos] + [(local[r], r) for r in (CLIP_METADATA, NOTES) if r in local]
        if all(c["passed"] for c in outcome.checks.values()):
            assert meta is not None and rights is not None and probe is not None
            outcome.video_sha256 = sha256_file(local[videos[0]])
            outcome.video_key = f"{human_video_raw_prefix(day, device, clip)}/{videos[0]}"
            outcome.status = _publish(lake, day, device, clip, files, meta, rights, outcome)
            if outcome.status == "conflict":
                outcome.checks["readable"] = {"passed": False, "detail": (
                    f"raw layer already holds a different {videos[0]} for this clip id; nothing replaced")}
                outcome.video_key = ""
        if not outcome.usable:
            _quarantine(lake, day, device, outcome, files)
    return outcome


def _publish(lake: Lake, day: str, device: str, clip: str, files: list[tuple[Path, str]], meta: Any,
             rights: Rights, outcome: ClipOutcome) -> str:
    """Write-once publish (the MP4 first, the manifest last); ``published``, ``cached`` or ``conflict``."""
    prefix = human_video_raw_prefix(day, device, clip)
    status = publish_retained(lake, prefix, files, rights, digest=("video_sha256", outcome.video_sha256))
    if status:
        return status
    manifest = build_manifest(
        artifact_type="raw_human_video_clip", artifact_key=prefix, inputs=[], config={}, rights=rights,
        episode_ids=[clip],
        extra={"clip_id": clip, "capture_day": day, "device_id": device, "video_key": outcome.video_key,
               "video_sha256": outcome.video_sha256, "landing_key": human_video_landing_prefix(day, device, clip),
               "learning_role": meta.learning_role, "task": meta.task, "site": meta.site, "customer": meta.customer,
               "demonstrator_consent_ref": meta.demonstrator.consent_ref, "probe": outcome.probe,
               "recorder": meta.recorder.model_dump() if meta.recorder is not None else None},
    )
    return commit_manifest(lake, prefix, manifest)


@dataclass
class ClipPartitionResult:
    """Outcome of :func:`ingest_clip_partition` for one (capture_day, device_id) partition."""

    capture_day: str
    device_id: str
    clips: list[ClipOutcome]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the content of ``_partition.json``)."""
        return {"capture_day": self.capture_day, "device_id": self.device_id, "clips": [c.to_dict() for c in self.clips]}


def ingest_clip_partition(lake: Lake, day: str, device: str) -> ClipPartitionResult:
    """Ingest every completely landed clip of a partition and write its ``_partition.json``.

    Raises:
        UnsafeIdError: ``day`` or ``device`` is not a safe id.
        ValueError: nothing landed for the partition.
    """
    check_day(day), check_id(device, "device id")
    return ingest_landed_partition(lake, day, device, landing=human_video_landing_prefix,
                                   raw=human_video_raw_prefix, landed=list_landed_clips, ingest_one=ingest_clip,
                                   result=ClipPartitionResult,
                                   what="clips", unit="clip")


def list_raw_clips(lake: Lake) -> list[RawHumanVideoManifest]:
    """Every published raw clip's manifest (``raw-human-video/<day>/<device>/<clip>/``), sorted by key.

    Raises:
        ManifestError: a published manifest does not match its model.
    """
    prefixes = sorted({k.rsplit("/", 1)[0] for k in lake.list_keys(HUMAN_VIDEO_RAW)
                       if k.count("/") == 4 and k.endswith("/" + MANIFEST_NAME)})
    out = []
    for p in prefixes:
        m = load_manifest(lake, p, RawHumanVideoManifest)
        if m is not None:
            out.append(m)
    return out
