"""Video-only LeRobot v3.0 releases of action-free human video, one learning bucket per release.

A latent-action model trains on one bucket (seed 004: a manipulation LAM and a locomotion LAM,
trained separately), so a release holds the clips of **one** ``learning_role``. The dataset has the
camera as a video feature (``observation.images.<camera>``), LeRobot's default per-frame features
(``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``) and the task, and
**no** ``action`` or ``observation.state`` feature. It is written by LeRobot's own writer
(``LeRobotDataset.create`` → ``add_frame`` → ``save_episode`` → ``finalize``) and read back with
``LeRobotDataset`` before it is published.

A release spec (:class:`VideoReleaseSpec`, a file a person writes, validated strictly)::

    name: human-video-locomotion          # the release id (a lake key segment)
    repo_id: hvla/human-video-locomotion
    bucket: locomotion                    # manipulation | locomotion
    fps: 10                               # frames are taken at k / fps from each clip
    image_size: [96, 128]                 # (height, width); default: the first clip's size
    min_quality: 0.6                      # video QA score below which a clip is left out
    partitions: [{capture_day: '2026-11-10', device_id: headcam-01}]   # default: every partition
    qa: {max_jitter: 0.05}                # VideoQAThresholds overrides

Which clips (:func:`select_clips`): every published raw clip of the bucket in the partitions, except
clips past their retention date, clips failing a video-QA gate and clips whose score is below
``min_quality`` (each left out with its reason in the manifest's ``excluded``).

**Faces.** A clip whose rights do not allow identifiable people
(:attr:`~hvla_platform.lib.core.rights.Rights.requires_face_blur`) has every frame passed through
:func:`~hvla_platform.lib.processing.face_blur.blur_faces` at its source resolution before it is
resized and written; the manifest's ``face_blur`` names the detector, the faces blurred per clip and
the clips kept unblurred (their rights allow identifiable people).

**Versions.** A release never changes once published: the first build is ``lerobot/<repo_id>/<name>/``
(version 0), a build whose clips or spec differ from the newest version's (its fingerprint) is the
next version ``<name>.<n>`` (:mod:`hvla_platform.lib.dataset.versions`' ids); the same clips and
spec find the newest version ``cached``.

Published with a
:class:`~hvla_platform.lib.core.manifest.LeRobotDatasetManifest` (``bucket``, ``has_action:
false``, ``source_kind: human_video``, ``face_blur``), inputs the raw clips' manifests, so lineage
runs from the release to each clip.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import cv2
import numpy as np
from pydantic import Field

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.features import IMAGE_PREFIX
from hvla_platform.lib.core.keys import LEROBOT, check_id, lerobot_release_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, Published, RawHumanVideoManifest, fingerprint, load_manifest,
    publish_if_changed)
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.lerobot_release import DEFAULT_VIDEO_BACKEND, feature_schema, read_info
from hvla_platform.lib.dataset.versions import parse_version_id, version_id
from hvla_platform.lib.formats.human_video import read_frames
from hvla_platform.lib.ingest.human_video import list_raw_clips
from hvla_platform.lib.processing.face_blur import DETECTOR_NAME, blur_faces
from hvla_platform.lib.processing.qa.video_qa import VideoQAThresholds, clip_qa


class VideoReleaseError(ValueError):
    """A video release cannot be built (bad spec, no clip left); the message says why in one line."""


class PartitionRef(StrictModel):
    """One capture day × device partition of the raw human video layer."""

    capture_day: str
    device_id: str


class VideoReleaseSpec(StrictModel):
    """The spec of a video-only release (module docstring)."""

    name: str = Field(description="release id, a lake key segment")
    repo_id: str = Field(description="LeRobot repo id, <org>/<name>")
    bucket: Literal["manipulation", "locomotion"]
    fps: int = Field(default=10, ge=1, le=120)
    image_size: tuple[int, int] | None = Field(default=None, description="(height, width), even; default the first clip's")
    camera: str = Field(default="head", description="camera name: the feature is observation.images.<camera>")
    min_quality: float = Field(default=0.6, ge=0.0, le=1.0)
    partitions: list[PartitionRef] | None = None
    video_codec: str = "h264"
    qa: dict[str, float] = Field(default_factory=dict, description="VideoQAThresholds overrides")

    @property
    def image_key(self) -> str:
        """The LeRobot feature name of the camera."""
        return IMAGE_PREFIX + self.camera


def parse_video_release_spec(data: Any, *, source: str = "video release spec") -> VideoReleaseSpec:
    """Validate a parsed spec strictly (a misspelled key is refused naming the closest valid one).

    Raises:
        VideoReleaseError: one line naming ``source`` and each problem; also an unsafe name or
            repo id, an odd image size, or an unknown ``qa`` threshold.
    """
    spec = validate_document(VideoReleaseSpec, data, source=source, error_cls=VideoReleaseError)
    try:
        check_id(spec.name, "release name")
        for part in spec.repo_id.split("/"):
            check_id(part, "repo_id segment")
        VideoQAThresholds.with_overrides(spec.qa)
    except ValueError as exc:
        raise VideoReleaseError(f"{source}: {exc}") from None
    if spec.image_size is not None and (spec.image_size[0] % 2 or spec.image_size[1] % 2 or min(spec.image_size) < 2):
        raise VideoReleaseError(f"{source}: image_size {list(spec.image_size)} must be two even sizes ≥ 2")
    return spec


@dataclass
class ClipChoice:
    """The clips of a release: ``chosen`` (raw manifests, in key order) with their QA, and
    ``excluded`` clip id → reason."""

    chosen: list[RawHumanVideoManifest] = field(default_factory=list)
    qa: dict[str, dict[str, Any]] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)


def select_clips(lake: Lake, spec: VideoReleaseSpec, scratch: Path, *, on: dt.date | None = None) -> ClipChoice:
    """The bucket's raw clips in the spec's partitions, QA'd (:func:`clip_qa` on a local copy in
    ``scratch``) and filtered (module docstring). Clips of the other bucket are not considered."""
    on = on or dt.date.today()
    th = VideoQAThresholds.with_overrides(spec.qa)
    wanted = None if spec.partitions is None else {(p.capture_day, p.device_id) for p in spec.partitions}
    out = ClipChoice()
    for m in list_raw_clips(lake):
        if m.learning_role != spec.bucket or (wanted is not None and (m.capture_day, m.device_id) not in wanted):
            continue
        if m.rights_obj.is_expired(on):
            out.excluded[m.clip_id] = f"past its retention date {m.rights_obj.retention_until.isoformat()}"
            continue
        local = lake.get_file(m.video_key, scratch / "qa" / m.clip_id / Path(m.video_key).name)
        q = clip_qa(local, m.learning_role, th)
        out.qa[m.clip_id] = q.to_dict()
        if q.gated:
            out.excluded[m.clip_id] = "video QA gate(s) failed: " + "; ".join(
                f"{c}: {q.checks[c]['detail']}" for c in q.gated)
        elif q.quality_score < spec.min_quality:
            out.excluded[m.clip_id] = f"quality score {q.quality_score:.3f} < min_quality {spec.min_quality:g}"
        else:
            out.chosen.append(m)
    return out


def resample_indices(pts_s: np.ndarray, fps: float) -> np.ndarray:
    """Indices of the source frames shown at ``k / fps`` for k = 0 … ⌊(last pts) × fps⌋: the latest
    frame whose presentation time is ≤ k / fps (+ 1 ms), ``pts_s`` (N,) float64 seconds, non-decreasing."""
    times = np.arange(int(np.floor(pts_s[-1] * fps + 1e-6)) + 1) / fps
    return np.clip(np.searchsorted(pts_s, times + 1e-3, side="right") - 1, 0, len(pts_s) - 1)


def clip_frames(video: Path, *, fps: float, size: tuple[int, int] | None, blur: bool) -> tuple[list[np.ndarray], int]:
    """A clip's frames for a release: resampled to ``fps`` (:func:`resample_indices`), faces blurred
    at the source resolution when ``blur``, then resized to ``size`` = (H, W) with ``cv2.INTER_AREA``.

    Returns:
        ``(frames, faces)``: (H, W, 3) uint8 RGB frames and the number of face boxes blurred.
    """
    decoded = list(read_frames(video))
    pts = np.array([t for t, _ in decoded])
    out, faces = [], 0
    for i in resample_indices(pts, fps):
        frame = decoded[int(i)][1]
        if blur:
            res = blur_faces(frame)
            frame, faces = res.frame, faces + len(res.boxes)
        if size is not None and frame.shape[:2] != tuple(size):
            frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        out.append(frame)
    return out, faces


def write_video_dataset(root: Path, spec: VideoReleaseSpec, clips: list[tuple[str, str, Path, bool]],
                        say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Write the LeRobot v3.0 dataset at ``root`` (must not exist) with LeRobot's writer.

    Args:
        clips: ``(clip_id, task, local MP4, blur faces)`` in episode order.

    Returns:
        ``{"episode_index": {clip: i}, "num_frames", "faces": {clip: n}, "image_shape": [H, W, 3]}``.

    Raises:
        VideoReleaseError: no clips.
    """
    if not clips:
        raise VideoReleaseError(f"release {spec.name}: no clips to write")
    LeRobotDataset = import_lerobot_dataset()
    size = tuple(spec.image_size) if spec.image_size is not None else None
    # libx264 writes its statistics from C to fd 2: into the release's codec log (codec_log.py), not the terminal
    with codec_output_to(codec_log_path(spec.name)):
        return _write_episodes(LeRobotDataset, root, spec, clips, size, say)


def _write_episodes(LeRobotDataset: Any, root: Path, spec: VideoReleaseSpec, clips: Any, size: Any,
                    say: Callable[[str], None]) -> dict[str, Any]:
    dataset = None
    episode_index, faces, total = {}, {}, 0
    try:
        for i, (clip_id, task, video, blur) in enumerate(clips):
            frames, n_faces = clip_frames(video, fps=spec.fps, size=size, blur=blur)
            if dataset is None:
                size = frames[0].shape[:2]
                features = {spec.image_key: {"dtype": "video", "shape": (size[0], size[1], 3),
                                             "names": ["height", "width", "channels"]}}
                dataset = LeRobotDataset.create(repo_id=spec.repo_id, fps=spec.fps, features=features, root=root,
                                                robot_type="human", use_videos=True, vcodec=spec.video_codec,
                                                video_backend=DEFAULT_VIDEO_BACKEND)
            for f in frames:
                dataset.add_frame({spec.image_key: f, "task": task})
            dataset.save_episode()
            episode_index[clip_id], faces[clip_id] = i, n_faces
            total += len(frames)
            say(f"episode {i + 1}/{len(clips)} {clip_id}: {len(frames)} frames, {n_faces} face box(es) blurred")
    finally:
        if dataset is not None:
            dataset.finalize()
    assert size is not None
    return {"episode_index": episode_index, "num_frames": total, "faces": faces, "image_shape": [size[0], size[1], 3]}


def probe_video_dataset(root: Path, repo_id: str, image_key: str) -> dict[str, Any]:
    """Load the dataset back with ``LeRobotDataset`` and decode its first and last frames.

    Returns:
        ``{"num_episodes", "num_frames", "fps", "image_shape" ([C, H, W] as LeRobot returns it),
        "features" (sorted names), "has_action", "video_backend"}``.

    Raises:
        VideoReleaseError: the dataset has an ``action`` feature or the decoded shapes differ.
        Whatever LeRobot raises when it cannot read the dataset.
    """
    LeRobotDataset = import_lerobot_dataset()
    ds = LeRobotDataset(repo_id, root=Path(root), video_backend=DEFAULT_VIDEO_BACKEND)
    first, last = ds[0], ds[len(ds) - 1]
    if "action" in ds.meta.features:
        raise VideoReleaseError(f"{root}: a video-only dataset has an 'action' feature")
    if tuple(first[image_key].shape) != tuple(last[image_key].shape):
        raise VideoReleaseError(f"{root}: first and last decoded frames differ in shape")
    return {"num_episodes": int(ds.num_episodes), "num_frames": int(ds.num_frames), "fps": int(ds.fps),
            "image_shape": list(first[image_key].shape), "features": sorted(ds.meta.features),
            "has_action": False, "video_backend": DEFAULT_VIDEO_BACKEND}


def _card(spec: VideoReleaseSpec, rights: Rights, info: dict[str, Any], choice: ClipChoice, face_blur: dict[str, Any]) -> str:
    lines = [f"# {spec.repo_id} — {spec.name}", "",
             f"Action-free egocentric video, **{spec.bucket}** bucket (seed 004: one latent-action model per bucket).",
             "No `action` or `observation.state` feature: images and the task only.", "",
             f"- episodes: {len(info['episode_index'])}, frames: {info['num_frames']}, fps: {spec.fps}, "
             f"image: {info['image_shape']}",
             f"- faces: {face_blur['detector']}; blurred in {len(face_blur['blurred_clips'])} clip(s) "
             f"({sum(face_blur['blurred_clips'].values())} face boxes), kept in {face_blur['kept_clips']} "
             "(their rights allow identifiable people)",
             f"- rights: allowed uses {sorted(rights.allowed_uses)}, consents {sorted(rights.consent_refs)}, "
             f"retention until {rights.retention_until.isoformat()}, contains human video: {rights.contains_human_video}",
             "", "## Left out", ""]
    lines += [f"- `{c}`: {why}" for c, why in sorted(choice.excluded.items())] or ["- none"]
    return "\n".join(lines) + "\n"


def build_video_release(lake: Lake, spec: VideoReleaseSpec, *, on: dt.date | None = None,
                        say: Callable[[str], None] = lambda _: None) -> Published:
    """Select, QA, blur, write, read back and publish the bucket's release (module docstring).

    Returns the :class:`~hvla_platform.lib.core.manifest.Published` release: ``cached`` (the newest
    version has these clips and this spec), else ``materialized`` as the next version.

    Raises:
        VideoReleaseError: no clip of the bucket is left (the message lists why each was left out).
        ManifestError: the manifest does not match its model.
    """
    with scratch_dir("hvla-video-release", lake.scratch_root()) as scratch:
        choice = select_clips(lake, spec, scratch, on=on)
        if not choice.chosen:
            why = "; ".join(f"{c}: {r}" for c, r in sorted(choice.excluded.items())) or "none published"
            raise VideoReleaseError(f"release {spec.name}: no usable {spec.bucket} clip ({why})")
        inputs = [InputRef(key=m.artifact_key, sha256=m.sha256(), kind="raw_human_video_clip", episode_ids=[m.clip_id])
                  for m in choice.chosen]
        rights = combine_rights(m.rights_obj for m in choice.chosen)
        config = {"spec": spec.model_dump(mode="json"), "detector": DETECTOR_NAME}
        latest = latest_video_release(lake, spec)
        fp = fingerprint([i.to_dict() for i in inputs], config)
        if latest is not None and latest.fingerprint == fp:
            prefix = lerobot_release_prefix(spec.repo_id, latest.release)
            return Published("cached", prefix, lake.uri(prefix), latest)
        version = 0 if latest is None else latest.version + 1
        release = version_id(spec.name, version)
        prefix = lerobot_release_prefix(spec.repo_id, release)

        def write(staging: Path) -> Content:
            local = [(m.clip_id, m.task, lake.get_file(m.video_key, scratch / "src" / m.clip_id / Path(m.video_key).name),
                      m.rights_obj.requires_face_blur) for m in choice.chosen]
            build = scratch / "dataset"
            info = write_video_dataset(build, spec, local, say)
            probe = probe_video_dataset(build, spec.repo_id, spec.image_key)
            blurred = {c: info["faces"][c] for c, _, _, b in local if b}
            face_blur = {"detector": DETECTOR_NAME, "blurred_clips": blurred,
                         "kept_clips": sorted(c for c, _, _, b in local if not b)}
            (build / "README.md").write_text(_card(spec, rights, info, choice, face_blur), encoding="utf-8")
            for entry in build.iterdir():
                shutil.move(str(entry), staging / entry.name)
            lr_info = read_info(staging)
            ids = list(info["episode_index"])
            return Content(extra={
                "release": release, "repo_id": spec.repo_id, "spec_name": spec.name, "version": version,
                "codebase_version": lr_info.get("codebase_version"), "num_episodes": len(ids),
                "num_frames": info["num_frames"], "fps": float(spec.fps), "episode_index": info["episode_index"],
                "train_episode_ids": ids, "heldout_episode_ids": [], "train_episode_indices": list(range(len(ids))),
                "heldout_episode_indices": [], "excluded": choice.excluded, "approved": {},
                "quality_scores": {c: choice.qa[c]["quality_score"] for c in ids},
                "partitions": sorted({f"{m.capture_day}|{m.device_id}" for m in choice.chosen}),
                "feature_schema": feature_schema(lr_info), "tasks": sorted({m.task for m in choice.chosen}),
                "probe": probe, "video_codec": spec.video_codec, "timestamp_problems": {}, "partition_inputs": [],
                "robot_type": "human", "release_checks": {"video_qa": {c: choice.qa[c] for c in ids}},
                "bucket": spec.bucket, "has_action": False, "source_kind": "human_video", "face_blur": face_blur,
            }, episode_ids=ids, rights=rights)

        return publish_if_changed(lake, prefix, artifact_type="lerobot_dataset", inputs=inputs, config=config,
                                  write=write, rights=rights, immutable=True)


def latest_video_release(lake: Lake, spec: VideoReleaseSpec) -> LeRobotDatasetManifest | None:
    """The newest published version of ``spec.name`` under ``lerobot/<repo_id>/`` (``<name>`` is
    version 0, ``<name>.<n>`` version n), or ``None``.

    Raises:
        ManifestError: a published manifest does not match its model.
    """
    found = []
    for prefix in lake.list_artifacts(f"{LEROBOT}/{spec.repo_id}"):
        name, _ = parse_version_id(prefix.rsplit("/", 1)[-1])
        if name == spec.name:
            m = load_manifest(lake, prefix, LeRobotDatasetManifest)
            if m is not None:
                found.append(m)
    return max(found, key=lambda m: m.version, default=None)
